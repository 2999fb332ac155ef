/* types.c — the weight types: the traits table of kernels.h, the F16/BF16 scalar conversions,
 * and every type's row conversions to and from F32 (portable C, the reference for the per-ISA
 * kernels).
 *
 * Q8_0 and Q4_0 are GGUF's block formats and their quantisers reproduce ggml's reference
 * quantisers (quantize_row_q8_0_ref / quantize_row_q4_0_ref in ggml-quants.c) bit for bit, so a
 * file linshard writes equals what llama.cpp would write from the same F32 values:
 *   Q8_0: amax = max |x|; d = amax / 127; id = d ? 1 / d : 0; q = roundf(x * id) (ties away);
 *   Q4_0: max = the value of largest magnitude (first one on ties), d = max / -8,
 *         id = d ? 1 / d : 0; q = min(15, (int8)(x * id + 8.5)) (truncation);
 * in both, the scale is stored as F16 (round to nearest even) but quantising uses the F32 d. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernels_internal.h"

/* ---- F16 and BF16 scalars ------------------------------------------------------------------- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float kernel_f16_to_f32(uint16_t h) {
    return kernel_f16_bits_to_f32_inline(h);
}

/* binary32 -> binary16, round to nearest even. Overflow (>= 65520) gives Inf, values below half
 * the smallest subnormal (2^-25) give 0, NaN stays a quiet NaN (top payload bits kept). */
uint16_t kernel_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7FFFFFFF;
    if (ax > 0x7F800000) return (uint16_t)(sign | 0x7E00 | ((ax >> 13) & 0x3FF));
    if (ax >= 0x477FF000) return (uint16_t)(sign | 0x7C00); /* >= 65520 (or Inf) */
    if (ax >= 0x38800000) {                                 /* >= 2^-14: a normal F16 */
        uint32_t h = (ax >> 13) - (112u << 10);             /* rebias the exponent 127 -> 15 */
        uint32_t rem = ax & 0x1FFF;                         /* the 13 bits dropped */
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
            h++; /* a carry into the exponent is right */
        return (uint16_t)(sign | h);
    }
    /* subnormal F16 (or 0): q = value / 2^-24 rounded; value = m * 2^(e - 150) */
    uint32_t e = ax >> 23;
    if (e < 102) return sign; /* < 2^-25 (F32 subnormals included): rounds to 0 */
    uint32_t m = (ax & 0x7FFFFF) | 0x800000;
    uint32_t s = 126 - e; /* 14..24 */
    uint32_t q = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);
    if (rem > half || (rem == half && (q & 1))) q++; /* q = 0x400 is the smallest normal: right */
    return (uint16_t)(sign | q);
}

float kernel_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

/* binary32 -> bfloat16 (the top 16 bits), round to nearest even; NaN stays a quiet NaN (a NaN
 * whose payload lies in the low bits must not round to Inf). */
uint16_t kernel_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7FFF + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---- rows ------------------------------------------------------------------------------------ */

static void f32_to_f32(const void *src, float *dst, size_t n) {
    memcpy(dst, src, n * sizeof(float));
}

static void f32_from_f32(const float *src, void *dst, size_t n) {
    memcpy(dst, src, n * sizeof(float));
}

void kernel_f16_row_to_f32(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = kernel_f16_bits_to_f32_inline(src[i]);
}

void kernel_f32_row_to_f16(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = kernel_f32_to_f16(src[i]);
}

/* F16 rows through the active ISA's conversions (F16C's vcvtph2ps / vcvtps2ph where present:
 * loading an F16 model converts every weight twice, 10x slower one value at a time). */
static void f16_to_f32(const void *src, float *dst, size_t n) {
    kernel_active_table()->f16_to_f32(src, dst, n);
}

static void f16_from_f32(const float *src, void *dst, size_t n) {
    kernel_active_table()->f32_to_f16(src, dst, n);
}

static void bf16_to_f32(const void *src, float *dst, size_t n) {
    const uint16_t *h = src;
    for (size_t i = 0; i < n; i++) dst[i] = bits_f32((uint32_t)h[i] << 16);
}

static void bf16_from_f32(const float *src, void *dst, size_t n) {
    uint16_t *h = dst;
    for (size_t i = 0; i < n; i++) h[i] = kernel_f32_to_bf16(src[i]);
}

