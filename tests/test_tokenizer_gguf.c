/* test_tokenizer_gguf.c — the tokenizer stored in a GGUF file (tokenizer_load_gguf,
 * tokenizer_write_gguf): for GPT-2 (built in) and the Llama 3, Qwen3 and Mistral tokenizer.json
 * fixtures, a GGUF file holding the tokenizer loads back to one that encodes and decodes exactly
 * as the tokenizer.json one on the reference vectors, with the same bos, eos, adds_bos, stop
 * tokens and token bytes; Mistral's merges derived from the scores alone give the same ids; and
 * malformed tokenizer metadata is refused in one line naming the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "linshard/gguf.h"
#include "linshard/tokenizer.h"

#ifndef FAMILY_VECTORS
#error "FAMILY_VECTORS (path of tokenizer_family_vectors.json) must be defined"
#endif
#ifndef TOKENIZER_VECTORS
#error "TOKENIZER_VECTORS (path of tokenizer_vectors.json) must be defined"
#endif
#ifndef HF_TOKENIZERS
#error "HF_TOKENIZERS (the unpacked tests/data/hf) must be defined"
#endif

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(buf, 2 * cap + 1);
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

static char gguf_path[64];

static int make_path(void **state) {
    (void)state;
    snprintf(gguf_path, sizeof(gguf_path), "/tmp/test-tokenizer-gguf-XXXXXX");
    int fd = mkstemp(gguf_path);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

static int remove_path(void **state) {
    (void)state;
    unlink(gguf_path);
    return 0;
}

/* Writes w to gguf_path and loads its tokenizer back: tokenizer_load_gguf's return value. */
static int write_and_load(gguf_writer *w, tokenizer **out, char *err, size_t errlen) {
    assert_int_equal(gguf_writer_write(w, gguf_path, err, errlen), 0);
    gguf_writer_free(w);
    gguf_file g;
    if (gguf_open(&g, gguf_path, err, errlen)) fail_msg("%s", err);
    int rc = tokenizer_load_gguf(out, &g, err, errlen);
    gguf_close(&g);
    return rc;
}

static tokenizer *round_trip(const tokenizer *ref, int n_tokens) {
    char err[512] = "";
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    if (tokenizer_write_gguf(ref, w, n_tokens, err, sizeof(err))) fail_msg("%s", err);
    tokenizer *t = NULL;
    if (write_and_load(w, &t, err, sizeof(err))) fail_msg("%s", err);
    return t;
}

