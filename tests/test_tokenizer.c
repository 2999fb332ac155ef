/* test_tokenizer.c — GPT-2's BPE tokenizer against the reference encoder's ids
 * (tests/data/tokenizer_vectors.json, from tests/data/make_tokenizer_vectors.js), byte-exact
 * round trips (invalid UTF-8 included), the three file layouts and the builtin copy giving the
 * same tokens, and clear errors for missing or garbled files.
 *
 * argv[1], when given, replaces the vectors file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "linshard/tokenizer.h"

#ifndef TOKENIZER_VECTORS
#error "TOKENIZER_VECTORS (path of tokenizer_vectors.json) must be defined"
#endif
#ifndef TOKENIZER_DIR
#error "TOKENIZER_DIR (data/gpt2-tokenizer) must be defined"
#endif

static const char *vectors_path = TOKENIZER_VECTORS;

/* ---- helpers ----------------------------------------------------------------------------------
 */

static char *read_all(const char *path, size_t *len) {
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
    if (len) *len = n;
    return buf;
}

static void write_all(const char *path, const char *data, size_t len);
static void write_str(const char *path, const char *s) {
    write_all(path, s, strlen(s));
}

static void write_all(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void path_join(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

static void copy_file(const char *from, const char *dir, const char *name) {
    size_t len;
    char *data = read_all(from, &len);
    assert_non_null(data);
    char path[4096];
    path_join(path, sizeof(path), dir, name);
    write_all(path, data, len);
    free(data);
}

/* A fresh temporary directory; remove_dir deletes the files that tests put there. */
static void make_dir(char *out, size_t cap) {
    snprintf(out, cap, "/tmp/linshard-tok-XXXXXX");
    assert_non_null(mkdtemp(out));
}

static void remove_dir(const char *dir) {
    static const char *const names[] = {"encoder.json", "vocab.bpe", "vocab.json", "merges.txt",
                                        "tokenizer.json"};
    char path[4096];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        path_join(path, sizeof(path), dir, names[i]);
        unlink(path);
    }
    assert_int_equal(rmdir(dir), 0);
}

typedef struct {
    char *text;
    size_t len;
    int *ids, *ordinary;
    size_t n_ids, n_ordinary;
} vector;

typedef struct {
    tokenizer *tok; /* the builtin one */
    vector *v;
    size_t n;
} fixture;

static int *json_ids(const cJSON *arr, size_t *n) {
    assert_true(cJSON_IsArray(arr));
    *n = (size_t)cJSON_GetArraySize(arr);
    int *ids = malloc((*n ? *n : 1) * sizeof(int));
    assert_non_null(ids);
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next) ids[i++] = (int)cJSON_GetNumberValue(e);
    return ids;
}

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof(*fx));
    char err[512] = "";
    if (!fx || tokenizer_load_builtin(&fx->tok, err, sizeof(err))) {
        fprintf(stderr, "builtin tokenizer: %s\n", err);
        return -1;
    }
    char *json = read_all(vectors_path, NULL);
    if (!json) {
        fprintf(stderr, "cannot read %s\n", vectors_path);
        return -1;
    }
    cJSON *root = cJSON_Parse(json);
    free(json);
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(root, "vectors");
    if (!cJSON_IsArray(vs)) {
        fprintf(stderr, "%s: no \"vectors\" array\n", vectors_path);
        cJSON_Delete(root);
        return -1;
    }
    fx->n = (size_t)cJSON_GetArraySize(vs);
    fx->v = calloc(fx->n, sizeof(vector));
    size_t i = 0;
    for (const cJSON *e = vs->child; e; e = e->next, i++) {
        vector *v = &fx->v[i];
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "text"));
        assert_non_null(text);
        v->text = strdup(text);
        v->len = strlen(text);
        v->ids = json_ids(cJSON_GetObjectItemCaseSensitive(e, "ids"), &v->n_ids);
        const cJSON *ord = cJSON_GetObjectItemCaseSensitive(e, "ordinary_ids");
        v->ordinary =
            json_ids(ord ? ord : cJSON_GetObjectItemCaseSensitive(e, "ids"), &v->n_ordinary);
    }
    cJSON_Delete(root);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    for (size_t i = 0; i < fx->n; i++) {
        free(fx->v[i].text);
        free(fx->v[i].ids);
        free(fx->v[i].ordinary);
    }
    free(fx->v);
    tokenizer_free(fx->tok);
    free(fx);
    return 0;
}

