/* elementwise_avx2.c — the hot elementwise and normalisation kernels for AVX2 + FMA: LayerNorm,
 * RMSNorm, GELU (tanh form), SwiGLU and the causal softmax, 8 floats (4 doubles) a vector.
 * Compiled with the avx2 level's -m flags (this file only; CMakeLists.txt) and called only when
 * cpuid reports them (isa.c).
 *
 * Same contracts as elementwise_portable.c; as in elementwise_avx512.c, FMA and the order of the
 * sums differ within kernels.h's accuracies, and the last partial vector of a row (or of x[n])
 * goes through the same code under a mask (vmaskmovps: masked lanes are neither read nor
 * written), so a result depends on its values and the row length only. */
#include <immintrin.h>
#include <math.h>

#include "kernels_internal.h"

static inline __m256i tail8(int r) { /* lanes 0..r-1 set (any r: <= 0 none, >= 8 all) */
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline float hsum8(__m256 v) { /* fixed order: halves, then pairs */
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline double hsum4d(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* fast_exp.h's Cephes expf, 8 lanes, with FMA (see elementwise_avx512.c's exp16). */
static inline __m256 exp8(__m256 x_in) {
    __m256 nan = _mm256_cmp_ps(x_in, x_in, _CMP_UNORD_Q);
    __m256 x = _mm256_min_ps(_mm256_max_ps(x_in, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_floor_ps(
        _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_blendv_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), x_in, nan);
}

/* ---- normalisation: statistics in double, 4 lanes ------------------------------------------ */

static inline __m256d load4d(const float *x) {
    return _mm256_cvtps_pd(_mm_loadu_ps(x));
}

/* sum (x - c)^2 (squares = 1) or x (squares = 0) over x[0..E) in double: two accumulators
 * (even and odd 4-blocks), the tail into the second, a fixed reduction; the order depends on E
 * only. */
static double row_sum_d(const float *x, int E, double c, int squares) {
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), cv = _mm256_set1_pd(c);
    int i = 0;
    for (; i + 8 <= E; i += 8) {
        __m256d d0 = _mm256_sub_pd(load4d(x + i), cv), d1 = _mm256_sub_pd(load4d(x + i + 4), cv);
        a0 = squares ? _mm256_fmadd_pd(d0, d0, a0) : _mm256_add_pd(a0, d0);
        a1 = squares ? _mm256_fmadd_pd(d1, d1, a1) : _mm256_add_pd(a1, d1);
    }
    if (i + 4 <= E) {
        __m256d d = _mm256_sub_pd(load4d(x + i), cv);
        a0 = squares ? _mm256_fmadd_pd(d, d, a0) : _mm256_add_pd(a0, d);
        i += 4;
    }
    if (i < E) {
        __m128i m = _mm_cmpgt_epi32(_mm_set1_epi32(E - i), _mm_setr_epi32(0, 1, 2, 3));
        __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_maskload_ps(x + i, m)), cv);
        d = _mm256_and_pd(d, _mm256_castsi256_pd(_mm256_cvtepi32_epi64(m))); /* 0 past the end */
        a1 = squares ? _mm256_fmadd_pd(d, d, a1) : _mm256_add_pd(a1, d);
    }
    return hsum4d(_mm256_add_pd(a0, a1));
}

static void layernorm(float *out, const float *in, const float *w, const float *b, int T, int E,
                      float eps) {
    for (int t = 0; t < T; t++) {
        const float *x = in + (size_t)t * (size_t)E;
        float *y = out + (size_t)t * (size_t)E;
        double mean = row_sum_d(x, E, 0.0, 0) / E, var = row_sum_d(x, E, mean, 1) / E;
        __m256 rstd = _mm256_set1_ps((float)(1.0 / sqrt(var + eps)));
        __m256 m = _mm256_set1_ps((float)mean);
        for (int i = 0; i < E; i += 8) {
            __m256i k = tail8(E - i);
            __m256 xn = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), m), rstd);
            __m256 r =
                _mm256_fmadd_ps(xn, _mm256_maskload_ps(w + i, k), _mm256_maskload_ps(b + i, k));
            _mm256_maskstore_ps(y + i, k, r);
        }
    }
}