static void assert_same_encoding(const tokenizer *a, const tokenizer *b, const char *text,
                                 size_t len, int ordinary) {
    int *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    int ra = ordinary ? tokenizer_encode_ordinary(a, text, len, &ia, &na)
                      : tokenizer_encode(a, text, len, &ia, &na);
    int rb = ordinary ? tokenizer_encode_ordinary(b, text, len, &ib, &nb)
                      : tokenizer_encode(b, text, len, &ib, &nb);
    assert_int_equal(ra, 0);
    assert_int_equal(rb, 0);
    if (na != nb || (na && memcmp(ia, ib, na * sizeof(int)))) {
        fprintf(stderr, "%s differs on \"%.*s\" (%zu ids vs %zu)\n",
                ordinary ? "encode_ordinary" : "encode", (int)len, text, na, nb);
        fail();
    }
    char *da = NULL, *db = NULL, err[256];
    size_t la = 0, lb = 0;
    assert_int_equal(tokenizer_decode(a, ia, na, &da, &la, err, sizeof(err)), 0);
    assert_int_equal(tokenizer_decode(b, ib, nb, &db, &lb, err, sizeof(err)), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    free(ia);
    free(ib);
    free(da);
    free(db);
}

/* Everything tokenizer.h reports, id by id, and the encodings of the vectors' texts (and their
 * ids, when given, for tokenizer_encode). */
static void assert_same_tokenizer(const tokenizer *ref, const tokenizer *t, const cJSON *vectors,
                                  int vectors_are_ordinary) {
    assert_int_equal(tokenizer_vocab_size(t), tokenizer_vocab_size(ref));
    assert_int_equal(tokenizer_bos(t), tokenizer_bos(ref));
    assert_int_equal(tokenizer_eos(t), tokenizer_eos(ref));
    assert_int_equal(tokenizer_adds_bos(t), tokenizer_adds_bos(ref));
    assert_int_equal(tokenizer_max_token_bytes(t), tokenizer_max_token_bytes(ref));
    int cap = tokenizer_max_token_bytes(ref);
    char *a = malloc((size_t)cap), *b = malloc((size_t)cap);
    assert_non_null(a);
    assert_non_null(b);
    for (int id = 0; id < tokenizer_vocab_size(ref); id++) {
        assert_int_equal(tokenizer_is_stop(t, id), tokenizer_is_stop(ref, id));
        int la = tokenizer_token_bytes(ref, id, a, (size_t)cap);
        int lb = tokenizer_token_bytes(t, id, b, (size_t)cap);
        if (la != lb || (la > 0 && memcmp(a, b, (size_t)la)))
            fail_msg("token %d: %d bytes vs %d", id, la, lb);
    }
    free(a);
    free(b);
    int n = 0;
    for (const cJSON *e = vectors ? vectors->child : NULL; e; e = e->next, n++) {
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "text"));
        assert_non_null(text);
        size_t len = strlen(text);
        assert_same_encoding(ref, t, text, len, 0);
        assert_same_encoding(ref, t, text, len, 1);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(e, "ids");
        int *got = NULL;
        size_t ng = 0;
        assert_int_equal(vectors_are_ordinary ? tokenizer_encode_ordinary(t, text, len, &got, &ng)
                                              : tokenizer_encode(t, text, len, &got, &ng),
                         0);
        assert_int_equal(ng, (size_t)cJSON_GetArraySize(ids));
        size_t k = 0;
        for (const cJSON *x = ids ? ids->child : NULL; x; x = x->next, k++)
            assert_int_equal(got[k], (int)cJSON_GetNumberValue(x));
        free(got);
    }
    assert_true(n > 0);
}

static cJSON *family_vectors(cJSON *root, const char *family) {
    return cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "families"),
                                         family),
        "vectors");
}

static void check_family(const char *family) {
    char dir[4096], err[512] = "";
    snprintf(dir, sizeof(dir), "%s/%s", HF_TOKENIZERS, family);
    tokenizer *ref = NULL;
    if (tokenizer_load_dir(&ref, dir, err, sizeof(err))) fail_msg("%s", err);
    char *json = read_all(FAMILY_VECTORS);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    assert_non_null(root);
    /* padded to a larger embedding, as convert does for Qwen (151669 tokens, 151936 rows) */
    tokenizer *t = round_trip(ref, tokenizer_vocab_size(ref) + 7);
    assert_same_tokenizer(ref, t, family_vectors(root, family), 0);
    tokenizer_free(t);
    cJSON_Delete(root);
    free(json);
    tokenizer_free(ref);
}

static void test_gpt2(void **state) {
    (void)state;
    char err[512] = "";
    tokenizer *ref = NULL;
    if (tokenizer_load_builtin(&ref, err, sizeof(err))) fail_msg("%s", err);
    char *json = read_all(TOKENIZER_VECTORS);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    assert_non_null(root);
    tokenizer *t = round_trip(ref, 0);
    assert_same_tokenizer(ref, t, cJSON_GetObjectItemCaseSensitive(root, "vectors"), 0);
    tokenizer_free(t);
    cJSON_Delete(root);
    free(json);
    tokenizer_free(ref);
}

static void test_llama3(void **state) {
    (void)state;
    check_family("llama3");
}

static void test_qwen3(void **state) {
    (void)state;
    check_family("qwen3");
}

static void test_mistral(void **state) {
    (void)state;
    check_family("mistral");
}

/* ---- a file without merges: the SentencePiece merges come from the scores ----------------- */

