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

float kernel_avx512_dot_f16(const uint16_t *w, const float *x, int K) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + k))),
                             _mm512_loadu_ps(x + k), a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + k + 16))),
                             _mm512_loadu_ps(x + k + 16), a1);
    }
    for (; k + 16 <= K; k += 16)
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + k))),
                             _mm512_loadu_ps(x + k), a0);
    if (k < K) {
        __mmask16 m = tail_mask(K - k);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + k)),
                             _mm512_maskz_loadu_ps(m, x + k), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

/* 16 BF16 values (a 256-bit load) to F32. */
static inline __m512 bf16x16(__m256i v) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

float kernel_avx512_dot_bf16(const uint16_t *w, const float *x, int K) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        a0 = _mm512_fmadd_ps(bf16x16(_mm256_loadu_si256((const __m256i *)(w + k))),
                             _mm512_loadu_ps(x + k), a0);
        a1 = _mm512_fmadd_ps(bf16x16(_mm256_loadu_si256((const __m256i *)(w + k + 16))),
                             _mm512_loadu_ps(x + k + 16), a1);
    }
    for (; k + 16 <= K; k += 16)
        a0 = _mm512_fmadd_ps(bf16x16(_mm256_loadu_si256((const __m256i *)(w + k))),
                             _mm512_loadu_ps(x + k), a0);
    if (k < K) {
        __mmask16 m = tail_mask(K - k);
        a1 = _mm512_fmadd_ps(bf16x16(_mm256_maskz_loadu_epi16(m, w + k)),
                             _mm512_maskz_loadu_ps(m, x + k), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
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
    int r = 0;
    for (; r + 4 <= rows; r += 4) dot_f32_group(w, x + r * ldx, ldx, K, out + r, 4);
    switch (rows - r) {
    case 3:
        dot_f32_group(w, x + r * ldx, ldx, K, out + r, 3);
        break;
    case 2:
        dot_f32_group(w, x + r * ldx, ldx, K, out + r, 2);
        break;
    case 1:
        dot_f32_group(w, x + r * ldx, ldx, K, out + r, 1);
        break;
    default:
        break;
    }
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
    int r = 0;
    for (; r + 4 <= rows; r += 4) axpy_group(y + r * ldy, ldy, x + r * ldx, ldx, W, kn, ldw, n, 4);
    switch (rows - r) {
    case 3:
        axpy_group(y + r * ldy, ldy, x + r * ldx, ldx, W, kn, ldw, n, 3);
        break;
    case 2:
        axpy_group(y + r * ldy, ldy, x + r * ldx, ldx, W, kn, ldw, n, 2);
        break;
    case 1:
        axpy_group(y + r * ldy, ldy, x + r * ldx, ldx, W, kn, ldw, n, 1);
        break;
    default:
        break;
    }
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

/* Q8_0 / Q4_0 rows against F32 activations (kernels_internal.h): a block's 32 values widened
 * to F32 in two vectors of 16 and multiplied by x; then d times that into one of four
 * accumulators (block b into b mod 4: the FMA chains overlap, and the sum order is fixed). */
static inline __m512 q8_block(const kernel_block_q8_0 *w, const float *xb) {
    __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)w->qs)));
    __m512 hi =
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(w->qs + 16))));
    __m512 p =
        _mm512_fmadd_ps(hi, _mm512_loadu_ps(xb + 16), _mm512_mul_ps(lo, _mm512_loadu_ps(xb)));
    return _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(w->d)), p);
}

static inline __m512 q4_block(const kernel_block_q4_0 *w, const float *xb) {
    const __m512i low4 = _mm512_set1_epi32(0x0F), eight = _mm512_set1_epi32(8);
    __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)w->qs));
    __m512 lo = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(v, low4), eight));
    __m512 hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight));
    __m512 p =
        _mm512_fmadd_ps(hi, _mm512_loadu_ps(xb + 16), _mm512_mul_ps(lo, _mm512_loadu_ps(xb)));
    return _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(w->d)), p);
}

