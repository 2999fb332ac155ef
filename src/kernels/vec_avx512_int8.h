/* vec_avx512_int8.h — the Q8_0 and Q4_0 dot products for AVX-512, included by vec_avx512.c
 * (vpmaddubsw + vpmaddwd) and by vec_avx512_vnni.c (KERNEL_AVX512_VNNI: vpdpbusd). Static
 * functions: each including file gets its own copy, built with its own flags.
 *
 * Two blocks per step: block b's 32 int8 values fill the low 256 bits, block b + 1's the high
 * 256, so the 16 int32 lanes of the product are 8 partial sums of each block, scaled by that
 * block's d_w * d_x. An odd last block runs with a zero block beside it.
 *
 * Unsigned x signed: both instructions multiply an UNSIGNED byte by a signed one, so the
 * weight's sign moves onto the activation (llama.cpp's trick): |w| * (sign(w) * x). |-128|
 * is 128 as an unsigned byte, so a -128 weight (never written by the Q8_0 quantiser, possible in
 * another writer's file) is still right; activations come from our quantiser, in [-127, 127]. */
#ifndef LINSHARD_VEC_AVX512_INT8_H
#define LINSHARD_VEC_AVX512_INT8_H

/* 16 int32 sums of 4 products |q| * (sign(q) * y) each, as F32. */
static inline __m512 mul_sum_i8x64(__m512i q, __m512i y) {
    __m512i aq = _mm512_abs_epi8(q);
    __m512i sy = _mm512_mask_sub_epi8(y, _mm512_movepi8_mask(q), _mm512_setzero_si512(), y);
#ifdef KERNEL_AVX512_VNNI
    __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), aq, sy);
#else
    __m512i s = _mm512_madd_epi16(_mm512_maddubs_epi16(aq, sy), _mm512_set1_epi16(1));
#endif
    return _mm512_cvtepi32_ps(s);
}

/* Two 256-bit halves into one register (lo: lanes 0-7, hi: lanes 8-15). */
static inline __m512i join256(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_zextsi256_si512(lo), hi, 1);
}

/* d for lanes 0-7 and d1 for lanes 8-15. */
static inline __m512 scales(float d0, float d1) {
    return _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1);
}

static inline float scale_of(const kernel_block_q8_0 *x, uint16_t wd) {
    return _cvtsh_ss(wd) * _cvtsh_ss(x->d);
}

static float dot_q8_0(const kernel_block_q8_0 *w, const kernel_block_q8_0 *x, int nb) {
    __m512 acc = _mm512_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512i q = join256(_mm256_loadu_si256((const __m256i *)w[b].qs),
                            _mm256_loadu_si256((const __m256i *)w[b + 1].qs));
        __m512i y = join256(_mm256_loadu_si256((const __m256i *)x[b].qs),
                            _mm256_loadu_si256((const __m256i *)x[b + 1].qs));
        __m512 d = scales(scale_of(&x[b], w[b].d), scale_of(&x[b + 1], w[b + 1].d));
        acc = _mm512_fmadd_ps(d, mul_sum_i8x64(q, y), acc);
    }
    if (b < nb) {
        __m512i q = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)w[b].qs));
        __m512i y = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)x[b].qs));
        acc = _mm512_fmadd_ps(scales(scale_of(&x[b], w[b].d), 0.0f), mul_sum_i8x64(q, y), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* Blocks b and b + 1 of Q4_0 (16 bytes each) as 64 unsigned codes 0..15 (the value is code - 8)
 * in the layout above: [b: 0-15, b: 16-31, b+1: 0-15, b+1: 16-31] in 128-bit lanes. */
static inline __m512i q4_codes_x2(const uint8_t *qs0, const uint8_t *qs1) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i t = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)qs1),
                                 _mm_loadu_si128((const __m128i *)qs0));
    __m256i lo = _mm256_and_si256(t, m4), hi = _mm256_and_si256(_mm256_srli_epi16(t, 4), m4);
    /* lanes [lo0, lo1, hi0, hi1] -> [lo0, hi0, lo1, hi1] */
    __m512i v = join256(lo, hi);
    return _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0));
}

/* 16 int32 sums of 4 products (c - 8) * y each, as F32. The codes c are unsigned bytes already,
 * so no sign trick: sum c y - 8 sum y, each one unsigned-by-signed product. */
static inline __m512 mul_sum_q4(__m512i c, __m512i y) {
    const __m512i eights = _mm512_set1_epi8(8);
#ifdef KERNEL_AVX512_VNNI
    __m512i s = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), c, y),
                                 _mm512_dpbusd_epi32(_mm512_setzero_si512(), eights, y));
#else
    /* c y + c' y' <= 2 * 15 * 127: no int16 saturation; 8 y + 8 y' likewise */
    __m512i p = _mm512_sub_epi16(_mm512_maddubs_epi16(c, y), _mm512_maddubs_epi16(eights, y));
    __m512i s = _mm512_madd_epi16(p, _mm512_set1_epi16(1));
#endif
    return _mm512_cvtepi32_ps(s);
}

static float dot_q4_0(const kernel_block_q4_0 *w, const kernel_block_q8_0 *x, int nb) {
    __m512 acc = _mm512_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512i c = q4_codes_x2(w[b].qs, w[b + 1].qs);
        __m512i y = join256(_mm256_loadu_si256((const __m256i *)x[b].qs),
                            _mm256_loadu_si256((const __m256i *)x[b + 1].qs));
        __m512 d = scales(scale_of(&x[b], w[b].d), scale_of(&x[b + 1], w[b + 1].d));
        acc = _mm512_fmadd_ps(d, mul_sum_q4(c, y), acc);
    }
    if (b < nb) {
        /* the odd last block beside itself, its second copy scaled by 0 */
        __m512i c = q4_codes_x2(w[b].qs, w[b].qs);
        __m512i y = join256(_mm256_loadu_si256((const __m256i *)x[b].qs),
                            _mm256_loadu_si256((const __m256i *)x[b].qs));
        acc = _mm512_fmadd_ps(scales(scale_of(&x[b], w[b].d), 0.0f), mul_sum_q4(c, y), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

#endif