/* Copies the tokenizer keys of the file at gguf_path, except skip, into a new writer. */
static gguf_writer *copy_tokenizer_keys(const char *skip) {
    static const char *const strs[] = {"tokenizer.ggml.model", "tokenizer.ggml.pre"};
    static const char *const arrs[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                                       "tokenizer.ggml.scores", "tokenizer.ggml.merges"};
    static const char *const ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                      "tokenizer.ggml.unknown_token_id"};
    static const char *const bools[] = {"tokenizer.ggml.add_bos_token",
                                        "tokenizer.ggml.add_space_prefix"};
    char err[512];
    gguf_file g;
    if (gguf_open(&g, gguf_path, err, sizeof(err))) fail_msg("%s", err);
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    for (size_t i = 0; i < 2; i++) {
        const char *s;
        size_t len;
        if (strcmp(strs[i], skip) && !gguf_get_str(&g, strs[i], &s, &len, NULL, 0))
            assert_int_equal(gguf_writer_set_str(w, strs[i], s, len, err, sizeof(err)), 0);
    }
    for (size_t i = 0; i < 4; i++) {
        gguf_array a;
        if (!strcmp(arrs[i], skip) || gguf_get_arr(&g, arrs[i], &a, NULL, 0)) continue;
        if (a.type == GGUF_TYPE_STRING) {
            const char **s = malloc(a.n * sizeof(*s));
            size_t *l = malloc(a.n * sizeof(*l));
            for (uint64_t k = 0; k < a.n; k++) s[k] = gguf_arr_str(&a, k, &l[k]);
            assert_int_equal(gguf_writer_set_arr_str(w, arrs[i], s, l, a.n, err, sizeof(err)), 0);
            free(s);
            free(l);
        } else {
            assert_int_equal(
                gguf_writer_set_arr(w, arrs[i], a.type, gguf_arr_data(&a), a.n, err, sizeof(err)),
                0);
        }
    }
    for (size_t i = 0; i < 3; i++) {
        uint32_t v;
        if (strcmp(ids[i], skip) && !gguf_get_u32(&g, ids[i], &v, NULL, 0))
            assert_int_equal(gguf_writer_set_u32(w, ids[i], v, err, sizeof(err)), 0);
    }
    for (size_t i = 0; i < 2; i++) {
        int v;
        uint8_t b;
        if (strcmp(bools[i], skip) && !gguf_get_bool(&g, bools[i], &v, NULL, 0)) {
            b = (uint8_t)v;
            assert_int_equal(gguf_writer_set(w, bools[i], GGUF_TYPE_BOOL, &b, err, sizeof(err)), 0);
        }
    }
    gguf_close(&g);
    return w;
}

static void test_mistral_from_scores(void **state) {
    (void)state;
    char dir[4096], err[512] = "";
    snprintf(dir, sizeof(dir), "%s/mistral", HF_TOKENIZERS);
    tokenizer *ref = NULL, *t = NULL;
    if (tokenizer_load_dir(&ref, dir, err, sizeof(err))) fail_msg("%s", err);
    tokenizer_free(round_trip(ref, 0)); /* leaves the file at gguf_path */
    if (write_and_load(copy_tokenizer_keys("tokenizer.ggml.merges"), &t, err, sizeof(err)))
        fail_msg("%s", err);
    char *json = read_all(FAMILY_VECTORS);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    assert_non_null(root);
    assert_same_tokenizer(ref, t, family_vectors(root, "mistral"), 0);
    cJSON_Delete(root);
    free(json);
    tokenizer_free(t);
    tokenizer_free(ref);
}

/* ---- malformed metadata ------------------------------------------------------------------- */

/* A small SentencePiece vocabulary: <unk> <s> </s> ▁ a b ▁a ab, merges "▁ a", "a b". */
#define META "\xe2\x96\x81"
static const char *const sp_tokens[] = {"<unk>", "<s>", "</s>", META, "a", "b", META "a", "ab"};
static const int32_t sp_types[] = {2, 3, 3, 1, 1, 1, 1, 1};
static const char *const sp_merges[] = {META " a", "a b"};

enum {
    BAD_NONE,
    BAD_TOKENS_NOT_STRINGS,
    BAD_MERGE,
    BAD_TYPES_LENGTH,
    BAD_BOS,
    BAD_MODEL,
    BAD_PRE,
    BAD_TYPE_VALUE
};

