/* vec_avx2.c — the typed dot products for AVX2 + FMA + F16C (x86-64 from Haswell / Zen 1 on).
 *
 * Compiled with -mavx2 -mfma -mf16c (this file only; CMakeLists.txt) and called only when cpuid
 * reports all three (isa.c). Same contract as vec_portable.c; the sums are ordered differently
 * (8 lanes, then a horizontal add), so results agree with it up to F32 rounding.
 *
 * The int8 products use the sign trick (as llama.cpp does): vpmaddubsw multiplies UNSIGNED bytes
 * by signed ones, so the weight's sign moves onto the activation: |w| * (sign(w) * x). |-128| is
 * 128 as an unsigned byte, so even a -128 from another writer's file is right; a pair sum is at
 * most 2 * 128 * 127 = 32512 and does not saturate int16. */
#include <immintrin.h>
#include <math.h>

#include "kernels_internal.h"

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float dot_f16(const uint16_t *w, const float *x, int K) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + k))),
                             _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + k + 8))),
                             _mm256_loadu_ps(x + k + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + k + 16))),
                             _mm256_loadu_ps(x + k + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + k + 24))),
                             _mm256_loadu_ps(x + k + 24), a3);
    }
    for (; k + 8 <= K; k += 8)
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + k))),
                             _mm256_loadu_ps(x + k), a0);
    float tail = 0.0f;
    for (; k < K; k++) tail += kernel_f16_bits_to_f32_inline(w[k]) * x[k];
    return hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) + tail;
}

/* 8 BF16 values to F32: the 16 bits become the top half of each F32. */
static inline __m256 bf16x8(const uint16_t *w) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)w));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static float dot_bf16(const uint16_t *w, const float *x, int K) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        a0 = _mm256_fmadd_ps(bf16x8(w + k), _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(bf16x8(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);
        a2 = _mm256_fmadd_ps(bf16x8(w + k + 16), _mm256_loadu_ps(x + k + 16), a2);
        a3 = _mm256_fmadd_ps(bf16x8(w + k + 24), _mm256_loadu_ps(x + k + 24), a3);
    }
    for (; k + 8 <= K; k += 8) a0 = _mm256_fmadd_ps(bf16x8(w + k), _mm256_loadu_ps(x + k), a0);
    float tail = 0.0f;
    for (; k < K; k++) {
        uint32_t u = (uint32_t)w[k] << 16;
        float f;
        memcpy(&f, &u, sizeof f);
        tail += f * x[k];
    }
    return hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) + tail;
}

/* 32 int8 weights q and 32 int8 activations y: 8 int32 partial sums of q * y, as F32. */
static inline __m256 mul_sum_i8(__m256i q, __m256i y) {
    __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

static float dot_q8_0(const kernel_block_q8_0 *w, const kernel_block_q8_0 *x, int nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(w[b].d) * _cvtsh_ss(x[b].d));
        __m256i q = _mm256_loadu_si256((const __m256i *)w[b].qs);
        __m256i y = _mm256_loadu_si256((const __m256i *)x[b].qs);
        acc = _mm256_fmadd_ps(d, mul_sum_i8(q, y), acc);
    }
    return hsum256(acc);
}

/* A Q4_0 block's 16 bytes as its 32 values (nibble - 8, in GGUF's order) in int8. */
static inline __m256i q4_values(const uint8_t *qs) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m128i lo = _mm_and_si128(t, m4), hi = _mm_and_si128(_mm_srli_epi16(t, 4), m4);
    return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
}

static float dot_q4_0(const kernel_block_q4_0 *w, const kernel_block_q8_0 *x, int nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(w[b].d) * _cvtsh_ss(x[b].d));
        __m256i y = _mm256_loadu_si256((const __m256i *)x[b].qs);
        acc = _mm256_fmadd_ps(d, mul_sum_i8(q4_values(w[b].qs), y), acc);
    }
    return hsum256(acc);
}

/* Q8_0 / Q4_0 rows against F32 activations (kernels_internal.h): a block's 32 values widened to
 * F32 in four vectors of 8, multiplied by x, then d times that into the accumulator. */
static inline __m256 block_f32_dot(__m256i v0, __m256i v1, __m256i v2, __m256i v3,
                                   const float *xb) {
    __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(v0), _mm256_loadu_ps(xb));
    p = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v1), _mm256_loadu_ps(xb + 8), p);
    p = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v2), _mm256_loadu_ps(xb + 16), p);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(v3), _mm256_loadu_ps(xb + 24), p);
}

static inline __m256 q8_block(const kernel_block_q8_0 *w, const float *xb) {
    const int8_t *q = w->qs;
    __m256 p = block_f32_dot(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q)),
                             _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8))),
                             _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 16))),
                             _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 24))), xb);
    return _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(w->d)), p);
}

static inline __m256 q4_block(const kernel_block_q4_0 *w, const float *xb) {
    const __m256i low4 = _mm256_set1_epi32(0x0F), eight = _mm256_set1_epi32(8);
    __m256i a = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)w->qs));
    __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(w->qs + 8)));
    __m256 p = block_f32_dot(_mm256_sub_epi32(_mm256_and_si256(a, low4), eight),
                             _mm256_sub_epi32(_mm256_and_si256(c, low4), eight),
                             _mm256_sub_epi32(_mm256_srli_epi32(a, 4), eight),
                             _mm256_sub_epi32(_mm256_srli_epi32(c, 4), eight), xb);
    return _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(w->d)), p);
}

