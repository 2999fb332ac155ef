/* matmul.c — kernel_matmul: out[T][N] (+)= in[T][K] · W for every weight type and layout.
 *
 *   F32 (either layout)  the BLAS (blas.c): a GEMV at T = 1 (a GEMM would pack the whole weight
 *                        for one row), a GEMM from gemm_min_rows; OUT_IN is the transposed
 *                        form. From 2 to gemm_min_rows - 1 rows, kernel_matmul_rows: the GEMM
 *                        packed every weight for a few rows (the 8-token prompts of a served
 *                        GPT-2 small: 20% of the server's time in sgemm's copies).
 *   F16/BF16/Q8_0/Q4_0   OUT_IN only. At T < gemm_min_rows: per-row dot products through the
 *                        ISA table (isa.c), reading each weight byte once per call, a weight
 *                        row loaded (widened to F32) once for 4 activation rows; Q8_0/Q4_0
 *                        against the F32 activations (or, kernel_set_int8_activations, the
 *                        activation rows quantised to Q8_0 once per call).
 *                        At T >= gemm_min_rows: tiles of weights (R rows x at most 512
 *                        columns, about 1 MB) dequantised into F32 and multiplied by the BLAS
 *                        GEMM, which reuses each weight T times from cache at GEMM speed.
 * kernel_matmul_rows (row-exact: a row's bits never depend on T or on the other rows) never
 * switches: OUT_IN weights of every type by the per-row dot products (F32 too, by the ISA
 * table's dot_f32), F32 IN_OUT by a fixed-order accumulation of W's rows (matmul_axpy_rows).
 * Both read each weight byte from memory once per call, for all T rows, and use each loaded
 * weight vector for 4 rows (the AVX-512 build; the others loop over the rows), with the exact
 * operations of one row alone; F32 OUT_IN goes 4 weight rows x 4 activation rows at a time
 * (dot_f32_tile: 8 loads per 16 multiply-adds, where a row at a time took 5 per 4: with the
 * GPT-2 small LM head at 32% of a served 16-sequence step at P = 2, the step went 49 -> 39 ms).
 * (The int8-activation path is row-exact as well: each row is quantised on its own.)
 *
 * The crossover (DEFAULT_GEMM_MIN_ROWS) was measured with bench/kernels_bench.c (section 3) on
 * the project's AMD Zen 5 (AVX-512 VNNI; OpenBLAS Cooperlake kernels), one thread, 768 x 3072,
 * a shared and noisy machine. First (whole-row tiles, the earlier int8 kernels), two runs: at
 * T <= 8 the dot products win by 2-10x; at T = 16 they were ahead (Q8_0 68 vs 63 GFLOP/s, F16
 * 72 vs 53) or even; at T = 24 the tiles were ahead for every type (Q8_0 69 vs 47, F16 73 vs 48,
 * Q4_0 47 vs 41), and at T = 32 in both runs. Again after the four-block int8 dot products and
 * the two-dimensional tiles (one run, load 5): T = 16 dots ahead for every type (F16 62 vs 47,
 * Q8_0 68 vs 58, Q4_0 71 vs 43); T = 24 even (F16 75/74, BF16 68/64, Q4_0 55/51) but Q8_0
 * (70 vs 80); T = 32 tiles ahead for Q8_0 (69 vs 88), even for F16, dots ahead for BF16 and Q4_0
 * (74 vs 69, 75 vs 65); T = 64 tiles ahead for every type by 1.3-1.7x. So: dot products below
 * T = 20, tiles from there (from 20 to ~32 the two are within the noise of each other).
 * At T = 512 the tiles run at 0.94-0.98 of the F32 GEMM (768 x 3072 and 3072 x 768, medians of
 * 9 interleaved calls; matmul_tiles says why the tiles are two-dimensional).
 *
 * Scratch (the quantised activations, a dequantised tile) is per thread: every rank is a thread
 * and calls at once, so nothing is shared. It grows as needed, is reused by the next call on the
 * same thread and is freed when the thread exits (a pthread key's destructor). */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_internal.h"

#define DEFAULT_GEMM_MIN_ROWS 20

static int gemm_min_rows = DEFAULT_GEMM_MIN_ROWS;

void kernel_set_gemm_min_rows(int n) {
    gemm_min_rows = n > 0 ? n : DEFAULT_GEMM_MIN_ROWS;
}

int kernel_gemm_min_rows(void) {
    return gemm_min_rows;
}