#define DOT_BLOCKS_F32(block_fn)                                                                   \
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                    \
    int b = 0;                                                                                     \
    for (; b + 4 <= nb; b += 4) {                                                                  \
        const float *xb = x + (size_t)b * KERNEL_QK;                                               \
        a0 = _mm512_add_ps(a0, block_fn(w + b, xb));                                               \
        a1 = _mm512_add_ps(a1, block_fn(w + b + 1, xb + KERNEL_QK));                               \
        a2 = _mm512_add_ps(a2, block_fn(w + b + 2, xb + 2 * KERNEL_QK));                           \
        a3 = _mm512_add_ps(a3, block_fn(w + b + 3, xb + 3 * KERNEL_QK));                           \
    }                                                                                              \
    if (b < nb) a0 = _mm512_add_ps(a0, block_fn(w + b, x + (size_t)b * KERNEL_QK));                \
    if (b + 1 < nb) a1 = _mm512_add_ps(a1, block_fn(w + b + 1, x + (size_t)(b + 1) * KERNEL_QK));  \
    if (b + 2 < nb) a2 = _mm512_add_ps(a2, block_fn(w + b + 2, x + (size_t)(b + 2) * KERNEL_QK));  \
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)))

/* A Q8_0 row against R activation rows at once: each block widened once, then for every row
 * exactly q8_block's operations into accumulator (block mod 4), and DOT_BLOCKS_F32's final tree:
 * out[r] is bit for bit kernel_avx512_dot_q8_0_f32(w, x + r * ldx, nb). */
static inline __attribute__((always_inline)) void q8_0_group(const kernel_block_q8_0 *w,
                                                             const float *x, size_t ldx, int nb,
                                                             float *out, const int R) {
    __m512 a[4][4];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < 4; j++) a[r][j] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const kernel_block_q8_0 *wb = w + b;
        __m512 lo =
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)wb->qs)));
        __m512 hi = _mm512_cvtepi32_ps(
            _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(wb->qs + 16))));
        __m512 d = _mm512_set1_ps(_cvtsh_ss(wb->d));
        int j = b & 3;
        for (int r = 0; r < R; r++) {
            const float *xb = x + r * ldx + (size_t)b * KERNEL_QK;
            __m512 p = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xb + 16),
                                       _mm512_mul_ps(lo, _mm512_loadu_ps(xb)));
            a[r][j] = _mm512_add_ps(a[r][j], _mm512_mul_ps(d, p));
        }
    }
    for (int r = 0; r < R; r++)
        out[r] = _mm512_reduce_add_ps(
            _mm512_add_ps(_mm512_add_ps(a[r][0], a[r][1]), _mm512_add_ps(a[r][2], a[r][3])));
}

float kernel_avx512_dot_q8_0_f32(const kernel_block_q8_0 *w, const float *x, int nb) {
    float out;
    q8_0_group(w, x, 0, nb, &out, 1);
    return out;
}

void kernel_avx512_dot_q8_0_f32_rows(const kernel_block_q8_0 *w, const float *x, size_t ldx,
                                     int rows, int nb, float *out) {
    int r = 0;
    for (; r + 4 <= rows; r += 4) q8_0_group(w, x + r * ldx, ldx, nb, out + r, 4);
    switch (rows - r) {
    case 3:
        q8_0_group(w, x + r * ldx, ldx, nb, out + r, 3);
        break;
    case 2:
        q8_0_group(w, x + r * ldx, ldx, nb, out + r, 2);
        break;
    case 1:
        q8_0_group(w, x + r * ldx, ldx, nb, out + r, 1);
        break;
    default:
        break;
    }
}

float kernel_avx512_dot_q4_0_f32(const kernel_block_q4_0 *w, const float *x, int nb) {
    DOT_BLOCKS_F32(q4_block);
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
    .dot_q8_0_f32_rows = kernel_avx512_dot_q8_0_f32_rows,
    .axpy_rows_f32 = kernel_avx512_axpy_rows_f32,
    .f16_to_f32 = kernel_avx512_f16_to_f32,
    .f32_to_f16 = kernel_avx512_f32_to_f16,
};
