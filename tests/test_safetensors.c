/* test_safetensors.c — the safetensors reader's validation, the atomic writer, and the
 * float16 / bfloat16 conversions. Files live in a mkdtemp directory removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linshard/safetensors.h"

static char tmpdir[64];

static int group_setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/st-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* Removes tmpdir and what is in it (the tests create plain files and one sub-directory). */
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

static const char *path_in(const char *name, char *buf, size_t len) {
    snprintf(buf, len, "%s/%s", tmpdir, name);
    return buf;
}

/* Writes a raw safetensors file: the 8-byte little-endian length hlen, hlen bytes of header,
 * then data_len bytes of data (a pattern). */
static void write_raw_len(const char *path, uint64_t hlen, const char *header, size_t header_bytes,
                          size_t data_len) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(&hlen, sizeof(hlen), 1, fp), 1);
    assert_int_equal(fwrite(header, 1, header_bytes, fp), header_bytes);
    for (size_t i = 0; i < data_len; i++) assert_int_not_equal(fputc((int)(i & 0xff), fp), EOF);
    assert_int_equal(fclose(fp), 0);
}

static void write_raw(const char *path, const char *header, size_t data_len) {
    write_raw_len(path, strlen(header), header, strlen(header), data_len);
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

/* st_open(path) must fail with a one-line message naming the file and containing want; the
 * st_file must come back closable. The message is returned in err. */
static void expect_open_error(const char *path, const char *want, char *err, size_t errlen) {
    st_file f;
    memset(&f, 0xab, sizeof(f)); /* st_open must not rely on a zeroed st_file */
    int rc = st_open(&f, path, err, errlen);
    if (rc == 0 || !strstr(err, want) || strchr(err, '\n') || strncmp(err, path, strlen(path)))
        print_error("st_open(%s): rc %d, err \"%s\", wanted \"%s\"\n", path, rc, err, want);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, want));
    assert_null(strchr(err, '\n'));
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_null(f.map);
    assert_null(f.tensors);
    assert_int_equal(f.n_tensors, 0);
    st_close(&f);
}

/* ---- round trips ----------------------------------------------------------------------------- */

static float pattern(size_t i, int which) {
    return (float)((double)i * 0.1 - 3.0) * (which + 1) + 1.0f / 3.0f;
}

static void test_round_trip_all_dtypes(void **state) {
    (void)state;
    enum { NA = 15, NB = 24, NC = 7 };
    float a[NA], b[NB], c[NC], s = -2.5f;
    for (size_t i = 0; i < NA; i++) a[i] = pattern(i, 0);
    for (size_t i = 0; i < NB; i++) b[i] = pattern(i, 1);
    for (size_t i = 0; i < NC; i++) c[i] = pattern(i, 2) * 1000.0f;
    st_write_tensor w[] = {
        {"h.0.attn.c_attn.weight", ST_F32, 2, {3, 5}, a},
        {"h.0.mlp.c_fc.weight", ST_F16, 3, {2, 3, 4}, b},
        {"wte", ST_BF16, 1, {NC}, c},
        {"scale", ST_F32, 0, {0}, &s},
        {"empty", ST_F16, 2, {0, 3}, NULL},
    };
    char path[256], err[512];
    path_in("rt.safetensors", path, sizeof(path));
    assert_int_equal(st_write(path, w, 5, err, sizeof(err)), 0);
    assert_string_equal(err, "");

    st_file f;
    assert_int_equal(st_open(&f, path, err, sizeof(err)), 0);
    assert_int_equal(f.n_tensors, 5);
    assert_int_equal(((const uint8_t *)f.data - (const uint8_t *)f.map) % 8, 0);
    size_t next = 0;
    for (int i = 0; i < 5; i++) { /* header order, contiguous data */
        const st_tensor *t = &f.tensors[i];
        assert_string_equal(t->name, w[i].name);
        assert_int_equal(t->dtype, w[i].dtype);
        assert_int_equal(t->ndim, w[i].ndim);
        for (int d = 0; d < t->ndim; d++) assert_int_equal(t->shape[d], w[i].shape[d]);
        assert_int_equal(t->begin, next);
        next = t->end;
    }
    assert_int_equal(next, f.data_size);

    const st_tensor *t = st_find(&f, "h.0.attn.c_attn.weight");
    assert_non_null(t);
    assert_int_equal(t->numel, NA);
    float out[NB];
    assert_int_equal(st_read_f32(&f, t, 0, NA, out), 0);
    assert_memory_equal(out, a, sizeof(a)); /* F32 is exact */

    t = st_find(&f, "h.0.mlp.c_fc.weight");
    assert_non_null(t);
    assert_int_equal(t->numel, NB);
    assert_int_equal(st_read_f32(&f, t, 0, NB, out), 0);
    for (size_t i = 0; i < NB; i++) {
        assert_true(out[i] == st_f16_to_f32(st_f32_to_f16(b[i])));
        assert_true(fabsf(out[i] - b[i]) <= fabsf(b[i]) * 0x1p-11f);
    }

    t = st_find(&f, "wte");
    assert_non_null(t);
    assert_int_equal(st_read_f32(&f, t, 0, NC, out), 0);
    for (size_t i = 0; i < NC; i++) {
        assert_true(out[i] == st_bf16_to_f32(st_f32_to_bf16(c[i])));
        assert_true(fabsf(out[i] - c[i]) <= fabsf(c[i]) * 0x1p-8f);
    }

    t = st_find(&f, "scale");
    assert_non_null(t);
    assert_int_equal(t->numel, 1);
    assert_int_equal(st_read_f32(&f, t, 0, 1, out), 0);
    assert_true(out[0] == -2.5f);

    t = st_find(&f, "empty");
    assert_non_null(t);
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->begin, t->end);
    assert_int_equal(st_read_f32(&f, t, 0, 0, out), 0);
    assert_int_equal(st_read_f32(&f, t, 0, 1, out), -1);
    st_close(&f);
    st_close(&f); /* closing twice is harmless */
}

