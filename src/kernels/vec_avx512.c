/* vec_avx512.c — the typed dot products for AVX-512 F/BW/VL/DQ (Skylake-X, Ice Lake, Zen 4/5).
 *
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq (+ AVX2/FMA/F16C; this file only) and
 * called only when cpuid reports them all (isa.c). F16/BF16 rows go 16 values per instruction,
 * the last K % 16 under a mask (no scalar tail). The int8 products are in vec_avx512_int8.h,
 * shared with vec_avx512_vnni.c, which builds them with vpdpbusd instead. */
#include <immintrin.h>

#include "kernels_internal.h"

/* The K % 16 values left at the end of a row, under a mask (masked-off lanes load 0). */
static inline __mmask16 tail_mask(int n) {
    return (__mmask16)((1u << n) - 1);
}

/* 16 BF16 values (a 256-bit load) to F32. */
static inline __m512 bf16x16(__m256i v) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

/* 16 F16 or BF16 weights to F32 (bf16: which), from a 256-bit value. */
static inline __m512 half16(__m256i v, const int bf16) {
    return bf16 ? bf16x16(v) : _mm512_cvtph_ps(v);
}

/* An F16 or BF16 row against R activation rows at once (R <= 4, a constant in each use): the
 * weights widened once, then for every row two accumulators of 16 (32 values a step), 16 at a
 * time into the first, the last K % 16 under a mask into the second. out[r] has the bits of the
 * row computed alone (R = 1 is the one-row product). */
static inline __attribute__((always_inline)) void half_group(const uint16_t *w, const float *x,
                                                             size_t ldx, int K, float *out,
                                                             const int R, const int bf16) {
    __m512 a[4][2];
    for (int r = 0; r < R; r++) a[r][0] = a[r][1] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        __m512 w0 = half16(_mm256_loadu_si256((const __m256i *)(w + k)), bf16);
        __m512 w1 = half16(_mm256_loadu_si256((const __m256i *)(w + k + 16)), bf16);
        for (int r = 0; r < R; r++) {
            a[r][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + r * ldx + k), a[r][0]);
            a[r][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + r * ldx + k + 16), a[r][1]);
        }
    }
    for (; k + 16 <= K; k += 16) {
        __m512 w0 = half16(_mm256_loadu_si256((const __m256i *)(w + k)), bf16);
        for (int r = 0; r < R; r++)
            a[r][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + r * ldx + k), a[r][0]);
    }
    if (k < K) {
        __mmask16 m = tail_mask(K - k);
        __m512 w0 = half16(_mm256_maskz_loadu_epi16(m, w + k), bf16);
        for (int r = 0; r < R; r++)
            a[r][1] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, x + r * ldx + k), a[r][1]);
    }
    for (int r = 0; r < R; r++) out[r] = _mm512_reduce_add_ps(_mm512_add_ps(a[r][0], a[r][1]));
}

float kernel_avx512_dot_f16(const uint16_t *w, const float *x, int K) {
    float out;
    half_group(w, x, 0, K, &out, 1, 0);
    return out;
}

float kernel_avx512_dot_bf16(const uint16_t *w, const float *x, int K) {
    float out;
    half_group(w, x, 0, K, &out, 1, 1);
    return out;
}

/* Rows in groups of 4, then the rest as one group (group is a function of R). */
#define ROWS_IN_GROUPS(group_call)                                                                 \
    int r = 0;                                                                                     \
    for (; r + 4 <= rows; r += 4) group_call(4);                                                   \
    switch (rows - r) {                                                                            \
    case 3:                                                                                        \
        group_call(3);                                                                             \
        break;                                                                                     \
    case 2:                                                                                        \
        group_call(2);                                                                             \
        break;                                                                                     \
    case 1:                                                                                        \
        group_call(1);                                                                             \
        break;                                                                                     \
    default:                                                                                       \
        break;                                                                                     \
    }

void kernel_avx512_dot_f16_rows(const uint16_t *w, const float *x, size_t ldx, int rows, int K,
                                float *out) {
#define F16_GROUP(R) half_group(w, x + r * ldx, ldx, K, out + r, R, 0)
    ROWS_IN_GROUPS(F16_GROUP)
#undef F16_GROUP
}

void kernel_avx512_dot_bf16_rows(const uint16_t *w, const float *x, size_t ldx, int rows, int K,
                                 float *out) {
#define BF16_GROUP(R) half_group(w, x + r * ldx, ldx, K, out + r, R, 1)
    ROWS_IN_GROUPS(BF16_GROUP)
#undef BF16_GROUP
}

