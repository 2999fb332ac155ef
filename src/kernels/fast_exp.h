/* fast_exp.h — exp(x) in float32 that the compiler can vectorise.
 *
 * GELU and softmax call exp once per activation: with libm's scalar expf/tanhf they took a
 * fifth of GPT-2's forward time. This is the classic Cephes expf — x = n ln2 + r with |r| <=
 * ln2/2, a degree-6 polynomial for exp(r), 2^n put into the exponent bits — written branch-free
 * so that a loop over it vectorises where the target has a vector floor (SSE4.1 up: not the
 * default x86-64 build, whose vector forms are exp8/exp16 in elementwise_avx2.c and
 * elementwise_avx512.c, the same polynomial with FMA). Relative error <= 2e-7 (test_gpt2.c
 * checks it against double-precision exp over [-87, 88]); inputs are clamped to that range, so
 * it never returns Inf or 0 for finite x; a NaN comes back as NaN. */
#ifndef LINSHARD_FAST_EXP_H
#define LINSHARD_FAST_EXP_H

#include <stdint.h>
#include <string.h>

static inline float fast_expf(float x_in) {
    /* A NaN is computed as 0 (converting a NaN to an integer below would be undefined
     * behaviour) and returned as itself, so NaN still propagates. */
    float x = x_in == x_in ? x_in : 0.0f;
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f; /* ln 2 split in two for precision */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return x_in == x_in ? p * scale : x_in;
}

#endif