static void rmsnorm(float *out, const float *in, const float *w, int T, int E, float eps) {
    for (int t = 0; t < T; t++) {
        const float *x = in + (size_t)t * (size_t)E;
        float *y = out + (size_t)t * (size_t)E;
        __m256 r = _mm256_set1_ps((float)(1.0 / sqrt(row_sum_d(x, E, 0.0, 1) / E + eps)));
        for (int i = 0; i < E; i += 8) {
            __m256i k = tail8(E - i);
            __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + i, k), r);
            _mm256_maskstore_ps(y + i, k, _mm256_mul_ps(v, _mm256_maskload_ps(w + i, k)));
        }
    }
}

/* ---- activations --------------------------------------------------------------------------- */

static inline __m256 gelu_tanh8(__m256 v) {
    __m256 inner =
        _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), v), _mm256_mul_ps(v, v), v);
    __m256 e = exp8(_mm256_mul_ps(inner, _mm256_set1_ps(-2.0f * 0.7978845608028654f)));
    return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static void gelu(float *x, size_t n, kernel_gelu_kind kind) {
    if (kind != KERNEL_GELU_TANH) { /* erf: libm's erff, elementwise (not vectorised) */
        kernel_portable_gelu(x, n, kind);
        return;
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gelu_tanh8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i k = tail8((int)(n - i));
        _mm256_maskstore_ps(x + i, k, gelu_tanh8(_mm256_maskload_ps(x + i, k)));
    }
}

static void swiglu(float *out, const float *x, int T, int n) {
    for (int t = 0; t < T; t++) {
        const float *gate = x + (size_t)t * 2 * (size_t)n, *up = gate + n;
        float *y = out + (size_t)t * (size_t)n; /* stores land behind (or on) what was loaded */
        for (int j = 0; j < n; j += 8) {
            __m256i k = tail8(n - j);
            __m256 g = _mm256_maskload_ps(gate + j, k), u = _mm256_maskload_ps(up + j, k);
            __m256 s = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f),
                                                      exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
            _mm256_maskstore_ps(y + j, k, _mm256_mul_ps(s, u));
        }
    }
}

/* ---- the causal softmax -------------------------------------------------------------------- */

static void softmax_causal(float *s, int T, int n, int pos0) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (int t = 0; t < T; t++) {
        float *row = s + (size_t)t * (size_t)n;
        int len = pos0 + t + 1, j;
        __m256 vmax = ninf;
        for (j = 0; j < len; j += 8) {
            __m256i k = tail8(len - j);
            __m256 v =
                _mm256_blendv_ps(ninf, _mm256_maskload_ps(row + j, k), _mm256_castsi256_ps(k));
            vmax = _mm256_max_ps(v, vmax);
        }
        __m256 mx = _mm256_set1_ps(hmax8(vmax)), acc = _mm256_setzero_ps();
        for (j = 0; j < len; j += 8) {
            __m256i k = tail8(len - j);
            __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(row + j, k), mx));
            acc = _mm256_add_ps(acc, _mm256_and_ps(e, _mm256_castsi256_ps(k)));
            _mm256_maskstore_ps(row + j, k, e);
        }
        __m256 inv = _mm256_set1_ps(1.0f / hsum8(acc));
        for (j = 0; j < len; j += 8) {
            __m256i k = tail8(len - j);
            _mm256_maskstore_ps(row + j, k, _mm256_mul_ps(_mm256_maskload_ps(row + j, k), inv));
        }
        for (j = len; j < n; j++) row[j] = 0.0f;
    }
}

const kernel_elementwise_table kernel_elementwise_avx2 = {
    "avx2",
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
