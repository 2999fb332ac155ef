/* test_kernels.c — the kernel layer's weight types and typed matrix products (kernels.h) against
 * the independent references of kernels_reference.c (double precision), under every instruction
 * set this CPU runs (kernel_force_isa, the in-process form of LINSHARD_KERNELS).
 *
 * Tolerances. u = 2^-24 (F32's unit roundoff).
 * - F16/BF16 conversions, Q8_0/Q4_0 quantisation and dequantisation: exact (bit for bit).
 * - Quantisation error per value (a property of the formats, checked on the references' output):
 *   Q8_0 |x - d16 q| <= d/2 + 127 |d - d16| and Q4_0 |x - d16 (c - 8)| <= |d| + 8 |d - d16|, with
 *   d the F32 scale and d16 its F16 rounding (the quantiser divides by d, stores d16), plus a few
 *   ulps of x for the F32 product x * (1 / d).
 * - Products: the kernel's F32 result against the double-precision sum of the same products
 *   (the dequantised weights times the activation as the kernel saw it: quantised to Q8_0 on the
 *   dot-product path, F32 on the dequantised-tile path), so only F32 rounding remains. Any
 *   order of summing m terms in F32 is within (m - 1) u sum|terms| (plus O(u^2)); the F32/F16/BF16
 *   paths sum K products (an FMA or a product and an add each), the int8 path sums nb = K / 32
 *   block terms, each int32-exact and rounded twice by its two scales. The bound used is
 *   (m + 4) u sum|w_k x_k| + u |out before| (accumulating adds one rounding). */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../src/kernels/kernels_internal.h"
#include "kernels_reference.h"

static const double U = 1.0 / 16777216.0; /* 2^-24 */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* uniform in [-1, 1) */
static float rng_f(void) {
    return (float)((double)rng_u32() / 2147483648.0 - 1.0);
}

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- F16 and BF16 ------------------------------------------------------------------------------
 */

/* Every F16 pattern decodes to the reference's value; every non-NaN one encodes back to itself. */
static void test_f16_decode_all(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = kernel_f16_to_f32((uint16_t)h);
        double r = ref_f16_value((uint16_t)h);
        if (isnan(r)) {
            assert_true(isnan(f));
            assert_int_equal(signbit(f) != 0, (h & 0x8000) != 0);
            uint16_t back = kernel_f32_to_f16(f);
            assert_int_equal(back & 0x7C00, 0x7C00);
            assert_true((back & 0x3FF) != 0);
            assert_int_equal(back & 0x8000, h & 0x8000);
        } else {
            assert_true((double)f == r);
            assert_int_equal(signbit(f) != 0, (h & 0x8000) != 0);
            assert_int_equal(kernel_f32_to_f16(f), h);
        }
    }
}

/* Rounding F32 -> F16: for every pair of neighbouring F16 values (Inf included as the neighbour
 * of 65504), the midpoint and the F32 values just below and above it, both signs, against the
 * reference's search; then a million random F32 bit patterns. */
static void check_f16(float x) {
    if (isnan(x)) return;
    uint16_t got = kernel_f32_to_f16(x), want = ref_f16_bits(x);
    if (got != want) fail_msg("f32 %a -> f16 0x%04x, want 0x%04x", (double)x, got, want);
}

static void test_f16_rounding(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 0x7C00; h++) {
        double a = ref_f16_value((uint16_t)h);
        double b = h + 1 == 0x7C00 ? 65536.0 : ref_f16_value((uint16_t)(h + 1));
        float m = (float)((a + b) / 2); /* exact: 12 significant bits */
        assert_true((double)m == (a + b) / 2);
        float pts[5] = {(float)a, m, nextafterf(m, 0.0f), nextafterf(m, INFINITY), (float)b};
        for (int i = 0; i < 5; i++) {
            check_f16(pts[i]);
            check_f16(-pts[i]);
        }
    }
    check_f16(INFINITY);
    check_f16(-INFINITY);
    check_f16(FLT_MAX);
    check_f16(FLT_MIN);
    check_f16(bits_f(1)); /* the smallest F32 subnormal */
    for (int i = 0; i < 1000000; i++) check_f16(bits_f(rng_u32()));
}

