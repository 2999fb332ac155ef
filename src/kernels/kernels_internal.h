/* kernels_internal.h — what the files of src/kernels/ share, and the entry points the tests and
 * the kernel benchmark use to pin an instruction set or a product path. Not installed.
 *
 * The typed kernels exist in up to four builds (portable C; AVX2+FMA+F16C; AVX-512 F/BW/VL/DQ;
 * AVX-512 with VNNI), each a table of function pointers (kernel_isa_table). isa.c picks one
 * table once, from cpuid and LINSHARD_KERNELS; matmul.c calls through it. Every function here is
 * static inline or lives in one file: a per-ISA file is compiled with its own -m flags, and an
 * out-of-line copy of a shared helper built with AVX-512 must never be what a portable caller
 * links to. */
#ifndef LINSHARD_KERNELS_INTERNAL_H
#define LINSHARD_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "linshard/kernels.h"

/* GGUF's blocks (see kernels.h): alignment 2, no padding (34 and 18 bytes). */
typedef struct {
    uint16_t d;           /* F16 scale */
    int8_t qs[KERNEL_QK]; /* value i = d * qs[i] */
} kernel_block_q8_0;

typedef struct {
    uint16_t d;                /* F16 scale */
    uint8_t qs[KERNEL_QK / 2]; /* nibble i: qs[i] & 15 (i < 16), qs[i - 16] >> 4 (i >= 16) */
} kernel_block_q4_0;