/* Block b into accumulator b mod 4: the chains overlap, and the sum order is fixed. */
#define DOT_BLOCKS_F32(block_fn)                                                                   \
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                    \
    int b = 0;                                                                                     \
    for (; b + 4 <= nb; b += 4) {                                                                  \
        const float *xb = x + (size_t)b * KERNEL_QK;                                               \
        a0 = _mm256_add_ps(a0, block_fn(w + b, xb));                                               \
        a1 = _mm256_add_ps(a1, block_fn(w + b + 1, xb + KERNEL_QK));                               \
        a2 = _mm256_add_ps(a2, block_fn(w + b + 2, xb + 2 * KERNEL_QK));                           \
        a3 = _mm256_add_ps(a3, block_fn(w + b + 3, xb + 3 * KERNEL_QK));                           \
    }                                                                                              \
    if (b < nb) a0 = _mm256_add_ps(a0, block_fn(w + b, x + (size_t)b * KERNEL_QK));                \
    if (b + 1 < nb) a1 = _mm256_add_ps(a1, block_fn(w + b + 1, x + (size_t)(b + 1) * KERNEL_QK));  \
    if (b + 2 < nb) a2 = _mm256_add_ps(a2, block_fn(w + b + 2, x + (size_t)(b + 2) * KERNEL_QK));  \
    return hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)))

static float dot_q8_0_f32(const kernel_block_q8_0 *w, const float *x, int nb) {
    DOT_BLOCKS_F32(q8_block);
}

static float dot_q4_0_f32(const kernel_block_q4_0 *w, const float *x, int nb) {
    DOT_BLOCKS_F32(q4_block);
}

/* F32 rows (kernel_matmul_rows): four accumulators of 8 (32 values a step), then 8 at a time
 * into the first, the last K % 8 in a scalar sum added after the tree (K alone fixes the order). */
static float dot_f32(const float *w, const float *x, int K) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 16), _mm256_loadu_ps(x + k + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 24), _mm256_loadu_ps(x + k + 24), a3);
    }
    for (; k + 8 <= K; k += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
    float tail = 0.0f;
    for (; k < K; k++) tail = fmaf(w[k], x[k], tail);
    return hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) + tail;
}

/* y[0..n) += sum_k x[k] W[k][..] (kernels_internal.h): 32 columns of y held in four registers
 * while the kn rows pass, then 8, then single columns with the scalar FMA (the same rounding as
 * a lane: every element is one chain of fused multiply-adds in k order). */
static void axpy_row_f32(float *y, const float *x, const float *W, int kn, size_t ldw, int n) {
    int j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256 y0 = _mm256_loadu_ps(y + j), y1 = _mm256_loadu_ps(y + j + 8);
        __m256 y2 = _mm256_loadu_ps(y + j + 16), y3 = _mm256_loadu_ps(y + j + 24);
        for (int k = 0; k < kn; k++) {
            const float *w = W + (size_t)k * ldw + j;
            __m256 a = _mm256_set1_ps(x[k]);
            y0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w), y0);
            y1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w + 8), y1);
            y2 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w + 16), y2);
            y3 = _mm256_fmadd_ps(a, _mm256_loadu_ps(w + 24), y3);
        }
        _mm256_storeu_ps(y + j, y0);
        _mm256_storeu_ps(y + j + 8, y1);
        _mm256_storeu_ps(y + j + 16, y2);
        _mm256_storeu_ps(y + j + 24, y3);
    }
    for (; j + 8 <= n; j += 8) {
        __m256 y0 = _mm256_loadu_ps(y + j);
        for (int k = 0; k < kn; k++)
            y0 =
                _mm256_fmadd_ps(_mm256_set1_ps(x[k]), _mm256_loadu_ps(W + (size_t)k * ldw + j), y0);
        _mm256_storeu_ps(y + j, y0);
    }
    for (; j < n; j++) {
        float v = y[j];
        for (int k = 0; k < kn; k++) v = fmaf(x[k], W[(size_t)k * ldw + j], v);
        y[j] = v;
    }
}

/* The table's F32 [K][N] row accumulation, one row at a time (the batched dot products are
 * left NULL: matmul.c then runs the one-row products row by row). */
static void axpy_rows_f32(float *y, size_t ldy, const float *x, size_t ldx, int rows,
                          const float *W, int kn, size_t ldw, int n) {
    for (int r = 0; r < rows; r++)
        axpy_row_f32(y + (size_t)r * ldy, x + (size_t)r * ldx, W, kn, ldw, n);
}

static void f16_to_f32(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = kernel_f16_bits_to_f32_inline(src[i]);
}

/* vcvtps2ph with round to nearest even is IEEE's rounding, subnormals and overflow included;
 * only a NaN's payload could differ from kernel_f32_to_f16, so NaN lanes take the scalar path. */
static void f32_to_f16(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(src + i);
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        if (_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)))
            for (size_t j = i; j < i + 8; j++) dst[j] = kernel_f32_to_f16(src[j]);
    }
    for (; i < n; i++) dst[i] = kernel_f32_to_f16(src[i]);
}

const kernel_isa_table kernel_table_avx2 = {
    .name = "avx2",
    .dot_f16 = dot_f16,
    .dot_bf16 = dot_bf16,
    .dot_q8_0 = dot_q8_0,
    .dot_q4_0 = dot_q4_0,
    .dot_q8_0_f32 = dot_q8_0_f32,
    .dot_q4_0_f32 = dot_q4_0_f32,
    .dot_f32 = dot_f32,
    .axpy_rows_f32 = axpy_rows_f32,
    .f16_to_f32 = f16_to_f32,
    .f32_to_f16 = f32_to_f16,
};
