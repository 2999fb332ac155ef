/* kernels_reference.c — independent references for the kernel layer's number formats, written
 * for clarity, not speed (see kernels_reference.h). Nothing here uses src/kernels/. */
#include "kernels_reference.h"

#include <math.h>
#include <string.h>

/* A binary float with `ebits` exponent bits and `mbits` mantissa bits, in double. */
static double decode(uint32_t bits, int ebits, int mbits) {
    int bias = (1 << (ebits - 1)) - 1;
    uint32_t sign = bits >> (ebits + mbits) & 1;
    uint32_t e = bits >> mbits & ((1u << ebits) - 1);
    uint32_t m = bits & ((1u << mbits) - 1);
    double v;
    if (e == (1u << ebits) - 1)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, 1 - bias - mbits); /* subnormal: 0.m * 2^(1 - bias) */
    else
        v = ldexp((double)(m | 1u << mbits), (int)e - bias - mbits);
    return sign ? -v : v;
}

double ref_f16_value(uint16_t h) {
    return decode(h, 5, 10);
}

double ref_bf16_value(uint16_t h) {
    return decode(h, 8, 7);
}

/* Positive patterns 0 .. inf_bits are ordered like their values. Find the nearest to |x| by
 * bisection, treating inf_bits as the next value after the largest finite one (inf_value: the
 * value the pattern would have with an unbounded exponent), so overflow rounds as IEEE says. */
static uint16_t nearest(double ax, uint16_t inf_bits, double inf_value, double (*value)(uint16_t)) {
    if (ax >= inf_value) return inf_bits;
    uint16_t lo = 0, hi = inf_bits; /* value(lo) <= ax < value(hi) */
    while (hi - lo > 1) {
        uint16_t mid = (uint16_t)((lo + hi) / 2);
        double v = mid == inf_bits ? inf_value : value(mid);
        if (v <= ax)
            lo = mid;
        else
            hi = mid;
    }
    double vlo = value(lo), vhi = hi == inf_bits ? inf_value : value(hi);
    if (ax - vlo < vhi - ax) return lo;
    if (ax - vlo > vhi - ax) return hi;
    return (lo & 1) ? hi : lo;
}

uint16_t ref_f16_bits(float x) {
    uint16_t s = signbit(x) ? 0x8000 : 0;
    return (uint16_t)(s | nearest(fabs((double)x), 0x7C00, 65536.0, ref_f16_value));
}

uint16_t ref_bf16_bits(float x) {
    uint16_t s = signbit(x) ? 0x8000 : 0;
    return (uint16_t)(s | nearest(fabs((double)x), 0x7F80, ldexp(1.0, 128), ref_bf16_value));
}

static void put_f16(uint8_t *p, uint16_t h) {
    p[0] = (uint8_t)(h & 0xFF);
    p[1] = (uint8_t)(h >> 8);
}

static uint16_t get_f16(const uint8_t *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}

/* ggml's quantize_row_q8_0_ref: d = max|x| / 127 (F32), q = roundf(x * (1 / d)). */
void ref_quantize_q8_0(const float *x, uint8_t *out, size_t n) {
    for (size_t b = 0; b < n / 32; b++, x += 32, out += 34) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]);
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(out, ref_f16_bits(d));
        for (int j = 0; j < 32; j++) out[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

/* ggml's quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8, code =
 * min(15, trunc(x / d + 8.5)); value j < 16 in the low nibble of byte j, j >= 16 in the high
 * nibble of byte j - 16. */
void ref_quantize_q4_0(const float *x, uint8_t *out, size_t n) {
    for (size_t b = 0; b < n / 32; b++, x += 32, out += 18) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(out, ref_f16_bits(d));
        int code[32];
        for (int j = 0; j < 32; j++) {
            int c = (int)truncf(x[j] * id + 8.5f);
            code[j] = c > 15 ? 15 : c;
        }
        for (int j = 0; j < 16; j++) out[2 + j] = (uint8_t)(code[j] | code[j + 16] << 4);
    }
}

void ref_dequantize_q8_0(const uint8_t *in, double *y, size_t n) {
    for (size_t b = 0; b < n / 32; b++, in += 34, y += 32) {
        double d = ref_f16_value(get_f16(in));
        for (int j = 0; j < 32; j++) y[j] = d * (int8_t)in[2 + j];
    }
}

void ref_dequantize_q4_0(const uint8_t *in, double *y, size_t n) {
    for (size_t b = 0; b < n / 32; b++, in += 18, y += 32) {
        double d = ref_f16_value(get_f16(in));
        for (int j = 0; j < 16; j++) {
            y[j] = d * ((in[2 + j] & 15) - 8);
            y[j + 16] = d * ((in[2 + j] >> 4) - 8);
        }
    }
}
