/* kernels.h — every matrix product and every weight type behind one interface.
 *
 * The parallel layers (layers.h) decide WHAT each rank computes and where it communicates; the
 * kernels decide HOW one rank computes it on this CPU. Nothing outside src/kernels/ calls the
 * BLAS or knows how a weight type is laid out in memory. The model is ggml's type-traits table:
 * one row per weight type (block size, bytes per block, convert to and from F32, dot product
 * against an activation row), and one matrix-product entry point that dispatches on the type.
 *
 * Weight types. F32 and F16/BF16 are one value per element. Q8_0 and Q4_0 are GGUF's block
 * formats, bit for bit: 32 consecutive values along the input dimension (K) share one F16 scale d.
 *   Q8_0 block (34 bytes): f16 d; int8 q[32];        value i = d * q[i]
 *   Q4_0 block (18 bytes): f16 d; uint8 qs[16];      value i = d * ((nibble i) - 8), where
 *        nibble i < 16 is qs[i] & 0x0F and nibble i + 16 is qs[i] >> 4 (GGUF's order).
 * Activations stay F32, also against Q8_0/Q4_0 weights: each block is widened to F32 in
 * registers and multiplied by the F32 activations. (llama.cpp instead quantises the activations
 * to Q8_0 for int8 products; that is discontinuous in the activations, so P = 1 and P = 2, whose
 * activations differ in the last bits, gave logits ~1e-2 apart: see matmul.c.)
 *
 * Layout of a weight W that maps K inputs to N outputs (y = x · W):
 *   KERNEL_IN_OUT  [K][N] row-major (GPT-2's Conv1D, what the trainer updates): F32 only.
 *   KERNEL_OUT_IN  [N][K] row-major: each output's K weights contiguous, so a row is a run of
 *                  blocks along K (nn.Linear's and GGUF's layout; also a tied embedding used as
 *                  the LM head). Every type. A row holds kernel_row_bytes(type, K) bytes; for
 *                  block types K must be a multiple of the block (32).
 * A tensor-parallel split of an OUT_IN weight by outputs (column-parallel) takes whole rows; a
 * split by inputs (row-parallel) must fall on block boundaries.
 *
 * Ownership: the caller owns weights, activations and outputs (host memory). A kernel may keep
 * per-thread scratch of its own (quantised activation rows, dequantised tiles), never pointers
 * to the caller's memory across calls. A GPU backend later implements this same interface over
 * device memory, with its own upload of weights: keep every entry point free of assumptions
 * that the data is host-addressable beyond the call.
 *
 * Threads: every entry point is safe to call from several ranks (threads) at once. F32 GEMMs run
 * on the BLAS with kernel_set_threads() threads; the typed kernels run on the calling thread. */
#ifndef LINSHARD_KERNELS_H
#define LINSHARD_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- weight types ---------------------------------------------------------------------------- */

typedef enum {
    KERNEL_F32 = 0,
    KERNEL_F16 = 1,
    KERNEL_BF16 = 2,
    KERNEL_Q8_0 = 3,
    KERNEL_Q4_0 = 4,
    KERNEL_TYPE_COUNT
} kernel_type;

#define KERNEL_QK 32 /* values per block of Q8_0 and Q4_0 */

typedef struct {
    const char *name;   /* "f32", "f16", "bf16", "q8_0", "q4_0" (GGUF's and convert's names) */
    int block;          /* values per block: 1 for F32/F16/BF16, 32 for Q8_0/Q4_0 */
    size_t block_bytes; /* bytes per block: 4, 2, 2, 34, 18 */
    /* n values (a multiple of block) from this type to F32, and from F32 to this type. The
     * F32 -> type direction rounds as GGUF's reference quantiser does (round to nearest even for
     * F16/BF16; Q8_0: d = max|x| / 127, q = round(x / d); Q4_0: d = x_maxabs_signed / -8,
     * q = min(15, (int8)(x / d + 8.5))). */
    void (*to_f32)(const void *src, float *dst, size_t n);
    void (*from_f32)(const float *src, void *dst, size_t n);
} kernel_type_traits;

/* The traits row of a type; NULL for a value outside the enum. */
const kernel_type_traits *kernel_type_info(kernel_type t);
/* The type named s ("f32", "bf16", "q8_0", ...), case-insensitive; -1 if none. */
int kernel_type_from_name(const char *s);
/* Bytes of n values of type t (n a multiple of the block; 0 otherwise). */
size_t kernel_row_bytes(kernel_type t, size_t n);

/* F16 and BF16 scalars (IEEE binary16 / bfloat16 bits), exact conversions with
 * round-to-nearest-even on the way down. */
float kernel_f16_to_f32(uint16_t h);
uint16_t kernel_f32_to_f16(float f);
float kernel_bf16_to_f32(uint16_t h);
uint16_t kernel_f32_to_bf16(float f);

/* ---- a weight ------------------------------------------------------------------------------ */

typedef enum { KERNEL_IN_OUT = 0, KERNEL_OUT_IN = 1 } kernel_layout;