static void print_ids(const char *what, const int *ids, size_t n) {
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, "%s%d", i ? "," : " ", ids[i]);
    fprintf(stderr, "\n");
}

/* Whether t encodes the text to the expected ids; prints the difference when not. */
static int encodes_to(const tokenizer *t, int ordinary, const char *text, size_t len,
                      const int *want, size_t n_want) {
    int *ids = NULL;
    size_t n = 0;
    int rc = ordinary ? tokenizer_encode_ordinary(t, text, len, &ids, &n)
                      : tokenizer_encode(t, text, len, &ids, &n);
    assert_int_equal(rc, 0);
    int same = n == n_want && (n == 0 || !memcmp(ids, want, n * sizeof(int)));
    if (!same) {
        fprintf(stderr, "%s mismatch on \"%.*s\"\n", ordinary ? "encode_ordinary" : "encode",
                (int)(len < 200 ? len : 200), text);
        print_ids("got ", ids, n);
        print_ids("want", want, n_want);
    }
    free(ids);
    return same;
}

static int *encode_ok(const tokenizer *t, const char *text, size_t len, size_t *n) {
    int *ids = NULL;
    assert_int_equal(tokenizer_encode(t, text, len, &ids, n), 0);
    return ids;
}

/* decode(ids) == text byte for byte, and so does streaming through token_bytes. */
static void assert_decodes_to(const tokenizer *t, const int *ids, size_t n, const char *text,
                              size_t len) {
    char *out = NULL, err[256] = "";
    size_t out_len = 0;
    assert_int_equal(tokenizer_decode(t, ids, n, &out, &out_len, err, sizeof(err)), 0);
    assert_int_equal(out_len, len);
    assert_memory_equal(out, text, len);
    assert_int_equal(out[len], '\0');
    char buf[256];
    size_t pos = 0;
    assert_true(tokenizer_max_token_bytes(t) <= (int)sizeof(buf));
    for (size_t i = 0; i < n; i++) {
        int k = tokenizer_token_bytes(t, ids[i], buf, sizeof(buf));
        assert_true(k > 0 && pos + (size_t)k <= len);
        assert_memory_equal(buf, text + pos, (size_t)k);
        pos += (size_t)k;
    }
    assert_int_equal(pos, len);
    free(out);
}

/* ---- the reference's ids -------------------------------------------------------------------- */

static void test_sizes(void **state) {
    fixture *fx = *state;
    assert_int_equal(tokenizer_vocab_size(fx->tok), 50257);
    assert_int_equal(tokenizer_eot(fx->tok), 50256);
    assert_true(fx->n >= 60);
}

static void test_vectors_encode(void **state) {
    fixture *fx = *state;
    int bad = 0;
    for (size_t i = 0; i < fx->n; i++) {
        const vector *v = &fx->v[i];
        bad += !encodes_to(fx->tok, 0, v->text, v->len, v->ids, v->n_ids);
        bad += !encodes_to(fx->tok, 1, v->text, v->len, v->ordinary, v->n_ordinary);
    }
    assert_int_equal(bad, 0);
}

static void test_vectors_round_trip(void **state) {
    fixture *fx = *state;
    for (size_t i = 0; i < fx->n; i++) {
        const vector *v = &fx->v[i];
        assert_decodes_to(fx->tok, v->ids, v->n_ids, v->text, v->len);
        assert_decodes_to(fx->tok, v->ordinary, v->n_ordinary, v->text, v->len);
        size_t n;
        int *ids = encode_ok(fx->tok, v->text, v->len, &n);
        assert_decodes_to(fx->tok, ids, n, v->text, v->len);
        free(ids);
    }
}