/* F32 rows (kernel_matmul_rows), R activation rows against one weight row at once (R <= 4, a
 * constant in each use, so the loops unroll and the 4 R accumulators stay in registers): for
 * each row, four accumulators of 16 (64 values a step), then 16 at a time into the first, the
 * last K % 16 under a mask into the second, and one fixed tree. Every row's sequence of
 * operations is the one it has alone (R = 1): the weights are only loaded once for all R. */
static inline __attribute__((always_inline)) void
dot_f32_group(const float *w, const float *x, size_t ldx, int K, float *out, const int R) {
    __m512 a[4][4];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < 4; j++) a[r][j] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 64 <= K; k += 64)
        for (int j = 0; j < 4; j++) {
            __m512 wv = _mm512_loadu_ps(w + k + 16 * j);
            for (int r = 0; r < R; r++)
                a[r][j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + r * ldx + k + 16 * j), a[r][j]);
        }
    for (; k + 16 <= K; k += 16) {
        __m512 wv = _mm512_loadu_ps(w + k);
        for (int r = 0; r < R; r++)
            a[r][0] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + r * ldx + k), a[r][0]);
    }
    if (k < K) {
        __mmask16 m = tail_mask(K - k);
        __m512 wv = _mm512_maskz_loadu_ps(m, w + k);
        for (int r = 0; r < R; r++)
            a[r][1] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + r * ldx + k), a[r][1]);
    }
    for (int r = 0; r < R; r++)
        out[r] = _mm512_reduce_add_ps(
            _mm512_add_ps(_mm512_add_ps(a[r][0], a[r][1]), _mm512_add_ps(a[r][2], a[r][3])));
}

float kernel_avx512_dot_f32(const float *w, const float *x, int K) {
    float out;
    dot_f32_group(w, x, 0, K, &out, 1);
    return out;
}

void kernel_avx512_dot_f32_rows(const float *w, const float *x, size_t ldx, int rows, int K,
                                float *out) {
#define F32_GROUP(R) dot_f32_group(w, x + r * ldx, ldx, K, out + r, R)
    ROWS_IN_GROUPS(F32_GROUP)
#undef F32_GROUP
}

/* F32 OUT_IN tile (kernels_internal.h): NW weight rows against R activation rows, one
 * accumulator per output (NW * R <= 16 registers), 16 values a step, the tail under a mask. */
static inline __attribute__((always_inline)) void dot_f32_tile_group(const float *w, size_t ldw,
                                                                     const float *x, size_t ldx,
                                                                     int K, float *out,
                                                                     const int NW, const int R) {
    __m512 a[4][4];
    for (int n = 0; n < NW; n++)
        for (int r = 0; r < R; r++) a[n][r] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 wv[4];
        for (int n = 0; n < NW; n++) wv[n] = _mm512_loadu_ps(w + n * ldw + k);
        for (int r = 0; r < R; r++) {
            __m512 xv = _mm512_loadu_ps(x + r * ldx + k);
            for (int n = 0; n < NW; n++) a[n][r] = _mm512_fmadd_ps(wv[n], xv, a[n][r]);
        }
    }
    if (k < K) {
        __mmask16 m = tail_mask(K - k);
        __m512 wv[4];
        for (int n = 0; n < NW; n++) wv[n] = _mm512_maskz_loadu_ps(m, w + n * ldw + k);
        for (int r = 0; r < R; r++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + r * ldx + k);
            for (int n = 0; n < NW; n++) a[n][r] = _mm512_fmadd_ps(wv[n], xv, a[n][r]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int n = 0; n < NW; n++) out[r * 4 + n] = _mm512_reduce_add_ps(a[n][r]);
}

void kernel_avx512_dot_f32_tile(const float *w, size_t ldw, int wrows, const float *x, size_t ldx,
                                int rows, int K, float *out) {
#define TILE(NW, R)                                                                                \
    case (NW)*8 + (R):                                                                             \
        dot_f32_tile_group(w, ldw, x, ldx, K, out, NW, R);                                         \
        break;
    /* clang-format off */
    switch (wrows * 8 + rows) {
        TILE(1, 1) TILE(1, 2) TILE(1, 3) TILE(1, 4)
        TILE(2, 1) TILE(2, 2) TILE(2, 3) TILE(2, 4)
        TILE(3, 1) TILE(3, 2) TILE(3, 3) TILE(3, 4)
        TILE(4, 1) TILE(4, 2) TILE(4, 3) TILE(4, 4)
    default:
        break;
    }
    /* clang-format on */
#undef TILE
}