static gguf_writer *small_sp(int bad) {
    char err[256];
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    const char *model = bad == BAD_MODEL ? "bert" : bad == BAD_PRE ? "gpt2" : "llama";
    assert_int_equal(
        gguf_writer_set_str(w, "tokenizer.ggml.model", model, strlen(model), err, sizeof(err)), 0);
    if (bad == BAD_PRE)
        assert_int_equal(
            gguf_writer_set_str(w, "tokenizer.ggml.pre", "falcon", 6, err, sizeof(err)), 0);
    if (bad == BAD_TOKENS_NOT_STRINGS)
        assert_int_equal(gguf_writer_set_arr(w, "tokenizer.ggml.tokens", GGUF_TYPE_INT32, sp_types,
                                             8, err, sizeof(err)),
                         0);
    else
        assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", sp_tokens, NULL, 8,
                                                 err, sizeof(err)),
                         0);
    int32_t types[8];
    memcpy(types, sp_types, sizeof(types));
    if (bad == BAD_TYPE_VALUE) types[5] = 9;
    assert_int_equal(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types,
                                         bad == BAD_TYPES_LENGTH ? 7 : 8, err, sizeof(err)),
                     0);
    const char *const bad_merges[] = {META " a", "a x"};
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges",
                                             bad == BAD_MERGE ? bad_merges : sp_merges, NULL, 2,
                                             err, sizeof(err)),
                     0);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", bad == BAD_BOS ? 8 : 1,
                                         err, sizeof(err)),
                     0);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2, err, sizeof(err)), 0);
    return w;
}

static void test_small_sentencepiece(void **state) {
    (void)state;
    char err[512] = "";
    tokenizer *t = NULL;
    if (write_and_load(small_sp(BAD_NONE), &t, err, sizeof(err))) fail_msg("%s", err);
    int *ids = NULL;
    size_t n = 0;
    assert_int_equal(tokenizer_encode_prompt(t, "a ab<s>", 7, &ids, &n), 0);
    /* bos <s>; "▁a▁ab": "▁ a" ranks first, so "▁a", "▁a", "b" ("a b" never meets); <s> */
    int want[] = {1, 6, 6, 5, 1};
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want, sizeof(want));
    free(ids);
    assert_int_equal(tokenizer_eos(t), 2);
    assert_true(tokenizer_is_stop(t, 2));
    tokenizer_free(t);
}

static void expect_refused(int bad, const char *key) {
    char err[512] = "";
    tokenizer *t = NULL;
    int rc = write_and_load(small_sp(bad), &t, err, sizeof(err));
    if (rc != -1) fail_msg("case %d: accepted (rc %d), expected a message naming %s", bad, rc, key);
    assert_null(t);
    if (!strstr(err, key) || strchr(err, '\n'))
        fail_msg("case %d: \"%s\" does not name %s in one line", bad, err, key);
    fprintf(stderr, "  refused: %s\n", err);
}

static void test_malformed(void **state) {
    (void)state;
    expect_refused(BAD_TOKENS_NOT_STRINGS, "tokenizer.ggml.tokens");
    expect_refused(BAD_MERGE, "tokenizer.ggml.merges[1]");
    expect_refused(BAD_TYPES_LENGTH, "tokenizer.ggml.token_type");
    expect_refused(BAD_TYPE_VALUE, "tokenizer.ggml.token_type");
    expect_refused(BAD_BOS, "tokenizer.ggml.bos_token_id");
    expect_refused(BAD_MODEL, "tokenizer.ggml.model");
    expect_refused(BAD_PRE, "tokenizer.ggml.pre");
}

static void test_no_tokenizer(void **state) {
    (void)state;
    char err[512] = "";
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama", 5, err, sizeof(err)),
                     0);
    tokenizer *t = NULL;
    assert_int_equal(write_and_load(w, &t, err, sizeof(err)), 1);
    assert_null(t);
    assert_non_null(strstr(err, "no tokenizer"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gpt2, make_path, remove_path),
        cmocka_unit_test_setup_teardown(test_llama3, make_path, remove_path),
        cmocka_unit_test_setup_teardown(test_qwen3, make_path, remove_path),
        cmocka_unit_test_setup_teardown(test_mistral, make_path, remove_path),
        cmocka_unit_test_setup_teardown(test_mistral_from_scores, make_path, remove_path),
        cmocka_unit_test_setup_teardown(test_small_sentencepiece, make_path, remove_path),
        cmocka_unit_test_setup_teardown(test_malformed, make_path, remove_path),
        cmocka_unit_test_setup_teardown(test_no_tokenizer, make_path, remove_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