/* All the vectors back to back, 20 times over: a ~100 KB text with every kind of piece (and
 * pieces of several KB where punctuation or letters of two vectors meet) round-trips. */
static void test_long_text(void **state) {
    fixture *fx = *state;
    size_t total = 0;
    for (size_t i = 0; i < fx->n; i++) total += fx->v[i].len;
    size_t cap = 20 * total + 1;
    char *big = malloc(cap);
    assert_non_null(big);
    size_t len = 0;
    for (int r = 0; r < 20; r++)
        for (size_t i = 0; i < fx->n; i++) {
            memcpy(big + len, fx->v[i].text, fx->v[i].len);
            len += fx->v[i].len;
        }
    size_t n;
    int *ids = encode_ok(fx->tok, big, len, &n);
    assert_decodes_to(fx->tok, ids, n, big, len);
    free(ids);
    free(big);
}

/* ---- bytes that are not UTF-8 --------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static void test_random_bytes_round_trip(void **state) {
    fixture *fx = *state;
    static const char *const pieces[] = {"<|endoftext|>",
                                         "<|endoftext",
                                         " ",
                                         "  ",
                                         "\n",
                                         "\t",
                                         "'s",
                                         "'LL",
                                         "é",
                                         "\xc3",
                                         "\xa9",
                                         "\xe6\x97\xa5",
                                         "\xe6\x97",
                                         "\xf0\x9f\x98\x80",
                                         "\xf0\x9f",
                                         "\xed\xa0\x80",
                                         "\xc0\xaf",
                                         "\xff",
                                         "\xfe",
                                         "\x80",
                                         "\0",
                                         "x",
                                         "42",
                                         "the",
                                         " The",
                                         ",",
                                         "\xe2\x80\xa8",
                                         "\xef\xbb\xbf"};
    char buf[512];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = 0, target = rng() % 300;
        int mode = iter % 3;
        while (len < target) {
            if (mode == 0) { /* any bytes */
                buf[len++] = (char)(rng() & 0xFF);
            } else if (mode == 1) { /* bytes with a bias to high ones and spaces */
                uint32_t r = rng() % 4;
                buf[len++] = (char)(r == 0 ? ' ' : r == 1 ? 0x80 | (rng() & 0x7F) : rng() & 0xFF);
            } else { /* pieces of text, valid and broken */
                const char *p = pieces[rng() % (sizeof(pieces) / sizeof(pieces[0]))];
                size_t pl = p[0] ? strlen(p) : 1;
                if (len + pl > sizeof(buf)) break;
                memcpy(buf + len, p, pl);
                len += pl;
            }
        }
        for (int ordinary = 0; ordinary < 2; ordinary++) {
            int *ids = NULL;
            size_t n = 0;
            int rc = ordinary ? tokenizer_encode_ordinary(fx->tok, buf, len, &ids, &n)
                              : tokenizer_encode(fx->tok, buf, len, &ids, &n);
            assert_int_equal(rc, 0);
            assert_true(n <= len);
            for (size_t i = 0; i < n; i++) {
                assert_true(ids[i] >= 0 && ids[i] < 50257);
                if (ordinary) assert_int_not_equal(ids[i], 50256);
            }
            assert_decodes_to(fx->tok, ids, n, buf, len);
            free(ids);
        }
    }
}

/* The ids of text, as a list the test can build on. */
typedef struct {
    int ids[64];
    size_t n;
} idlist;

static void append(const tokenizer *t, idlist *l, const char *text, size_t len) {
    size_t n;
    int *ids = encode_ok(t, text, len, &n);
    assert_true(l->n + n <= 64);
    if (n) memcpy(l->ids + l->n, ids, n * sizeof(int));
    l->n += n;
    free(ids);
}

