/* elementwise_avx512.c — the hot elementwise and normalisation kernels for AVX-512 F/BW/VL/DQ:
 * LayerNorm, RMSNorm, GELU (tanh form), SwiGLU and the causal softmax, 16 floats (8 doubles) a
 * vector. Compiled with the avx512 level's -m flags (this file only; CMakeLists.txt) and called
 * only when cpuid reports them (isa.c).
 *
 * Same contracts as elementwise_portable.c. What differs, within kernels.h's accuracies: FMA in
 * the exp polynomial and the affine steps, and the order of the sums (lanes, then a fixed
 * horizontal reduction). Determinism: a row's or element's bits depend on its values and the
 * row length only — the last partial vector of a row (or of x[n]) goes through the same code
 * under a mask, and no loop peels for alignment. */
#include <immintrin.h>
#include <math.h>

#include "kernels_internal.h"

static inline __mmask16 tail16(size_t r) { /* the first r < 16 lanes */
    return (__mmask16)((1u << r) - 1u);
}

/* fast_exp.h's Cephes expf, 16 lanes, with FMA: the same clamp to [-87, 88] (never Inf or 0
 * for finite x), the same polynomial, NaN returned as NaN. Relative error <= 2e-7. */
static inline __m512 exp16(__m512 x_in) {
    __mmask16 nan = _mm512_cmp_ps_mask(x_in, x_in, _CMP_UNORD_Q);
    /* max/min return their second operand for a NaN: a NaN lane is computed as -87 */
    __m512 x = _mm512_min_ps(_mm512_max_ps(x_in, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(
        _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mask_blend_ps(nan, _mm512_mul_ps(p, _mm512_castsi512_ps(e)), x_in);
}

/* ---- normalisation: statistics in double, 8 lanes ------------------------------------------ */

static inline __m512d load8d(const float *x) {
    return _mm512_cvtps_pd(_mm256_loadu_ps(x));
}

static inline __m512d load8d_tail(const float *x, int r) { /* r < 8 values, zeros after */
    return _mm512_cvtps_pd(_mm256_maskz_loadu_ps((__mmask8)((1u << r) - 1u), x));
}

/* sum x[0..E) in double: two accumulators (even and odd 8-blocks), the tail into the second,
 * then a fixed reduction — the order depends on E only. */
static double sum_d(const float *x, int E) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int i = 0;
    for (; i + 16 <= E; i += 16) {
        a0 = _mm512_add_pd(a0, load8d(x + i));
        a1 = _mm512_add_pd(a1, load8d(x + i + 8));
    }
    if (i + 8 <= E) a0 = _mm512_add_pd(a0, load8d(x + i)), i += 8;
    if (i < E) a1 = _mm512_add_pd(a1, load8d_tail(x + i, E - i));
    return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}

/* sum (x - c)^2 over x[0..E) in double, the same order as sum_d. */
static double sum_sq_d(const float *x, int E, double c) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), cv = _mm512_set1_pd(c);
    int i = 0;
    for (; i + 16 <= E; i += 16) {
        __m512d d0 = _mm512_sub_pd(load8d(x + i), cv), d1 = _mm512_sub_pd(load8d(x + i + 8), cv);
        a0 = _mm512_fmadd_pd(d0, d0, a0);
        a1 = _mm512_fmadd_pd(d1, d1, a1);
    }
    if (i + 8 <= E) {
        __m512d d = _mm512_sub_pd(load8d(x + i), cv);
        a0 = _mm512_fmadd_pd(d, d, a0);
        i += 8;
    }
    if (i < E) {
        __mmask8 m = (__mmask8)((1u << (E - i)) - 1u);
        __m512d d = _mm512_maskz_sub_pd(m, load8d_tail(x + i, E - i), cv); /* 0 past the end */
        a1 = _mm512_fmadd_pd(d, d, a1);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}

static void layernorm(float *out, const float *in, const float *w, const float *b, int T, int E,
                      float eps) {
    for (int t = 0; t < T; t++) {
        const float *x = in + (size_t)t * (size_t)E;
        float *y = out + (size_t)t * (size_t)E;
        double mean = sum_d(x, E) / E, var = sum_sq_d(x, E, mean) / E;
        __m512 rstd = _mm512_set1_ps((float)(1.0 / sqrt(var + eps)));
        __m512 m = _mm512_set1_ps((float)mean);
        for (int i = 0; i < E; i += 16) {
            __mmask16 k = E - i >= 16 ? (__mmask16)0xFFFF : tail16((size_t)(E - i));
            __m512 xn = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m), rstd);
            __m512 r = _mm512_fmadd_ps(xn, _mm512_maskz_loadu_ps(k, w + i),
                                       _mm512_maskz_loadu_ps(k, b + i));
            _mm512_mask_storeu_ps(y + i, k, r);
        }
    }
}

