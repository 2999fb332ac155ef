/* vec_avx512_int8.h — the Q8_0 and Q4_0 dot products for AVX-512, included by vec_avx512.c
 * (vpmaddubsw + vpmaddwd) and by vec_avx512_vnni.c (KERNEL_AVX512_VNNI: vpdpbusd). Static
 * functions: each including file gets its own copy, built with its own flags.
 *
 * Two blocks per step: block b's 32 int8 values fill the low 256 bits, block b + 1's the high
 * 256, so the 16 int32 lanes of the product are 8 partial sums of each block, scaled by that
 * block's d_w * d_x. The loops take two such registers (four blocks) per step, their scales
 * gathered in one go (spread_scales), then one pair, then an odd last block beside a zero block.
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

/* The scales d_w * d_x of four blocks in one step, spread so that lanes 0-7 / 8-15 of `lo` hold
 * blocks b / b + 1 and those of `hi` b + 2 / b + 3. The F16 scales are gathered with vpermw from
 * 64-byte loads: Q4_0's four at words 0, 9, 18, 27 of one load at block b; Q8_0's (weight and
 * activation: 34-byte blocks) at words 0, 17 of a load at block b and of one at block b + 2. One
 * vcvtph2ps of both, one product (the F32 products scale_of gives), two vpermps to spread them.
 * One scale at a time (scale_of: GPR loads and moves into vector registers) took as long as the
 * products themselves; this form leaves Q4_0 about 30% slower than with no scales at all. */
static inline void spread_scales(__m128i dw, const kernel_block_q8_0 *x, __m512 *lo, __m512 *hi) {
    const __m512i ix = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        0, 0, 0, 0, 49, 32, 17, 0, 0, 0, 0, 0);
    __m128i dx = _mm512_castsi512_si128(
        _mm512_permutex2var_epi16(_mm512_loadu_si512(x), ix, _mm512_loadu_si512(x + 2)));
    /* words 4-7 of dw and dx: [dw0..3, dx0..3] */
    __m256 f = _mm256_cvtph_ps(_mm_unpackhi_epi64(dw, dx));
    __m512 d =
        _mm512_castps128_ps512(_mm_mul_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1)));
    *lo =
        _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), d);
    *hi =
        _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2), d);
}

/* The F16 scales of four Q8_0 weight blocks (136 bytes: 64-byte loads at blocks b and b + 2) in
 * words 4-7. */
static inline __m128i q8_scales_x4(const kernel_block_q8_0 *w) {
    const __m512i iw = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        0, 0, 0, 0, 49, 32, 17, 0, 0, 0, 0, 0);
    return _mm512_castsi512_si128(
        _mm512_permutex2var_epi16(_mm512_loadu_si512(w), iw, _mm512_loadu_si512(w + 2)));
}

/* The F16 scales of four Q4_0 weight blocks (72 bytes: the first 64 hold all four) in words
 * 4-7. */
static inline __m128i q4_scales_x4(const kernel_block_q4_0 *w) {
    const __m512i iw = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        0, 0, 0, 0, 27, 18, 9, 0, 0, 0, 0, 0);
    return _mm512_castsi512_si128(_mm512_permutexvar_epi16(iw, _mm512_loadu_si512(w)));
}

/* Activation blocks b and b + 1 (32 int8 each) in the layout above. */
static inline __m512i q8_x2(const kernel_block_q8_0 *x) {
    return join256(_mm256_loadu_si256((const __m256i *)x[0].qs),
                   _mm256_loadu_si256((const __m256i *)x[1].qs));
}

/* Four blocks per step, two accumulators (an FMA's latency is longer than a step's issue), then
 * the pairs and the odd block of scale_of's form. */
static float dot_q8_0(const kernel_block_q8_0 *w, const kernel_block_q8_0 *x, int nb) {
    __m512 acc = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int b = 0;
    for (; b + 4 <= nb; b += 4) {
        __m512 d01, d23;
        spread_scales(q8_scales_x4(w + b), x + b, &d01, &d23);
        acc = _mm512_fmadd_ps(d01, mul_sum_i8x64(q8_x2(w + b), q8_x2(x + b)), acc);
        acc1 = _mm512_fmadd_ps(d23, mul_sum_i8x64(q8_x2(w + b + 2), q8_x2(x + b + 2)), acc1);
    }
    for (; b + 2 <= nb; b += 2) {
        __m512 d = scales(scale_of(&x[b], w[b].d), scale_of(&x[b + 1], w[b + 1].d));
        acc = _mm512_fmadd_ps(d, mul_sum_i8x64(q8_x2(w + b), q8_x2(x + b)), acc);
    }
    if (b < nb) {
        __m512i q = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)w[b].qs));
        __m512i y = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)x[b].qs));
        acc1 = _mm512_fmadd_ps(scales(scale_of(&x[b], w[b].d), 0.0f), mul_sum_i8x64(q, y), acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc, acc1));
}

/* Blocks b and b + 1 of Q4_0 (16 bytes each) as 64 unsigned codes 0..15 (the value is code - 8)
 * in the layout above: [b: 0-15, b: 16-31, b+1: 0-15, b+1: 16-31] in 128-bit lanes. The bytes
 * go to lanes [b, b, b+1, b+1] (one shuffle); lanes 1 and 3 shift right by 4 (under a mask);
 * one AND keeps the low nibble of every byte. */
static inline __m512i q4_codes_x2(const uint8_t *qs0, const uint8_t *qs1) {
    __m512i t = _mm512_castsi256_si512(_mm256_set_m128i(_mm_loadu_si128((const __m128i *)qs1),
                                                        _mm_loadu_si128((const __m128i *)qs0)));
    __m512i v = _mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(1, 1, 0, 0));
    v = _mm512_mask_srli_epi16(v, (__mmask32)0xFF00FF00u, v, 4);
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
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
    __m512 acc = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int b = 0;
    for (; b + 4 <= nb; b += 4) {
        __m512 d01, d23;
        spread_scales(q4_scales_x4(w + b), x + b, &d01, &d23);
        acc =
            _mm512_fmadd_ps(d01, mul_sum_q4(q4_codes_x2(w[b].qs, w[b + 1].qs), q8_x2(x + b)), acc);
        acc1 = _mm512_fmadd_ps(
            d23, mul_sum_q4(q4_codes_x2(w[b + 2].qs, w[b + 3].qs), q8_x2(x + b + 2)), acc1);
    }
    for (; b + 2 <= nb; b += 2) {
        __m512 d = scales(scale_of(&x[b], w[b].d), scale_of(&x[b + 1], w[b + 1].d));
        acc = _mm512_fmadd_ps(d, mul_sum_q4(q4_codes_x2(w[b].qs, w[b + 1].qs), q8_x2(x + b)), acc);
    }
    if (b < nb) {
        /* the odd last block beside itself, its second copy scaled by 0 */
        __m512i c = q4_codes_x2(w[b].qs, w[b].qs);
        __m512i y = join256(_mm256_loadu_si256((const __m256i *)x[b].qs),
                            _mm256_loadu_si256((const __m256i *)x[b].qs));
        acc1 = _mm512_fmadd_ps(scales(scale_of(&x[b], w[b].d), 0.0f), mul_sum_q4(c, y), acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc, acc1));
}

#endif