/* text encodes as its parts encoded one by one (NULL ends the list). */
static void assert_splits_as(const tokenizer *t, const char *text, size_t len, ...) {
    idlist want = {{0}, 0};
    va_list ap;
    va_start(ap, len);
    for (const char *p; (p = va_arg(ap, const char *));) append(t, &want, p, strlen(p));
    va_end(ap);
    assert_true(encodes_to(t, 0, text, len, want.ids, want.n));
}

/* An invalid byte is a character of its own in the punctuation class, encoded as its byte. */
static void test_invalid_utf8_ids(void **state) {
    fixture *fx = *state;
    const tokenizer *t = fx->tok;
    char b[1];
    /* a lone byte is that byte's token */
    for (int c = 0x80; c < 0x100; c++) {
        char one = (char)c;
        size_t n;
        int *ids = encode_ok(t, &one, 1, &n);
        assert_int_equal(n, 1);
        assert_int_equal(tokenizer_token_bytes(t, ids[0], b, 1), 1);
        assert_int_equal((unsigned char)b[0], c);
        free(ids);
    }
    /* it splits letters from letters, and joins a run of punctuation (and a leading space) */
    assert_splits_as(t, "Hello\x80world", 11, "Hello", "\x80", "world", NULL);
    assert_splits_as(t, "caf\xc3", 4, "caf", "\xc3", NULL);
    assert_splits_as(t, "a\xff!b", 4, "a", "\xff!", "b", NULL);
    assert_splits_as(t, "x \xfe\xff", 4, "x", " \xfe\xff", NULL);
    assert_splits_as(t, "12\xc3\xa9", 4, "12", "\xc3\xa9", NULL); /* the valid é is a letter */
    assert_splits_as(t, "12\xc3 \xa9", 5, "12", "\xc3", " \xa9", NULL);
    /* overlong, surrogate and truncated forms are bytes, not characters */
    assert_splits_as(t,
                     "a\xc0\xaf"
                     "b",
                     4, "a", "\xc0\xaf", "b", NULL);
    assert_splits_as(t,
                     "a\xed\xa0\x80"
                     "b",
                     5, "a", "\xed\xa0\x80", "b", NULL);
    assert_splits_as(t,
                     "a\xf0\x9f\x98"
                     "b",
                     5, "a", "\xf0\x9f\x98", "b", NULL);
    assert_splits_as(t,
                     "a\xf4\x90\x80\x80"
                     "b",
                     6, "a", "\xf4\x90\x80\x80", "b", NULL);
    /* an invalid byte is not a space: "\xa0" alone is not U+00A0 */
    assert_splits_as(t,
                     "a\xa0"
                     "b",
                     3, "a", "\xa0", "b", NULL);
    assert_splits_as(t,
                     "a\xc2\xa0"
                     "b",
                     4, "a", "\xc2\xa0", "b", NULL);
    /* NUL is an ordinary control character */
    size_t n;
    int *ids = encode_ok(t, "a\0b", 3, &n);
    assert_int_equal(n, 3);
    assert_int_equal(tokenizer_token_bytes(t, ids[1], b, 1), 1);
    assert_int_equal(b[0], '\0');
    free(ids);
}

/* ---- special token ----------------------------------------------------------------------------
 */