/* ---- per-thread scratch ------------------------------------------------------------------- */

typedef struct {
    void *buf[2]; /* 0: quantised activation rows, 1: a dequantised F32 tile */
    size_t cap[2];
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
/* Also held here so that a leak checker sees the main thread's scratch as reachable (the key's
 * destructor does not run when the process exits from main). */
static _Thread_local scratch *thread_scratch;

static void scratch_free(void *p) {
    scratch *s = p;
    if (!s) return;
    free(s->buf[0]);
    free(s->buf[1]);
    free(s);
}

static void scratch_key_create(void) {
    if (pthread_key_create(&scratch_key, scratch_free) != 0) {
        fprintf(stderr, "kernel_matmul: pthread_key_create failed\n");
        abort();
    }
}

/* Buffer `which` of this thread's scratch, at least `bytes` long (64-byte aligned). */
static void *scratch_get(int which, size_t bytes) {
    pthread_once(&scratch_once, scratch_key_create);
    scratch *s = thread_scratch;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || pthread_setspecific(scratch_key, s) != 0) {
            fprintf(stderr, "kernel_matmul: out of memory for scratch\n");
            abort();
        }
        thread_scratch = s;
    }
    if (s->cap[which] < bytes) {
        size_t cap = bytes + bytes / 2;
        cap = (cap + 63) / 64 * 64;
        void *p = NULL;
        if (posix_memalign(&p, 64, cap) != 0) {
            fprintf(stderr, "kernel_matmul: out of memory for %zu bytes of scratch\n", cap);
            abort();
        }
        free(s->buf[which]);
        s->buf[which] = p;
        s->cap[which] = cap;
    }
    return s->buf[which];
}

/* ---- the products ---------------------------------------------------------------------------- */

/* A caller's bug (a shape or layout this interface refuses): one line, then abort. */
static void refuse(const kernel_weight *w, const char *why) {
    const kernel_type_traits *tr = kernel_type_info(w->type);
    fprintf(stderr, "kernel_matmul: %s weight [K=%d][N=%d]: %s\n", tr ? tr->name : "unknown", w->K,
            w->N, why);
    abort();
}

static void matmul_f32(float *out, const float *in, const kernel_weight *w, int T, int accumulate) {
    const float *W = w->data;
    int K = w->K, N = w->N;
    if (T == 1) {
        /* beta = 0 is not trusted to ignore a NaN already in out: zero it instead */
        if (!accumulate) memset(out, 0, (size_t)N * sizeof *out);
        if (w->layout == KERNEL_IN_OUT)
            kernel_sgemv(1, K, N, 1.0f, W, N, in, 1.0f, out); /* W^T [N][K] · x */
        else
            kernel_sgemv(0, N, K, 1.0f, W, K, in, 1.0f, out); /* W [N][K] · x */
        return;
    }
    float beta = accumulate ? 1.0f : 0.0f;
    if (w->layout == KERNEL_IN_OUT)
        kernel_sgemm(0, 0, T, N, K, 1.0f, in, K, W, N, beta, out, N);
    else
        kernel_sgemm(0, 1, T, N, K, 1.0f, in, K, W, K, beta, out, N);
}

/* Rows of weights per step of the dot-product path: the step's weights (about 32 KB) stay in
 * L1/L2 while all T activation rows pass over them, so each weight byte comes from memory once. */
static int dot_tile_rows(size_t row_bytes) {
    size_t r = (32u << 10) / (row_bytes ? row_bytes : 1);
    return r < 1 ? 1 : r > 256 ? 256 : (int)r;
}

/* Q8_0/Q4_0 rows against activations quantised to Q8_0 (llama.cpp's way: int8 products) or
 * against the F32 activations (the default). The int8 path rounds each activation to 1/254 of
 * its block's largest value: an activation that differs in its last bit (a row-parallel sum taken
 * in another order at another P) can round the other way, a jump of a whole step, and the
 * logits of P = 1 and P = 2 then differed by ~1e-2 of their largest value on GPT-2 small (greedy
 * tokens parted after 36 of 64). With F32 activations the product is continuous in x and the
 * ranks agree with P = 1 to F32 rounding (verify: ~2e-6), as for the other types; its decoding
 * speed is in docs/PERFORMANCE.md. */
static int int8_activations;

void kernel_set_int8_activations(int on) {
    int8_activations = on != 0;
}