static void rmsnorm(float *out, const float *in, const float *w, int T, int E, float eps) {
    for (int t = 0; t < T; t++) {
        const float *x = in + (size_t)t * (size_t)E;
        float *y = out + (size_t)t * (size_t)E;
        __m512 r = _mm512_set1_ps((float)(1.0 / sqrt(sum_sq_d(x, E, 0.0) / E + eps)));
        for (int i = 0; i < E; i += 16) {
            __mmask16 k = E - i >= 16 ? (__mmask16)0xFFFF : tail16((size_t)(E - i));
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), r);
            _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, w + i)));
        }
    }
}

/* ---- activations --------------------------------------------------------------------------- */

/* v / (1 + exp(-2 sqrt(2/pi) (v + 0.044715 v^3))) = 0.5 v (1 + tanh(...)). */
static inline __m512 gelu_tanh16(__m512 v) {
    __m512 inner =
        _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), v), _mm512_mul_ps(v, v), v);
    __m512 e = exp16(_mm512_mul_ps(inner, _mm512_set1_ps(-2.0f * 0.7978845608028654f)));
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

static void gelu(float *x, size_t n, kernel_gelu_kind kind) {
    if (kind != KERNEL_GELU_TANH) { /* erf: libm's erff, elementwise (not vectorised) */
        kernel_portable_gelu(x, n, kind);
        return;
    }
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, gelu_tanh16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 k = tail16(n - i);
        _mm512_mask_storeu_ps(x + i, k, gelu_tanh16(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

static void swiglu(float *out, const float *x, int T, int n) {
    for (int t = 0; t < T; t++) {
        const float *gate = x + (size_t)t * 2 * (size_t)n, *up = gate + n;
        float *y = out + (size_t)t * (size_t)n; /* stores land behind (or on) what was loaded */
        for (int j = 0; j < n; j += 16) {
            __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : tail16((size_t)(n - j));
            __m512 g = _mm512_maskz_loadu_ps(k, gate + j), u = _mm512_maskz_loadu_ps(k, up + j);
            __m512 s =
                _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f),
                                               exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
            _mm512_mask_storeu_ps(y + j, k, _mm512_mul_ps(s, u));
        }
    }
}

/* ---- the causal softmax -------------------------------------------------------------------- */

static void softmax_causal(float *s, int T, int n, int pos0) {
    for (int t = 0; t < T; t++) {
        float *row = s + (size_t)t * (size_t)n;
        int len = pos0 + t + 1, j;
        __m512 vmax = _mm512_set1_ps(-INFINITY);
        for (j = 0; j < len; j += 16) {
            __mmask16 k = len - j >= 16 ? (__mmask16)0xFFFF : tail16((size_t)(len - j));
            vmax = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, row + j), vmax);
        }
        __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax)), acc = _mm512_setzero_ps();
        for (j = 0; j < len; j += 16) {
            __mmask16 k = len - j >= 16 ? (__mmask16)0xFFFF : tail16((size_t)(len - j));
            __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + j), mx));
            acc = _mm512_mask_add_ps(acc, k, acc, e);
            _mm512_mask_storeu_ps(row + j, k, e);
        }
        __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(acc));
        for (j = 0; j < len; j += 16) {
            __mmask16 k = len - j >= 16 ? (__mmask16)0xFFFF : tail16((size_t)(len - j));
            _mm512_mask_storeu_ps(row + j, k,
                                  _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + j), inv));
        }
        for (j = len; j < n; j++) row[j] = 0.0f;
    }
}

const kernel_elementwise_table kernel_elementwise_avx512 = {
    "avx512",
    layernorm,
    rmsnorm,
    gelu,
    swiglu,
    softmax_causal,
    kernel_portable_rope,
    kernel_portable_gelu_backward,
    kernel_portable_layernorm_backward,
    kernel_portable_softmax_causal_backward,
    kernel_portable_colsum_acc,
};
