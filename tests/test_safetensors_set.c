/* test_safetensors_set.c — sharded Hugging Face checkpoints: st_write_sharded round trips through
 * st_set_open / st_set_find, the single-file fallback, and every refusal of a bad index or shard.
 * Each test works in its own sub-directory of a mkdtemp directory removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linshard/safetensors.h"
#include "linshard/safetensors_set.h"

static char tmpdir[64];

static int group_setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/st-set-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int group_teardown(void **state) {
    (void)state;
    remove_tree(tmpdir);
    return 0;
}

/* A fresh, empty sub-directory of tmpdir called name. */
static const char *fresh_dir(const char *name, char *buf, size_t len) {
    snprintf(buf, len, "%s/%s", tmpdir, name);
    remove_tree(buf);
    assert_int_equal(mkdir(buf, 0777), 0);
    return buf;
}

static const char *path_in(const char *dir, const char *name, char *buf, size_t len) {
    snprintf(buf, len, "%s/%s", dir, name);
    return buf;
}

static void write_text(const char *dir, const char *name, const char *text) {
    char p[512];
    FILE *fp = fopen(path_in(dir, name, p, sizeof(p)), "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

static int exists(const char *dir, const char *name) {
    char p[512];
    struct stat sb;
    return stat(path_in(dir, name, p, sizeof(p)), &sb) == 0;
}

/* Counts directory entries whose name contains needle. */
static int count_entries(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, needle)) n++;
    closedir(d);
    return n;
}

/* st_set_open(dir) must fail with one line containing want (and want2 when not NULL), leave the
 * set zeroed, and the set must then close twice. */
static void expect_set_error(const char *dir, const char *want, const char *want2) {
    st_set s;
    char err[1024];
    memset(&s, 0xab, sizeof(s)); /* st_set_open must not rely on a zeroed st_set */
    int rc = st_set_open(&s, dir, err, sizeof(err));
    if (rc == 0 || !strstr(err, want) || (want2 && !strstr(err, want2)) || strchr(err, '\n'))
        print_error("st_set_open(%s): rc %d, err \"%s\", wanted \"%s\" and \"%s\"\n", dir, rc, err,
                    want, want2 ? want2 : "");
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, want));
    if (want2) assert_non_null(strstr(err, want2));
    assert_null(strchr(err, '\n'));
    assert_null(s.files);
    assert_null(s.file_names);
    assert_null(s.tensors);
    assert_int_equal(s.n_files, 0);
    assert_int_equal(s.n_tensors, 0);
    st_set_close(&s);
    st_set_close(&s);
}

static float pattern(size_t i, int which) {
    return (float)((double)i * 0.37 - 4.0) * (float)(which + 1) + 0.125f;
}

/* What reading a value stored as dtype gives back. */
static float stored(float x, st_dtype dtype) {
    if (dtype == ST_F16) return st_f16_to_f32(st_f32_to_f16(x));
    if (dtype == ST_BF16) return st_bf16_to_f32(st_f32_to_bf16(x));
    return x;
}

/* Every tensor of w must be found in s, in the file named files[i], with its values. */
static void check_set_holds(const st_set *s, const st_write_tensor *w, int n,
                            const char *const *files) {
    assert_int_equal(s->n_tensors, n);
    for (int i = 0; i < n; i++) {
        const st_file *f = NULL;
        const st_tensor *t = st_set_find(s, w[i].name, &f);
        assert_non_null(t);
        assert_non_null(f);
        assert_string_equal(t->name, w[i].name);
        assert_int_equal(t->dtype, w[i].dtype);
        assert_int_equal(t->ndim, w[i].ndim);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            assert_int_equal(t->shape[d], w[i].shape[d]);
            numel *= (size_t)w[i].shape[d];
        }
        assert_int_equal(t->numel, numel);
        assert_string_equal(s->file_names[f - s->files], files[i]);
        float *got = malloc((numel ? numel : 1) * sizeof(float));
        assert_non_null(got);
        assert_int_equal(st_read_f32(f, t, 0, numel, got), 0);
        for (size_t k = 0; k < numel; k++)
            assert_true(got[k] == stored(w[i].data[k], w[i].dtype)); /* bit-exact, no NaNs here */
        free(got);
    }
    /* Iteration: sorted by name, each tensor once. */
    for (int i = 1; i < s->n_tensors; i++)
        assert_true(strcmp(s->tensors[i - 1].tensor->name, s->tensors[i].tensor->name) < 0);
    assert_null(st_set_find(s, "no.such.tensor", NULL));
}