typedef struct {
    kernel_type type;
    kernel_layout layout; /* KERNEL_IN_OUT only for F32 */
    int K;                /* inputs (the reduction dimension) */
    int N;                /* outputs */
    const void *data;     /* see the layouts above; ld is N (IN_OUT) or the row bytes (OUT_IN) */
} kernel_weight;

/* An F32 weight as the trainer and the F32 layers hold it: [K][N] (y = x · W). */
static inline kernel_weight kernel_weight_f32(const float *w, int K, int N) {
    kernel_weight kw = {KERNEL_F32, KERNEL_IN_OUT, K, N, w};
    return kw;
}

/* An F32 weight stored [N][K] (a tied embedding used as the LM head). */
static inline kernel_weight kernel_weight_f32_out_in(const float *w, int K, int N) {
    kernel_weight kw = {KERNEL_F32, KERNEL_OUT_IN, K, N, w};
    return kw;
}

/* ---- matrix products ------------------------------------------------------------------------- */

/* out[T][N] = in[T][K] · W  (accumulate = 0), or out += in · W (accumulate = 1).
 * Any type and layout; T = 1 (decoding) runs a matrix-vector product that reads each weight
 * byte once; T > 1 may dequantise tiles into an F32 GEMM where that is faster. K = 0 gives zeros
 * (or leaves out unchanged when accumulating). */
void kernel_matmul(float *out, const float *in, const kernel_weight *w, int T, int accumulate);

/* The same product, ROW-EXACT: each output row's bits depend only on its input row, W and
 * accumulate (and the ISA level in use), never on T or on the other rows. So a row computed
 * alone (T = 1) and the same row inside a batch of T rows agree bit for bit: what batched
 * decoding needs (model_decode_batch). Every type and layout: OUT_IN weights by one dot product
 * per output (the typed products of kernel_matmul's decoding path, F32 by its own dot kernel),
 * F32 IN_OUT [K][N] by y_t += x_t[k] * W[k, :] for k ascending, vectorised over N. Each weight
 * byte is read from memory once per call for all T rows (bandwidth, not flops, bounds
 * decoding), but without a GEMM's reuse in registers: for prefill (large T) kernel_matmul is
 * faster. Results differ from kernel_matmul's by F32 rounding (another summation order). */
void kernel_matmul_rows(float *out, const float *in, const kernel_weight *w, int T, int accumulate);

/* The F32 GEMM every other product uses (attention scores and values, the backward pass):
 * C[M][N] = alpha * op(A) · op(B) + beta * C, row-major, op = transpose when trans_x is 1.
 * lda/ldb/ldc are the row strides of A, B and C as stored. */
void kernel_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* y[M] = alpha * op(A) · x + beta * y, A row-major [M'][N'] with row stride lda; op(A) is A
 * (trans = 0, M = rows) or its transpose (trans = 1). */
void kernel_sgemv(int trans, int rows, int cols, float alpha, const float *A, int lda,
                  const float *x, float beta, float *y);

/* ---- the CPU ------------------------------------------------------------------------------- */

/* Threads each F32 BLAS call may use. With the threads backend every rank is a thread with a
 * core of its own, so ranks set 1: a multi-threaded BLAS called from P ranks at once
 * oversubscribes the cores. */
void kernel_set_threads(int n);

/* Which instruction set the typed kernels run on this CPU: "avx512-vnni", "avx512", "avx2" or
 * "portable". Chosen once, at the first call, from cpuid; LINSHARD_KERNELS=portable|avx2|avx512
 * forces a lower one (for tests and for measuring). */
const char *kernel_isa(void);

/* The BLAS's kernel name (OpenBLAS's corename, e.g. "SkylakeX"). */
const char *kernel_blas_description(void);

/* The OpenBLAS kernel family ("SkylakeX", "Haswell") this CPU should run when the loaded one
 * lacks what the CPU has (OpenBLAS's own detection fell back or stopped short of AVX-512);
 * NULL when the loaded kernels are right. OpenBLAS reads OPENBLAS_CORETYPE only when it loads:
 * acting on the answer means restarting the program with that variable set. */
const char *kernel_blas_better_core(void);

/* ---- elementwise and normalisation kernels ------------------------------------------------- */
/* The per-element and per-row parts of the layers (activations.c, rope.c, the softmax of
 * attention, their backward): one entry point each, dispatched like the typed products to a
 * portable, AVX2 or AVX-512 build (kernel_isa() names the level; LINSHARD_KERNELS forces one).
 * Ownership as above: every array is the caller's host memory, read and written only during the
 * call. All shapes are row-major; rows are contiguous (stride = the row length).
 *
 * Determinism: a result depends only on the values of its own element (elementwise kernels) or
 * its own row and the row length (row kernels) and on the level in use, never on where the
 * element or row lies in the array, on T, or on the address's alignment: vector tails are
 * computed by the same (masked) vector code as full vectors, and each reduction's order is fixed
 * per level and row length. So the same row gives the same bits on every rank and at every P,
 * and a decoding step (T = 1) gives the bits of the same row inside a prefill. Levels differ from
 * each other by rounding (FMA, summation order): within the accuracies stated.
 *
 * Accuracy: each bound is against the same formula in double precision, u = 2^-24 (F32's unit
 * roundoff), and holds for every level; tests/test_elementwise.c checks it on inputs of the
 * model's scale (|x| <= 8, rows of 1 to 4096) and the measured worst is given in brackets. */