static void test_bf16_decode_all(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = kernel_bf16_to_f32((uint16_t)h);
        double r = ref_bf16_value((uint16_t)h);
        if (isnan(r)) {
            assert_true(isnan(f));
            uint16_t back = kernel_f32_to_bf16(f);
            assert_int_equal(back & 0x7F80, 0x7F80);
            assert_true((back & 0x7F) != 0);
            assert_int_equal(back & 0x8000, h & 0x8000);
        } else {
            assert_true((double)f == r);
            assert_int_equal(kernel_f32_to_bf16(f), h);
        }
    }
    /* NaNs whose payload is only in the low 16 bits must stay NaN (not round to Inf) */
    uint16_t q = kernel_f32_to_bf16(bits_f(0x7F800001));
    assert_int_equal(q & 0x7F80, 0x7F80);
    assert_true((q & 0x7F) != 0);
    q = kernel_f32_to_bf16(bits_f(0xFF80FFFF));
    assert_int_equal(q & 0xFF80, 0xFF80);
    assert_true((q & 0x7F) != 0);
}

static void check_bf16(float x) {
    if (isnan(x)) return;
    uint16_t got = kernel_f32_to_bf16(x), want = ref_bf16_bits(x);
    if (got != want) fail_msg("f32 %a -> bf16 0x%04x, want 0x%04x", (double)x, got, want);
}

static void test_bf16_rounding(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 0x7F80; h++) {
        double a = ref_bf16_value((uint16_t)h);
        double b = h + 1 == 0x7F80 ? ldexp(1.0, 128) : ref_bf16_value((uint16_t)(h + 1));
        double md = (a + b) / 2;
        if (md > FLT_MAX) { /* the midpoint above the largest BF16 is not an F32: its neighbours */
            check_bf16(FLT_MAX);
            continue;
        }
        float m = (float)md;
        assert_true((double)m == md);
        float pts[4] = {(float)a, m, nextafterf(m, 0.0f), nextafterf(m, INFINITY)};
        for (int i = 0; i < 4; i++) {
            check_bf16(pts[i]);
            check_bf16(-pts[i]);
        }
    }
    for (int i = 0; i < 1000000; i++) check_bf16(bits_f(rng_u32()));
}

/* Row conversions agree with the scalar ones, and every ISA's F16 row conversion agrees bit for
 * bit with the portable one over all 65536 patterns (odd lengths: the vector tails). */
static void test_rows_and_isa_f16(void **state) {
    (void)state;
    static uint16_t h[65536 + 3];
    static float a[65536 + 3], b[65536 + 3];
    for (uint32_t i = 0; i < 65536 + 3; i++) h[i] = (uint16_t)(i * 40503u);
    kernel_type_info(KERNEL_F16)->to_f32(h, a, 65536 + 3);
    for (size_t i = 0; i < 65536 + 3; i++) {
        float s = kernel_f16_to_f32(h[i]);
        assert_memory_equal(&a[i], &s, sizeof s);
    }
    float src[37];
    uint16_t dst[37];
    for (int i = 0; i < 37; i++) src[i] = rng_f() * 1000.0f;
    kernel_type_info(KERNEL_F16)->from_f32(src, dst, 37);
    for (int i = 0; i < 37; i++) assert_int_equal(dst[i], kernel_f32_to_f16(src[i]));
    kernel_type_info(KERNEL_BF16)->from_f32(src, dst, 37);
    for (int i = 0; i < 37; i++) assert_int_equal(dst[i], kernel_f32_to_bf16(src[i]));
    float wide[37];
    kernel_type_info(KERNEL_BF16)->to_f32(dst, wide, 37);
    for (int i = 0; i < 37; i++) assert_true(wide[i] == kernel_bf16_to_f32(dst[i]));
    for (int level = 0; level <= (int)kernel_isa_best(); level++) {
        assert_int_equal(kernel_force_isa((kernel_isa_level)level), 0);
        for (size_t n = 65536 + 3; n >= 65536 - 13; n -= 7) {
            memset(b, 0xFF, sizeof b);
            kernel_active_table()->f16_to_f32(h, b, n);
            assert_memory_equal(a, b, n * sizeof(float));
            if (n < 65536 + 3) { /* nothing written past the end */
                uint32_t sentinel;
                memcpy(&sentinel, &b[n], sizeof sentinel);
                assert_int_equal(sentinel, 0xFFFFFFFFu);
            }
        }
    }
    kernel_force_isa(kernel_isa_best());
}

/* ---- traits -------------------------------------------------------------------------------------
 */

