/* kernels_reference.h — straightforward references for test_kernels.c: the F16/BF16 encodings
 * decoded in double and encoded by searching the list of representable values, and GGUF's
 * Q8_0/Q4_0 blocks built byte by byte as ggml's reference quantisers describe them. */
#ifndef LINSHARD_KERNELS_REFERENCE_H
#define LINSHARD_KERNELS_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

/* The value of F16 / BF16 bits (Inf and NaN as double Inf and NaN). */
double ref_f16_value(uint16_t h);
double ref_bf16_value(uint16_t h);
/* The F16 / BF16 bits nearest x, ties to the even pattern; NaN not allowed (the caller checks). */
uint16_t ref_f16_bits(float x);
uint16_t ref_bf16_bits(float x);

/* n values (a multiple of 32) to Q8_0 / Q4_0 blocks (34 / 18 bytes each, little endian), and
 * back to double. */
void ref_quantize_q8_0(const float *x, uint8_t *out, size_t n);
void ref_quantize_q4_0(const float *x, uint8_t *out, size_t n);
void ref_dequantize_q8_0(const uint8_t *in, double *y, size_t n);
void ref_dequantize_q4_0(const uint8_t *in, double *y, size_t n);

#endif