/* ---- round trips ----------------------------------------------------------------------------- */

enum { NA = 20, NB = 12, NC = 10, ND = 6, NF = 40 };
static float va[NA], vb[NB], vc[NC], vd[ND], vf[NF];

/* a (80 B) | b, c, d, e (24 + 20 + 24 + 0 B) | f (160 B, over the limit: a file of its own). */
static int six_tensors(st_write_tensor *w) {
    for (size_t i = 0; i < NA; i++) va[i] = pattern(i, 0);
    for (size_t i = 0; i < NB; i++) vb[i] = pattern(i, 1);
    for (size_t i = 0; i < NC; i++) vc[i] = pattern(i, 2) * 100.0f;
    for (size_t i = 0; i < ND; i++) vd[i] = pattern(i, 3);
    for (size_t i = 0; i < NF; i++) vf[i] = pattern(i, 4) / 7.0f;
    const st_write_tensor all[] = {
        {"model.embed_tokens.weight", ST_F32, 2, {4, 5}, va},
        {"model.layers.0.mlp.up_proj.weight", ST_F16, 2, {3, 4}, vb},
        {"model.layers.0.input_layernorm.weight", ST_BF16, 1, {NC}, vc},
        {"model.layers.0.self_attn.q_proj.bias", ST_F32, 1, {ND}, vd},
        {"model.layers.0.empty", ST_F16, 2, {0, 3}, NULL},
        {"lm_head.weight", ST_F32, 2, {8, 5}, vf},
    };
    memcpy(w, all, sizeof(all));
    return 6;
}