static void test_traits(void **state) {
    (void)state;
    const char *names[] = {"f32", "f16", "bf16", "q8_0", "q4_0"};
    const int blocks[] = {1, 1, 1, 32, 32};
    const size_t bytes[] = {4, 2, 2, 34, 18};
    for (int t = 0; t < KERNEL_TYPE_COUNT; t++) {
        const kernel_type_traits *tr = kernel_type_info((kernel_type)t);
        assert_non_null(tr);
        assert_string_equal(tr->name, names[t]);
        assert_int_equal(tr->block, blocks[t]);
        assert_int_equal(tr->block_bytes, bytes[t]);
        assert_int_equal(kernel_type_from_name(names[t]), t);
        assert_int_equal(kernel_row_bytes((kernel_type)t, 96), 96 / blocks[t] * bytes[t]);
    }
    assert_int_equal(kernel_type_from_name("Q8_0"), KERNEL_Q8_0);
    assert_int_equal(kernel_type_from_name("BF16"), KERNEL_BF16);
    assert_int_equal(kernel_type_from_name("q5_k"), -1);
    assert_int_equal(kernel_type_from_name(NULL), -1);
    assert_null(kernel_type_info(KERNEL_TYPE_COUNT));
    assert_null(kernel_type_info((kernel_type)-1));
    assert_int_equal(kernel_row_bytes(KERNEL_Q4_0, 33), 0);
    assert_int_equal(kernel_row_bytes(KERNEL_Q8_0, 0), 0);
    assert_int_equal(kernel_row_bytes(KERNEL_F16, 7), 14);
    const char *isa = kernel_isa();
    assert_true(strcmp(isa, "portable") == 0 || strcmp(isa, "avx2") == 0 ||
                strcmp(isa, "avx512") == 0 || strcmp(isa, "avx512-vnni") == 0);
    assert_int_equal(kernel_force_isa(KERNEL_ISA_COUNT), -1);
    print_message("kernel ISA on this CPU: %s\n", kernel_isa());
}

/* ---- Q8_0 and Q4_0
 * ------------------------------------------------------------------------------- */

enum { QN = 32 * 9 };

/* Block b of a test row: the cases the quantisers must get right. */
static void fill_block(float *x, int kind) {
    for (int j = 0; j < 32; j++) x[j] = rng_f();
    switch (kind % 9) {
    case 0:
        break; /* uniform [-1, 1) */
    case 1:
        memset(x, 0, 32 * sizeof *x);
        break; /* all zero */
    case 2:
        x[kind % 32] = 1e4f;
        break; /* one huge value */
    case 3:
        x[(kind * 7) % 32] = -3e4f;
        break; /* huge and negative */
    case 4:
        for (int j = 0; j < 32; j++) x[j] *= 1e-4f;
        break; /* F16-subnormal d */
    case 5:
        for (int j = 0; j < 32; j++) x[j] *= 1e-9f;
        break; /* d rounds to 0 */
    case 6:
        for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);
        break; /* ties: x / d = k.5 */
    case 7:
        for (int j = 0; j < 32; j++) x[j] = x[0];
        break; /* constant */
    default:
        for (int j = 0; j < 32; j++) x[j] = rng_f() * 60000.0f;
        break;
    }
}

static void check_q_type(kernel_type t) {
    const kernel_type_traits *tr = kernel_type_info(t);
    static float x[QN], y[QN];
    static uint8_t mine[QN / 32 * 34], ref[QN / 32 * 34];
    static double yref[QN];
    for (int rep = 0; rep < 200; rep++) {
        for (int b = 0; b < QN / 32; b++) fill_block(x + 32 * b, rep * 9 + b);
        memset(mine, 0xA5, sizeof mine);
        tr->from_f32(x, mine, QN);
        if (t == KERNEL_Q8_0) {
            ref_quantize_q8_0(x, ref, QN);
            ref_dequantize_q8_0(ref, yref, QN);
        } else {
            ref_quantize_q4_0(x, ref, QN);
            ref_dequantize_q4_0(ref, yref, QN);
        }
        assert_memory_equal(mine, ref, kernel_row_bytes(t, QN)); /* bit-identical blocks */
        tr->to_f32(mine, y, QN);
        for (int i = 0; i < QN; i++) {
            assert_true(isfinite(y[i]));
            assert_true((double)y[i] == yref[i]); /* exact: d16 * small integer */
        }
        /* the quantisation error bound per value */
        for (int b = 0; b < QN / 32; b++) {
            const float *xb = x + 32 * b;
            float amax = 0.0f, max = 0.0f;
            for (int j = 0; j < 32; j++)
                if (fabsf(xb[j]) > amax) {
                    amax = fabsf(xb[j]);
                    max = xb[j];
                }
            double d = t == KERNEL_Q8_0 ? (double)(amax / 127.0f) : fabs((double)(max / -8.0f));
            double d16 = fabs(ref_f16_value(ref_f16_bits((float)d)));
            double bound = t == KERNEL_Q8_0 ? d / 2 + 127 * fabs(d - d16) : d + 8 * fabs(d - d16);
            bound += 4 * U * amax;
            for (int j = 0; j < 32; j++) {
                double err = fabs((double)xb[j] - yref[32 * b + j]);
                if (err > bound)
                    fail_msg("%s block %d value %d: |%g - %g| = %g > %g", tr->name, b, j,
                             (double)xb[j], yref[32 * b + j], err, bound);
            }
        }
    }
}

