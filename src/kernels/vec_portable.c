/* vec_portable.c — the typed dot products in plain C: any CPU (ARM included), and the
 * behaviour the x86 builds (vec_avx2.c, vec_avx512.c) must reproduce up to F32 rounding.
 *
 * Each returns the dot product of one weight row with one activation row (kernels_internal.h):
 * F16/BF16 weights against F32 activations, summed in F32 over 8 interleaved partial sums (so
 * the compiler may keep them in vector registers); Q8_0/Q4_0 weights against the activation
 * quantised to Q8_0, an int32 sum per block scaled by both blocks' F16 scales, F32 across
 * blocks. */
#include "kernels_internal.h"

static float dot_f16(const uint16_t *w, const float *x, int K) {
    float s[8] = {0};
    int k = 0;
    for (; k + 8 <= K; k += 8)
        for (int j = 0; j < 8; j++) s[j] += kernel_f16_bits_to_f32_inline(w[k + j]) * x[k + j];
    for (; k < K; k++) s[0] += kernel_f16_bits_to_f32_inline(w[k]) * x[k];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static float bf16_bits(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float dot_bf16(const uint16_t *w, const float *x, int K) {
    float s[8] = {0};
    int k = 0;
    for (; k + 8 <= K; k += 8)
        for (int j = 0; j < 8; j++) s[j] += bf16_bits(w[k + j]) * x[k + j];
    for (; k < K; k++) s[0] += bf16_bits(w[k]) * x[k];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static float dot_q8_0(const kernel_block_q8_0 *w, const kernel_block_q8_0 *x, int nb) {
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int j = 0; j < KERNEL_QK; j++) isum += (int32_t)w[b].qs[j] * x[b].qs[j];
        sum += (float)isum *
               (kernel_f16_bits_to_f32_inline(w[b].d) * kernel_f16_bits_to_f32_inline(x[b].d));
    }
    return sum;
}

static float dot_q4_0(const kernel_block_q4_0 *w, const kernel_block_q8_0 *x, int nb) {
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
        int8_t v[KERNEL_QK]; /* the block's values, nibble - 8, in GGUF's order */
        for (int j = 0; j < KERNEL_QK / 2; j++) {
            v[j] = (int8_t)((w[b].qs[j] & 0x0F) - 8);
            v[j + KERNEL_QK / 2] = (int8_t)((w[b].qs[j] >> 4) - 8);
        }
        int32_t isum = 0;
        for (int j = 0; j < KERNEL_QK; j++) isum += (int32_t)v[j] * x[b].qs[j];
        sum += (float)isum *
               (kernel_f16_bits_to_f32_inline(w[b].d) * kernel_f16_bits_to_f32_inline(x[b].d));
    }
    return sum;
}

/* F32 activations: within a block, products summed in 8 lanes (k mod 8; a compiler vectorises
 * the lanes), then d times the block's sum. */
static float dot_q8_0_f32(const kernel_block_q8_0 *w, const float *x, int nb) {
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
        const float *xb = x + (size_t)b * KERNEL_QK;
        float s[8] = {0};
        for (int j0 = 0; j0 < KERNEL_QK; j0 += 8)
            for (int l = 0; l < 8; l++) s[l] += (float)w[b].qs[j0 + l] * xb[j0 + l];
        float bs = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        sum += kernel_f16_bits_to_f32_inline(w[b].d) * bs;
    }
    return sum;
}

static float dot_q4_0_f32(const kernel_block_q4_0 *w, const float *x, int nb) {
    float sum = 0.0f;
    for (int b = 0; b < nb; b++) {
        const float *xb = x + b * KERNEL_QK;
        float v[KERNEL_QK], s[8] = {0};
        for (int j = 0; j < KERNEL_QK / 2; j++) {
            v[j] = (float)((w[b].qs[j] & 0x0F) - 8);
            v[j + KERNEL_QK / 2] = (float)((w[b].qs[j] >> 4) - 8);
        }
        for (int j0 = 0; j0 < KERNEL_QK; j0 += 8)
            for (int l = 0; l < 8; l++) s[l] += v[j0 + l] * xb[j0 + l];
        float bs = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        sum += kernel_f16_bits_to_f32_inline(w[b].d) * bs;
    }
    return sum;
}

/* F32 rows (kernel_matmul_rows): 8 interleaved partial sums, as dot_f16. */
static float dot_f32(const float *w, const float *x, int K) {
    float s[8] = {0};
    int k = 0;
    for (; k + 8 <= K; k += 8)
        for (int j = 0; j < 8; j++) s[j] += w[k + j] * x[k + j];
    for (; k < K; k++) s[0] += w[k] * x[k];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* y += x[k] * W[k] for k ascending: the same expression for every element, so whether the
 * compiler vectorises an element or leaves it to a scalar remainder (or contracts the expression
 * to a fused multiply-add, as clang does on ARM) is the same for every row of a batch. */
static void axpy_row_f32(float *y, const float *x, const float *W, int kn, size_t ldw, int n) {
    for (int k = 0; k < kn; k++) {
        const float *w = W + (size_t)k * ldw;
        float a = x[k];
        for (int j = 0; j < n; j++) y[j] += a * w[j];
    }
}

/* The table's F32 [K][N] row accumulation, one row at a time (the batched dot products are
 * left NULL: matmul.c then runs the one-row products row by row). */
static void axpy_rows_f32(float *y, size_t ldy, const float *x, size_t ldx, int rows,
                          const float *W, int kn, size_t ldw, int n) {
    for (int r = 0; r < rows; r++)
        axpy_row_f32(y + (size_t)r * ldy, x + (size_t)r * ldx, W, kn, ldw, n);
}

const kernel_isa_table kernel_table_portable = {
    .name = "portable",
    .dot_f16 = dot_f16,
    .dot_bf16 = dot_bf16,
    .dot_q8_0 = dot_q8_0,
    .dot_q4_0 = dot_q4_0,
    .dot_q8_0_f32 = dot_q8_0_f32,
    .dot_q4_0_f32 = dot_q4_0_f32,
    .dot_f32 = dot_f32,
    .axpy_rows_f32 = axpy_rows_f32,
    .f16_to_f32 = kernel_f16_row_to_f32,
    .f32_to_f16 = kernel_f32_row_to_f16,
};