_Static_assert(sizeof(kernel_block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(kernel_block_q4_0) == 18, "Q4_0 block is 18 bytes");

/* Instruction-set levels, lowest first. */
typedef enum {
    KERNEL_ISA_PORTABLE = 0,
    KERNEL_ISA_AVX2 = 1,
    KERNEL_ISA_AVX512 = 2,
    KERNEL_ISA_AVX512_VNNI = 3,
    KERNEL_ISA_COUNT
} kernel_isa_level;

/* One build of the typed kernels. A dot product reads one weight row (K values: K F16/BF16
 * values, or nb = K / 32 blocks) against one activation row (F32, or Q8_0 blocks quantised by
 * kernel_type_info(KERNEL_Q8_0)->from_f32) and returns the F32 sum. The int8 products sum in
 * int32 within a block (at most 32 * 128 * 127 in magnitude: no overflow), F32 across blocks. */
typedef struct {
    const char *name; /* kernel_isa()'s answer */
    float (*dot_f16)(const uint16_t *w, const float *x, int K);
    float (*dot_bf16)(const uint16_t *w, const float *x, int K);
    float (*dot_q8_0)(const kernel_block_q8_0 *w, const kernel_block_q8_0 *x, int nb);
    float (*dot_q4_0)(const kernel_block_q4_0 *w, const kernel_block_q8_0 *x, int nb);
    /* The same weight rows against an F32 activation row x[nb * 32]: each block's values
     * dequantised in registers, products summed in F32 (per block, then d times the block's sum
     * into the total). What kernel_matmul uses: the result is a continuous function of x, so
     * activations that differ in the last bit (a row-parallel sum taken in another order at
     * another P) give logits that differ in the last bits, never by a quantisation step. */
    float (*dot_q8_0_f32)(const kernel_block_q8_0 *w, const float *x, int nb);
    float (*dot_q4_0_f32)(const kernel_block_q4_0 *w, const float *x, int nb);
    /* F32 rows for kernel_matmul_rows, whose contract is that an output's bits depend only on
     * its input row and W. Every sum below has a fixed order that depends on K (or k) alone,
     * never on the address, the alignment, or how many rows are computed together: vector tails
     * run the same (masked) vector code, or in AVX2 a scalar fused multiply-add (the same
     * rounding as a lane).
     * dot_f32: one weight row w[K] (an OUT_IN weight's row) against x[K]; the partial sums are
     * each level's own (as for F16), summed in a fixed tree. */
    float (*dot_f32)(const float *w, const float *x, int K);
    /* The same weight row against `rows` activation rows x + r * ldx at once (the weights are
     * loaded or widened once for all of them): out[r] is bit for bit the one-row product
     * (dot_f32, dot_f16, dot_bf16, dot_q8_0_f32, dot_q4_0_f32) of row r. NULL in levels
     * without a batched build: matmul.c then calls the one-row product for each row. */
    void (*dot_f32_rows)(const float *w, const float *x, size_t ldx, int rows, int K, float *out);
    /* F32 OUT_IN products a tile at a time, where a level has a build (NULL: matmul.c loops
     * dot_f32_rows): wrows (1..4) weight rows w + n * ldw against rows (1..4) activation rows
     * x + r * ldx, out[r * 4 + n]. Each output is one chain of multiply-adds over K (16 at a
     * time, the tail masked) and one reduction, whatever wrows and rows: so a row's bits never
     * depend on what is computed beside it, and a 4 x 4 tile loads 8 vectors per 16 multiply-adds
     * (dot_f32_rows: 5 per 4). Its order is its own, not dot_f32's. */
    void (*dot_f32_tile)(const float *w, size_t ldw, int wrows, const float *x, size_t ldx,
                         int rows, int K, float *out);
    void (*dot_f16_rows)(const uint16_t *w, const float *x, size_t ldx, int rows, int K,
                         float *out);
    void (*dot_bf16_rows)(const uint16_t *w, const float *x, size_t ldx, int rows, int K,
                          float *out);
    void (*dot_q8_0_f32_rows)(const kernel_block_q8_0 *w, const float *x, size_t ldx, int rows,
                              int nb, float *out);
    void (*dot_q4_0_f32_rows)(const kernel_block_q4_0 *w, const float *x, size_t ldx, int rows,
                              int nb, float *out);
    /* axpy_rows_f32: for each of `rows` rows r (y + r * ldy, x + r * ldx):
     * y[0..n) += x[0] * W[0][0..n) + ... + x[kn-1] * W[kn-1][0..n), W's rows ldw floats apart (an
     * IN_OUT [K][N] weight's rows); for each element ONE chain of multiply-adds in k order,
     * y = y + x[k] * W[k][j], k ascending (fused on the x86 levels, a multiply then an add in
     * the portable build). Splitting k into consecutive calls, or the rows into several calls,
     * gives the same bits, so a caller may block both as it likes. */
    void (*axpy_rows_f32)(float *y, size_t ldy, const float *x, size_t ldx, int rows,
                          const float *W, int kn, size_t ldw, int n);
    /* n F16 values to F32 (exact), for the dequantised-tile GEMM path and loading. */
    void (*f16_to_f32)(const uint16_t *src, float *dst, size_t n);
    /* n F32 values to F16, bit for bit as kernel_f32_to_f16 (round to nearest even; a NaN
     * lane is converted by kernel_f32_to_f16 itself): loading F16 weights. */
    void (*f32_to_f16)(const float *src, uint16_t *dst, size_t n);
} kernel_isa_table;

/* The builds: portable always; the x86 ones only where CMake compiled them
 * (LINSHARD_KERNELS_X86). */
extern const kernel_isa_table kernel_table_portable;
#ifdef LINSHARD_KERNELS_X86
extern const kernel_isa_table kernel_table_avx2;
extern const kernel_isa_table kernel_table_avx512;
extern const kernel_isa_table kernel_table_avx512_vnni;
/* vec_avx512.c's F16/BF16 products, shared by the VNNI table (vec_avx512_vnni.c). */
float kernel_avx512_dot_f16(const uint16_t *w, const float *x, int K);
float kernel_avx512_dot_bf16(const uint16_t *w, const float *x, int K);
float kernel_avx512_dot_f32(const float *w, const float *x, int K);
void kernel_avx512_dot_f32_tile(const float *w, size_t ldw, int wrows, const float *x, size_t ldx,
                                int rows, int K, float *out);
void kernel_avx512_dot_f32_rows(const float *w, const float *x, size_t ldx, int rows, int K,
                                float *out);
void kernel_avx512_dot_f16_rows(const uint16_t *w, const float *x, size_t ldx, int rows, int K,
                                float *out);
void kernel_avx512_dot_bf16_rows(const uint16_t *w, const float *x, size_t ldx, int rows, int K,
                                 float *out);
void kernel_avx512_dot_q4_0_f32_rows(const kernel_block_q4_0 *w, const float *x, size_t ldx,
                                     int rows, int nb, float *out);
void kernel_avx512_dot_q8_0_f32_rows(const kernel_block_q8_0 *w, const float *x, size_t ldx,
                                     int rows, int nb, float *out);
void kernel_avx512_axpy_rows_f32(float *y, size_t ldy, const float *x, size_t ldx, int rows,
                                 const float *W, int kn, size_t ldw, int n);
float kernel_avx512_dot_q8_0_f32(const kernel_block_q8_0 *w, const float *x, int nb);
float kernel_avx512_dot_q4_0_f32(const kernel_block_q4_0 *w, const float *x, int nb);
void kernel_avx512_f16_to_f32(const uint16_t *src, float *dst, size_t n);
void kernel_avx512_f32_to_f16(const float *src, uint16_t *dst, size_t n);
#endif

/* The table in use (chosen at the first call; isa.c). */
const kernel_isa_table *kernel_active_table(void);
/* The best level this CPU runs (cpuid; portable on non-x86 builds). */
kernel_isa_level kernel_isa_best(void);
/* Tests and the benchmark: use `level` from now on. 0 on success; -1 (and nothing changes) if
 * the CPU lacks it or this build has no such table. Not to be called while another thread is
 * inside a kernel. */
int kernel_force_isa(kernel_isa_level level);
/* Tests and the benchmark: Q8_0/Q4_0 dot products against activations quantised to Q8_0 (1, the
 * int8 products llama.cpp uses) or against the F32 activations (0, the default: see matmul.c for
 * why). Not to be called while another thread is inside a kernel. */
void kernel_set_int8_activations(int on);
/* The name of a level ("portable", "avx2", "avx512", "avx512-vnni"). */
const char *kernel_isa_level_name(kernel_isa_level level);

/* kernel_matmul's typed products switch from per-row dot products to dequantised tiles under an
 * F32 GEMM at T >= this many activation rows (matmul.c states the measured default). Tests and
 * the benchmark set it (1: always tiles; a huge value: never); n <= 0 restores the default. */
void kernel_set_gemm_min_rows(int n);
/* The threshold in force. */
int kernel_gemm_min_rows(void);

/* F16 -> F32 of n values, portable (types.c); the tables' f16_to_f32 must agree bit for bit. */
void kernel_f16_row_to_f32(const uint16_t *src, float *dst, size_t n);
/* F32 -> F16 of n values, portable (types.c). */
void kernel_f32_row_to_f16(const float *src, uint16_t *dst, size_t n);

/* F16 bits to F32 inline (same result as kernel_f16_to_f32), without branches so that loops
 * over it vectorise: exponent and mantissa move to F32's positions and the exponent is rebiased
 * (15 -> 127); Inf/NaN take the largest exponent (NaN quieted, as F16C's vcvtph2ps does); a
 * subnormal m * 2^-24 (or zero) is built as 2^-14 * (1 + m / 1024) minus 2^-14 (exact). */
static inline float kernel_f16_bits_to_f32_inline(uint16_t h) {
    const uint32_t exp_mask = 0x1Fu << 23;
    const float two_m14 = 1.0f / 16384.0f;
    uint32_t em = (uint32_t)(h & 0x7FFF) << 13, exp = em & exp_mask;
    uint32_t normal = em + (112u << 23);
    uint32_t special = (em + (224u << 23)) | ((h & 0x3FF) ? 0x400000u : 0u);
    uint32_t sub_bits = em + (113u << 23), bits;
    float sub;
    memcpy(&sub, &sub_bits, sizeof sub);
    sub -= two_m14;
    memcpy(&sub_bits, &sub, sizeof sub_bits);
    bits = exp == exp_mask ? special : exp == 0 ? sub_bits : normal;
    bits |= (uint32_t)(h & 0x8000) << 16;
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

/* ---- elementwise and normalisation kernels (kernels.h's last section) ---------------------- */
/* One build of them per level, a table of its own beside kernel_isa_table (isa.c picks both
 * from the same level; avx512-vnni uses the avx512 one). Entries a level does not vectorise
 * point at the portable functions (elementwise_portable.c), which are also the reference
 * semantics. Each entry has the contract of the kernels.h function of the same name. */
typedef struct {
    const char *name;
    void (*layernorm)(float *out, const float *in, const float *w, const float *b, int T, int E,
                      float eps);
    void (*rmsnorm)(float *out, const float *in, const float *w, int T, int E, float eps);
    void (*gelu)(float *x, size_t n, kernel_gelu_kind kind);
    void (*swiglu)(float *out, const float *x, int T, int n);
    void (*softmax_causal)(float *s, int T, int n, int pos0);
    void (*rope)(float *x, const float *cos_sin, int D);
    void (*gelu_backward)(float *dx, const float *x, const float *dy, size_t n,
                          kernel_gelu_kind kind);
    void (*layernorm_backward)(float *dx, float *dw, float *db, const float *x, const float *w,
                               const float *dy, int T, int E, float eps);
    void (*softmax_causal_backward)(float *d, const float *p, int T, int n, int pos0);
    void (*colsum_acc)(float *db, const float *d, int T, int N);
} kernel_elementwise_table;

extern const kernel_elementwise_table kernel_elementwise_portable;
#ifdef LINSHARD_KERNELS_X86
extern const kernel_elementwise_table kernel_elementwise_avx2;
extern const kernel_elementwise_table kernel_elementwise_avx512;
#endif
/* The portable functions, which the vector tables reuse for what they do not vectorise. */
void kernel_portable_gelu(float *x, size_t n, kernel_gelu_kind kind);
void kernel_portable_rope(float *x, const float *cos_sin, int D);
void kernel_portable_gelu_backward(float *dx, const float *x, const float *dy, size_t n,
                                   kernel_gelu_kind kind);
void kernel_portable_layernorm_backward(float *dx, float *dw, float *db, const float *x,
                                        const float *w, const float *dy, int T, int E, float eps);
void kernel_portable_softmax_causal_backward(float *d, const float *p, int T, int n, int pos0);
void kernel_portable_colsum_acc(float *db, const float *d, int T, int N);

/* The elementwise table of the level in use (isa.c; follows kernel_force_isa). */
const kernel_elementwise_table *kernel_active_elementwise(void);

#endif