/* One weight row of `type` against `rows` (<= 4) activation rows x + r * ldx: out[r]. The level's
 * batched entry when it has one (each weight loaded once for the rows), else its one-row product
 * row by row: the same bits either way (kernels_internal.h). */
static void dot_rows(const kernel_isa_table *isa, kernel_type type, const void *row, const float *x,
                     size_t ldx, int rows, int K, float *out) {
    int nb = K / KERNEL_QK;
    switch (type) {
    case KERNEL_F32:
        if (isa->dot_f32_rows)
            isa->dot_f32_rows(row, x, ldx, rows, K, out);
        else
            for (int r = 0; r < rows; r++) out[r] = isa->dot_f32(row, x + (size_t)r * ldx, K);
        break;
    case KERNEL_F16:
        if (isa->dot_f16_rows)
            isa->dot_f16_rows(row, x, ldx, rows, K, out);
        else
            for (int r = 0; r < rows; r++) out[r] = isa->dot_f16(row, x + (size_t)r * ldx, K);
        break;
    case KERNEL_BF16:
        if (isa->dot_bf16_rows)
            isa->dot_bf16_rows(row, x, ldx, rows, K, out);
        else
            for (int r = 0; r < rows; r++) out[r] = isa->dot_bf16(row, x + (size_t)r * ldx, K);
        break;
    case KERNEL_Q8_0:
        if (isa->dot_q8_0_f32_rows)
            isa->dot_q8_0_f32_rows(row, x, ldx, rows, nb, out);
        else
            for (int r = 0; r < rows; r++) out[r] = isa->dot_q8_0_f32(row, x + (size_t)r * ldx, nb);
        break;
    default:
        if (isa->dot_q4_0_f32_rows)
            isa->dot_q4_0_f32_rows(row, x, ldx, rows, nb, out);
        else
            for (int r = 0; r < rows; r++) out[r] = isa->dot_q4_0_f32(row, x + (size_t)r * ldx, nb);
        break;
    }
}

static void matmul_dots(float *out, const float *in, const kernel_weight *w, int T,
                        int accumulate) {
    const kernel_isa_table *isa = kernel_active_table();
    int K = w->K, N = w->N, nb = K / KERNEL_QK;
    size_t row_bytes = kernel_row_bytes(w->type, (size_t)K);
    const uint8_t *W = w->data;
    const kernel_block_q8_0 *xq = NULL;
    if (int8_activations && (w->type == KERNEL_Q8_0 || w->type == KERNEL_Q4_0)) {
        /* each activation row quantised to Q8_0 once: T rows of nb blocks */
        size_t qrow = kernel_row_bytes(KERNEL_Q8_0, (size_t)K);
        void *q = scratch_get(0, (size_t)T * qrow);
        const kernel_type_traits *q8 = kernel_type_info(KERNEL_Q8_0);
        for (int t = 0; t < T; t++)
            q8->from_f32(in + (size_t)t * K, (uint8_t *)q + (size_t)t * qrow, (size_t)K);
        xq = q;
    }
    int R = dot_tile_rows(row_bytes);
    /* Against F32 activations (every type unless the int8 path is on): a weight row against 4
     * activation rows per call, the weight loaded (widened) once for the 4; bit for bit the
     * one-row products (kernels_internal.h). The 4 activation rows stay in L1 while the tile's
     * weight rows pass. */
    int batched = !xq;
    float v4[4];
    for (int n0 = 0; n0 < N; n0 += R) {
        int n1 = n0 + R < N ? n0 + R : N;
        if (batched && w->type == KERNEL_F32 && isa->dot_f32_tile) {
            /* F32: tiles of 4 weight rows x 4 activation rows (kernels_internal.h) */
            float v16[16];
            const float *Wf = w->data; /* [N][K] */
            for (int t0 = 0; t0 < T; t0 += 4) {
                int rows = T - t0 < 4 ? T - t0 : 4;
                const float *x = in + (size_t)t0 * K;
                for (int n = n0; n < n1; n += 4) {
                    int wrows = n1 - n < 4 ? n1 - n : 4;
                    isa->dot_f32_tile(Wf + (size_t)n * (size_t)K, (size_t)K, wrows, x, (size_t)K,
                                      rows, K, v16);
                    for (int r = 0; r < rows; r++)
                        for (int j = 0; j < wrows; j++) {
                            float *o = out + (size_t)(t0 + r) * N + n + j;
                            *o = accumulate ? *o + v16[r * 4 + j] : v16[r * 4 + j];
                        }
                }
            }
            continue;
        }
        if (batched) {
            for (int t0 = 0; t0 < T; t0 += 4) {
                int rows = T - t0 < 4 ? T - t0 : 4;
                const float *x = in + (size_t)t0 * K;
                for (int n = n0; n < n1; n++) {
                    const void *row = W + (size_t)n * row_bytes;
                    dot_rows(isa, w->type, row, x, (size_t)K, rows, K, v4);
                    for (int r = 0; r < rows; r++) {
                        float *o = out + (size_t)(t0 + r) * N + n;
                        *o = accumulate ? *o + v4[r] : v4[r];
                    }
                }
            }
            continue;
        }
        /* the int8 path: Q8_0/Q4_0 rows against the activations quantised to Q8_0 */
        for (int t = 0; t < T; t++) {
            const kernel_block_q8_0 *xb = xq + (size_t)t * nb;
            float *o = out + (size_t)t * N;
            for (int n = n0; n < n1; n++) {
                const void *row = W + (size_t)n * row_bytes;
                float v = w->type == KERNEL_Q8_0 ? isa->dot_q8_0(row, xb, nb)
                                                 : isa->dot_q4_0(row, xb, nb);
                o[n] = accumulate ? o[n] + v : v;
            }
        }
    }
}