static void test_endoftext(void **state) {
    fixture *fx = *state;
    const tokenizer *t = fx->tok;
    int eot = 50256;
    assert_true(encodes_to(t, 0, "<|endoftext|>", 13, &eot, 1));
    int ordinary[] = {27, 91, 437, 1659, 5239, 91, 29};
    assert_true(encodes_to(t, 1, "<|endoftext|>", 13, ordinary, 7));
    /* split there: each side is encoded on its own */
    idlist want = {{0}, 0};
    append(t, &want, "a ", 2);
    want.ids[want.n++] = eot;
    append(t, &want, " b", 2);
    assert_true(encodes_to(t, 0, "a <|endoftext|> b", 17, want.ids, want.n));
    /* in between bytes that are not UTF-8 */
    want.n = 0;
    append(t, &want, "\xff", 1);
    want.ids[want.n++] = eot;
    want.ids[want.n++] = eot;
    append(t, &want, "\xe6", 1);
    assert_true(encodes_to(t, 0, "\xff<|endoftext|><|endoftext|>\xe6", 28, want.ids, want.n));
    char buf[16];
    assert_int_equal(tokenizer_token_bytes(t, eot, buf, sizeof(buf)), 13);
    assert_memory_equal(buf, "<|endoftext|>", 13);
}

/* ---- token bytes and decode errors ---------------------------------------------------------- */