static void test_q8_0_blocks(void **state) {
    (void)state;
    check_q_type(KERNEL_Q8_0);
}

static void test_q4_0_blocks(void **state) {
    (void)state;
    check_q_type(KERNEL_Q4_0);
}

/* GGUF's layout, by hand: one Q8_0 block and one Q4_0 block whose bytes are known. */
static void test_block_layout(void **state) {
    (void)state;
    float x[32];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 8); /* max |x| = 23 at j = 31 */
    kernel_block_q8_0 q8;
    kernel_type_info(KERNEL_Q8_0)->from_f32(x, &q8, 32);
    assert_int_equal(q8.d, kernel_f32_to_f16(23.0f / 127));
    assert_int_equal(q8.qs[31], 127);
    assert_int_equal(q8.qs[8], 0);
    assert_int_equal(q8.qs[0], (int)roundf(-8 * (127 / 23.0f)));
    kernel_block_q4_0 q4;
    kernel_type_info(KERNEL_Q4_0)->from_f32(x, &q4, 32);
    /* d = 23 / -8: x = 23 -> code 0 (high nibble of byte 15); x = 0 (j = 8) -> code 8 */
    assert_int_equal(q4.d, kernel_f32_to_f16(23.0f / -8));
    assert_int_equal(q4.qs[15] >> 4, 0);
    assert_int_equal(q4.qs[8] & 15, 8);
}

/* ---- matrix products
 * ----------------------------------------------------------------------------- */

typedef struct {
    int K, N;
} shape;

/* Nonzero: make_weight gives the 32-value blocks of a row magnitudes from 2^-3 to 2^3 (block b:
 * 2^((3b mod 7) - 3)), so that a kernel pairing a block with another block's scale is caught. */
static int spread_blocks;

static float block_magnitude(size_t k, int mul) {
    return ldexpf(1.0f, (int)(k / 32 * (size_t)mul % 7) - 3);
}

/* The weight [N][K] (or [K][N] for IN_OUT) of type t from random F32 values, and its values as
 * the kernel sees them (dequantised), in double, as wd[n][k]. */
static void *make_weight(kernel_type t, kernel_layout layout, int K, int N, double *wd) {
    float *w32 = malloc((size_t)K * N * sizeof *w32 + 1);
    for (size_t i = 0; i < (size_t)K * N; i++)
        w32[i] = rng_f() * (spread_blocks ? block_magnitude(i % (size_t)K, 3) : 1.0f);
    size_t row = kernel_row_bytes(t, (size_t)K);
    uint8_t *data = malloc(row * N + 1);
    float *back = malloc((size_t)K * sizeof *back + 1);
    if (layout == KERNEL_IN_OUT) { /* F32 only: w32 read as [K][N] */
        memcpy(data, w32, (size_t)K * N * sizeof *w32);
        for (int k = 0; k < K; k++)
            for (int n = 0; n < N; n++) wd[(size_t)n * K + k] = w32[(size_t)k * N + n];
    } else {
        for (int n = 0; n < N; n++) {
            kernel_type_info(t)->from_f32(w32 + (size_t)n * K, data + row * n, (size_t)K);
            kernel_type_info(t)->to_f32(data + row * n, back, (size_t)K);
            for (int k = 0; k < K; k++) wd[(size_t)n * K + k] = back[k];
        }
    }
    free(back);
    free(w32);
    return data;
}

/* out[T][N] against the double reference; `xq` says whether the kernel saw the activation
 * quantised to Q8_0 (the int8 dot-product path). */
static void check_product(const char *what, const float *out, const float *before, const float *in,
                          const double *wd, int T, int K, int N, int xq, int terms) {
    double *xd = malloc((size_t)(K ? K : 1) * sizeof *xd);
    void *q = malloc(kernel_row_bytes(KERNEL_Q8_0, (size_t)K) + 1);
    for (int t = 0; t < T; t++) {
        const float *x = in + (size_t)t * K;
        if (xq) {
            ref_quantize_q8_0(x, q, (size_t)K);
            ref_dequantize_q8_0(q, xd, (size_t)K);
        } else {
            for (int k = 0; k < K; k++) xd[k] = x[k];
        }
        for (int n = 0; n < N; n++) {
            double s = 0, sa = 0;
            for (int k = 0; k < K; k++) {
                double p = wd[(size_t)n * K + k] * xd[k];
                s += p;
                sa += fabs(p);
            }
            double b0 = before ? before[(size_t)t * N + n] : 0.0;
            double want = b0 + s;
            double tol = (terms + 4) * U * sa + U * fabs(b0) + 1e-30;
            double got = out[(size_t)t * N + n];
            if (!(fabs(got - want) <= tol))
                fail_msg("%s T=%d K=%d N=%d: out[%d][%d] = %.9g, want %.9g (tol %.3g)", what, T, K,
                         N, t, n, got, want, tol);
        }
    }
    free(q);
    free(xd);
}