/* The dequantised tiles: R weight rows x Kc columns of F32 (about 1 MB, a multiple of 16 rows,
 * the GEMM's register blocking), each multiplied by its Kc columns of the activations and summed
 * into out[:, n0:n0+R] (every K chunk after the first accumulates).
 *
 * Why two dimensions: every GEMM call packs its share of the activations (T x Kc) again, so the
 * work per call must be large against T x Kc: 2 T Kc R flops, i.e. R must be large. Tiles of
 * whole rows (Kc = K) of 1 MB had R = 80 at K = 3072, and the repacking of the 512 x 3072
 * activations (6 MB, beyond L2) for every 80 rows cost 10-20% against F32's one GEMM
 * (768 x 3072 at R = 336 was even with F32). With K cut into chunks of at most 512 the tile keeps
 * R >= 512 rows at 1 MB. A chunk longer than ~300 costs nothing more: the GEMM itself reads and
 * writes out once per ~300 columns of K (its own K blocking). */
typedef struct {
    int R;  /* weight rows per tile */
    int Kc; /* columns per tile, a multiple of 32 (whole blocks), the last chunk may be shorter */
} tile_shape;

static tile_shape gemm_tile_shape(int K, int N) {
    tile_shape t;
    int chunks = (K + 511) / 512;
    t.Kc = (K / KERNEL_QK + chunks - 1) / chunks * KERNEL_QK; /* whole blocks, about even */
    if (t.Kc <= 0) t.Kc = K;
    int r = (int)((1u << 20) / ((size_t)t.Kc * sizeof(float)));
    r = r < 16 ? 16 : r / 16 * 16;
    t.R = r < N ? r : N;
    return t;
}

static void matmul_tiles(float *out, const float *in, const kernel_weight *w, int T,
                         int accumulate) {
    const kernel_isa_table *isa = kernel_active_table();
    const kernel_type_traits *tr = kernel_type_info(w->type);
    int K = w->K, N = w->N;
    size_t row_bytes = kernel_row_bytes(w->type, (size_t)K);
    tile_shape ts = gemm_tile_shape(K, N);
    float *tile = scratch_get(1, (size_t)ts.R * ts.Kc * sizeof(float));
    const uint8_t *W = w->data;
    for (int n0 = 0; n0 < N; n0 += ts.R) {
        int rows = n0 + ts.R < N ? ts.R : N - n0;
        for (int k0 = 0; k0 < K; k0 += ts.Kc) {
            int cols = k0 + ts.Kc < K ? ts.Kc : K - k0;
            /* the tile [rows][cols]: row r is weight row n0 + r, values k0 .. k0 + cols - 1
             * (k0 and cols are whole blocks, so each is a run of blocks in the stored row) */
            size_t off = kernel_row_bytes(w->type, (size_t)k0);
            for (int r = 0; r < rows; r++) {
                const uint8_t *src = W + (size_t)(n0 + r) * row_bytes + off;
                float *dst = tile + (size_t)r * cols;
                if (w->type == KERNEL_F16)
                    isa->f16_to_f32((const uint16_t *)src, dst, (size_t)cols);
                else
                    tr->to_f32(src, dst, (size_t)cols);
            }
            /* out[:, n0:n0+rows] (+)= in[:, k0:k0+cols] [T][cols] . tile^T */
            float beta = accumulate || k0 > 0 ? 1.0f : 0.0f;
            kernel_sgemm(0, 1, T, rows, cols, 1.0f, in + k0, K, tile, cols, beta, out + n0, N);
        }
    }
}