/* y += x[k] W[k][..] for R rows at once (kernels_internal.h): 64 columns of each row's y in
 * four registers while the kn weight rows pass (each weight vector loaded once for the R rows),
 * then 16 columns, the last n % 16 under a mask (the same FMA per lane). */
static inline __attribute__((always_inline)) void axpy_group(float *y, size_t ldy, const float *x,
                                                             size_t ldx, const float *W, int kn,
                                                             size_t ldw, int n, const int R) {
    int j = 0;
    for (; j + 64 <= n; j += 64) {
        __m512 acc[4][4];
        for (int r = 0; r < R; r++)
            for (int c = 0; c < 4; c++) acc[r][c] = _mm512_loadu_ps(y + r * ldy + j + 16 * c);
        for (int k = 0; k < kn; k++) {
            const float *w = W + (size_t)k * ldw + j;
            __m512 wv[4];
            for (int c = 0; c < 4; c++) wv[c] = _mm512_loadu_ps(w + 16 * c);
            for (int r = 0; r < R; r++) {
                __m512 a = _mm512_set1_ps(x[r * ldx + k]);
                for (int c = 0; c < 4; c++) acc[r][c] = _mm512_fmadd_ps(a, wv[c], acc[r][c]);
            }
        }
        for (int r = 0; r < R; r++)
            for (int c = 0; c < 4; c++) _mm512_storeu_ps(y + r * ldy + j + 16 * c, acc[r][c]);
    }
    for (; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xFFFF : tail_mask(n - j);
        __m512 acc[4];
        for (int r = 0; r < R; r++) acc[r] = _mm512_maskz_loadu_ps(m, y + r * ldy + j);
        for (int k = 0; k < kn; k++) {
            __m512 wv = _mm512_maskz_loadu_ps(m, W + (size_t)k * ldw + j);
            for (int r = 0; r < R; r++)
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(x[r * ldx + k]), wv, acc[r]);
        }
        for (int r = 0; r < R; r++) _mm512_mask_storeu_ps(y + r * ldy + j, m, acc[r]);
    }
}

void kernel_avx512_axpy_rows_f32(float *y, size_t ldy, const float *x, size_t ldx, int rows,
                                 const float *W, int kn, size_t ldw, int n) {
#define AXPY_GROUP(R) axpy_group(y + r * ldy, ldy, x + r * ldx, ldx, W, kn, ldw, n, R)
    ROWS_IN_GROUPS(AXPY_GROUP)
#undef AXPY_GROUP
}

void kernel_avx512_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    if (i < n) {
        __mmask16 m = tail_mask((int)(n - i));
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
    }
}

/* As vec_avx2.c's: vcvtps2ph rounds as IEEE does; NaN lanes go through the scalar path. */
void kernel_avx512_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(src + i);
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        if (_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q))
            for (size_t j = i; j < i + 16; j++) dst[j] = kernel_f32_to_f16(src[j]);
    }
    for (; i < n; i++) dst[i] = kernel_f32_to_f16(src[i]);
}

/* Q8_0 / Q4_0 rows against F32 activations (kernels_internal.h), R activation rows at once
 * (R <= 4, a constant in each use): each block's 32 values widened to F32 once, in two vectors
 * of 16 (lo, hi), and multiplied by the block's scale d (exactly: an F16 times an integer of at
 * most 8 bits fits in F32's 24); then for every row two fused multiply-adds, lo * x[0..16) then
 * hi * x[16..32), into one of its four accumulators (block b into b mod 4: the chains overlap,
 * and the order is fixed), and one final tree. Every row's operations are those it has alone
 * (R = 1 is the one-row product), so out[r] does not depend on R or the other rows; and the
 * per-row work is 2 FMAs a block, whatever is shared. */
static inline __attribute__((always_inline)) void widen_block(const void *block, const int q4,
                                                              __m512 *lo, __m512 *hi) {
    if (q4) {
        const kernel_block_q4_0 *w = block;
        const __m512i low4 = _mm512_set1_epi32(0x0F), eight = _mm512_set1_epi32(8);
        __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)w->qs));
        *lo = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(v, low4), eight));
        *hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight));
    } else {
        const kernel_block_q8_0 *w = block;
        *lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)w->qs)));
        *hi = _mm512_cvtepi32_ps(
            _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(w->qs + 16))));
    }
}

/* Block b of the row into accumulator j of each of the R rows (j = b mod 4, a constant where
 * this is inlined, so the accumulators stay in registers). */