typedef struct {
    kernel_type type;
    kernel_layout layout;
} case_kind;

static const case_kind kinds[] = {{KERNEL_F32, KERNEL_IN_OUT},  {KERNEL_F32, KERNEL_OUT_IN},
                                  {KERNEL_F16, KERNEL_OUT_IN},  {KERNEL_BF16, KERNEL_OUT_IN},
                                  {KERNEL_Q8_0, KERNEL_OUT_IN}, {KERNEL_Q4_0, KERNEL_OUT_IN}};

static void run_products(int level) {
    /* K: 32 k with k odd for the block types; not a multiple of 8 or 16 where the type allows */
    static const shape fshapes[] = {{37, 5}, {101, 33}, {16 * 13 + 3, 67}, {1, 3}};
    static const shape qshapes[] = {{32, 5}, {96, 33}, {224, 67}, {160, 1}};
    static const int Ts[] = {1, 2, 7, 65};
    /* gemm_min_rows: the default, always tiles, never tiles */
    static const int paths[] = {0, 1, INT_MAX};
    char what[128];
    for (size_t c = 0; c < sizeof kinds / sizeof *kinds; c++) {
        kernel_type t = kinds[c].type;
        int q = t == KERNEL_Q8_0 || t == KERNEL_Q4_0;
        for (int s = 0; s < 4; s++) {
            int K = q ? qshapes[s].K : fshapes[s].K, N = q ? qshapes[s].N : fshapes[s].N;
            double *wd = malloc((size_t)K * N * sizeof *wd);
            void *data = make_weight(t, kinds[c].layout, K, N, wd);
            kernel_weight w = {t, kinds[c].layout, K, N, data};
            for (int ti = 0; ti < 4; ti++) {
                int T = Ts[ti];
                float *in = malloc((size_t)T * K * sizeof *in);
                float *out = malloc((size_t)T * N * sizeof *out);
                float *before = malloc((size_t)T * N * sizeof *before);
                for (size_t i = 0; i < (size_t)T * K; i++) in[i] = rng_f();
                for (size_t i = 0; i < (size_t)T * N; i++) before[i] = rng_f();
                for (int p = 0; p < 3; p++) {
                    kernel_set_gemm_min_rows(paths[p]);
                    int min_rows = kernel_gemm_min_rows();
                    int tiles = t != KERNEL_F32 && T >= min_rows;
                    int xq = 0; /* F32 activations on every path (matmul.c) */
                    (void)q;
                    int terms = xq ? K / 32 : K;
                    for (int acc = 0; acc < 2; acc++) {
                        for (size_t i = 0; i < (size_t)T * N; i++)
                            out[i] = acc ? before[i] : NAN; /* a stale NaN must not leak */
                        kernel_matmul(out, in, &w, T, acc);
                        snprintf(what, sizeof what, "%s %s %s %s acc=%d path=%d",
                                 kernel_isa_level_name((kernel_isa_level)level),
                                 kernel_type_info(t)->name,
                                 kinds[c].layout == KERNEL_IN_OUT ? "IN_OUT" : "OUT_IN",
                                 tiles ? "tiles" : "dots", acc, p);
                        check_product(what, out, acc ? before : NULL, in, wd, T, K, N, xq, terms);
                    }
                }
                free(before);
                free(out);
                free(in);
            }
            free(data);
            free(wd);
        }
    }
    kernel_set_gemm_min_rows(0);
}

static void test_products_every_isa(void **state) {
    (void)state;
    for (int level = 0; level <= (int)kernel_isa_best(); level++) {
        assert_int_equal(kernel_force_isa((kernel_isa_level)level), 0);
        print_message("products under %s\n", kernel_active_table()->name);
        run_products(level);
    }
    kernel_force_isa(kernel_isa_best());
}

/* Weights of many rows: several row tiles on both paths (dot products: 32 KB of weights per
 * step; dequantised tiles: R rows x Kc columns, K in chunks of at most 512, here K = 1184 in
 * chunks 416, 416, 352 (the last shorter) and R = 624 rows, N = 2 R + 37: the last row tile
 * partial), at T = 7 on the dot products and T = 17, 19, 20 (the default crossover), 21 on the
 * tiles. */
