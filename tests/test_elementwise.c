/* test_elementwise.c — the elementwise and normalisation kernels (kernels.h's last section)
 * against double-precision references, under every instruction set this CPU runs
 * (kernel_force_isa), or only the one LINSHARD_KERNELS names when it is set (CTest runs this
 * program once per level that way too, as test_elementwise_<level>).
 *
 * Sizes: row lengths and n of 1, below, at and past the vector widths (8, 16), a GPT-2 width
 * with a tail (773) and a long row (4096); T > 1. Inputs of the model's scale (|x| <= 8).
 *
 * Tolerances, u = 2^-24 (each kernel's comment in kernels.h states the same bound):
 * - layernorm:  |y - ref| <= 8u (|w| (|xhat| + |mean| rstd) + |b|): float rounds x - mean
 *   (mean held in float: |mean| u), the product by rstd, by w, the add of b.
 * - rmsnorm:    |y - ref| <= 4u |ref| (two float products, rstd rounded once).
 * - gelu tanh:  |y - ref| <= (3 |2z| + 8) u |ref|, 2z = 2 sqrt(2/pi) (v + 0.044715 v^3): exp
 *   magnifies the float rounding of its argument (|2z| = 49 at |v| = 8: 9e-6 relative there;
 *   8u + 3u |2z| < 1.2e-6 for |v| < 3).
 * - gelu erf:   |y - ref| <= 4u |ref| + u |v|: 1 + erff(v / sqrt 2) cancels for negative v
 *   (absolute error u, so the tiny outputs below v = -4 are not relative-accurate: as ever).
 * - swiglu:     |y - ref| <= (2 |g| + 8) u |ref| (exp's argument -g is exact; its error
 *   2e-7 and the division, product by up).
 * - softmax:    |p - ref| <= 16u ref + 8u / len (exp's argument s - max rounds by |s - max| u,
 *   the float sum of len terms).
 * - rope:       |y - ref| <= 2u (|a c| + |b s|).
 * - backward:   gelu' within 64u |dy| (1 + |v|) (tanh form, v <= 8), 8u (erf form); layernorm
 *   dx within 1e-6 of the largest |dx| of the row; the softmax backward within 8u len
 *   sum |p d|; colsum exact (in order, float).
 * Bits: each kernel's row or element gives the same bits wherever it lies (offset, T, n, the
 * decoding step's T = 1 against a prefill row, a shard of the features against the whole). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "../src/kernels/kernels_internal.h"

static const double U = 1.0 / 16777216.0; /* 2^-24 */
static const int SIZES[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 773, 4096};
#define NSIZES ((int)(sizeof SIZES / sizeof SIZES[0]))

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static double rng_u(void) { /* uniform in [0, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static float *fill(size_t n, double lo, double hi) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rng_u());
    return x;
}

static float *copy_of(const float *x, size_t n) {
    float *y = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(y);
    memcpy(y, x, n * sizeof(float));
    return y;
}

/* ---- the levels to run ---------------------------------------------------------------------- */

static int levels[KERNEL_ISA_COUNT], n_levels;

/* Every level the CPU runs, or, with LINSHARD_KERNELS set, the one isa.c chose from it (checked
 * against the name asked for). Called once, before any kernel_force_isa. */
static void pick_levels(void) {
    const char *want = getenv("LINSHARD_KERNELS");
    if (want && *want) {
        const char *name = kernel_active_elementwise()->name;
        int best = (int)kernel_isa_best(), asked = -1;
        for (int l = 0; l < KERNEL_ISA_COUNT; l++)
            if (strcasecmp(want, kernel_isa_level_name((kernel_isa_level)l)) == 0) asked = l;
        int expect = asked < 0 || asked > best ? best : asked;
        if (expect == KERNEL_ISA_AVX512_VNNI) expect = KERNEL_ISA_AVX512; /* same elementwise */
        if (strcmp(name, kernel_isa_level_name((kernel_isa_level)expect)) != 0) {
            fprintf(stderr, "LINSHARD_KERNELS=%s chose the %s elementwise kernels, not %s\n", want,
                    name, kernel_isa_level_name((kernel_isa_level)expect));
            exit(1);
        }
        levels[n_levels++] = expect;
        return;
    }
    for (int l = 0; l <= (int)kernel_isa_best() && l <= KERNEL_ISA_AVX512; l++)
        levels[n_levels++] = l;
}

static void use_level(int l) {
    assert_int_equal(kernel_force_isa((kernel_isa_level)l), 0);
    assert_string_equal(kernel_active_elementwise()->name,
                        kernel_isa_level_name((kernel_isa_level)l));
}

#define FOR_LEVELS(l)                                                                              \
    for (int li_ = 0, l; li_ < n_levels && ((l = levels[li_]), use_level(l), 1); li_++)

/* The largest err / bound each check has seen, for the record (printed at the end). */
static const char *worst_name[16];
static double worst_ratio[16];

static void note_ratio(const char *what, double r) {
    int i = 0;
    while (i < 15 && worst_name[i] && strcmp(worst_name[i], what) != 0) i++;
    worst_name[i] = what;
    if (r > worst_ratio[i]) worst_ratio[i] = r;
}

static void check_close(double got, double want, double bound, const char *what, int level, int a,
                        int b) {
    double err = fabs(got - want);
    if (bound > 0) note_ratio(what, err / bound);
    if (!(err <= bound)) /* also NaN */
        fail_msg("%s (%s, sizes %d, %d): got %.9g, want %.9g, error %.3g > bound %.3g", what,
                 kernel_isa_level_name((kernel_isa_level)level), a, b, got, want, err, bound);
}

/* ---- normalisation ------------------------------------------------------------------------- */

static void test_layernorm(void **state) {
    (void)state;
    const int T = 3;
    FOR_LEVELS(l) {
        for (int si = 0; si < NSIZES; si++) {
            int E = SIZES[si];
            size_t n = (size_t)T * (size_t)E;
            /* an offset (mean 1.5) so that x - mean matters; row 2 nearly constant */
            float *x = fill(n, -2.0, 5.0), *w = fill((size_t)E, -2.0, 2.0),
                  *b = fill((size_t)E, -1.0, 1.0), *y = malloc(n * sizeof(float));
            for (int i = 0; i < E && T > 2; i++) x[2 * E + i] = 3.0f + 1e-3f * x[2 * E + i];
            kernel_layernorm(y, x, w, b, T, E, 1e-5f);
            for (int t = 0; t < T; t++) {
                const float *xr = x + (size_t)t * E;
                double mean = 0, var = 0;
                for (int i = 0; i < E; i++) mean += xr[i];
                mean /= E;
                for (int i = 0; i < E; i++) var += (xr[i] - mean) * (xr[i] - mean);
                var /= E;
                double rstd = 1.0 / sqrt(var + 1e-5);
                for (int i = 0; i < E; i++) {
                    double xh = (xr[i] - mean) * rstd, ref = xh * w[i] + b[i];
                    double bound =
                        8 * U * (fabs(w[i]) * (fabs(xh) + fabs(mean) * rstd) + fabs(b[i]));
                    check_close(y[(size_t)t * E + i], ref, bound, "layernorm", l, E, t);
                }
            }
            /* in place: the same bits; one row alone (T = 1): the same bits */
            float *z = copy_of(x, n);
            kernel_layernorm(z, z, w, b, T, E, 1e-5f);
            assert_memory_equal(z, y, n * sizeof(float));
            kernel_layernorm(z, x + E, w, b, 1, E, 1e-5f);
            assert_memory_equal(z, y + E, (size_t)E * sizeof(float));
            free(x), free(w), free(b), free(y), free(z);
        }
    }
}

static void test_rmsnorm(void **state) {
    (void)state;
    const int T = 3;
    FOR_LEVELS(l) {
        for (int si = 0; si < NSIZES; si++) {
            int E = SIZES[si];
            size_t n = (size_t)T * (size_t)E;
            float *x = fill(n, -8.0, 8.0), *w = fill((size_t)E, -2.0, 2.0),
                  *y = malloc(n * sizeof(float));
            kernel_rmsnorm(y, x, w, T, E, 1e-6f);
            for (int t = 0; t < T; t++) {
                const float *xr = x + (size_t)t * E;
                double ss = 0;
                for (int i = 0; i < E; i++) ss += (double)xr[i] * xr[i];
                double r = 1.0 / sqrt(ss / E + 1e-6);
                for (int i = 0; i < E; i++) {
                    double ref = xr[i] * r * w[i];
                    check_close(y[(size_t)t * E + i], ref, 4 * U * fabs(ref) + 1e-30, "rmsnorm", l,
                                E, t);
                }
            }
            float *z = copy_of(x, n);
            kernel_rmsnorm(z, z, w, T, E, 1e-6f); /* in place, as the q/k norm runs */
            assert_memory_equal(z, y, n * sizeof(float));
            kernel_rmsnorm(z, x + 2 * (size_t)E, w, 1, E, 1e-6f);
            assert_memory_equal(z, y + 2 * (size_t)E, (size_t)E * sizeof(float));
            free(x), free(w), free(y), free(z);
        }
    }
}

/* ---- activations ---------------------------------------------------------------------------- */

static double gelu_ref(double v, kernel_gelu_kind kind) {
    if (kind == KERNEL_GELU_ERF) return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    /* 0.5 v (1 + tanh z) as v / (1 + exp(-2z)): the same function, without 1 + tanh z
     * cancelling for negative v */
    double z = sqrt(2.0 / 3.14159265358979323846) * (v + 0.044715 * v * v * v);
    return v / (1.0 + exp(-2.0 * z));
}

static void test_gelu(void **state) {
    (void)state;
    FOR_LEVELS(l) {
        for (int kind = 0; kind < 2; kind++) {
            for (int si = 0; si < NSIZES; si++) {
                size_t n = (size_t)SIZES[si] * 3; /* T = 3 rows of a shard: any n */
                float *x = fill(n + 1, -8.0, 8.0);
                x[0] = 0.0f;
                if (n > 2) x[1] = -0.0f, x[2] = 1e-30f;
                float *y = copy_of(x, n + 1);
                kernel_gelu(y, n, (kernel_gelu_kind)kind);
                assert_memory_equal(&y[n], &x[n], sizeof(float)); /* nothing past n */
                for (size_t i = 0; i < n; i++) {
                    double ref = gelu_ref(x[i], (kernel_gelu_kind)kind);
                    /* tanh form: exp magnifies the float rounding of its argument 2z */
                    double v = x[i], z2 = 1.5957691216057308 * fabs(v + 0.044715 * v * v * v);
                    double bound = kind == KERNEL_GELU_TANH ? (3 * z2 + 8) * U * fabs(ref) + 1e-30
                                                            : 4 * U * fabs(ref) + U * fabs(v);
                    check_close(y[i], ref, bound, kind ? "gelu erf" : "gelu tanh", l, (int)n,
                                (int)i);
                }
                /* the same element at another offset (another shard's split): the same bits */
                float *z = copy_of(x + 1, n);
                kernel_gelu(z, n, (kernel_gelu_kind)kind);
                float *y1 = copy_of(x, n + 1);
                kernel_gelu(y1, n + 1, (kernel_gelu_kind)kind);
                assert_memory_equal(z, y1 + 1, n * sizeof(float));
                for (size_t i = 0; i < n; i++) { /* and alone (n = 1): the same bits */
                    float one = x[i];
                    kernel_gelu(&one, 1, (kernel_gelu_kind)kind);
                    assert_memory_equal(&one, &y[i], sizeof(float));
                }
                free(x), free(y), free(z), free(y1);
            }
        }
    }
}

static void test_gelu_special(void **state) {
    (void)state;
    FOR_LEVELS(l) {
        float x[5] = {NAN, -1000.0f, 1000.0f, -INFINITY, INFINITY};
        kernel_gelu(x, 5, KERNEL_GELU_TANH);
        assert_true(isnan(x[0]));
        assert_true(x[1] <= 0.0f && x[1] > -1e-30f); /* tiny: exp clamped, never Inf / NaN */
        assert_true(x[2] == 1000.0f);
        (void)l;
    }
}

static void test_swiglu(void **state) {
    (void)state;
    const int T = 3;
    FOR_LEVELS(l) {
        for (int si = 0; si < NSIZES; si++) {
            int n = SIZES[si];
            size_t all = (size_t)T * 2 * (size_t)n;
            float *x = fill(all, -8.0, 8.0), *y = malloc((size_t)T * n * sizeof(float));
            kernel_swiglu(y, x, T, n);
            for (int t = 0; t < T; t++)
                for (int j = 0; j < n; j++) {
                    double g = x[(size_t)t * 2 * n + j], u = x[(size_t)t * 2 * n + n + j];
                    double ref = g / (1.0 + exp(-g)) * u;
                    check_close(y[(size_t)t * n + j], ref,
                                (2 * fabs(g) + 8) * U * fabs(ref) + 1e-30, "swiglu", l, n, t);
                }
            /* in place (as mlp.c calls it): the same bits */
            float *z = copy_of(x, all);
            kernel_swiglu(z, z, T, n);
            assert_memory_equal(z, y, (size_t)T * n * sizeof(float));
            /* a shard (P = 2: the first half of gate and of up): the same bits as the whole */
            int h = n / 2;
            if (h > 0) {
                float *xs = malloc((size_t)T * 2 * h * sizeof(float)),
                      *ys = malloc((size_t)T * h * sizeof(float));
                for (int t = 0; t < T; t++) {
                    memcpy(xs + (size_t)t * 2 * h, x + (size_t)t * 2 * n,
                           (size_t)h * sizeof(float));
                    memcpy(xs + (size_t)t * 2 * h + h, x + (size_t)t * 2 * n + n,
                           (size_t)h * sizeof(float));
                }
                kernel_swiglu(ys, xs, T, h);
                for (int t = 0; t < T; t++)
                    assert_memory_equal(ys + (size_t)t * h, y + (size_t)t * n,
                                        (size_t)h * sizeof(float));
                free(xs), free(ys);
            }
            free(x), free(y), free(z);
        }
    }
}

/* ---- the causal softmax -----------------------------------------------------------------------
 */

static void test_softmax_causal(void **state) {
    (void)state;
    const int T = 3;
    FOR_LEVELS(l) {
        for (int si = 0; si < NSIZES; si++) {
            for (int pos0 = 0; pos0 <= 5; pos0 += 5) {
                int n =
                    SIZES[si] + pos0 + T - 1; /* the last row is SIZES[si] + pos0 + T - 1 long */
                if (SIZES[si] < 2) n = pos0 + T;
                size_t all = (size_t)T * n;
                float *s = fill(all, -12.0, 4.0), *p = copy_of(s, all);
                kernel_softmax_causal(p, T, n, pos0);
                for (int t = 0; t < T; t++) {
                    const float *sr = s + (size_t)t * n;
                    int len = pos0 + t + 1;
                    double mx = sr[0], sum = 0;
                    for (int j = 1; j < len; j++) mx = sr[j] > mx ? sr[j] : mx;
                    for (int j = 0; j < len; j++) sum += exp((double)sr[j] - mx);
                    for (int j = 0; j < n; j++) {
                        double ref = j < len ? exp((double)sr[j] - mx) / sum : 0.0;
                        check_close(p[(size_t)t * n + j], ref, 16 * U * ref + 8 * U / len,
                                    "softmax", l, n, t);
                    }
                    /* the decoding step's call (T = 1) on this row alone: the same bits */
                    float *row = copy_of(sr, (size_t)len);
                    kernel_softmax_causal(row, 1, len, len - 1);
                    assert_memory_equal(row, p + (size_t)t * n, (size_t)len * sizeof(float));
                    free(row);
                }
                free(s), free(p);
            }
        }
    }
}

/* ---- rope ----------------------------------------------------------------------------------- */

static void test_rope(void **state) {
    (void)state;
    FOR_LEVELS(l) {
        for (int si = 0; si < NSIZES; si++) {
            int D = 2 * SIZES[si], h = SIZES[si];
            float *x = fill((size_t)D, -4.0, 4.0), *cs = malloc((size_t)D * sizeof(float));
            for (int i = 0; i < h; i++) {
                double a = 0.37 * (i + 1) * 11.0;
                cs[i] = (float)cos(a), cs[h + i] = (float)sin(a);
            }
            float *y = copy_of(x, (size_t)D);
            kernel_rope(y, cs, D);
            for (int i = 0; i < h; i++) {
                double a = x[i], b = x[h + i], c = cs[i], s = cs[h + i];
                check_close(y[i], a * c - b * s, 2 * U * (fabs(a * c) + fabs(b * s)) + 1e-30,
                            "rope", l, D, i);
                check_close(y[h + i], b * c + a * s, 2 * U * (fabs(b * c) + fabs(a * s)) + 1e-30,
                            "rope", l, D, i);
            }
            free(x), free(cs), free(y);
        }
    }
}

/* ---- backward ------------------------------------------------------------------------------- */

static double gelu_grad_ref(double v, kernel_gelu_kind kind) {
    if (kind == KERNEL_GELU_ERF)
        return 0.5 * (1.0 + erf(v / sqrt(2.0))) +
               v * exp(-0.5 * v * v) / sqrt(2.0 * 3.14159265358979323846);
    double c = sqrt(2.0 / 3.14159265358979323846), z = c * (v + 0.044715 * v * v * v), th = tanh(z);
    return 0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * c * (1.0 + 3.0 * 0.044715 * v * v);
}

static void test_gelu_backward(void **state) {
    (void)state;
    FOR_LEVELS(l) {
        for (int kind = 0; kind < 2; kind++) {
            for (int si = 0; si < NSIZES; si++) {
                size_t n = (size_t)SIZES[si] * 2;
                float *x = fill(n, -8.0, 8.0), *dy = fill(n, -1.0, 1.0),
                      *dx = malloc(n * sizeof(float));
                kernel_gelu_backward(dx, x, dy, n, (kernel_gelu_kind)kind);
                for (size_t i = 0; i < n; i++) {
                    double ref = gelu_grad_ref(x[i], (kernel_gelu_kind)kind) * dy[i];
                    double bound =
                        (kind == KERNEL_GELU_TANH ? 64 * (1 + fabs(x[i])) : 8) * U * fabs(dy[i]) +
                        1e-30;
                    check_close(dx[i], ref, bound, "gelu backward", l, (int)n, (int)i);
                }
                float *d2 = copy_of(dy, n); /* dx may alias dy */
                kernel_gelu_backward(d2, x, d2, n, (kernel_gelu_kind)kind);
                assert_memory_equal(d2, dx, n * sizeof(float));
                free(x), free(dy), free(dx), free(d2);
            }
        }
    }
}

static void test_layernorm_backward(void **state) {
    (void)state;
    const int T = 3;
    FOR_LEVELS(l) {
        for (int si = 0; si < NSIZES; si++) {
            int E = SIZES[si];
            size_t n = (size_t)T * E;
            float *x = fill(n, -2.0, 5.0), *w = fill((size_t)E, -2.0, 2.0),
                  *dy = fill(n, -1.0, 1.0);
            float *dx = malloc(n * sizeof(float)), *dw = calloc((size_t)E, sizeof(float)),
                  *db = calloc((size_t)E, sizeof(float));
            kernel_layernorm_backward(dx, dw, db, x, w, dy, T, E, 1e-5f);
            double *rdw = calloc((size_t)E, sizeof(double)),
                   *rdb = calloc((size_t)E, sizeof(double));
            for (int t = 0; t < T; t++) {
                const float *xr = x + (size_t)t * E, *g = dy + (size_t)t * E;
                double mean = 0, var = 0, m1 = 0, m2 = 0, big = 0;
                for (int i = 0; i < E; i++) mean += xr[i];
                mean /= E;
                for (int i = 0; i < E; i++) var += (xr[i] - mean) * (xr[i] - mean);
                var /= E;
                double rstd = 1.0 / sqrt(var + 1e-5);
                for (int i = 0; i < E; i++) {
                    double xh = (xr[i] - mean) * rstd;
                    m1 += (double)g[i] * w[i];
                    m2 += (double)g[i] * w[i] * xh;
                    rdw[i] += g[i] * xh;
                    rdb[i] += g[i];
                }
                m1 /= E, m2 /= E;
                double *ref = malloc((size_t)E * sizeof(double));
                for (int i = 0; i < E; i++) {
                    double xh = (xr[i] - mean) * rstd;
                    ref[i] = rstd * ((double)g[i] * w[i] - m1 - xh * m2);
                    big = fmax(big, fabs(ref[i]));
                }
                for (int i = 0; i < E; i++)
                    check_close(dx[(size_t)t * E + i], ref[i], 1e-6 * big + 1e-30, "layernorm dx",
                                l, E, t);
                free(ref);
            }
            for (int i = 0; i < E; i++) {
                check_close(dw[i], rdw[i], 8 * U * T * (fabs(rdw[i]) + 3.0) + 1e-30, "layernorm dw",
                            l, E, i);
                check_close(db[i], rdb[i], 4 * U * T * 3.0, "layernorm db", l, E, i);
            }
            free(x), free(w), free(dy), free(dx), free(dw), free(db), free(rdw), free(rdb);
        }
    }
}

static void test_softmax_backward(void **state) {
    (void)state;
    const int T = 4;
    FOR_LEVELS(l) {
        for (int si = 0; si < NSIZES; si++) {
            int n = SIZES[si] + T, pos0 = SIZES[si];
            size_t all = (size_t)T * n;
            float *p = fill(all, -3.0, 3.0), *d = fill(all, -1.0, 1.0);
            kernel_softmax_causal(p, T, n, pos0);
            float *g = copy_of(d, all);
            kernel_softmax_causal_backward(g, p, T, n, pos0);
            for (int t = 0; t < T; t++) {
                const float *pr = p + (size_t)t * n, *dr = d + (size_t)t * n;
                int len = pos0 + t + 1;
                double dot = 0, mag = 0;
                for (int j = 0; j < len; j++)
                    dot += (double)pr[j] * dr[j], mag += fabs((double)pr[j] * dr[j]);
                for (int j = 0; j < n; j++) {
                    double ref = j < len ? pr[j] * (dr[j] - dot) : 0.0;
                    double bound =
                        j < len ? 2 * U * fabs(ref) + 8 * U * len * mag * pr[j] + 1e-30 : 0.0;
                    check_close(g[(size_t)t * n + j], ref, bound, "softmax backward", l, n, t);
                }
            }
            free(p), free(d), free(g);
        }
    }
}

static void test_colsum(void **state) {
    (void)state;
    FOR_LEVELS(l) {
        for (int si = 0; si < NSIZES; si++) {
            int N = SIZES[si], T = 3;
            float *d = fill((size_t)T * N, -1.0, 1.0), *db = fill((size_t)N, -1.0, 1.0);
            float *want = copy_of(db, (size_t)N);
            for (int t = 0; t < T; t++)
                for (int j = 0; j < N; j++) want[j] += d[(size_t)t * N + j]; /* rows in order */
            kernel_colsum_acc(db, d, T, N);
            assert_memory_equal(db, want, (size_t)N * sizeof(float));
            free(d), free(db), free(want);
            (void)l;
        }
    }
}

/* The empty shapes touch nothing. */
static void test_empty(void **state) {
    (void)state;
    FOR_LEVELS(l) {
        float x = 7.0f;
        kernel_gelu(&x, 0, KERNEL_GELU_TANH);
        kernel_layernorm(&x, &x, &x, &x, 0, 4, 1e-5f);
        kernel_rmsnorm(&x, &x, &x, 4, 0, 1e-5f);
        kernel_swiglu(&x, &x, 0, 4);
        kernel_softmax_causal(&x, 0, 4, 0);
        kernel_colsum_acc(&x, &x, 0, 1);
        assert_true(x == 7.0f);
        (void)l;
    }
}

int main(void) {
    pick_levels();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_gelu_special),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_softmax_causal),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_gelu_backward),
        cmocka_unit_test(test_layernorm_backward),
        cmocka_unit_test(test_softmax_backward),
        cmocka_unit_test(test_colsum),
        cmocka_unit_test(test_empty),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fprintf(stderr, "levels:");
    for (int i = 0; i < n_levels; i++)
        fprintf(stderr, " %s", kernel_isa_level_name((kernel_isa_level)levels[i]));
    fprintf(stderr, "\nworst error / bound:");
    for (int i = 0; i < 16 && worst_name[i]; i++)
        fprintf(stderr, " %s %.3f;", worst_name[i], worst_ratio[i]);
    fprintf(stderr, "\n");
    return failed;
}
