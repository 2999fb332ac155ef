/* test_gguf.c — the GGUF reader and writer: files written by llama.cpp's gguf-py
 * (tests/data/gguf/, made by make_fixtures.py) read back value by value, round trips through the
 * writer, and malformed files, each refused with a one-line message naming the problem. The
 * malformed files are built byte by byte here (build()), so each test states exactly what is
 * wrong. Files live in a mkdtemp directory removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/gguf.h"

#ifndef GGUF_FIXTURES
#error "GGUF_FIXTURES (tests/data/gguf) must be defined by the build"
#endif

static char tmpdir[64];
static char path[128];

static int group_setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/gguf-test-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(path, sizeof(path), "%s/t.gguf", tmpdir);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    unlink(path);
    rmdir(tmpdir);
    return 0;
}

/* ---- independent references --------------------------------------------------------------- */

/* The fixtures' formula for flat index i (make_fixtures.py's v). */
static double v_ref(uint64_t i) {
    return (double)((int)((i * 37) % 101) - 50) / 8.0;
}

/* IEEE binary16 bits to double, written from the definition. */
static double f16_ref(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double s = (h & 0x8000) ? -1.0 : 1.0;
    if (e == 0) return s * ldexp(m, -24);
    if (e == 31) return m ? NAN : s * INFINITY;
    return s * ldexp(1024 + m, e - 25);
}

static double bf16_ref(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float x;
    memcpy(&x, &bits, 4);
    return x;
}

/* ---- a byte builder for hand-made files ---------------------------------------------------- */

typedef struct {
    uint8_t p[4096];
    size_t n;
} bytes;