static void test_products_many_tiles(void **state) {
    (void)state;
    enum { K = 32 * 37, N = 2 * 624 + 37 };
    static const kernel_type types[] = {KERNEL_F16, KERNEL_BF16, KERNEL_Q8_0, KERNEL_Q4_0};
    static const int tile_Ts[] = {17, 19, 20, 21};
    double *wd = malloc((size_t)K * N * sizeof *wd);
    float *in = malloc((size_t)21 * K * sizeof *in);
    float *out = malloc((size_t)21 * N * sizeof *out);
    for (int i = 0; i < 21 * K; i++) in[i] = rng_f();
    for (int ti = 0; ti < 4; ti++) {
        kernel_type t = types[ti];
        int q = t == KERNEL_Q8_0 || t == KERNEL_Q4_0;
        void *data = make_weight(t, KERNEL_OUT_IN, K, N, wd);
        kernel_weight w = {t, KERNEL_OUT_IN, K, N, data};
        for (int level = 0; level <= (int)kernel_isa_best(); level++) {
            assert_int_equal(kernel_force_isa((kernel_isa_level)level), 0);
            kernel_set_gemm_min_rows(INT_MAX); /* dot products, T = 7 */
            kernel_matmul(out, in, &w, 7, 0);
            (void)q;
            check_product("many rows, dots", out, NULL, in, wd, 7, K, N, 0, K);
            for (int i = 0; i < 4; i++) { /* tiles */
                int T = tile_Ts[i];
                kernel_set_gemm_min_rows(T < 20 ? 1 : 0);
                kernel_matmul(out, in, &w, T, 0);
                check_product("many rows, tiles", out, NULL, in, wd, T, K, N, 0, K);
            }
        }
        free(data);
    }
    kernel_set_gemm_min_rows(0);
    kernel_force_isa(kernel_isa_best());
    free(out);
    free(in);
    free(wd);
}

/* The int8 dot products take four blocks per step, then a pair, then an odd block: every count
 * of blocks from 1 to 13 (K = 32 .. 416; 0-3 steps of four and each remainder), T = 1 and 3, on
 * the dot-product path under every ISA, with int8 activations (kernel_set_int8_activations) and
 * with the default F32 ones. Blocks of weights and activations have magnitudes from
 * 2^-3 to 2^3 in different patterns, so each block's scale must meet that block's sum. */
static void test_int8_dots_block_counts(void **state) {
    (void)state;
    enum { N = 5 };
    spread_blocks = 1;
    kernel_set_gemm_min_rows(INT_MAX);
    for (int mode = 0; mode < 4; mode++) {
        kernel_type t = mode & 1 ? KERNEL_Q4_0 : KERNEL_Q8_0;
        int int8 = mode >> 1;
        kernel_set_int8_activations(int8);
        for (int nb = 1; nb <= 13; nb++) {
            int K = 32 * nb;
            double *wd = malloc((size_t)K * N * sizeof *wd);
            void *data = make_weight(t, KERNEL_OUT_IN, K, N, wd);
            kernel_weight w = {t, KERNEL_OUT_IN, K, N, data};
            float in[3 * 416], out[3 * N];
            for (int i = 0; i < 3 * K; i++) in[i] = rng_f() * block_magnitude((size_t)(i % K), 5);
            for (int level = 0; level <= (int)kernel_isa_best(); level++) {
                assert_int_equal(kernel_force_isa((kernel_isa_level)level), 0);
                char what[96];
                for (int T = 1; T <= 3; T += 2) {
                    snprintf(what, sizeof what, "%s %s blocks=%d %s",
                             kernel_isa_level_name((kernel_isa_level)level),
                             kernel_type_info(t)->name, nb, int8 ? "int8" : "f32");
                    kernel_matmul(out, in, &w, T, 0);
                    check_product(what, out, NULL, in, wd, T, K, N, int8, int8 ? nb : K);
                }
            }
            free(data);
            free(wd);
        }
    }
    spread_blocks = 0;
    kernel_set_int8_activations(0);
    kernel_set_gemm_min_rows(0);
    kernel_force_isa(kernel_isa_best());
}

/* Why the dot products take F32 activations: a rank's activation differs from P = 1's in the
 * last bits (row-parallel sums added in another order), so the product must move by F32
 * rounding when x moves a little, on every path and ISA. With activations quantised to Q8_0 an
 * element near a rounding boundary jumps a whole step (1/127 of its block's largest value): here
 * each block's largest value is 1 and element 5 moves by 2e-6 across the boundary 10.5 / 127
 * (a jump of ~2e-2 in the outputs). Bound: sum |w dx| + 64 u sum |w x| per output. */