/* A slice in the middle; ranges past the end (including ones whose end overflows) refused. */
static void test_partial_reads_and_bounds(void **state) {
    (void)state;
    float a[40];
    for (int i = 0; i < 40; i++) a[i] = (float)i * 1.5f;
    st_write_tensor w[] = {{"x", ST_F32, 2, {4, 10}, a}, {"y", ST_BF16, 1, {40}, a}};
    char path[256], err[512];
    path_in("slice.safetensors", path, sizeof(path));
    assert_int_equal(st_write(path, w, 2, err, sizeof(err)), 0);
    st_file f;
    assert_int_equal(st_open(&f, path, err, sizeof(err)), 0);
    const st_tensor *x = st_find(&f, "x"), *y = st_find(&f, "y");
    assert_non_null(x);
    assert_non_null(y);
    float out[40];
    assert_int_equal(st_read_f32(&f, x, 13, 7, out), 0);
    for (int i = 0; i < 7; i++) assert_true(out[i] == a[13 + i]);
    assert_int_equal(st_read_f32(&f, y, 21, 5, out), 0);
    for (int i = 0; i < 5; i++) assert_true(out[i] == a[21 + i]); /* small integers: exact */
    assert_int_equal(st_read_f32(&f, x, 30, 10, out), 0);         /* up to the end is fine */
    assert_int_equal(st_read_f32(&f, x, 40, 0, out), 0);
    assert_int_equal(st_read_f32(&f, x, 31, 10, out), -1);
    assert_int_equal(st_read_f32(&f, x, 41, 0, out), -1);
    assert_int_equal(st_read_f32(&f, x, 0, 41, out), -1);
    assert_int_equal(st_read_f32(&f, x, 1, SIZE_MAX, out), -1);
    assert_int_equal(st_read_f32(&f, x, SIZE_MAX, 2, out), -1);
    assert_null(st_find(&f, "z"));
    assert_null(st_find(&f, "X"));
    assert_null(st_find(&f, ""));
    st_close(&f);
}

