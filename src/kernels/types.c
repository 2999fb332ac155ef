/* types.c — TEMPORARY portable weight types for branch i11-model; replaced by branch i11-types'
 * types.c at merge (same interface, kernels.h). */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "linshard/kernels.h"

float kernel_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0) {
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    if (exp == 31)
        bits = sign | 0x7F800000u | (man << 13);
    else
        bits = sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kernel_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    float a = fabsf(f);
    if (isnan(f)) return (uint16_t)(sign | 0x7E00);
    if (a >= 65520.0f) return (uint16_t)(sign | 0x7C00);
    if (a < 6.103515625e-05f) { /* subnormal: multiples of 2^-24, round to nearest even */
        float q = a * 16777216.0f;
        return (uint16_t)(sign | (uint32_t)nearbyintf(q));
    }
    uint32_t ax = x & 0x7FFFFFFF;
    uint32_t r = ax + 0xFFF + ((ax >> 13) & 1);
    return (uint16_t)(sign | ((r - (112u << 23)) >> 13));
}

float kernel_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kernel_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if (isnan(f)) return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7FFF + ((x >> 16) & 1)) >> 16);
}

static void f32_to(const void *s, float *d, size_t n) {
    memcpy(d, s, n * 4);
}
static void f32_from(const float *s, void *d, size_t n) {
    memcpy(d, s, n * 4);
}
static void f16_to(const void *s, float *d, size_t n) {
    const uint16_t *h = s;
    for (size_t i = 0; i < n; i++) d[i] = kernel_f16_to_f32(h[i]);
}
static void f16_from(const float *s, void *d, size_t n) {
    uint16_t *h = d;
    for (size_t i = 0; i < n; i++) h[i] = kernel_f32_to_f16(s[i]);
}
static void bf16_to(const void *s, float *d, size_t n) {
    const uint16_t *h = s;
    for (size_t i = 0; i < n; i++) d[i] = kernel_bf16_to_f32(h[i]);
}
static void bf16_from(const float *s, void *d, size_t n) {
    uint16_t *h = d;
    for (size_t i = 0; i < n; i++) h[i] = kernel_f32_to_bf16(s[i]);
}
static void q8_to(const void *s, float *d, size_t n) {
    const uint8_t *b = s;
    for (size_t i = 0; i < n / 32; i++, b += 34) {
        uint16_t h;
        memcpy(&h, b, 2);
        float sc = kernel_f16_to_f32(h);
        for (int j = 0; j < 32; j++) d[i * 32 + j] = sc * (float)(int8_t)b[2 + j];
    }
}
static void q8_from(const float *s, void *d, size_t n) {
    uint8_t *b = d;
    for (size_t i = 0; i < n / 32; i++, b += 34) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(s[i * 32 + j]));
        float sc = amax / 127.0f, id = sc ? 1.0f / sc : 0.0f;
        uint16_t h = kernel_f32_to_f16(sc);
        memcpy(b, &h, 2);
        for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)roundf(s[i * 32 + j] * id);
    }
}
static void q4_to(const void *s, float *d, size_t n) {
    const uint8_t *b = s;
    for (size_t i = 0; i < n / 32; i++, b += 18) {
        uint16_t h;
        memcpy(&h, b, 2);
        float sc = kernel_f16_to_f32(h);
        for (int j = 0; j < 16; j++) {
            d[i * 32 + j] = sc * (float)((b[2 + j] & 15) - 8);
            d[i * 32 + j + 16] = sc * (float)((b[2 + j] >> 4) - 8);
        }
    }
}
static void q4_from(const float *s, void *d, size_t n) {
    uint8_t *b = d;
    for (size_t i = 0; i < n / 32; i++, b += 18) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(s[i * 32 + j]) > amax) {
                amax = fabsf(s[i * 32 + j]);
                max = s[i * 32 + j];
            }
        float sc = max / -8.0f, id = sc ? 1.0f / sc : 0.0f;
        uint16_t h = kernel_f32_to_f16(sc);
        memcpy(b, &h, 2);
        for (int j = 0; j < 16; j++) {
            int a = (int)(int8_t)(s[i * 32 + j] * id + 8.5f),
                c = (int)(int8_t)(s[i * 32 + j + 16] * id + 8.5f);
            a = a > 15 ? 15 : a;
            c = c > 15 ? 15 : c;
            b[2 + j] = (uint8_t)(a | (c << 4));
        }
    }
}

static const kernel_type_traits traits[KERNEL_TYPE_COUNT] = {
    {"f32", 1, 4, f32_to, f32_from},    {"f16", 1, 2, f16_to, f16_from},
    {"bf16", 1, 2, bf16_to, bf16_from}, {"q8_0", 32, 34, q8_to, q8_from},
    {"q4_0", 32, 18, q4_to, q4_from},
};

const kernel_type_traits *kernel_type_info(kernel_type t) {
    return (unsigned)t < KERNEL_TYPE_COUNT ? &traits[t] : NULL;
}

int kernel_type_from_name(const char *s) {
    for (int t = 0; t < KERNEL_TYPE_COUNT; t++)
        if (!strcasecmp(s, traits[t].name)) return t;
    return -1;
}

size_t kernel_row_bytes(kernel_type t, size_t n) {
    const kernel_type_traits *tr = kernel_type_info(t);
    if (!tr || n % (size_t)tr->block) return 0;
    return n / (size_t)tr->block * tr->block_bytes;
}