static void test_products_continuous_in_x(void **state) {
    (void)state;
    enum { K = 32 * 24, N = 256 };
    static double wd[(size_t)K * N];
    static float x[K], x2[K], y[N], y2[N];
    for (int i = 0; i < K; i++) {
        x[i] = x2[i] = i % 32 == 0 ? 1.0f : 0.9f * rng_f();
        if (i % 32 == 5) {
            x[i] = 10.5f / 127 - 1e-6f;
            x2[i] = 10.5f / 127 + 1e-6f;
        }
    }
    for (int ty = 0; ty < 2; ty++) {
        kernel_type t = ty ? KERNEL_Q4_0 : KERNEL_Q8_0;
        void *data = make_weight(t, KERNEL_OUT_IN, K, N, wd);
        kernel_weight w = {t, KERNEL_OUT_IN, K, N, data};
        for (int level = 0; level <= (int)kernel_isa_best(); level++) {
            assert_int_equal(kernel_force_isa((kernel_isa_level)level), 0);
            for (int p = 0; p < 2; p++) {
                kernel_set_gemm_min_rows(p ? 1 : INT_MAX); /* tiles, dots */
                kernel_matmul(y, x, &w, 1, 0);
                kernel_matmul(y2, x2, &w, 1, 0);
                for (int n = 0; n < N; n++) {
                    double sa = 0, move = 0;
                    for (int k = 0; k < K; k++) {
                        sa += fabs(wd[(size_t)n * K + k] * x[k]);
                        move += fabs(wd[(size_t)n * K + k] * ((double)x2[k] - x[k]));
                    }
                    if (!(fabs((double)y[n] - y2[n]) <= move + 64 * U * sa))
                        fail_msg("%s %s %s: out[%d] moved %.3g when x moved by 2e-6 (bound "
                                 "%.3g)",
                                 kernel_isa_level_name((kernel_isa_level)level),
                                 kernel_type_info(t)->name, p ? "tiles" : "dots", n,
                                 fabs((double)y[n] - y2[n]), move + 64 * U * sa);
                }
            }
        }
        free(data);
    }
    kernel_set_gemm_min_rows(0);
    kernel_force_isa(kernel_isa_best());
}

/* Ranks are threads calling at once: each thread's scratch is its own, so four threads running
 * products of different sizes (quantised activations and dequantised tiles alike) get exactly
 * what one thread alone gets. On two busy cores the threads seldom overlap enough for a shared
 * buffer to change a result; under TSan (label "threads") a shared scratch is reported as a
 * race in q8_0_from_f32 (seen, with thread_scratch made a plain static). */
typedef struct {
    const kernel_weight *w;
    const float *in;
    float *out;
    const float *alone;
    int T;
    int bad;
} job;

static pthread_barrier_t start;

/* Many calls, each checked against the answer alone: overlapping calls of other threads that
 * shared a buffer would change some of them. */