static void test_token_bytes_and_errors(void **state) {
    fixture *fx = *state;
    const tokenizer *t = fx->tok;
    char buf[64];
    assert_int_equal(tokenizer_token_bytes(t, 220, buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], ' ');
    assert_int_equal(tokenizer_token_bytes(t, 15496, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "Hello", 5);
    assert_int_equal(tokenizer_token_bytes(t, 15496, buf, 4), -1); /* no room */
    assert_int_equal(tokenizer_token_bytes(t, -1, buf, sizeof(buf)), -1);
    assert_int_equal(tokenizer_token_bytes(t, 50257, buf, sizeof(buf)), -1);
    assert_int_equal(tokenizer_token_bytes(t, INT_MAX, buf, sizeof(buf)), -1);
    assert_int_equal(tokenizer_token_bytes(t, INT_MIN, buf, sizeof(buf)), -1);

    int ids[] = {15496, 50257, 995};
    char *text = (char *)1, err[256] = "";
    size_t len = 7;
    assert_int_equal(tokenizer_decode(t, ids, 3, &text, &len, err, sizeof(err)), -1);
    assert_null(text);
    assert_non_null(strstr(err, "50257"));
    assert_non_null(strstr(err, "position 1"));
    ids[1] = -5;
    assert_int_equal(tokenizer_decode(t, ids, 3, &text, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "-5"));
    /* nothing to decode is the empty string */
    assert_int_equal(tokenizer_decode(t, ids, 0, &text, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 0);
    assert_string_equal(text, "");
    free(text);
    /* an id list that splits a character decodes to the bytes as they are */
    size_t n;
    int *e = encode_ok(t, "日本", 6, &n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(tokenizer_decode(t, e + i, 1, &text, &len, err, sizeof(err)), 0);
        assert_true(len >= 1 && len <= 6);
        free(text);
    }
    free(e);
    /* nothing to encode */
    int *none = (int *)1;
    assert_int_equal(tokenizer_encode(t, "", 0, &none, &n), 0);
    assert_int_equal(n, 0);
    free(none);
}

/* ---- loading ----------------------------------------------------------------------------------
 */

/* Every vector encodes the same with t as with the builtin tokenizer (and the reference). */
static void assert_same_as_reference(const fixture *fx, const tokenizer *t) {
    assert_int_equal(tokenizer_vocab_size(t), 50257);
    assert_int_equal(tokenizer_eot(t), 50256);
    int bad = 0;
    for (size_t i = 0; i < fx->n; i++) {
        const vector *v = &fx->v[i];
        bad += !encodes_to(t, 0, v->text, v->len, v->ids, v->n_ids);
        bad += !encodes_to(t, 1, v->text, v->len, v->ordinary, v->n_ordinary);
    }
    assert_int_equal(bad, 0);
    for (int id = 0; id < 50257; id += 7) {
        char a[256], b[256];
        int la = tokenizer_token_bytes(t, id, a, sizeof(a));
        int lb = tokenizer_token_bytes(fx->tok, id, b, sizeof(b));
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, (size_t)la);
    }
}

static void test_load_openai_names(void **state) {
    fixture *fx = *state;
    tokenizer *t = NULL;
    char err[512] = "";
    int rc = tokenizer_load_dir(&t, TOKENIZER_DIR, err, sizeof(err));
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_same_as_reference(fx, t);
    tokenizer_free(t);
}

static void test_load_hf_names(void **state) {
    fixture *fx = *state;
    char dir[64], err[512] = "";
    make_dir(dir, sizeof(dir));
    copy_file(TOKENIZER_DIR "/encoder.json", dir, "vocab.json");
    copy_file(TOKENIZER_DIR "/vocab.bpe", dir, "merges.txt");
    tokenizer *t = NULL;
    int rc = tokenizer_load_dir(&t, dir, err, sizeof(err));
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_same_as_reference(fx, t);
    tokenizer_free(t);
    remove_dir(dir);
}

/* A tokenizer.json built from the two files: merges as "a b" strings, or as ["a", "b"] pairs
 * (newer versions of the tokenizers library write those). */
static void write_tokenizer_json(const char *dir, int pairs) {
    char *enc = read_all(TOKENIZER_DIR "/encoder.json", NULL);
    char *bpe = read_all(TOKENIZER_DIR "/vocab.bpe", NULL);
    assert_non_null(enc);
    assert_non_null(bpe);
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", cJSON_Parse(enc));
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    char *line = strchr(bpe, '\n') + 1; /* after "#version: 0.2" */
    for (char *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        if (!pairs) {
            cJSON_AddItemToArray(merges, cJSON_CreateString(line));
        } else {
            char *sp = strchr(line, ' ');
            *sp = '\0';
            const char *two[2] = {line, sp + 1};
            cJSON_AddItemToArray(merges, cJSON_CreateStringArray(two, 2));
        }
    }
    char *json = cJSON_PrintUnformatted(root);
    char path[4096];
    path_join(path, sizeof(path), dir, "tokenizer.json");
    write_all(path, json, strlen(json));
    free(json);
    cJSON_Delete(root);
    free(enc);
    free(bpe);
}

static void test_load_tokenizer_json(void **state) {
    fixture *fx = *state;
    for (int pairs = 0; pairs < 2; pairs++) {
        char dir[64], err[512] = "";
        make_dir(dir, sizeof(dir));
        write_tokenizer_json(dir, pairs);
        tokenizer *t = NULL;
        int rc = tokenizer_load_dir(&t, dir, err, sizeof(err));
        if (rc) fprintf(stderr, "%s\n", err);
        assert_int_equal(rc, 0);
        assert_same_as_reference(fx, t);
        tokenizer_free(t);
        remove_dir(dir);
    }
}

/* Loading dir fails with a message holding every one of the strings (NULL ends them). */
static void assert_load_fails(const char *dir, ...) {
    tokenizer *t = (tokenizer *)1;
    char err[512] = "";
    assert_int_equal(tokenizer_load_dir(&t, dir, err, sizeof(err)), -1);
    assert_null(t);
    assert_null(strchr(err, '\n'));
    va_list ap;
    va_start(ap, dir);
    for (const char *s; (s = va_arg(ap, const char *));) {
        if (!strstr(err, s)) fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err, s);
        assert_non_null(strstr(err, s));
    }
    va_end(ap);
}