/* "__metadata__" is skipped, and the header may be padded with trailing spaces. */
static void test_metadata_and_padding_accepted(void **state) {
    (void)state;
    char path[256], err[512];
    path_in("meta.safetensors", path, sizeof(path));
    const char *h = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"hi\"},"
                    "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}             ";
    float v[2] = {1.25f, -7.0f};
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    uint64_t n = strlen(h);
    assert_int_equal(fwrite(&n, 8, 1, fp), 1);
    assert_int_equal(fwrite(h, 1, n, fp), n);
    assert_int_equal(fwrite(v, sizeof(v), 1, fp), 1);
    assert_int_equal(fclose(fp), 0);

    st_file f;
    assert_int_equal(st_open(&f, path, err, sizeof(err)), 0);
    assert_int_equal(f.n_tensors, 1);
    assert_null(st_find(&f, "__metadata__"));
    float out[2];
    assert_int_equal(st_read_f32(&f, st_find(&f, "w"), 0, 2, out), 0);
    assert_true(out[0] == 1.25f && out[1] == -7.0f);
    st_close(&f);

    /* No tensors at all, and a header that is only the metadata, are fine too. */
    write_raw(path, "{}", 0);
    assert_int_equal(st_open(&f, path, err, sizeof(err)), 0);
    assert_int_equal(f.n_tensors, 0);
    st_close(&f);
    write_raw(path, "{\"__metadata__\":{}}", 0);
    assert_int_equal(st_open(&f, path, err, sizeof(err)), 0);
    assert_int_equal(f.n_tensors, 0);
    st_close(&f);
}

/* ---- malformed files ------------------------------------------------------------------------- */

static void test_file_level_errors(void **state) {
    (void)state;
    char path[256], err[512];

    path_in("does-not-exist.safetensors", path, sizeof(path));
    expect_open_error(path, "cannot open: No such file or directory", err, sizeof(err));

    expect_open_error(tmpdir, "not a regular file", err, sizeof(err));

    path_in("short.safetensors", path, sizeof(path));
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite("\x02\0\0\0\0", 1, 5, fp), 5);
    assert_int_equal(fclose(fp), 0);
    expect_open_error(path, "file is 5 bytes, too short for the 8-byte header length", err,
                      sizeof(err));

    path_in("pastend.safetensors", path, sizeof(path));
    write_raw_len(path, 1000, "{}", 2, 10);
    expect_open_error(path, "header length 1000 runs past the end of the file (only 12 bytes", err,
                      sizeof(err));

    path_in("huge.safetensors", path, sizeof(path));
    write_raw_len(path, UINT64_MAX, "{}", 2, 0);
    expect_open_error(path, "header length 18446744073709551615 is absurdly large", err,
                      sizeof(err));
    write_raw_len(path, 200000000, "{}", 2, 0);
    expect_open_error(path, "is absurdly large (limit 100000000 bytes)", err, sizeof(err));

    /* NULL arguments are refused, not crashed on. */
    st_file f;
    assert_int_equal(st_open(&f, NULL, err, sizeof(err)), -1);
    assert_int_equal(st_open(NULL, path, err, sizeof(err)), -1);
    assert_int_equal(st_open(&f, "/nonexistent/x", NULL, 0), -1);
    st_close(&f);
    st_close(NULL);
    memset(&f, 0, sizeof(f));
    st_close(&f); /* a zeroed st_file */
}

typedef struct {
    const char *header;
    size_t data_len;
    const char *want; /* a substring only this case's message has */
} bad_case;

#define T_OK "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