static void *run_job(void *p) {
    job *j = p;
    pthread_barrier_wait(&start);
    for (int rep = 0; rep < 300 && !j->bad; rep++) {
        kernel_matmul(j->out, j->in, j->w, j->T, 0);
        if (memcmp(j->out, j->alone, (size_t)j->T * j->w->N * sizeof(float)) != 0) j->bad = 1;
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    enum { K = 32 * 7, N = 41, THREADS = 4 };
    static const int Ts[THREADS] = {1, 3, 5, 33}; /* dot products and tiles */
    double *wd = malloc((size_t)K * N * sizeof *wd);
    kernel_set_threads(1);
    for (int ty = 0; ty < 2; ty++) {
        kernel_type t = ty ? KERNEL_Q4_0 : KERNEL_F16;
        void *data = make_weight(t, KERNEL_OUT_IN, K, N, wd);
        kernel_weight w = {t, KERNEL_OUT_IN, K, N, data};
        float *in[THREADS], *out[THREADS], *alone[THREADS];
        pthread_t th[THREADS];
        job jobs[THREADS];
        for (int i = 0; i < THREADS; i++) {
            in[i] = malloc((size_t)Ts[i] * K * sizeof(float));
            out[i] = malloc((size_t)Ts[i] * N * sizeof(float));
            alone[i] = malloc((size_t)Ts[i] * N * sizeof(float));
            for (int k = 0; k < Ts[i] * K; k++) in[i][k] = rng_f();
            kernel_matmul(alone[i], in[i], &w, Ts[i], 0);
            jobs[i] = (job){&w, in[i], out[i], alone[i], Ts[i], 0};
        }
        pthread_barrier_init(&start, NULL, THREADS);
        for (int i = 0; i < THREADS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
        for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
        pthread_barrier_destroy(&start);
        for (int i = 0; i < THREADS; i++) {
            assert_int_equal(jobs[i].bad, 0);
            free(in[i]);
            free(out[i]);
            free(alone[i]);
        }
        free(data);
    }
    free(wd);
}

/* K = 0: zeros, or out unchanged when accumulating. */
static void test_empty_k(void **state) {
    (void)state;
    float out[6] = {1, 2, 3, 4, 5, 6};
    float in[1] = {0};
    kernel_weight w = {KERNEL_Q8_0, KERNEL_OUT_IN, 0, 3, in};
    kernel_matmul(out, in, &w, 2, 1);
    for (int i = 0; i < 6; i++) assert_true(out[i] == (float)(i + 1));
    kernel_matmul(out, in, &w, 2, 0);
    for (int i = 0; i < 6; i++) assert_true(out[i] == 0.0f);
}

/* End to end, the quantisation error: the Q8_0 / Q4_0 product of a weight against the exact
 * product of the unquantised F32 weight and activation stays within what the per-value bounds
 * allow (sum_k |dw_k| |x_k| + |w^_k| |dx_k|), plus F32 rounding. */
static void test_quantisation_error(void **state) {
    (void)state;
    enum { K = 32 * 24, N = 17 };
    static float w32[N * K], x[K], back[K];
    static uint8_t data[N * K / 32 * 34], xq[K / 32 * 34];
    static double xd[K];
    for (int i = 0; i < N * K; i++) w32[i] = rng_f();
    for (int i = 0; i < K; i++) x[i] = rng_f();
    ref_quantize_q8_0(x, xq, K);
    ref_dequantize_q8_0(xq, xd, K);
    for (int ty = 0; ty < 2; ty++) {
        kernel_type t = ty ? KERNEL_Q4_0 : KERNEL_Q8_0;
        size_t row = kernel_row_bytes(t, K);
        for (int n = 0; n < N; n++) kernel_type_info(t)->from_f32(w32 + n * K, data + row * n, K);
        float out[N];
        kernel_weight w = {t, KERNEL_OUT_IN, K, N, data};
        kernel_matmul(out, x, &w, 1, 0);
        for (int n = 0; n < N; n++) {
            kernel_type_info(t)->to_f32(data + row * n, back, K);
            double exact = 0, bound = 0, sa = 0;
            for (int k = 0; k < K; k++) {
                exact += (double)w32[n * K + k] * x[k];
                bound += fabs((double)w32[n * K + k] - back[k]) * fabs(x[k]) +
                         fabs((double)back[k]) * fabs((double)x[k] - xd[k]);
                sa += fabs((double)back[k] * xd[k]);
            }
            /* the a priori bound: per value d/2 (Q8_0) or d (Q4_0), d <= max|block| / 127 or / 8 */
            assert_true(fabs(out[n] - exact) <= bound + (K / 32 + 4) * U * sa);
            double apriori = 0;
            for (int b = 0; b < K / 32; b++) {
                double wmax = 0, xmax = 0;
                for (int j = 0; j < 32; j++) {
                    wmax = fmax(wmax, fabs(w32[n * K + 32 * b + j]));
                    xmax = fmax(xmax, fabs(x[32 * b + j]));
                }
                double ew = ty ? wmax / 8 * 1.01 : wmax / 127 / 2 * 1.01 + wmax / 127 * 127 / 2048;
                double ex = xmax / 127 / 2 * 1.01 + xmax / 127 * 127 / 2048;
                for (int j = 0; j < 32; j++) apriori += ew * fabs(x[32 * b + j]) + (wmax + ew) * ex;
            }
            assert_true(bound <= apriori);
        }
    }
}

int main(void) {
    /* one BLAS thread, as every rank sets (kernels.h): OpenBLAS's own worker threads are not
     * TSan-instrumented and would be reported */
    kernel_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traits),
        cmocka_unit_test(test_f16_decode_all),
        cmocka_unit_test(test_products_continuous_in_x),
        cmocka_unit_test(test_f16_rounding),
        cmocka_unit_test(test_bf16_decode_all),
        cmocka_unit_test(test_bf16_rounding),
        cmocka_unit_test(test_rows_and_isa_f16),
        cmocka_unit_test(test_q8_0_blocks),
        cmocka_unit_test(test_q4_0_blocks),
        cmocka_unit_test(test_block_layout),
        cmocka_unit_test(test_empty_k),
        cmocka_unit_test(test_products_every_isa),
        cmocka_unit_test(test_products_many_tiles),
        cmocka_unit_test(test_int8_dots_block_counts),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_quantisation_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