static void test_load_errors(void **state) {
    (void)state;
    char dir[64], path[4096];
    assert_load_fails("/nonexistent/tokenizer", "/nonexistent/tokenizer", "No such file", NULL);
    assert_load_fails(TOKENIZER_DIR "/vocab.bpe", "not a directory", NULL);
    make_dir(dir, sizeof(dir));
    assert_load_fails(dir, dir, "no tokenizer files", "tokenizer.json", NULL);

    /* one of a pair */
    copy_file(TOKENIZER_DIR "/encoder.json", dir, "encoder.json");
    assert_load_fails(dir, "vocab.bpe", "missing", NULL);
    /* garbled JSON */
    path_join(path, sizeof(path), dir, "encoder.json");
    write_str(path, "{\"a\": 0, \"b\":");
    copy_file(TOKENIZER_DIR "/vocab.bpe", dir, "vocab.bpe");
    assert_load_fails(dir, "encoder.json", "not valid JSON", NULL);
    write_str(path, "[1, 2]");
    assert_load_fails(dir, "encoder.json", "not a JSON object", NULL);
    write_str(path, "{\"a\": 0, \"b\": 5}");
    assert_load_fails(dir, "encoder.json", "\"b\"", "not an integer in 0..1", NULL);
    write_str(path, "{\"a\": 0, \"b\": 0}");
    assert_load_fails(dir, "encoder.json", "id 0", NULL);
    write_str(path, "{\"a b\": 0}");
    assert_load_fails(dir, "encoder.json", "byte alphabet", NULL);
    write_str(path, "{\"a\": 0}");
    assert_load_fails(dir, "encoder.json", "no token for the byte 0x00", NULL);

    /* garbled merges: three fields, an unknown token */
    copy_file(TOKENIZER_DIR "/encoder.json", dir, "encoder.json");
    path_join(path, sizeof(path), dir, "vocab.bpe");
    static const char three[] = "#version: 0.2\n\xc4\xa0 t\nh e l\n";
    write_all(path, three, sizeof(three) - 1);
    assert_load_fails(dir, "vocab.bpe", "line 3", "two tokens", NULL);
    static const char unknown[] = "#version: 0.2\n\xc4\xa0 t\nzzzzqqq xyzzyplugh\n";
    write_all(path, unknown, sizeof(unknown) - 1);
    assert_load_fails(dir, "vocab.bpe", "line 3", "not in the vocabulary", NULL);
    remove_dir(dir);

    /* tokenizer.json that is not a BPE model */
    make_dir(dir, sizeof(dir));
    path_join(path, sizeof(path), dir, "tokenizer.json");
    write_str(path, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
    assert_load_fails(dir, "tokenizer.json", "WordPiece", NULL);
    write_str(path, "{\"version\": \"1.0\"}");
    assert_load_fails(dir, "tokenizer.json", "model", NULL);
    remove_dir(dir);
}

/* A vocabulary whose merges fine-tune nothing still encodes every byte: with no merges at all,
 * every byte is its own token. */
static void test_no_merges(void **state) {
    fixture *fx = *state;
    char dir[64], err[512] = "", path[4096];
    make_dir(dir, sizeof(dir));
    copy_file(TOKENIZER_DIR "/encoder.json", dir, "encoder.json");
    path_join(path, sizeof(path), dir, "vocab.bpe");
    write_str(path, "#version: 0.2\n");
    tokenizer *t = NULL;
    assert_int_equal(tokenizer_load_dir(&t, dir, err, sizeof(err)), 0);
    const char *text = "Hello, wörld <|endoftext|>";
    size_t n, len = strlen(text);
    int *ids = encode_ok(t, text, len, &n);
    assert_int_equal(n, len - 13 + 1);
    assert_int_equal(ids[n - 1], 50256);
    assert_decodes_to(t, ids, n, text, len);
    free(ids);
    (void)fx;
    tokenizer_free(t);
    remove_dir(dir);
}

int main(int argc, char **argv) {
    if (argc > 1) vectors_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_vectors_encode),
        cmocka_unit_test(test_vectors_round_trip),
        cmocka_unit_test(test_long_text),
        cmocka_unit_test(test_random_bytes_round_trip),
        cmocka_unit_test(test_invalid_utf8_ids),
        cmocka_unit_test(test_endoftext),
        cmocka_unit_test(test_token_bytes_and_errors),
        cmocka_unit_test(test_load_openai_names),
        cmocka_unit_test(test_load_hf_names),
        cmocka_unit_test(test_load_tokenizer_json),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_no_merges),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