static inline __attribute__((always_inline)) void block_step(const void *w, const float *x,
                                                             size_t ldx, int b, __m512 a[4][4],
                                                             const int j, const int R,
                                                             const int q4) {
    size_t block_bytes = q4 ? sizeof(kernel_block_q4_0) : sizeof(kernel_block_q8_0);
    const unsigned char *block = (const unsigned char *)w + (size_t)b * block_bytes;
    uint16_t d16;
    memcpy(&d16, block, sizeof d16); /* both blocks start with the F16 scale */
    __m512 lo, hi, d = _mm512_set1_ps(_cvtsh_ss(d16));
    widen_block(block, q4, &lo, &hi);
    lo = _mm512_mul_ps(lo, d);
    hi = _mm512_mul_ps(hi, d);
    for (int r = 0; r < R; r++) {
        const float *xb = x + r * ldx + (size_t)b * KERNEL_QK;
        a[r][j] = _mm512_fmadd_ps(lo, _mm512_loadu_ps(xb), a[r][j]);
        a[r][j] = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xb + 16), a[r][j]);
    }
}

static inline __attribute__((always_inline)) void blocks_group(const void *w, const float *x,
                                                               size_t ldx, int nb, float *out,
                                                               const int R, const int q4) {
    __m512 a[4][4];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < 4; j++) a[r][j] = _mm512_setzero_ps();
    int b = 0;
    for (; b + 4 <= nb; b += 4) {
        block_step(w, x, ldx, b, a, 0, R, q4);
        block_step(w, x, ldx, b + 1, a, 1, R, q4);
        block_step(w, x, ldx, b + 2, a, 2, R, q4);
        block_step(w, x, ldx, b + 3, a, 3, R, q4);
    }
    if (b < nb) block_step(w, x, ldx, b, a, 0, R, q4);
    if (b + 1 < nb) block_step(w, x, ldx, b + 1, a, 1, R, q4);
    if (b + 2 < nb) block_step(w, x, ldx, b + 2, a, 2, R, q4);
    for (int r = 0; r < R; r++)
        out[r] = _mm512_reduce_add_ps(
            _mm512_add_ps(_mm512_add_ps(a[r][0], a[r][1]), _mm512_add_ps(a[r][2], a[r][3])));
}

float kernel_avx512_dot_q8_0_f32(const kernel_block_q8_0 *w, const float *x, int nb) {
    float out;
    blocks_group(w, x, 0, nb, &out, 1, 0);
    return out;
}

float kernel_avx512_dot_q4_0_f32(const kernel_block_q4_0 *w, const float *x, int nb) {
    float out;
    blocks_group(w, x, 0, nb, &out, 1, 1);
    return out;
}

void kernel_avx512_dot_q8_0_f32_rows(const kernel_block_q8_0 *w, const float *x, size_t ldx,
                                     int rows, int nb, float *out) {
#define Q8_GROUP(R) blocks_group(w, x + r * ldx, ldx, nb, out + r, R, 0)
    ROWS_IN_GROUPS(Q8_GROUP)
#undef Q8_GROUP
}

void kernel_avx512_dot_q4_0_f32_rows(const kernel_block_q4_0 *w, const float *x, size_t ldx,
                                     int rows, int nb, float *out) {
#define Q4_GROUP(R) blocks_group(w, x + r * ldx, ldx, nb, out + r, R, 1)
    ROWS_IN_GROUPS(Q4_GROUP)
#undef Q4_GROUP
}

#include "vec_avx512_int8.h"

const kernel_isa_table kernel_table_avx512 = {
    .name = "avx512",
    .dot_f16 = kernel_avx512_dot_f16,
    .dot_bf16 = kernel_avx512_dot_bf16,
    .dot_q8_0 = dot_q8_0,
    .dot_q4_0 = dot_q4_0,
    .dot_q8_0_f32 = kernel_avx512_dot_q8_0_f32,
    .dot_q4_0_f32 = kernel_avx512_dot_q4_0_f32,
    .dot_f32 = kernel_avx512_dot_f32,
    .dot_f32_rows = kernel_avx512_dot_f32_rows,
    .dot_f32_tile = kernel_avx512_dot_f32_tile,
    .dot_f16_rows = kernel_avx512_dot_f16_rows,
    .dot_bf16_rows = kernel_avx512_dot_bf16_rows,
    .dot_q8_0_f32_rows = kernel_avx512_dot_q8_0_f32_rows,
    .dot_q4_0_f32_rows = kernel_avx512_dot_q4_0_f32_rows,
    .axpy_rows_f32 = kernel_avx512_axpy_rows_f32,
    .f16_to_f32 = kernel_avx512_f16_to_f32,
    .f32_to_f16 = kernel_avx512_f32_to_f16,
};