/* One case per kind of problem; each must give its own message. */
static const bad_case bad_cases[] = {
    {"{\"a\": {\"dtype\": ", 0, "header is not valid JSON (parse error at byte"},
    {"{} x", 0, "header is not valid JSON: unexpected data after the value at byte 3"},
    {"[1, 2]", 0, "header is an array, not a JSON object"},
    {"{\"t\": 5}", 0, "tensor 't': entry is a number, not an object"},
    {"{\"t\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 8, "tensor 't': missing \"dtype\""},
    {"{\"t\": {\"dtype\": \"F32\", \"data_offsets\": [0, 8]}}", 8, "tensor 't': missing \"shape\""},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8, "tensor 't': missing \"data_offsets\""},
    {"{\"t\": {\"dtype\": 4, \"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
     "tensor 't': dtype is a number, not a string"},
    {"{\"t\": {\"dtype\": \"Q4\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8,
     "tensor 't': unknown dtype 'Q4' (not a safetensors dtype)"},
    {"{\"t\": {\"dtype\": \"I64\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
     "bytes but shape [2] of I64 needs 16"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": 2, \"data_offsets\": [0, 8]}}", 8,
     "tensor 't': shape is a number, not an array"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2, -1], \"data_offsets\": [0, 8]}}", 8,
     "tensor 't': shape[1] is not a non-negative integer"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,2], \"data_offsets\": [0, 8]}}", 8,
     "tensor 't': shape has 9 dims, more than the 8 supported"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [9007199254740991, 9007199254740991], "
     "\"data_offsets\": [0, 8]}}",
     8,
     "tensor 't': shape [9007199254740991, 9007199254740991] has too many elements (the byte "
     "count overflows)"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}}", 8,
     "tensor 't': data_offsets is not an array of two non-negative integers"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}}", 8,
     "tensor 't': data_offsets [8, 4) begin is after end"},
    {"{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8,
     "tensor 't': data_offsets [0, 16) end past the end of the data section (8 bytes"},
    {"{\"h.0.attn.c_attn.weight\": {\"dtype\": \"F32\", \"shape\": [4, 12], "
     "\"data_offsets\": [0, 100]}}",
     100,
     "tensor 'h.0.attn.c_attn.weight': data_offsets [0, 100) hold 100 bytes but shape [4, 12] "
     "of F32 needs 192"},
    {"{\"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}, "
     "\"a\": {\"dtype\": \"F16\", \"shape\": [8], \"data_offsets\": [0, 16]}}",
     24, "tensor 'a' [0, 16) overlaps tensor 'b' [8, 24)"},
    {"{\"t\": " T_OK ", \"u\": {\"dtype\": \"F16\", \"shape\": [0], \"data_offsets\": [8, 8]}, "
     "\"t\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 8]}}",
     8, "tensor 't': appears twice in the header"},
    {"{\"__metadata__\": [\"pt\"]}", 0, "\"__metadata__\" is an array, not an object"},
    {"{\"__metadata__\": {\"format\": \"pt\", \"n\": 3}}", 0,
     "\"__metadata__\" entry 'n' is a number, not a string"},
    {NULL, 0, "has a name of 300 bytes, longer than the 255 allowed"}, /* built below */
    {"{\"a\\nb\": 1}", 0, "tensor 'a?b': entry is a number"},          /* a newline in a name */
};

static void test_malformed_headers(void **state) {
    (void)state;
    enum { N = sizeof(bad_cases) / sizeof(bad_cases[0]) };
    static char msgs[N][512];
    char path[256], longhdr[512], name[301];
    memset(name, 'x', 300);
    name[300] = '\0';
    snprintf(longhdr, sizeof(longhdr), "{\"%s\": " T_OK "}", name);
    for (size_t i = 0; i < N; i++) {
        char file[32];
        snprintf(file, sizeof(file), "bad%02zu.safetensors", i);
        path_in(file, path, sizeof(path));
        const char *h = bad_cases[i].header ? bad_cases[i].header : longhdr;
        write_raw(path, h, bad_cases[i].data_len);
        expect_open_error(path, bad_cases[i].want, msgs[i], sizeof(msgs[i]));
    }
    /* Distinct messages: no case's distinctive text appears in another case's message. */
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++)
            if (i != j && strstr(msgs[j], bad_cases[i].want)) {
                print_error("\"%s\" also matches case %zu: %s\n", bad_cases[i].want, j, msgs[j]);
                fail();
            }
}