static void b_put(bytes *b, const void *p, size_t n) {
    assert_true(b->n + n <= sizeof(b->p));
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void b_u32(bytes *b, uint32_t v) {
    b_put(b, &v, 4);
}
static void b_u64(bytes *b, uint64_t v) {
    b_put(b, &v, 8);
}
static void b_str(bytes *b, const char *s) {
    b_u64(b, strlen(s));
    b_put(b, s, strlen(s));
}
static void b_pad(bytes *b, size_t align) {
    while (b->n % align) b->p[b->n++] = 0;
}

static void write_bytes(const bytes *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b->p, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* A small file described field by field; defaults (spec_default) make a valid one: magic GGUF,
 * version 3, one key "general.name" = "t", tensors 'a' (f32, ne [4, 2], offset 0) and 'b' (f32,
 * ne [8], offset 32), then 64 bytes of data. */
typedef struct {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[5];
    uint32_t type;
    uint64_t offset;
} spec_tensor;

typedef struct {
    const char *magic;
    uint32_t version;
    uint64_t n_tensors_field, n_kv_field; /* the counts written (normally the real ones) */
    int n_tensors;
    spec_tensor t[2];
    int alignment_key;  /* 0: none, 1: u32 `alignment`, 2: a string */
    uint32_t alignment; /* the data is padded to this (32 when no key) */
    int dup_key;        /* write general.name twice */
    size_t data_bytes;
} spec;

static spec spec_default(void) {
    spec s = {"GGUF", 3, 2, 1, 2, {{"a", 2, {4, 2}, 0, 0}, {"b", 1, {8}, 0, 32}}, 0, 32, 0, 64};
    return s;
}

/* Builds s into b; returns the offset at which the data section starts. */
static size_t build(const spec *s, bytes *b) {
    b->n = 0;
    b_put(b, s->magic, 4);
    b_u32(b, s->version);
    b_u64(b, s->n_tensors_field);
    b_u64(b, s->n_kv_field);
    b_str(b, "general.name");
    b_u32(b, GGUF_TYPE_STRING);
    b_str(b, "t");
    if (s->dup_key) {
        b_str(b, "general.name");
        b_u32(b, GGUF_TYPE_STRING);
        b_str(b, "u");
    }
    if (s->alignment_key == 1) {
        b_str(b, "general.alignment");
        b_u32(b, GGUF_TYPE_UINT32);
        b_u32(b, s->alignment);
    } else if (s->alignment_key == 2) {
        b_str(b, "general.alignment");
        b_u32(b, GGUF_TYPE_STRING);
        b_str(b, "32");
    }
    for (int i = 0; i < s->n_tensors; i++) {
        b_str(b, s->t[i].name);
        b_u32(b, s->t[i].n_dims);
        for (uint32_t d = 0; d < s->t[i].n_dims && d < 5; d++) b_u64(b, s->t[i].ne[d]);
        b_u32(b, s->t[i].type);
        b_u64(b, s->t[i].offset);
    }
    uint32_t align = s->alignment && (s->alignment & (s->alignment - 1)) == 0 ? s->alignment : 32;
    b_pad(b, align);
    size_t start = b->n;
    for (size_t i = 0; i < s->data_bytes; i++) b->p[b->n++] = (uint8_t)i;
    return start;
}

/* Builds s, writes it and expects gguf_open to refuse it with a one-line message containing
 * needle (and the path). */
static void expect_refused_bytes(const bytes *b, size_t n, const char *needle) {
    write_bytes(b, n);
    gguf_file f;
    char err[512];
    memset(&f, 0x5a, sizeof(f));
    int rc = gguf_open(&f, path, err, sizeof(err));
    if (rc == 0 || !strstr(err, needle))
        fail_msg("expected a refusal containing '%s', got rc %d: '%s'", needle, rc, err);
    assert_null(strchr(err, '\n'));
    assert_non_null(strstr(err, path));
    assert_null(f.header);
    assert_null(f.tensors);
    assert_int_equal(f.n_tensors, 0);
    gguf_close(&f);
}

static void expect_refused(const spec *s, const char *needle) {
    bytes b;
    build(s, &b);
    expect_refused_bytes(&b, b.n, needle);
}

/* ---- the gguf-py fixtures ------------------------------------------------------------------ */

static void open_fixture(gguf_file *f, const char *name) {
    char p[512], err[512];
    snprintf(p, sizeof(p), "%s/%s", GGUF_FIXTURES, name);
    if (gguf_open(f, p, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_int_equal(f->version, 3);
}

/* Reads tensor name whole (as rows) into a malloc'd buffer, checking type and dims. */
static uint8_t *read_whole(const gguf_file *f, const char *name, int type, int n_dims,
                           const uint64_t *ne) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    assert_non_null(t);
    assert_int_equal(t->type, type);
    assert_int_equal(t->n_dims, n_dims);
    for (int d = 0; d < n_dims; d++) assert_int_equal(t->ne[d], ne[d]);
    assert_int_equal(t->offset % f->alignment, 0);
    uint8_t *buf = malloc(t->n_bytes);
    assert_non_null(buf);
    char err[512];
    if (gguf_read_rows(f, t, 0, t->n_rows, buf, err, sizeof(err)) != 0) fail_msg("%s", err);
    return buf;
}

static void test_fixture_float_types(void **state) {
    (void)state;
    gguf_file f;
    const char *s;
    size_t len;
    char err[512];
    open_fixture(&f, "f32.gguf");
    assert_int_equal(gguf_get_str(&f, "general.architecture", &s, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(s, "llama", 5);
    assert_int_equal(f.n_tensors, 2);
    uint64_t ne_a[] = {5, 3}, ne_b[] = {2, 3, 4};
    float *a = (float *)read_whole(&f, "a", GGML_TYPE_F32, 2, ne_a);
    for (int i = 0; i < 15; i++) assert_true(a[i] == v_ref((uint64_t)i));
    free(a);
    float *b = (float *)read_whole(&f, "b", GGML_TYPE_F32, 3, ne_b);
    for (int i = 0; i < 24; i++) assert_true(b[i] == v_ref((uint64_t)i));
    free(b);
    gguf_close(&f);

    open_fixture(&f, "f16.gguf");
    uint64_t ne16[] = {7, 3};
    uint16_t *h = (uint16_t *)read_whole(&f, "a", GGML_TYPE_F16, 2, ne16);
    for (int i = 0; i < 21; i++) assert_true(f16_ref(h[i]) == v_ref((uint64_t)i));
    free(h);
    gguf_close(&f);

    open_fixture(&f, "bf16.gguf");
    uint64_t nebf[] = {9, 2};
    uint16_t *bf = (uint16_t *)read_whole(&f, "a", GGML_TYPE_BF16, 2, nebf);
    for (int i = 0; i < 18; i++) assert_true(bf16_ref(bf[i]) == v_ref((uint64_t)i));
    free(bf);
    gguf_close(&f);
}

static void test_fixture_quantised_types(void **state) {
    (void)state;
    gguf_file f;
    open_fixture(&f, "q8_0.gguf");
    uint64_t ne8[] = {64, 3};
    const gguf_tensor *t = gguf_find_tensor(&f, "a");
    assert_non_null(t);
    assert_int_equal(t->row_bytes, 2 * 34);
    assert_int_equal(t->n_bytes, 6 * 34);
    uint8_t *q = read_whole(&f, "a", GGML_TYPE_Q8_0, 2, ne8);
    for (int b = 0; b < 6; b++) {
        const uint8_t *blk = q + 34 * b;
        uint16_t d;
        memcpy(&d, blk, 2);
        assert_true(f16_ref(d) == (b + 1) / 4.0);
        for (int j = 0; j < 32; j++)
            assert_int_equal((int8_t)blk[2 + j], ((b * 32 + j) * 13) % 255 - 127);
    }
    free(q);
    gguf_close(&f);

    open_fixture(&f, "q4_0.gguf");
    uint64_t ne4[] = {32, 5};
    q = read_whole(&f, "a", GGML_TYPE_Q4_0, 2, ne4);
    for (int b = 0; b < 5; b++) {
        const uint8_t *blk = q + 18 * b;
        uint16_t d;
        memcpy(&d, blk, 2);
        assert_true(f16_ref(d) == (b + 1) / 2.0);
        for (int j = 0; j < 16; j++) {
            assert_int_equal(blk[2 + j] & 15, (b * 7 + j) % 16);
            assert_int_equal(blk[2 + j] >> 4, (b * 3 + j * 5) % 16);
        }
    }
    /* A rank's slice: rows 2..3 of the five are the same bytes as in the whole read. */
    t = gguf_find_tensor(&f, "a");
    uint8_t rows[36];
    char err[512];
    assert_int_equal(gguf_read_rows(&f, t, 2, 2, rows, err, sizeof(err)), 0);
    assert_memory_equal(rows, q + 36, 36);
    assert_int_equal(gguf_read_bytes(&f, t, 20, 16, rows, err, sizeof(err)), 0);
    assert_memory_equal(rows, q + 20, 16);
    free(q);
    gguf_close(&f);
}

static void test_fixture_metadata(void **state) {
    (void)state;
    gguf_file f;
    char err[512];
    open_fixture(&f, "meta.gguf");
    assert_int_equal(f.alignment, 64);
    assert_int_equal(gguf_n_kv(&f), 33);
    assert_int_equal(f.data_start % 64, 0);
    uint32_t u32;
    uint64_t u64;
    int32_t i32;
    float x;
    int bo;
    /* Integers through every getter that can hold them; out-of-range ones refused. */
    assert_int_equal(gguf_get_u32(&f, "test.u8", &u32, err, sizeof(err)), 0);
    assert_int_equal(u32, 200);
    assert_int_equal(gguf_get_i32(&f, "test.i8", &i32, err, sizeof(err)), 0);
    assert_int_equal(i32, -100);
    assert_int_equal(gguf_get_u32(&f, "test.u16", &u32, err, sizeof(err)), 0);
    assert_int_equal(u32, 60000);
    assert_int_equal(gguf_get_i32(&f, "test.i16", &i32, err, sizeof(err)), 0);
    assert_int_equal(i32, -30000);
    assert_int_equal(gguf_get_u32(&f, "test.u32", &u32, err, sizeof(err)), 0);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(gguf_get_i32(&f, "test.u32", &i32, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "key 'test.u32': value 4000000000 is out of range"));
    assert_int_equal(gguf_get_i32(&f, "test.i32", &i32, err, sizeof(err)), 0);
    assert_int_equal(i32, -2000000000);
    assert_int_equal(gguf_get_u32(&f, "test.i32", &u32, err, sizeof(err)), -1);
    assert_int_equal(gguf_get_u64(&f, "test.u64", &u64, err, sizeof(err)), 0);
    assert_true(u64 == (1ull << 63) + 5);
    assert_int_equal(gguf_get_u32(&f, "test.u64", &u32, err, sizeof(err)), -1);
    assert_int_equal(gguf_get_u64(&f, "test.i64", &u64, err, sizeof(err)), -1);
    assert_int_equal(gguf_get_f32(&f, "test.f32", &x, err, sizeof(err)), 0);
    assert_true(x == 1.5f);
    assert_int_equal(gguf_get_f32(&f, "test.f64", &x, err, sizeof(err)), 0);
    assert_true(x == -2.25f);
    assert_int_equal(gguf_get_bool(&f, "test.bool_t", &bo, err, sizeof(err)), 0);
    assert_int_equal(bo, 1);
    assert_int_equal(gguf_get_bool(&f, "test.bool_f", &bo, err, sizeof(err)), 0);
    assert_int_equal(bo, 0);
    const char *s;
    size_t len;
    assert_int_equal(gguf_get_str(&f, "test.str", &s, &len, err, sizeof(err)), 0);
    assert_int_equal(len, strlen("héllo wörld"));
    assert_memory_equal(s, "héllo wörld", len);
    assert_int_equal(gguf_get_str(&f, "test.empty_str", &s, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 0);
    /* Wrong types and missing keys: one line naming the key. */
    assert_int_equal(gguf_get_str(&f, "test.u8", &s, &len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "key 'test.u8': is a u8, not a string"));
    assert_int_equal(gguf_get_f32(&f, "test.nope", &x, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "meta.gguf: key 'test.nope': missing"));
    assert_int_equal(gguf_get_u32(&f, "test.f32", &u32, err, sizeof(err)), -1);

    /* Numeric arrays, element by element and as raw data. */
    static const struct {
        const char *key;
        gguf_type type;
        int n;
        double v[3];
    } arrs[] = {
        {"test.arr_u8", GGUF_TYPE_UINT8, 3, {1, 2, 255}},
        {"test.arr_i8", GGUF_TYPE_INT8, 3, {-128, 0, 127}},
        {"test.arr_u16", GGUF_TYPE_UINT16, 2, {0, 65535}},
        {"test.arr_i16", GGUF_TYPE_INT16, 2, {-32768, 32767}},
        {"test.arr_u32", GGUF_TYPE_UINT32, 2, {7, 4294967295.0}},
        {"test.arr_i32", GGUF_TYPE_INT32, 2, {-5, 2147483647}},
        {"test.arr_u64", GGUF_TYPE_UINT64, 2, {1, 18446744073709551615.0}},
        {"test.arr_i64", GGUF_TYPE_INT64, 2, {-9223372036854775808.0, 9}},
        {"test.arr_f32", GGUF_TYPE_FLOAT32, 3, {0.5, -1.25, 3.0}},
        {"test.arr_f64", GGUF_TYPE_FLOAT64, 2, {1e-300, -0.125}},
        {"test.arr_bool", GGUF_TYPE_BOOL, 3, {1, 0, 1}},
        {"tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, 3, {0.0, -1.5, -2.5}},
        {"tokenizer.ggml.token_type", GGUF_TYPE_INT32, 3, {3, 1, 1}},
    };
    gguf_array a;
    for (size_t k = 0; k < sizeof(arrs) / sizeof(arrs[0]); k++) {
        assert_int_equal(gguf_get_arr(&f, arrs[k].key, &a, err, sizeof(err)), 0);
        assert_int_equal(a.type, arrs[k].type);
        for (int i = 0; i < arrs[k].n; i++) {
            double d;
            assert_int_equal(gguf_arr_f64(&a, (uint64_t)i, &d), 0);
            if (d != arrs[k].v[i])
                fail_msg("%s[%d] = %g, expected %g", arrs[k].key, i, d, arrs[k].v[i]);
        }
        assert_non_null(gguf_arr_data(&a));
        assert_null(gguf_arr_str(&a, 0, &len));
    }
    int64_t iv;
    assert_int_equal(gguf_get_arr(&f, "test.arr_i64", &a, err, sizeof(err)), 0);
    assert_int_equal(gguf_arr_i64(&a, 0, &iv), 0);
    assert_true(iv == INT64_MIN);
    assert_int_equal(gguf_arr_i64(&a, 2, &iv), -1); /* past the end */
    assert_int_equal(gguf_get_arr(&f, "test.arr_u64", &a, err, sizeof(err)), 0);
    assert_int_equal(gguf_arr_i64(&a, 1, &iv), -1); /* 2^64 - 1 does not fit */
    assert_int_equal(gguf_get_arr(&f, "tokenizer.ggml.scores", &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 5);
    float sc[5];
    memcpy(sc, gguf_arr_data(&a), sizeof(sc));
    assert_true(sc[4] == -4.75f);
    assert_int_equal(gguf_get_arr(&f, "test.f32", &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is a f32, not an array"));

    /* String arrays, in any order (O(1) per element). */
    static const char *tokens[] = {"<s>", "", "\xc4\xa0the", "日本", "a\nb"};
    assert_int_equal(gguf_get_arr(&f, "tokenizer.ggml.tokens", &a, err, sizeof(err)), 0);
    assert_int_equal(a.type, GGUF_TYPE_STRING);
    assert_int_equal(a.n, 5);
    for (int i = 4; i >= 0; i--) {
        s = gguf_arr_str(&a, (uint64_t)i, &len);
        assert_non_null(s);
        assert_int_equal(len, strlen(tokens[i]));
        assert_memory_equal(s, tokens[i], len);
    }
    assert_null(gguf_arr_str(&a, 5, &len));
    assert_null(gguf_arr_data(&a));
    assert_int_equal(gguf_arr_f64(&a, 0, &(double){0}), -1);
    assert_int_equal(gguf_get_arr(&f, "tokenizer.ggml.merges", &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 3);
    s = gguf_arr_str(&a, 2, &len);
    assert_int_equal(len, strlen("\xc4\xa0t he"));
    assert_memory_equal(s, "\xc4\xa0t he", len);
    /* Nested arrays are validated and their outer length given. */
    assert_int_equal(gguf_get_arr(&f, "test.nested", &a, err, sizeof(err)), 0);
    assert_int_equal(a.type, GGUF_TYPE_ARRAY);
    assert_int_equal(a.n, 2);
    assert_null(gguf_arr_data(&a));
    assert_int_equal(gguf_get_arr(&f, "test.nested_str", &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 2);
    /* Keys in file order. */
    assert_int_equal(gguf_kv_type(&f, 0), GGUF_TYPE_STRING);
    s = gguf_kv_key(&f, 0, &len);
    assert_int_equal(len, strlen("general.architecture"));
    assert_memory_equal(s, "general.architecture", len);
    assert_null(gguf_kv_key(&f, 33, &len));

    uint64_t ne[] = {3, 2};
    float *w = (float *)read_whole(&f, "w", GGML_TYPE_F32, 2, ne);
    for (int i = 0; i < 6; i++) assert_true(w[i] == v_ref((uint64_t)i));
    free(w);
    assert_null(gguf_find_tensor(&f, "x"));
    gguf_close(&f);
    gguf_close(&f);
}

/* ---- round trips through the writer -------------------------------------------------------- */

/* A fill function: byte k of the tensor is (k * 7 + 3) mod 251. */
static int fill_pattern(void *user, uint64_t begin, size_t n, void *out) {
    (void)user;
    for (size_t i = 0; i < n; i++) ((uint8_t *)out)[i] = (uint8_t)(((begin + i) * 7 + 3) % 251);
    return 0;
}

static int fill_fails(void *user, uint64_t begin, size_t n, void *out) {
    (void)user;
    (void)begin;
    (void)n;
    (void)out;
    return -1;
}

static void test_round_trip(void **state) {
    (void)state;
    char err[512];
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    /* Every scalar type. */
    uint8_t u8 = 250, bo = 1;
    int8_t i8 = -7;
    uint16_t u16 = 65000;
    int16_t i16 = -32000;
    int32_t i32 = -123456;
    uint64_t u64 = UINT64_MAX - 1;
    int64_t i64 = INT64_MIN + 1;
    double f64 = 0.1;
    assert_int_equal(gguf_writer_set(w, "s.u8", GGUF_TYPE_UINT8, &u8, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_set(w, "s.i8", GGUF_TYPE_INT8, &i8, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_set(w, "s.u16", GGUF_TYPE_UINT16, &u16, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_set(w, "s.i16", GGUF_TYPE_INT16, &i16, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_set_u32(w, "s.u32", 4294967295u, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_set(w, "s.i32", GGUF_TYPE_INT32, &i32, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_set_f32(w, "s.f32", -0.75f, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_set(w, "s.bool", GGUF_TYPE_BOOL, &bo, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_set_str(w, "s.str", "ab\0c", 4, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_set(w, "s.u64", GGUF_TYPE_UINT64, &u64, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_set(w, "s.i64", GGUF_TYPE_INT64, &i64, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_set(w, "s.f64", GGUF_TYPE_FLOAT64, &f64, err, sizeof(err)), 0);
    /* Arrays: numeric, empty, and 1000 strings of varying length. */
    int16_t ai16[] = {-1, 2, -3};
    assert_int_equal(gguf_writer_set_arr(w, "a.i16", GGUF_TYPE_INT16, ai16, 3, err, sizeof(err)),
                     0);
    assert_int_equal(
        gguf_writer_set_arr(w, "a.empty", GGUF_TYPE_FLOAT32, NULL, 0, err, sizeof(err)), 0);
    enum { NS = 1000 };
    char *strs[NS];
    for (int i = 0; i < NS; i++) {
        strs[i] = malloc(32);
        assert_non_null(strs[i]);
        snprintf(strs[i], 32, "%.*s%d", i % 7, "xxxxxxx", i);
    }
    assert_int_equal(
        gguf_writer_set_arr_str(w, "a.str", (const char *const *)strs, NULL, NS, err, sizeof(err)),
        0);
    /* Refusals leave the writer usable. */
    assert_int_equal(gguf_writer_set_u32(w, "s.u32", 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "key 's.u32' set twice"));
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 64, err, sizeof(err)), -1);
    uint8_t two = 2;
    assert_int_equal(gguf_writer_set(w, "s.bad", GGUF_TYPE_BOOL, &two, err, sizeof(err)), -1);
    assert_int_equal(gguf_writer_set(w, "s.bad", GGUF_TYPE_STRING, &two, err, sizeof(err)), -1);

    /* Tensors of every supported type with odd dims, one unsupported type, one from a fill
     * function, one empty. Byte patterns: the reader does not interpret the bytes. */
    static const struct {
        const char *name;
        int type;
        int n_dims;
        uint64_t ne[4];
    } ts[] = {
        {"t.f32", GGML_TYPE_F32, 3, {3, 5, 7}},      {"t.f16", GGML_TYPE_F16, 1, {13}},
        {"t.bf16", GGML_TYPE_BF16, 4, {1, 3, 1, 5}}, {"t.q8_0", GGML_TYPE_Q8_0, 2, {96, 3}},
        {"t.q4_0", GGML_TYPE_Q4_0, 2, {32, 7}},      {"t.q4_K", 12, 2, {256, 2}},
    };
    enum { NT = sizeof(ts) / sizeof(ts[0]) };
    uint8_t *data[NT];
    for (int i = 0; i < NT; i++) {
        size_t n = 1024;
        data[i] = malloc(n);
        assert_non_null(data[i]);
        for (size_t k = 0; k < n; k++) data[i][k] = (uint8_t)(k * 31 + (size_t)i);
        if (gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne, data[i], NULL,
                                   NULL, err, sizeof(err)) != 0)
            fail_msg("%s", err);
    }
    uint64_t ne_fill[] = {64, 9000}; /* 1.15 MB: two of the writer's 1 MiB fill chunks */
    assert_int_equal(gguf_writer_add_tensor(w, "t.fill", GGML_TYPE_F16, 2, ne_fill, NULL,
                                            fill_pattern, NULL, err, sizeof(err)),
                     0);
    uint64_t ne_empty[] = {0, 4};
    assert_int_equal(gguf_writer_add_tensor(w, "t.empty", GGML_TYPE_F32, 2, ne_empty, NULL, NULL,
                                            NULL, err, sizeof(err)),
                     0);
    /* Refused tensors. */
    uint64_t ne_bad[] = {33, 1};
    assert_int_equal(gguf_writer_add_tensor(w, "t.x", GGML_TYPE_Q8_0, 2, ne_bad, data[0], NULL,
                                            NULL, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "ne[0] is not a whole number"));
    assert_int_equal(gguf_writer_add_tensor(w, "t.f32", GGML_TYPE_F32, 1, ne_bad, data[0], NULL,
                                            NULL, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "added twice"));
    assert_int_equal(
        gguf_writer_add_tensor(w, "t.x", 99, 1, ne_bad, data[0], NULL, NULL, err, sizeof(err)), -1);
    assert_int_equal(gguf_writer_add_tensor(w, "t.x", GGML_TYPE_F32, 5, ne_bad, data[0], NULL, NULL,
                                            err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "n_dims 5 is outside 1..4"));
    assert_int_equal(gguf_writer_add_tensor(w,
                                            "a-name-of-sixty-five-bytes-xxxxxxxxxxxxxxxxxxxxxxxx"
                                            "xxxxxxxxxxxxxx",
                                            GGML_TYPE_F32, 1, ne_bad, data[0], NULL, NULL, err,
                                            sizeof(err)),
                     -1);
    if (gguf_writer_write(w, path, err, sizeof(err)) != 0) fail_msg("%s", err);

    gguf_file f;
    if (gguf_open(&f, path, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_int_equal(f.version, 3);
    assert_int_equal(f.alignment, 32);
    assert_int_equal(f.file_size % 32, 0);
    assert_int_equal(gguf_n_kv(&f), 15);
    uint32_t r32;
    uint64_t r64;
    int32_t ri32;
    float rf;
    int rb;
    assert_int_equal(gguf_get_u32(&f, "s.u8", &r32, err, sizeof(err)), 0);
    assert_int_equal(r32, 250);
    assert_int_equal(gguf_get_i32(&f, "s.i8", &ri32, err, sizeof(err)), 0);
    assert_int_equal(ri32, -7);
    assert_int_equal(gguf_get_u32(&f, "s.u16", &r32, err, sizeof(err)), 0);
    assert_int_equal(r32, 65000);
    assert_int_equal(gguf_get_i32(&f, "s.i16", &ri32, err, sizeof(err)), 0);
    assert_int_equal(ri32, -32000);
    assert_int_equal(gguf_get_u32(&f, "s.u32", &r32, err, sizeof(err)), 0);
    assert_int_equal(r32, 4294967295u);
    assert_int_equal(gguf_get_i32(&f, "s.i32", &ri32, err, sizeof(err)), 0);
    assert_int_equal(ri32, -123456);
    assert_int_equal(gguf_get_f32(&f, "s.f32", &rf, err, sizeof(err)), 0);
    assert_true(rf == -0.75f);
    assert_int_equal(gguf_get_bool(&f, "s.bool", &rb, err, sizeof(err)), 0);
    assert_int_equal(rb, 1);
    const char *s;
    size_t len;
    assert_int_equal(gguf_get_str(&f, "s.str", &s, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 4);
    assert_memory_equal(s, "ab\0c", 4);
    assert_int_equal(gguf_get_u64(&f, "s.u64", &r64, err, sizeof(err)), 0);
    assert_true(r64 == UINT64_MAX - 1);
    assert_int_equal(gguf_get_f32(&f, "s.f64", &rf, err, sizeof(err)), 0);
    assert_true(rf == 0.1f);
    gguf_array a;
    assert_int_equal(gguf_get_arr(&f, "s.i64", &a, err, sizeof(err)), -1);
    int64_t x;
    assert_int_equal(gguf_get_arr(&f, "a.i16", &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gguf_arr_i64(&a, (uint64_t)i, &x), 0);
        assert_int_equal(x, ai16[i]);
    }
    assert_int_equal(gguf_get_arr(&f, "a.empty", &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 0);
    assert_int_equal(a.type, GGUF_TYPE_FLOAT32);
    assert_int_equal(gguf_get_arr(&f, "a.str", &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, NS);
    for (int i = NS - 1; i >= 0; i--) {
        s = gguf_arr_str(&a, (uint64_t)i, &len);
        assert_int_equal(len, strlen(strs[i]));
        assert_memory_equal(s, strs[i], len);
    }
    /* The i64 scalar through the key list (no typed getter for i64 scalars beyond i32). */
    int64_t k = gguf_find_key(&f, "s.i64");
    assert_true(k >= 0);
    assert_int_equal(gguf_kv_type(&f, k), GGUF_TYPE_INT64);

    for (int i = 0; i < NT; i++) {
        const gguf_tensor *t = gguf_find_tensor(&f, ts[i].name);
        assert_non_null(t);
        assert_int_equal(t->type, ts[i].type);
        assert_int_equal(t->n_dims, ts[i].n_dims);
        for (int d = 0; d < ts[i].n_dims; d++) assert_int_equal(t->ne[d], ts[i].ne[d]);
        assert_int_equal(t->offset % 32, 0);
        uint8_t *back = malloc(t->n_bytes);
        assert_non_null(back);
        int rc = gguf_read_rows(&f, t, 0, t->n_rows, back, err, sizeof(err));
        if (ts[i].type == 12) { /* q4_K: opened and described, refused by name when read */
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err, "tensor 't.q4_K': type q4_K is not supported"));
            assert_int_equal(t->n_bytes, 2 * 144);
        } else {
            assert_int_equal(rc, 0);
            assert_memory_equal(back, data[i], t->n_bytes);
        }
        free(back);
    }
    const gguf_tensor *t = gguf_find_tensor(&f, "t.fill");
    assert_int_equal(t->n_bytes, 64 * 9000 * 2);
    uint8_t *back = malloc(t->n_bytes);
    assert_non_null(back);
    assert_int_equal(gguf_read_bytes(&f, t, 0, t->n_bytes, back, err, sizeof(err)), 0);
    for (size_t i = 0; i < t->n_bytes; i++) assert_int_equal(back[i], (i * 7 + 3) % 251);
    /* Row ranges: the last row, and one past the end refused. */
    assert_int_equal(gguf_read_rows(&f, t, 8999, 1, back, err, sizeof(err)), 0);
    assert_int_equal(back[0], (8999 * 128 * 7 + 3) % 251);
    assert_int_equal(gguf_read_rows(&f, t, 8999, 2, back, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "tensor 't.fill': rows [8999, +2) are outside its 9000 rows"));
    assert_int_equal(gguf_read_bytes(&f, t, t->n_bytes, 1, back, err, sizeof(err)), -1);
    assert_int_equal(gguf_read_bytes(&f, t, t->n_bytes, 0, back, err, sizeof(err)), 0);
    free(back);
    t = gguf_find_tensor(&f, "t.empty");
    assert_int_equal(t->n_bytes, 0);
    assert_int_equal(t->n_rows, 4);
    gguf_close(&f);

    /* A failing fill function fails the write and leaves the previous file in place. */
    uint64_t ne1[] = {4};
    assert_int_equal(gguf_writer_add_tensor(w, "t.fails", GGML_TYPE_F32, 1, ne1, NULL, fill_fails,
                                            NULL, err, sizeof(err)),
                     0);
    assert_int_equal(gguf_writer_write(w, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "tensor 't.fails': the fill function failed"));
    assert_int_equal(gguf_open(&f, path, err, sizeof(err)), 0);
    assert_null(gguf_find_tensor(&f, "t.fails"));
    gguf_close(&f);

    gguf_writer_free(w);
    for (int i = 0; i < NT; i++) free(data[i]);
    for (int i = 0; i < NS; i++) free(strs[i]);
}

/* ---- malformed files ------------------------------------------------------------------------ */

static void test_built_file_is_valid(void **state) {
    (void)state;
    spec s = spec_default();
    bytes b;
    size_t start = build(&s, &b);
    write_bytes(&b, b.n);
    gguf_file f;
    char err[512];
    if (gguf_open(&f, path, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_int_equal(f.data_start, start);
    assert_int_equal(f.n_tensors, 2);
    gguf_close(&f);
    /* Version 2 has the same layout for a little-endian file and is accepted. */
    s.version = 2;
    build(&s, &b);
    write_bytes(&b, b.n);
    assert_int_equal(gguf_open(&f, path, err, sizeof(err)), 0);
    gguf_close(&f);
    /* A file with only metadata may end before the (empty) data section. */
    s = spec_default();
    s.n_tensors = 0;
    s.n_tensors_field = 0;
    s.data_bytes = 0;
    build(&s, &b);
    write_bytes(&b, 4 + 4 + 8 + 8 + 8 + 12 + 4 + 8 + 1);
    assert_int_equal(gguf_open(&f, path, err, sizeof(err)), 0);
    gguf_close(&f);
}

static void test_refuses_bad_header(void **state) {
    (void)state;
    spec s = spec_default();
    s.magic = "GGUL";
    expect_refused(&s, "not a GGUF file: the magic is 'GGUL'");
    s = spec_default();
    s.version = 1;
    expect_refused(&s, "GGUF version 1 is not supported (linshard reads version 3, or 2)");
    s.version = 4;
    expect_refused(&s, "GGUF version 4 is not supported");
    s.version = 3u << 24;
    expect_refused(&s, "GGUF version 3 is a big-endian file");
    s = spec_default();
    s.n_kv_field = 1ull << 60;
    expect_refused(&s, "1152921504606846976 metadata entries cannot fit");
    s = spec_default();
    s.n_tensors_field = UINT64_MAX;
    expect_refused(&s, "18446744073709551615 tensors cannot fit");
    s = spec_default();
    s.dup_key = 1;
    s.n_kv_field = 2;
    expect_refused(&s, "key 'general.name' appears twice");
    s = spec_default();
    s.t[1].name = "a";
    expect_refused(&s, "tensor 'a' appears twice");
    s.t[0].name = s.t[1].name = "a\nb"; /* a name from the file cannot break the line */
    expect_refused(&s, "tensor 'a?b' appears twice");
    s = spec_default();
    s.t[0].name = "";
    expect_refused(&s, "tensor #0: the name is empty");
    s.t[0].name = "a-name-of-sixty-five-bytes-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    expect_refused(&s, "is 65 bytes, more than the 64 allowed");
    /* A 64-byte name is allowed. */
    s.t[0].name = "a-name-of-sixty-four-bytes-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    bytes b;
    build(&s, &b);
    write_bytes(&b, b.n);
    gguf_file f;
    char err[512];
    if (gguf_open(&f, path, err, sizeof(err)) != 0) fail_msg("%s", err);
    gguf_close(&f);
}

static void test_refuses_bad_alignment(void **state) {
    (void)state;
    spec s = spec_default();
    s.alignment_key = 1;
    s.n_kv_field = 2;
    s.alignment = 48;
    expect_refused(&s, "general.alignment 48 is not a power of two");
    s.alignment = 0;
    expect_refused(&s, "general.alignment 0 is not a power of two");
    s.alignment_key = 2;
    expect_refused(&s, "general.alignment is a string, not a u32");
    /* 64 is fine, and tensor offsets must then be multiples of 64. */
    s.alignment_key = 1;
    s.alignment = 64;
    s.t[1].offset = 64;
    s.data_bytes = 96;
    bytes b;
    build(&s, &b);
    write_bytes(&b, b.n);
    gguf_file f;
    char err[512];
    if (gguf_open(&f, path, err, sizeof(err)) != 0) fail_msg("%s", err);
    assert_int_equal(f.alignment, 64);
    gguf_close(&f);
    s.t[1].offset = 32;
    expect_refused(&s, "tensor 'b': data offset 32 is not a multiple of the alignment 64");
}

static void test_refuses_bad_tensor_info(void **state) {
    (void)state;
    spec s = spec_default();
    s.t[0].n_dims = 0;
    expect_refused(&s, "tensor 'a': n_dims is 0, not 1..4");
    s.t[0].n_dims = 5;
    s.t[0].ne[2] = s.t[0].ne[3] = s.t[0].ne[4] = 1;
    expect_refused(&s, "tensor 'a': n_dims is 5, not 1..4");
    s = spec_default();
    s.t[0].type = 99;
    expect_refused(&s, "tensor 'a': unknown ggml type id 99");
    s.t[0].type = 4;
    expect_refused(&s, "ggml type q4_2 (removed from ggml) (id 4) cannot be read");
    s = spec_default();
    s.t[0].offset = 4;
    expect_refused(&s, "tensor 'a': data offset 4 is not a multiple of the alignment 32");
    s = spec_default();
    s.t[1].offset = 64;
    expect_refused(&s,
                   "tensor 'b': data [64, +32) runs past the end of the data section (64 bytes");
    s.t[1].offset = UINT64_MAX - 31; /* offset + size wraps around */
    expect_refused(&s, "runs past the end of the data section");
    s = spec_default();
    s.t[1].offset = 0;
    expect_refused(&s, "overlaps tensor");
    s = spec_default();
    s.t[0].ne[0] = 1ull << 32;
    s.t[0].ne[1] = 1ull << 31;
    expect_refused(&s, "tensor 'a': ne [4294967296, 2147483648] of f32: the product of the "
                       "dimensions overflows");
    s.t[0].ne[1] = 1ull << 30; /* 2^62 elements fit, their 2^64 bytes do not */
    expect_refused(&s, "the tensor's byte count overflows");
    s.t[0].ne[0] = 1ull << 62;
    s.t[0].ne[1] = 1;
    expect_refused(&s, "the row's byte count overflows");
    s.t[0].ne[0] = UINT64_MAX;
    expect_refused(&s, "a dimension exceeds 2^63 - 1");
    s = spec_default();
    s.t[0].type = GGML_TYPE_Q8_0;
    s.t[0].ne[0] = 48;
    expect_refused(&s, "ne [48, 2] of q8_0: ne[0] is not a whole number of the type's blocks");
}

static void test_refuses_truncated_and_bad_values(void **state) {
    (void)state;
    /* Every prefix of a valid file shorter than its last tensor's end is refused (a prefix that
     * ends in trailing padding would still hold every byte of every tensor). */
    spec s = spec_default();
    bytes b;
    build(&s, &b);
    for (size_t n = 0; n < b.n; n++) {
        write_bytes(&b, n);
        gguf_file f;
        char err[512] = "";
        if (gguf_open(&f, path, err, sizeof(err)) == 0) fail_msg("a %zu-byte prefix opened", n);
        assert_true(err[0] != '\0');
        assert_null(strchr(err, '\n'));
        gguf_close(&f);
    }
    build(&s, &b);
    expect_refused_bytes(&b, 3, "truncated: the magic at byte 0 needs 4 bytes");
    expect_refused_bytes(&b, b.n - 1, "tensor 'b': data [32, +32) runs past the end");
    expect_refused_bytes(&b, 40, "2 tensors cannot fit in the 16 bytes left");
    s.n_tensors = 0;
    s.n_tensors_field = 0;
    build(&s, &b);
    expect_refused_bytes(&b, 37,
                         "key #0: truncated: the key (a string of 12 bytes) at byte 32 needs 12");

    /* A string claiming more bytes than the file has, and a bad bool / value type. */
    b.n = 0;
    b_put(&b, "GGUF", 4);
    b_u32(&b, 3);
    b_u64(&b, 0);
    b_u64(&b, 1);
    b_str(&b, "k");
    b_u32(&b, GGUF_TYPE_STRING);
    b_u64(&b, 1000);
    b_put(&b, "abc", 3);
    expect_refused_bytes(&b, b.n, "key 'k': truncated: a string value (a string of 1000 bytes)");
    b.n -= 3 + 8 + 4;
    b_u32(&b, GGUF_TYPE_BOOL);
    b_put(&b, "\x02", 1);
    expect_refused_bytes(&b, b.n, "key 'k': bool value 2 is neither 0 nor 1");
    b.n -= 5;
    b_u32(&b, 13);
    expect_refused_bytes(&b, b.n, "key 'k': value type 13 is not a GGUF value type");
    /* Arrays: a huge count, and arrays nested too deep. */
    b.n -= 4;
    b_u32(&b, GGUF_TYPE_ARRAY);
    b_u32(&b, GGUF_TYPE_UINT64);
    b_u64(&b, 1ull << 61);
    expect_refused_bytes(&b, b.n, "array of 2305843009213693952 u64 values needs at least 8 bytes");
    b.n -= 12;
    for (int d = 0; d < 9; d++) {
        b_u32(&b, GGUF_TYPE_ARRAY);
        b_u64(&b, 1);
    }
    b_u32(&b, GGUF_TYPE_UINT8);
    b_u64(&b, 0);
    expect_refused_bytes(&b, b.n, "key 'k': arrays nested more than 8 deep");
    /* An empty key, and a file that is not there. */
    b.n = 24;
    b_u64(&b, 0);
    b_u32(&b, GGUF_TYPE_UINT8);
    b_put(&b, "\x01", 1);
    expect_refused_bytes(&b, b.n, "key #0: the key is empty");
    gguf_file f;
    char err[512];
    assert_int_equal(gguf_open(&f, "/nonexistent/x.gguf", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/x.gguf: cannot open"));
    assert_int_equal(gguf_open(&f, tmpdir, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a regular file"));
    gguf_close(&f);
}

/* ---- ranks as threads ---------------------------------------------------------------------- */

/* P ranks, each opening the file itself and also reading through one shared gguf_file, each
 * reading only its balanced share of the rows of a Q8_0 tensor (TSan runs this). */
enum { RANKS = 3, QROWS = 10, QNE0 = 64 };
typedef struct {
    const gguf_file *shared;
    int rank;
    int ok;
} rank_arg;

static uint8_t qbyte(uint64_t k) {
    return (uint8_t)((k * 13 + 5) % 253);
}

static void *rank_main(void *p) {
    rank_arg *a = p;
    uint64_t r0 = (uint64_t)QROWS * (uint64_t)a->rank / RANKS;
    uint64_t r1 = (uint64_t)QROWS * (uint64_t)(a->rank + 1) / RANKS;
    gguf_file own;
    char err[512];
    if (gguf_open(&own, path, err, sizeof(err)) != 0) return NULL;
    const gguf_file *files[2] = {a->shared, &own};
    int ok = 1;
    for (int k = 0; k < 2; k++) {
        const gguf_tensor *t = gguf_find_tensor(files[k], "q");
        uint8_t buf[QROWS * (QNE0 / 32) * 34];
        if (!t || gguf_read_rows(files[k], t, r0, r1 - r0, buf, err, sizeof(err)) != 0) {
            ok = 0;
            break;
        }
        for (uint64_t i = 0; i < (r1 - r0) * t->row_bytes; i++)
            if (buf[i] != qbyte(r0 * t->row_bytes + i)) ok = 0;
    }
    gguf_close(&own);
    a->ok = ok;
    return NULL;
}

static void test_ranks_read_their_rows(void **state) {
    (void)state;
    char err[512];
    gguf_writer *w = gguf_writer_new();
    uint8_t data[QROWS * (QNE0 / 32) * 34];
    for (size_t k = 0; k < sizeof(data); k++) data[k] = qbyte(k);
    uint64_t ne[] = {QNE0, QROWS};
    assert_int_equal(
        gguf_writer_add_tensor(w, "q", GGML_TYPE_Q8_0, 2, ne, data, NULL, NULL, err, sizeof(err)),
        0);
    assert_int_equal(gguf_writer_write(w, path, err, sizeof(err)), 0);
    gguf_writer_free(w);
    gguf_file f;
    assert_int_equal(gguf_open(&f, path, err, sizeof(err)), 0);
    pthread_t th[RANKS];
    rank_arg args[RANKS];
    for (int r = 0; r < RANKS; r++) {
        args[r] = (rank_arg){&f, r, 0};
        assert_int_equal(pthread_create(&th[r], NULL, rank_main, &args[r]), 0);
    }
    for (int r = 0; r < RANKS; r++) {
        assert_int_equal(pthread_join(th[r], NULL), 0);
        assert_int_equal(args[r].ok, 1);
    }
    gguf_close(&f);
}

static void test_type_table(void **state) {
    (void)state;
    assert_string_equal(gguf_ggml_type_name(12), "q4_K");
    assert_string_equal(gguf_ggml_type_name(30), "bf16");
    assert_null(gguf_ggml_type_name(42));
    assert_null(gguf_ggml_type_name(-1));
    assert_int_equal(gguf_ggml_block_size(GGML_TYPE_Q8_0), KERNEL_QK);
    assert_int_equal(gguf_ggml_block_bytes(GGML_TYPE_Q8_0), 34);
    assert_int_equal(gguf_ggml_block_bytes(GGML_TYPE_Q4_0), 18);
    assert_int_equal(gguf_ggml_block_bytes(14), 210); /* q6_K */
    kernel_type kt;
    assert_int_equal(gguf_ggml_to_kernel(GGML_TYPE_BF16, &kt), 1);
    assert_int_equal(kt, KERNEL_BF16);
    assert_int_equal(gguf_ggml_to_kernel(GGML_TYPE_Q4_0, &kt), 1);
    assert_int_equal(kt, KERNEL_Q4_0);
    assert_int_equal(gguf_ggml_to_kernel(3, &kt), 0);
    assert_string_equal(gguf_type_name(GGUF_TYPE_FLOAT64), "f64");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_float_types),
        cmocka_unit_test(test_fixture_quantised_types),
        cmocka_unit_test(test_fixture_metadata),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_built_file_is_valid),
        cmocka_unit_test(test_refuses_bad_header),
        cmocka_unit_test(test_refuses_bad_alignment),
        cmocka_unit_test(test_refuses_bad_tensor_info),
        cmocka_unit_test(test_refuses_truncated_and_bad_values),
        cmocka_unit_test(test_ranks_read_their_rows),
        cmocka_unit_test(test_type_table),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