static void test_sharded_round_trip(void **state) {
    (void)state;
    st_write_tensor w[6];
    int n = six_tensors(w);
    char dir[256], err[512];
    fresh_dir("sharded", dir, sizeof(dir));
    assert_int_equal(st_write_sharded(dir, w, n, 100, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    const char *f1 = "model-00001-of-00003.safetensors", *f2 = "model-00002-of-00003.safetensors",
               *f3 = "model-00003-of-00003.safetensors";
    assert_true(exists(dir, f1) && exists(dir, f2) && exists(dir, f3));
    assert_true(exists(dir, ST_SET_INDEX_NAME));
    assert_int_equal(count_entries(dir, ".tmp"), 0);
    assert_int_equal(count_entries(dir, "safetensors"), 4);

    /* The index is what Hugging Face writes: total_size and a weight_map of file names. */
    char p[512];
    FILE *fp = fopen(path_in(dir, ST_SET_INDEX_NAME, p, sizeof(p)), "rb");
    assert_non_null(fp);
    char text[4096];
    size_t len = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[len] = '\0';
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    const cJSON *total = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "metadata"), "total_size");
    assert_true(cJSON_IsNumber(total));
    assert_int_equal((int)total->valuedouble, 80 + 24 + 20 + 24 + 0 + 160);
    const cJSON *wm = cJSON_GetObjectItem(root, "weight_map");
    assert_int_equal(cJSON_GetArraySize(wm), n);
    assert_string_equal(cJSON_GetObjectItem(wm, "lm_head.weight")->valuestring, f3);
    cJSON_Delete(root);

    st_set s;
    assert_int_equal(st_set_open(&s, dir, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(s.indexed, 1);
    assert_int_equal(s.n_files, 3);
    const char *files[] = {f1, f2, f2, f2, f2, f3};
    check_set_holds(&s, w, n, files);
    st_set_close(&s);
    st_set_close(&s); /* twice is safe */
    assert_null(s.files);
}

static void test_sharded_limits(void **state) {
    (void)state;
    st_write_tensor w[6];
    int n = six_tensors(w);
    char dir[256], err[512];
    st_set s;

    /* 0: no limit, one shard (still with an index: the caller chose a sharded layout). */
    fresh_dir("one_shard", dir, sizeof(dir));
    assert_int_equal(st_write_sharded(dir, w, n, 0, err, sizeof(err)), 0);
    assert_true(exists(dir, "model-00001-of-00001.safetensors"));
    assert_int_equal(st_set_open(&s, dir, err, sizeof(err)), 0);
    assert_int_equal(s.n_files, 1);
    const char *one = "model-00001-of-00001.safetensors";
    const char *files1[] = {one, one, one, one, one, one};
    check_set_holds(&s, w, n, files1);
    st_set_close(&s);

    /* 1 byte: every non-empty tensor is oversized, so each gets a file; the empty one stays. */
    fresh_dir("tiny_shards", dir, sizeof(dir));
    assert_int_equal(st_write_sharded(dir, w, n, 1, err, sizeof(err)), 0);
    assert_int_equal(st_set_open(&s, dir, err, sizeof(err)), 0);
    assert_int_equal(s.n_files, 5);
    const char *files5[] = {"model-00001-of-00005.safetensors", "model-00002-of-00005.safetensors",
                            "model-00003-of-00005.safetensors", "model-00004-of-00005.safetensors",
                            "model-00004-of-00005.safetensors", "model-00005-of-00005.safetensors"};
    check_set_holds(&s, w, n, files5);
    st_set_close(&s);

    /* Exactly full: 80 + 24 = 104 fits a 104-byte limit. */
    fresh_dir("exact", dir, sizeof(dir));
    assert_int_equal(st_write_sharded(dir, w, 2, 104, err, sizeof(err)), 0);
    assert_true(exists(dir, "model-00001-of-00001.safetensors"));
    fresh_dir("one_over", dir, sizeof(dir)); /* one byte less: b starts a second shard */
    assert_int_equal(st_write_sharded(dir, w, 2, 103, err, sizeof(err)), 0);
    assert_true(exists(dir, "model-00002-of-00002.safetensors"));

    /* Rewriting with another split: the reader follows the new index (old shards stay). */
    fresh_dir("rewrite", dir, sizeof(dir));
    assert_int_equal(st_write_sharded(dir, w, n, 1, err, sizeof(err)), 0);
    assert_int_equal(st_write_sharded(dir, w, n, 100, err, sizeof(err)), 0);
    assert_int_equal(st_set_open(&s, dir, err, sizeof(err)), 0);
    assert_int_equal(s.n_files, 3);
    st_set_close(&s);
}

static void test_single_file(void **state) {
    (void)state;
    st_write_tensor w[6];
    int n = six_tensors(w);
    char dir[256], p[512], err[512];
    fresh_dir("single", dir, sizeof(dir));
    assert_int_equal(
        st_write(path_in(dir, ST_SET_SINGLE_NAME, p, sizeof(p)), w, n, err, sizeof(err)), 0);
    st_set s;
    assert_int_equal(st_set_open(&s, dir, err, sizeof(err)), 0);
    assert_int_equal(s.indexed, 0);
    assert_int_equal(s.n_files, 1);
    const char *files[] = {ST_SET_SINGLE_NAME, ST_SET_SINGLE_NAME, ST_SET_SINGLE_NAME,
                           ST_SET_SINGLE_NAME, ST_SET_SINGLE_NAME, ST_SET_SINGLE_NAME};
    check_set_holds(&s, w, n, files);
    st_set_close(&s);

    /* An index beside model.safetensors wins: it is what a sharded save writes last. */
    assert_int_equal(st_write_sharded(dir, w, 2, 0, err, sizeof(err)), 0);
    assert_int_equal(st_set_open(&s, dir, err, sizeof(err)), 0);
    assert_int_equal(s.indexed, 1);
    assert_int_equal(s.n_tensors, 2);
    st_set_close(&s);

    /* A zeroed set closes; a NULL set and NULL names are harmless. */
    st_set z;
    memset(&z, 0, sizeof(z));
    st_set_close(&z);
    st_set_close(NULL);
    assert_null(st_set_find(NULL, "x", NULL));
    assert_null(st_set_find(&z, "x", NULL));
    assert_int_equal(st_set_open(NULL, dir, err, sizeof(err)), -1);
    assert_int_equal(st_set_open(&z, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no model directory"));
}

/* ---- refusals -------------------------------------------------------------------------------- */

/* A valid two-shard set in a fresh dir: a, b in shard 1; c in shard 2. */
static const char *two_shards(const char *name, char *dir, size_t len) {
    static const float x[4] = {1, 2, 3, 4};
    st_write_tensor w[] = {
        {"a", ST_F32, 1, {4}, x}, {"b", ST_F16, 1, {4}, x}, {"c", ST_BF16, 1, {4}, x}};
    char err[512];
    fresh_dir(name, dir, len);
    assert_int_equal(st_write_sharded(dir, w, 3, 24, err, sizeof(err)), 0);
    assert_true(exists(dir, "model-00002-of-00002.safetensors"));
    return dir;
}

#define S1 "\"model-00001-of-00002.safetensors\""
#define S2 "\"model-00002-of-00002.safetensors\""

static void test_index_errors(void **state) {
    (void)state;
    char dir[256];
    struct {
        const char *index, *want, *want2;
    } cases[] = {
        {"{\"weight_map\": {\"a\": " S1, "not valid JSON", "parse error"},
        {"{\"weight_map\": {}} x", "not valid JSON", "unexpected data"},
        {"", "not valid JSON", NULL},
        {"[1, 2]", "is an array, not a JSON object", NULL},
        {"{\"metadata\": {\"total_size\": 40}}", "no \"weight_map\" object", NULL},
        {"{\"weight_map\": [" S1 "]}", "\"weight_map\" is an array, not an object", NULL},
        {"{\"weight_map\": {}}", "\"weight_map\" is empty", NULL},
        {"{\"weight_map\": {\"a\": " S1 ", \"b\": 3, \"c\": " S2 "}}",
         "entry 'b' is a number, not a string", NULL},
        {"{\"weight_map\": {\"a\": null}}", "entry 'a' is null, not a string", NULL},
        {"{\"weight_map\": {\"a\": \"../model-00001-of-00002.safetensors\"}}", "path separator",
         "../model-00001"},
        {"{\"weight_map\": {\"a\": \"/etc/passwd\"}}", "path separator", NULL},
        {"{\"weight_map\": {\"a\": \"sub\\\\x.safetensors\"}}", "path separator", NULL},
        {"{\"weight_map\": {\"a\": \"..\"}}", "directory reference", NULL},
        {"{\"weight_map\": {\"a\": \".\"}}", "directory reference", NULL},
        {"{\"weight_map\": {\"a\": \"\"}}", "file name '', which is empty", NULL},
        {"{\"weight_map\": {\"a\": \"x\\ny.safetensors\"}}", "control character", "'x?y"},
        {"{\"weight_map\": {\"a\": " S1 ", \"b\": " S1 ", \"c\": " S2 ", \"a\": " S1 "}}",
         "tensor 'a' appears twice", NULL},
        {"{\"weight_map\": {\"a\": " S1 ", \"b\": " S1 ", \"c\": " S2
         ", \"d\": \"model-00003-of-00003.safetensors\"}}",
         "names model-00003-of-00003.safetensors, which is missing", NULL},
        {"{\"weight_map\": {\"a\": " S1 ", \"b\": " S1 ", \"c\": " S2 ", \"ghost\": " S2 "}}",
         "maps tensor 'ghost' to model-00002-of-00002.safetensors, which does not contain it",
         NULL},
        {"{\"weight_map\": {\"a\": " S1 ", \"b\": " S2 ", \"c\": " S2 "}}",
         "maps tensor 'b' to model-00002-of-00002.safetensors, which does not contain it", NULL},
        {"{\"weight_map\": {\"a\": " S1 ", \"c\": " S2 "}}",
         "model-00001-of-00002.safetensors holds tensor 'b', which the index does not name", NULL},
        {"{\"weight_map\": {\"a\": " S1 ", \"b\": " S1 ", \"c\": \"" ST_SET_INDEX_NAME "\"}}",
         ST_SET_INDEX_NAME ": header length", NULL}, /* st_open's own refusal, naming the file */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        two_shards("index_errors", dir, sizeof(dir));
        write_text(dir, ST_SET_INDEX_NAME, cases[i].index);
        expect_set_error(dir, cases[i].want, cases[i].want2);
        /* Every message names the index file first. */
        st_set s;
        char err[1024];
        assert_int_equal(st_set_open(&s, dir, err, sizeof(err)), -1);
        assert_int_equal(strncmp(err, dir, strlen(dir)), 0);
        assert_non_null(strstr(err, ST_SET_INDEX_NAME));
    }
}

static void test_shard_errors(void **state) {
    (void)state;
    char dir[256], p[512], err[512];

    /* A shard missing (an interrupted download). */
    two_shards("missing", dir, sizeof(dir));
    assert_int_equal(unlink(path_in(dir, "model-00002-of-00002.safetensors", p, sizeof(p))), 0);
    expect_set_error(dir, ST_SET_INDEX_NAME " names model-00002-of-00002.safetensors",
                     "which is missing");

    /* A shard that st_open refuses: the message names the shard. */
    two_shards("corrupt", dir, sizeof(dir));
    write_text(dir, "model-00002-of-00002.safetensors", "abc");
    expect_set_error(dir, "model-00002-of-00002.safetensors: file is 3 bytes", NULL);

    /* A shard that is a directory. */
    two_shards("shard_dir", dir, sizeof(dir));
    assert_int_equal(unlink(path_in(dir, "model-00001-of-00002.safetensors", p, sizeof(p))), 0);
    assert_int_equal(mkdir(p, 0777), 0);
    expect_set_error(dir, "model-00001-of-00002.safetensors: not a regular file", NULL);

    /* The same tensor in two files, whichever one the index names: ambiguous. */
    static const float x[4] = {1, 2, 3, 4};
    st_write_tensor w1[] = {{"a", ST_F32, 1, {4}, x}, {"b", ST_F32, 1, {4}, x}};
    st_write_tensor w2[] = {{"c", ST_F32, 1, {4}, x}, {"b", ST_F32, 1, {2}, x}};
    fresh_dir("ambiguous", dir, sizeof(dir));
    assert_int_equal(st_write(path_in(dir, "model-00001-of-00002.safetensors", p, sizeof(p)), w1, 2,
                              err, sizeof(err)),
                     0);
    assert_int_equal(st_write(path_in(dir, "model-00002-of-00002.safetensors", p, sizeof(p)), w2, 2,
                              err, sizeof(err)),
                     0);
    write_text(dir, ST_SET_INDEX_NAME,
               "{\"weight_map\": {\"a\": " S1 ", \"b\": " S1 ", \"c\": " S2 "}}");
    expect_set_error(dir,
                     "tensor 'b' is in both model-00001-of-00002.safetensors and "
                     "model-00002-of-00002.safetensors",
                     "ambiguous");
    write_text(dir, ST_SET_INDEX_NAME,
               "{\"weight_map\": {\"a\": " S1 ", \"b\": " S2 ", \"c\": " S2 "}}");
    expect_set_error(dir, "tensor 'b' is in both", "ambiguous");

    /* The index is not a regular file. */
    fresh_dir("index_dir", dir, sizeof(dir));
    assert_int_equal(mkdir(path_in(dir, ST_SET_INDEX_NAME, p, sizeof(p)), 0777), 0);
    expect_set_error(dir, ST_SET_INDEX_NAME ": not a regular file", NULL);

    /* Neither layout. */
    fresh_dir("empty", dir, sizeof(dir));
    expect_set_error(dir, "neither " ST_SET_INDEX_NAME " nor " ST_SET_SINGLE_NAME, NULL);
    path_in(dir, "no-such-dir", p, sizeof(p));
    expect_set_error(p, "neither", NULL);
    /* Only a PyTorch pickle: say that only safetensors is read, and how to convert. */
    write_text(dir, "pytorch_model.bin", "PK");
    expect_set_error(dir,
                     "holds pytorch_model.bin, a PyTorch pickle: linshard reads only safetensors",
                     "safe_serialization=True");
}

static void test_too_many_files(void **state) {
    (void)state;
    char dir[256], err[512];
    /* An index naming ST_SET_MAX_FILES + 1 files is refused before any is opened. */
    int n = ST_SET_MAX_FILES + 1;
    size_t cap = (size_t)n * 64 + 64, used = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    used += (size_t)snprintf(text + used, cap - used, "{\"weight_map\": {");
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(text + used, cap - used, "%s\"t%d\": \"f%d.safetensors\"",
                                 i ? ", " : "", i, i);
    snprintf(text + used, cap - used, "}}");
    fresh_dir("many", dir, sizeof(dir));
    write_text(dir, ST_SET_INDEX_NAME, text);
    free(text);
    expect_set_error(dir, "names 4097 files, more than the 4096 allowed", NULL);

    /* The writer refuses to make a set that the reader would refuse, and writes nothing. */
    static const float x[1] = {1};
    st_write_tensor *w = calloc((size_t)n, sizeof(*w));
    char(*names)[16] = calloc((size_t)n, sizeof(*names));
    assert_non_null(w);
    assert_non_null(names);
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "t%d", i);
        w[i] = (st_write_tensor){names[i], ST_F32, 1, {1}, x};
    }
    fresh_dir("many_written", dir, sizeof(dir));
    assert_int_equal(st_write_sharded(dir, w, n, 4, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "4097 shards"));
    assert_int_equal(count_entries(dir, "safetensors"), 0);
    free(names);
    free(w);
}

static void test_write_errors(void **state) {
    (void)state;
    static const float x[4] = {1, 2, 3, 4};
    char dir[256], err[512];
    fresh_dir("write_errors", dir, sizeof(dir));

    /* A name given twice across two would-be shards: refused up front, nothing written. */
    st_write_tensor dup[] = {
        {"a", ST_F32, 1, {4}, x}, {"b", ST_F32, 1, {4}, x}, {"a", ST_F32, 1, {4}, x}};
    assert_int_equal(st_write_sharded(dir, dup, 3, 16, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "tensor 'a': name given twice"));
    assert_non_null(strstr(err, ST_SET_INDEX_NAME));
    assert_int_equal(count_entries(dir, "safetensors"), 0);

    /* A bad tensor late in the list: no shard written before it is found. */
    st_write_tensor bad[] = {{"a", ST_F32, 1, {4}, x}, {"b", ST_F32, 1, {-1}, x}};
    assert_int_equal(st_write_sharded(dir, bad, 2, 4, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "negative"));
    assert_int_equal(count_entries(dir, "safetensors"), 0);

    assert_int_equal(st_write_sharded(dir, dup, 0, 16, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "nothing to write"));
    assert_int_equal(st_write_sharded(NULL, dup, 1, 16, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no output directory"));

    /* The directory is created when missing, but not its parents. */
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/new", dir);
    assert_int_equal(st_write_sharded(sub, dup, 2, 0, err, sizeof(err)), 0);
    snprintf(sub, sizeof(sub), "%s/no/such", dir);
    assert_int_equal(st_write_sharded(sub, dup, 2, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot create the directory"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sharded_round_trip), cmocka_unit_test(test_sharded_limits),
        cmocka_unit_test(test_single_file),        cmocka_unit_test(test_index_errors),
        cmocka_unit_test(test_shard_errors),       cmocka_unit_test(test_too_many_files),
        cmocka_unit_test(test_write_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