/* Variants of the same problem get the same message. */
static void test_malformed_variants(void **state) {
    (void)state;
    static const char *const shapes[] = {
        "[1.5]", "[\"2\"]", "[null]", "[-0.5]", "[1e300]", "[9007199254740992]", "[true]"};
    static const char *const offsets[] = {"[0, -8]",   "[0, 8, 16]", "\"0,8\"", "[0.5, 8]",
                                          "[0, null]", "{}",         "[]"};
    char path[256], err[512], h[256];
    path_in("variant.safetensors", path, sizeof(path));
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        snprintf(h, sizeof(h), "{\"t\":{\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[0,8]}}",
                 shapes[i]);
        write_raw(path, h, 8);
        expect_open_error(path, "tensor 't': shape[0] is not a non-negative integer", err,
                          sizeof(err));
    }
    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
        snprintf(h, sizeof(h), "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":%s}}",
                 offsets[i]);
        write_raw(path, h, 8);
        expect_open_error(path, "data_offsets is not an array of two non-negative integers", err,
                          sizeof(err));
    }
    static const char *const dtypes[] = {"Q4", "f32", "", "u8"};
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++) {
        snprintf(h, sizeof(h), "{\"t\":{\"dtype\":\"%s\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                 dtypes[i]);
        write_raw(path, h, 8);
        char want[64];
        snprintf(want, sizeof(want), "unknown dtype '%s'", dtypes[i]);
        expect_open_error(path, want, err, sizeof(err));
    }
    /* A NUL byte inside the header, an empty header, and a header of only spaces. */
    write_raw_len(path, 4, "{}\0 ", 4, 0);
    expect_open_error(path, "header is not valid JSON: it contains a NUL byte", err, sizeof(err));
    write_raw_len(path, 0, "", 0, 0);
    expect_open_error(path, "header is not valid JSON (parse error", err, sizeof(err));
    write_raw(path, "        ", 0);
    expect_open_error(path, "header is not valid JSON (parse error", err, sizeof(err));
    /* A long name is cut short in the message, and the message stays within err. */
    char small[40];
    write_raw(path, "{\"t\":5}", 0);
    st_file f;
    assert_int_equal(st_open(&f, path, small, sizeof(small)), -1);
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

/* ---- the writer ------------------------------------------------------------------------------ */

static void test_write_replaces_atomically(void **state) {
    (void)state;
    char path[256], err[512];
    path_in("replace.safetensors", path, sizeof(path));
    float one[3] = {1, 2, 3}, two[5] = {9, 8, 7, 6, 5};
    st_write_tensor w1 = {"v", ST_F32, 1, {3}, one};
    st_write_tensor w2 = {"other", ST_F16, 1, {5}, two};
    assert_int_equal(st_write(path, &w1, 1, err, sizeof(err)), 0);
    assert_int_equal(st_write(path, &w2, 1, err, sizeof(err)), 0);
    assert_int_equal(count_entries(tmpdir, ".tmp."), 0);

    st_file f;
    assert_int_equal(st_open(&f, path, err, sizeof(err)), 0);
    assert_int_equal(f.n_tensors, 1);
    assert_null(st_find(&f, "v"));
    float out[5];
    assert_int_equal(st_read_f32(&f, st_find(&f, "other"), 0, 5, out), 0);
    assert_memory_equal(out, two, sizeof(two)); /* small integers are exact in F16 */
    /* The header is the compact JSON, padded with spaces to a multiple of 8. */
    uint64_t hlen;
    memcpy(&hlen, f.map, 8);
    assert_int_equal(hlen % 8, 0);
    const char *want = "{\"__metadata__\":{\"format\":\"pt\"},\"other\":{\"dtype\":\"F16\","
                       "\"shape\":[5],\"data_offsets\":[0,10]}}";
    assert_true(hlen >= strlen(want) && hlen < strlen(want) + 8);
    assert_memory_equal((const char *)f.map + 8, want, strlen(want));
    for (size_t i = strlen(want); i < hlen; i++)
        assert_int_equal(((const char *)f.map)[8 + i], ' ');
    st_close(&f);

    /* An empty tensor list still makes a valid file. */
    assert_int_equal(st_write(path, NULL, 0, err, sizeof(err)), 0);
    assert_int_equal(st_open(&f, path, err, sizeof(err)), 0);
    assert_int_equal(f.n_tensors, 0);
    st_close(&f);
}

static void test_write_errors(void **state) {
    (void)state;
    char path[256], err[512];
    static float v[4];

    path_in("no-such-dir/out.safetensors", path, sizeof(path));
    st_write_tensor ok = {"v", ST_F32, 1, {4}, v};
    assert_int_equal(st_write(path, &ok, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot create temporary file"));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_null(strchr(err, '\n'));

    /* Invalid inputs: refused before anything is created. */
    path_in("invalid.safetensors", path, sizeof(path));
    static const struct {
        st_write_tensor t[2];
        int n;
        const char *want;
    } cases[] = {
        {{{NULL, ST_F32, 1, {4}, v}}, 1, "tensor #0 has a NULL name"},
        {{{"a", ST_F32, 9, {4}, v}}, 1, "tensor 'a': ndim 9 is outside [0, 8]"},
        {{{"a", ST_F32, -1, {4}, v}}, 1, "tensor 'a': ndim -1 is outside [0, 8]"},
        {{{"a", ST_F32, 2, {4, -2}, v}}, 1, "tensor 'a': shape[1] is -2, negative"},
        {{{"a", ST_F32, 1, {4}, v}, {"a", ST_F16, 1, {4}, v}}, 2, "tensor 'a': name given twice"},
        {{{"__metadata__", ST_F32, 1, {4}, v}}, 1, "the name is reserved"},
        {{{"a", (st_dtype)99, 1, {4}, v}}, 1, "tensor 'a': unknown dtype 99"},
        {{{"a", ST_F32, 1, {4}, NULL}}, 1, "tensor 'a': data is NULL"},
        {{{"a", ST_F32, 3, {INT64_C(1) << 40, INT64_C(1) << 40, 2}, v}}, 1, "overflows"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        int rc = st_write(path, cases[i].t, cases[i].n, err, sizeof(err));
        if (rc == 0 || !strstr(err, cases[i].want))
            print_error("case %zu: rc %d, err \"%s\", wanted \"%s\"\n", i, rc, err, cases[i].want);
        assert_int_equal(rc, -1);
        assert_non_null(strstr(err, cases[i].want));
        assert_null(strchr(err, '\n'));
        assert_int_equal(access(path, F_OK), -1);
    }
    char name[300];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    st_write_tensor long_name = {name, ST_F32, 1, {4}, v};
    assert_int_equal(st_write(path, &long_name, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "longer than the 255 allowed"));
    assert_int_equal(st_write(path, NULL, 1, err, sizeof(err)), -1);
    assert_int_equal(st_write(path, &ok, -1, err, sizeof(err)), -1);
    assert_int_equal(st_write(NULL, &ok, 1, err, sizeof(err)), -1);
    assert_int_equal(count_entries(tmpdir, ".tmp."), 0);

    /* A name of exactly ST_NAME_MAX - 1 bytes is fine both ways. */
    name[ST_NAME_MAX - 1] = '\0';
    assert_int_equal(st_write(path, &long_name, 1, err, sizeof(err)), 0);
    st_file f;
    assert_int_equal(st_open(&f, path, err, sizeof(err)), 0);
    assert_non_null(st_find(&f, name));
    st_close(&f);
}

/* ---- conversions ----------------------------------------------------------------------------- */

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static void test_conversion_edge_cases(void **state) {
    (void)state;
    /* float16 */
    assert_int_equal(st_f32_to_f16(0.0f), 0x0000);
    assert_int_equal(st_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(st_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(st_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(st_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(st_f32_to_f16(65519.0f), 0x7bff); /* just below the tie: largest finite */
    assert_int_equal(st_f32_to_f16(65520.0f), 0x7c00); /* the tie rounds to even: Inf */
    assert_int_equal(st_f32_to_f16(-65520.0f), 0xfc00);
    assert_int_equal(st_f32_to_f16(1e10f), 0x7c00);
    assert_int_equal(st_f32_to_f16(INFINITY), 0x7c00);
    assert_int_equal(st_f32_to_f16(-INFINITY), 0xfc00);
    assert_int_equal(st_f32_to_f16(0x1p-24f), 0x0001); /* smallest subnormal */
    assert_int_equal(st_f32_to_f16(0x1p-25f), 0x0000); /* tie between 0 and it: even */
    assert_int_equal(st_f32_to_f16(0x1.000002p-25f), 0x0001);
    assert_int_equal(st_f32_to_f16(0x1.8p-24f), 0x0002); /* tie between 1 and 2 units: even */
    assert_int_equal(st_f32_to_f16(0x1p-26f), 0x0000);
    assert_int_equal(st_f32_to_f16(0x1.ff8p-15f), 0x03ff);    /* largest subnormal */
    assert_int_equal(st_f32_to_f16(0x1.ffcp-15f), 0x0400);    /* tie above it: up to a normal */
    assert_int_equal(st_f32_to_f16(0x1p-14f), 0x0400);        /* smallest normal */
    assert_int_equal(st_f32_to_f16(1.0f + 0x1p-11f), 0x3c00); /* tie, even stays */
    assert_int_equal(st_f32_to_f16(1.0f + 0x3p-11f), 0x3c02); /* tie, odd goes up */
    assert_true(st_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(st_f16_to_f32(0x03ff) == 0x1.ff8p-15f);
    assert_true(st_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(st_f16_to_f32(0x3c00) == 1.0f);
    assert_true(signbit(st_f16_to_f32(0x8000)) && st_f16_to_f32(0x8000) == 0.0f);
    assert_true(isinf(st_f16_to_f32(0x7c00)) && st_f16_to_f32(0x7c00) > 0);
    assert_true(isinf(st_f16_to_f32(0xfc00)) && st_f16_to_f32(0xfc00) < 0);
    assert_true(isnan(st_f16_to_f32(0x7e00)));
    assert_true(isnan(st_f16_to_f32(0x7c01))); /* signalling NaN stays NaN */
    uint16_t h = st_f32_to_f16(NAN);
    assert_int_equal(h & 0x7c00, 0x7c00);
    assert_true(h & 0x0200);                   /* quiet */
    h = st_f32_to_f16(from_bits(0x7f800001u)); /* a signalling NaN whose payload f16 drops */
    assert_int_equal(h & 0x7e00, 0x7e00);
    assert_true(isnan(st_f16_to_f32(h)));
    assert_int_equal(st_f32_to_f16(from_bits(0xffc00000u)) & 0x8000, 0x8000); /* -NaN keeps sign */

    /* bfloat16 */
    assert_int_equal(st_f32_to_bf16(0.0f), 0x0000);
    assert_int_equal(st_f32_to_bf16(-0.0f), 0x8000);
    assert_int_equal(st_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(st_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);    /* tie, even stays */
    assert_int_equal(st_f32_to_bf16(1.0f + 0x3p-8f), 0x3f82);    /* tie, odd goes up */
    assert_int_equal(st_f32_to_bf16(1.0f + 0x1.02p-8f), 0x3f81); /* just above the tie */
    assert_int_equal(st_f32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(st_f32_to_bf16(-INFINITY), 0xff80);
    assert_int_equal(st_f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80); /* FLT_MAX rounds to Inf */
    assert_int_equal(st_f32_to_bf16(65504.0f), 0x4780);               /* 65536: not saturated */
    assert_int_equal(st_f32_to_bf16(from_bits(0x00000001u)), 0x0000); /* tiny subnormal */
    assert_int_equal(st_f32_to_bf16(from_bits(0x00018000u)), 0x0002); /* subnormal tie, odd up */
    h = st_f32_to_bf16(from_bits(0x7f800001u)); /* payload in the dropped bits only */
    assert_true(isnan(st_bf16_to_f32(h)));
    assert_true(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
    assert_true(st_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(signbit(st_bf16_to_f32(0x8000)));
    assert_true(isinf(st_bf16_to_f32(0xff80)) && st_bf16_to_f32(0xff80) < 0);
}

/* Every non-NaN f16 / bf16 value survives a trip through float32. */
static void test_conversion_exhaustive_round_trip(void **state) {
    (void)state;
    for (uint32_t u = 0; u <= 0xffff; u++) {
        uint16_t h = (uint16_t)u;
        float f = st_f16_to_f32(h);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            assert_true(isnan(f));
        } else if (st_f32_to_f16(f) != h) {
            print_error("f16 0x%04x -> %a -> 0x%04x\n", h, (double)f, st_f32_to_f16(f));
            fail();
        }
        float b = st_bf16_to_f32(h);
        assert_int_equal(bits(b), (uint32_t)h << 16);
        if (!isnan(b)) assert_int_equal(st_f32_to_bf16(b), h);
    }
}

/* For a spread of float32 values, the f16 / bf16 result is the nearest representable value,
 * ties to even: no neighbour is closer. */
static int nearest_ok(double x, uint16_t r, float (*to_f32)(uint16_t), uint16_t max_finite) {
    uint16_t mag = r & 0x7fff;
    double v = to_f32(r), err = fabs(x - v);
    if (mag > max_finite) return 0;
    uint16_t nb[2] = {(uint16_t)(r - 1), (uint16_t)(r + 1)};
    for (int k = 0; k < 2; k++) {
        uint16_t m = nb[k] & 0x7fff;
        if (m > max_finite) continue;
        double e = fabs(x - to_f32(nb[k]));
        if (e < err || (e == err && (r & 1))) return 0;
    }
    return 1;
}

static void test_conversion_rounds_to_nearest(void **state) {
    (void)state;
    for (uint64_t u = 0; u <= 0xffffffffu; u += 0x2f1b) {
        float x = from_bits((uint32_t)u);
        if (!isfinite(x)) continue;
        if (fabsf(x) < 65520.0f) {
            uint16_t h = st_f32_to_f16(x);
            if (!nearest_ok(x, h, st_f16_to_f32, 0x7bff)) {
                print_error("f16(%a) = 0x%04x is not the nearest\n", (double)x, h);
                fail();
            }
        }
        if (fabsf(x) < from_bits(0x7f7f8000u)) { /* below the bf16 overflow tie */
            uint16_t b = st_f32_to_bf16(x);
            if (!nearest_ok(x, b, st_bf16_to_f32, 0x7f7f)) {
                print_error("bf16(%a) = 0x%04x is not the nearest\n", (double)x, b);
                fail();
            }
        }
    }
}

/* Older transformers versions save BOOL/U8 buffers (attention masks) beside the weights: the
 * file opens, every dtype's size is checked, and only reading such a tensor as floats fails. */
static void test_buffer_dtypes_open_not_read(void **state) {
    (void)state;
    char path[128], err[512];
    path_in("buffers.safetensors", path, sizeof(path));
    write_raw(path,
              "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"mask\":{\"dtype\":\"BOOL\",\"shape\":[2,2],\"data_offsets\":[8,12]},"
              "\"ids\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[12,15]},"
              "\"pos\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]},"
              "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[24,32]}}",
              32);
    st_file f;
    if (st_open(&f, path, err, sizeof(err))) fail_msg("%s", err);
    const st_tensor *mask = st_find(&f, "mask"), *ids = st_find(&f, "ids");
    assert_non_null(mask);
    assert_non_null(ids);
    assert_string_equal(st_dtype_name(mask->dtype), "BOOL");
    assert_string_equal(st_dtype_name(ids->dtype), "U8");
    assert_int_equal(st_dtype_readable(ids->dtype), 0);
    float out[4];
    assert_int_equal(st_read_f32(&f, st_find(&f, "w"), 0, 2, out), 0);
    assert_int_equal(st_read_f32(&f, mask, 0, 4, out), -1);
    assert_int_equal(st_read_f32(&f, ids, 0, 3, out), -1);
    st_close(&f);
    /* Sizes are per dtype: an I64 of 2 elements in 8 bytes is refused. */
    write_raw(path, "{\"pos\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    assert_int_not_equal(st_open(&f, path, err, sizeof(err)), 0);
    /* The writer converts from float32, so it writes only float dtypes. */
    float data[1] = {1};
    st_write_tensor t = {"u", ST_U8, 1, {1}, data};
    assert_int_not_equal(st_write(path, &t, 1, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "cannot write dtype U8"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_all_dtypes),
        cmocka_unit_test(test_partial_reads_and_bounds),
        cmocka_unit_test(test_metadata_and_padding_accepted),
        cmocka_unit_test(test_file_level_errors),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_malformed_variants),
        cmocka_unit_test(test_write_replaces_atomically),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_conversion_edge_cases),
        cmocka_unit_test(test_conversion_exhaustive_round_trip),
        cmocka_unit_test(test_conversion_rounds_to_nearest),
        cmocka_unit_test(test_buffer_dtypes_open_not_read),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