/* ggml's roundf(x) into int8. x lies in [-127.5, 127.5] for finite input (|x * id| <= ~127);
 * a NaN (only from NaN input, undefined in ggml) gives 0 rather than undefined behaviour. */
static int8_t round_to_i8(float x) {
    if (!(x == x)) return 0;
    return (int8_t)roundf(x);
}

static void q8_0_from_f32(const float *src, void *dst, size_t n) {
    kernel_block_q8_0 *y = dst;
    for (size_t b = 0; b < n / KERNEL_QK; b++) {
        const float *x = src + b * KERNEL_QK;
        float amax = 0.0f;
        for (int j = 0; j < KERNEL_QK; j++) {
            float a = fabsf(x[j]);
            amax = amax > a ? amax : a; /* ggml's MAX(amax, |x|) */
        }
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = kernel_f32_to_f16(d);
        for (int j = 0; j < KERNEL_QK; j++) y[b].qs[j] = round_to_i8(x[j] * id);
    }
}

static void q8_0_to_f32(const void *src, float *dst, size_t n) {
    const kernel_block_q8_0 *x = src;
    for (size_t b = 0; b < n / KERNEL_QK; b++) {
        const float d = kernel_f16_bits_to_f32_inline(x[b].d);
        for (int j = 0; j < KERNEL_QK; j++) dst[b * KERNEL_QK + j] = x[b].qs[j] * d;
    }
}

/* (int8)(x * id + 8.5) capped at 15. For finite input x * id lies in [-8, 8], so the sum is in
 * [0.5, 16.5] and the conversion truncates; NaN gives 8 (the zero code) instead of UB. */
static uint8_t q4_code(float x) {
    float v = x + 8.5f;
    if (!(v == v)) return 8;
    int8_t i = (int8_t)v;
    return (uint8_t)(i < 15 ? i : 15);
}

static void q4_0_from_f32(const float *src, void *dst, size_t n) {
    kernel_block_q4_0 *y = dst;
    for (size_t b = 0; b < n / KERNEL_QK; b++) {
        const float *x = src + b * KERNEL_QK;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < KERNEL_QK; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = kernel_f32_to_f16(d);
        for (int j = 0; j < KERNEL_QK / 2; j++) {
            uint8_t lo = q4_code(x[j] * id), hi = q4_code(x[KERNEL_QK / 2 + j] * id);
            y[b].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

static void q4_0_to_f32(const void *src, float *dst, size_t n) {
    const kernel_block_q4_0 *x = src;
    for (size_t b = 0; b < n / KERNEL_QK; b++) {
        const float d = kernel_f16_bits_to_f32_inline(x[b].d);
        float *y = dst + b * KERNEL_QK;
        for (int j = 0; j < KERNEL_QK / 2; j++) {
            y[j] = ((x[b].qs[j] & 0x0F) - 8) * d;
            y[j + KERNEL_QK / 2] = ((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

/* ---- the table ------------------------------------------------------------------------------- */

static const kernel_type_traits traits[KERNEL_TYPE_COUNT] = {
    [KERNEL_F32] = {"f32", 1, 4, f32_to_f32, f32_from_f32},
    [KERNEL_F16] = {"f16", 1, 2, f16_to_f32, f16_from_f32},
    [KERNEL_BF16] = {"bf16", 1, 2, bf16_to_f32, bf16_from_f32},
    [KERNEL_Q8_0] = {"q8_0", KERNEL_QK, sizeof(kernel_block_q8_0), q8_0_to_f32, q8_0_from_f32},
    [KERNEL_Q4_0] = {"q4_0", KERNEL_QK, sizeof(kernel_block_q4_0), q4_0_to_f32, q4_0_from_f32},
};

const kernel_type_traits *kernel_type_info(kernel_type t) {
    if ((int)t < 0 || t >= KERNEL_TYPE_COUNT) return NULL;
    return &traits[t];
}

int kernel_type_from_name(const char *s) {
    if (!s) return -1;
    for (int t = 0; t < KERNEL_TYPE_COUNT; t++)
        if (strcasecmp(s, traits[t].name) == 0) return t;
    return -1;
}

size_t kernel_row_bytes(kernel_type t, size_t n) {
    const kernel_type_traits *tr = kernel_type_info(t);
    if (!tr || n % (size_t)tr->block != 0) return 0;
    return n / (size_t)tr->block * tr->block_bytes;
}