typedef enum { KERNEL_GELU_TANH = 0, KERNEL_GELU_ERF = 1 } kernel_gelu_kind;

/* LayerNorm, each of T rows of E: out = (in - mean) / sqrt(var + eps) * w + b (biased
 * variance). Mean and variance are summed in double in two passes (no cancellation), the rest is
 * float. out may equal in (no partial overlap). Error <= 8u (|w| (|xhat| + |mean| rstd) + |b|),
 * xhat the normalised value (x - mean rounds with the mean held in float) [1.8u]. */
void kernel_layernorm(float *out, const float *in, const float *w, const float *b, int T, int E,
                      float eps);

/* RMSNorm, each of T rows of E: out = in / sqrt(mean(in^2) + eps) * w, the sum of squares in
 * double. out may equal in (as attention's per-head q/k norm runs it: T = 1, E = D).
 * Error <= 4u |out| [2.3u]. */
void kernel_rmsnorm(float *out, const float *in, const float *w, int T, int E, float eps);

/* GELU in place on x[n] (elementwise: any n, any shard). KERNEL_GELU_TANH is GPT-2's "gelu_new",
 * 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))), computed as v / (1 + exp(-2z)) with the
 * vectorised exp: error <= (3 |2z| + 8) u |out|, exp magnifying the float rounding of its
 * argument 2z = 2 sqrt(2/pi) (v + 0.044715 v^3): 1.2e-6 relative for |v| < 3, 9e-6 at |v| = 8
 * [0.8 of the bound]. KERNEL_GELU_ERF is 0.5 v (1 + erf(v / sqrt 2)) with libm's erff (no level
 * vectorises it): error <= 4u |out| + u |v| (1 + erf cancels for negative v). */
void kernel_gelu(float *x, size_t n, kernel_gelu_kind kind);

/* SwiGLU's activation: for each of T rows of x[T][2n] = [gate | up], out[t][j] =
 * SiLU(gate[t][j]) * up[t][j] = gate / (1 + exp(-gate)) * up, out[T][n]. out may equal x (rows
 * compacted in order; row t of out never overtakes what row t of x still holds), no other
 * overlap. Error <= (2 |gate| + 8) u |out| [0.35 of it]. */
void kernel_swiglu(float *out, const float *x, int T, int n);

/* Causal softmax in place on s[T][n]: row t is position pos0 + t and keeps columns
 * 0..pos0+t (pos0 + T <= n): exp(s - max) / sum over them, zeros after. The exp is the
 * vectorised Cephes exp (relative error <= 2e-7), the sum in float: each probability p within
 * 16u p + 8u / (pos0 + t + 1) of the double softmax [0.14 of it]. */
void kernel_softmax_causal(float *s, int T, int n, int pos0);

/* Rotary embedding of one head vector x[D] (D even) in place, "rotate half": x[i] pairs with
 * x[i + D/2]; cos_sin[D] is one row of rope_table: D/2 cosines, then D/2 sines. Error <= 2u
 * (|a c| + |b s|) for x[i] = a c - b s (float products and a difference). */
void kernel_rope(float *x, const float *cos_sin, int D);

/* Backward of kernel_gelu: dx[i] = GELU'(x[i]) * dy[i], x the forward's input. dx may equal dy.
 * Error <= 64u (1 + |v|) |dy| (tanh form), 8u |dy| (erf form, libm's erff and expf). */
void kernel_gelu_backward(float *dx, const float *x, const float *dy, size_t n,
                          kernel_gelu_kind kind);

/* Backward of kernel_layernorm over T rows of E: dx[T][E] (may equal dy), and, unless NULL,
 * dw[E] += sum_t dy * xhat, db[E] += sum_t dy (rows in order). Statistics recomputed from x in
 * double as in the forward; dx within 1e-6 of the row's largest |dx| [6e-8]; dw and db add one
 * float rounding per row. */
void kernel_layernorm_backward(float *dx, float *dw, float *db, const float *x, const float *w,
                               const float *dy, int T, int E, float eps);

/* Backward of kernel_softmax_causal through its probabilities p[T][n] (same T, n, pos0): in
 * place on d[T][n] (dL/dp in, dL/ds out): d = p (d - <p, d>) over the kept columns of each row,
 * zeros after. The dot product in float, in column order: error <= 2u |out| + 8u len p sum |p d|
 * over the row's len kept columns. */
void kernel_softmax_causal_backward(float *d, const float *p, int T, int n, int pos0);

/* Bias gradient: db[N] += sum over t of d[t][N], rows in order (the same bits wherever d is the
 * same). */
void kernel_colsum_acc(float *db, const float *d, int T, int N);

#ifdef __cplusplus
}
#endif

#endif