/* F32 IN_OUT [K][N] rows for kernel_matmul_rows: each output row is y_t = (out_t or 0), then
 * y_t += x_t[k] * W[k][:] for k ascending (isa->axpy_rows_f32: one chain of multiply-adds per
 * element, whatever the blocking: a partial sum stored between blocks is the same float the
 * register held). W is read in blocks of KC rows x NC columns (256 KB, so a block stays in L2)
 * and every activation row passes over a block before the next is read: each weight byte comes
 * from memory once per call, whatever T, and each row's accumulators stay in registers for KC
 * multiply-adds between a load and a store of y. (Blocks of whole rows, ~64 KB, i.e. 7 rows of
 * GPT-2's 2304-wide QKV, spent as many loads and stores of y as multiply-adds: 39% of a
 * 16-sequence decoding step of GPT-2 small at P = 2, which these blocks made 1.6x faster.) */
#define AXPY_KC 256
#define AXPY_NC 256
static void matmul_axpy_rows(float *out, const float *in, const kernel_weight *w, int T,
                             int accumulate) {
    const kernel_isa_table *isa = kernel_active_table();
    const float *W = w->data;
    int K = w->K, N = w->N;
    if (!accumulate) memset(out, 0, (size_t)T * (size_t)N * sizeof *out);
    for (int n0 = 0; n0 < N; n0 += AXPY_NC) {
        int nn = n0 + AXPY_NC < N ? AXPY_NC : N - n0;
        for (int k0 = 0; k0 < K; k0 += AXPY_KC) {
            int kn = k0 + AXPY_KC < K ? AXPY_KC : K - k0;
            isa->axpy_rows_f32(out + n0, (size_t)N, in + k0, (size_t)K, T,
                               W + (size_t)k0 * (size_t)N + n0, kn, (size_t)N, nn);
        }
    }
}

/* The checks both entry points make; 1 if there is nothing to compute (then out is done). */
static int check_product(float *out, const kernel_weight *w, int T, int accumulate) {
    const kernel_type_traits *tr = kernel_type_info(w->type);
    if (!tr) refuse(w, "unknown weight type");
    if (w->K < 0 || w->N < 0 || T < 0) refuse(w, "negative dimension");
    if (w->layout != KERNEL_OUT_IN && w->layout != KERNEL_IN_OUT) refuse(w, "unknown layout");
    if (w->layout == KERNEL_IN_OUT && w->type != KERNEL_F32)
        refuse(w, "the IN_OUT layout is F32 only");
    if (w->K % tr->block != 0) refuse(w, "K is not a multiple of the block (32)");
    if (T == 0 || w->N == 0) return 1;
    if (w->K == 0) {
        if (!accumulate) memset(out, 0, (size_t)T * w->N * sizeof *out);
        return 1;
    }
    return 0;
}

void kernel_matmul(float *out, const float *in, const kernel_weight *w, int T, int accumulate) {
    if (check_product(out, w, T, accumulate)) return;
    if (T < gemm_min_rows && T > 1)
        kernel_matmul_rows(out, in, w, T, accumulate); /* F32 too: no GEMM packing for a few rows */
    else if (w->type == KERNEL_F32)
        matmul_f32(out, in, w, T, accumulate);
    else if (T < gemm_min_rows)
        matmul_dots(out, in, w, T, accumulate);
    else
        matmul_tiles(out, in, w, T, accumulate);
}

/* Row-exact products (kernels.h): per-row dot products for OUT_IN weights of every type (F32
 * through isa->dot_f32), the fixed-order row accumulation for F32 IN_OUT. Never the BLAS: its
 * GEMV and GEMM block the sums differently, and which one runs depends on T. */
void kernel_matmul_rows(float *out, const float *in, const kernel_weight *w, int T,
                        int accumulate) {
    if (check_product(out, w, T, accumulate)) return;
    if (w->layout == KERNEL_IN_OUT)
        matmul_axpy_rows(out, in, w, T, accumulate);
    else
        matmul_dots(out, in, w, T, accumulate);
}
