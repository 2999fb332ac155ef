/* kernels_bench.c — how fast the kernel layer's products run on one core, per weight type and
 * instruction set: built with the project, never run by CTest (it takes about a minute).
 *
 *   kernels_bench [--seconds S] [--isa NAME] [--section N]...
 *     S: the least time per measurement (default 0.3); NAME: measure section 2 under that ISA only;
 *     N: run only the sections named (1-4, repeatable; default all)
 *
 * 1. Bandwidth ceilings of one core: memcpy (bytes copied per second) and a read-only pass (the
 *    sum of a buffer), over 256 MB, far beyond the caches.
 * 2. GEMV (T = 1, decoding) on GPT-2-small shapes, K inputs x N outputs: GB/s of WEIGHT bytes
 *    (a token reads each weight byte once), per type and ISA. Enough copies of each weight are
 *    cycled through that every call reads from memory, not cache (>= 256 MB in all).
 * 3. Crossover of the typed products: per-row dot products vs dequantised tiles under the F32
 *    GEMM, T = 1 .. 64 (kernel_set_gemm_min_rows picks the path), GFLOP/s.
 * 4. GEMM (T = 64, 512; 768x3072 and 3072x768): GFLOP/s (2 T K N flops) per type, with
 *    kernel_matmul's own choice.
 * One BLAS thread throughout (kernel_set_threads(1)): a rank is one thread on one core. Run it
 * with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` so that OpenBLAS picks its kernels for this
 * CPU. Times are the thread's CPU time, the best of several repetitions (the machine may be
 * shared). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/kernels/kernels_internal.h"

static double min_seconds = 0.3;

/* This thread's CPU time, not the wall clock: on a shared machine the time the thread waited for
 * a core is not counted (what other programs do to the caches and memory still is). */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 1) != 0) {
        fprintf(stderr, "kernels_bench: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static uint32_t rng = 12345;
static float rnd(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 8388608.0f - 1.0f;
}

/* ---- 1. one core's bandwidth ------------------------------------------------------------------
 */

static volatile float sink;

static void ceilings(double *copy_gbs, double *read_gbs) {
    size_t n = (size_t)256 << 20;
    float *a = xmalloc(n), *b = xmalloc(n);
    memset(a, 1, n);
    memset(b, 2, n);
    double best_copy = 1e30, best_read = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        memcpy(b, a, n);
        double t1 = now();
        float s[16] = {0};
        for (size_t i = 0; i < n / sizeof(float); i += 16)
            for (int j = 0; j < 16; j++) s[j] += a[i + j];
        double t2 = now();
        sink = s[0] + s[7] + s[15];
        if (t1 - t0 < best_copy) best_copy = t1 - t0;
        if (t2 - t1 < best_read) best_read = t2 - t1;
    }
    *copy_gbs = (double)n / best_copy / 1e9;
    *read_gbs = (double)n / best_read / 1e9;
    free(a);
    free(b);
}

/* ---- weights --------------------------------------------------------------------------------- */

typedef struct {
    kernel_weight w[64]; /* copies, cycled through */
    int copies;
    size_t bytes; /* of one copy */
} weight_set;

static weight_set make_set(kernel_type t, kernel_layout layout, int K, int N, size_t total) {
    weight_set s;
    s.bytes = kernel_row_bytes(t, (size_t)K) * (size_t)N;
    s.copies = (int)(total / s.bytes) + 1;
    if (s.copies > 64) s.copies = 64;
    float *row = xmalloc((size_t)K * sizeof *row);
    for (int c = 0; c < s.copies; c++) {
        void *p = xmalloc(s.bytes);
        uint8_t *data = p;
        if (t == KERNEL_F32) {
            float *f = p;
            for (size_t i = 0; i < (size_t)K * N; i++) f[i] = rnd() * 0.05f;
        } else {
            size_t rb = kernel_row_bytes(t, (size_t)K);
            for (int n = 0; n < N; n++) {
                for (int k = 0; k < K; k++) row[k] = rnd() * 0.05f;
                kernel_type_info(t)->from_f32(row, data + rb * n, (size_t)K);
            }
        }
        s.w[c] = (kernel_weight){t, layout, K, N, data};
    }
    free(row);
    return s;
}

static void free_set(weight_set *s) {
    for (int c = 0; c < s->copies; c++) free((void *)s->w[c].data);
}

/* Seconds per kernel_matmul call (best of 3 runs of >= min_seconds / 3 each). */
static double time_matmul(weight_set *s, float *out, const float *in, int T) {
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        int calls = 0;
        double t0 = now(), t;
        do {
            kernel_matmul(out, in, &s->w[calls % s->copies], T, 0);
            calls++;
            t = now() - t0;
        } while (t < min_seconds / 3 || calls < 2);
        if (t / calls < best) best = t / calls;
    }
    return best;
}

/* ---- the report -------------------------------------------------------------------------------
 */

static const struct { int K, N; } shapes[] = {{768, 2304}, {768, 3072}, {3072, 768}, {768, 50257}};
enum { NSHAPES = 4 };

static const kernel_type typed[] = {KERNEL_F16, KERNEL_BF16, KERNEL_Q8_0, KERNEL_Q4_0};

int main(int argc, char **argv) {
    int only = -1;
    unsigned sections = 0; /* bit n: section n asked for; none asked: all */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            i++;
            for (int l = 0; l < KERNEL_ISA_COUNT; l++)
                if (strcmp(argv[i], kernel_isa_level_name((kernel_isa_level)l)) == 0) only = l;
            if (only < 0 || only > (int)kernel_isa_best()) {
                fprintf(stderr, "kernels_bench: --isa %s: not a level this CPU runs\n", argv[i]);
                return 1;
            }
            continue;
        }
        if (strcmp(argv[i], "--section") == 0 && i + 1 < argc) {
            int n = atoi(argv[++i]);
            if (n < 1 || n > 4) {
                fprintf(stderr, "kernels_bench: --section wants 1, 2, 3 or 4\n");
                return 1;
            }
            sections |= 1u << n;
            continue;
        }
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            min_seconds = atof(argv[++i]);
            if (!(min_seconds > 0)) {
                fprintf(stderr, "kernels_bench: --seconds wants a positive number\n");
                return 1;
            }
        } else {
            fprintf(stderr, "usage: kernels_bench [--seconds S] [--isa NAME] [--section N]...\n");
            return 1;
        }
    }
    kernel_set_threads(1);
    int best = (int)kernel_isa_best();
    printf("kernels_bench: ISA %s (best on this CPU: %s), BLAS %s, 1 thread\n", kernel_isa(),
           kernel_isa_level_name((kernel_isa_level)best), kernel_blas_description());

    if (!sections) sections = 0x1E;
    /* section 2 states its figures against the read-only ceiling: measured for it too */
    double copy_gbs = 0, read_gbs = 1;
    if (sections & 6) ceilings(&copy_gbs, &read_gbs);
    if (sections & 2)
        printf("\n1. one core, 256 MB: memcpy %.1f GB/s copied, read-only %.1f GB/s\n", copy_gbs,
               read_gbs);

    size_t total = (size_t)256 << 20;
    float *in = xmalloc((size_t)512 * 3072 * sizeof *in);
    float *out = xmalloc((size_t)512 * 50257 * sizeof *out);
    for (size_t i = 0; i < (size_t)512 * 3072; i++) in[i] = rnd();

    if (sections & 4) {
        printf("\n2. GEMV (T = 1): GB/s of weight bytes (%% of the read-only ceiling)\n");
        printf("%-16s %-12s", "type", "ISA");
        for (int s = 0; s < NSHAPES; s++) printf("  %5dx%-7d", shapes[s].K, shapes[s].N);
        printf("\n");
        for (int layout = 0; layout < 2; layout++) {
            printf("%-16s %-12s", layout ? "f32 OUT_IN" : "f32 IN_OUT", "blas sgemv");
            for (int s = 0; s < NSHAPES; s++) {
                weight_set ws =
                    make_set(KERNEL_F32, (kernel_layout)layout, shapes[s].K, shapes[s].N, total);
                double sec = time_matmul(&ws, out, in, 1);
                printf("  %5.1f (%3.0f%%)", ws.bytes / sec / 1e9,
                       100 * ws.bytes / sec / 1e9 / read_gbs);
                free_set(&ws);
            }
            printf("\n");
        }
        for (int ti = 0; ti < 4; ti++) {
            weight_set ws[NSHAPES];
            for (int s = 0; s < NSHAPES; s++)
                ws[s] = make_set(typed[ti], KERNEL_OUT_IN, shapes[s].K, shapes[s].N, total);
            for (int level = 0; level <= best; level++) {
                if (only >= 0 && level != only) continue;
                kernel_force_isa((kernel_isa_level)level);
                printf("%-16s %-12s", kernel_type_info(typed[ti])->name,
                       kernel_isa_level_name((kernel_isa_level)level));
                for (int s = 0; s < NSHAPES; s++) {
                    double sec = time_matmul(&ws[s], out, in, 1);
                    printf("  %5.1f (%3.0f%%)", ws[s].bytes / sec / 1e9,
                           100 * ws[s].bytes / sec / 1e9 / read_gbs);
                }
                printf("\n");
            }
            for (int s = 0; s < NSHAPES; s++) free_set(&ws[s]);
        }
        kernel_force_isa((kernel_isa_level)best);
    }

    if (sections & 8) {
        printf("\n3. typed products, 768x3072, ISA %s: GFLOP/s, dot products / dequantised tiles\n",
               kernel_isa());
        static const int Ts[] = {1, 4, 8, 16, 24, 32, 64};
        printf("%-6s", "type");
        for (int i = 0; i < 7; i++) printf("  T=%-11d", Ts[i]);
        printf("\n");
        for (int ti = 0; ti < 4; ti++) {
            weight_set ws = make_set(typed[ti], KERNEL_OUT_IN, 768, 3072, 0);
            printf("%-6s", kernel_type_info(typed[ti])->name);
            for (int i = 0; i < 7; i++) {
                double flops = 2.0 * Ts[i] * 768 * 3072;
                kernel_set_gemm_min_rows(1 << 30);
                double dots = time_matmul(&ws, out, in, Ts[i]);
                kernel_set_gemm_min_rows(1);
                double tiles = time_matmul(&ws, out, in, Ts[i]);
                printf("  %5.1f/%-6.1f", flops / dots / 1e9, flops / tiles / 1e9);
            }
            printf("\n");
            free_set(&ws);
        }
        kernel_set_gemm_min_rows(0);
    }

    if (sections & 16) {
        printf("\n4. GEMM, kernel_matmul's choice: GFLOP/s\n");
        printf("%-6s  %-18s  %-18s\n", "K x N", "768x3072", "3072x768");
        printf("%-6s  %-8s  %-8s  %-8s  %-8s\n", "type", "T=64", "T=512", "T=64", "T=512");
        static const kernel_type all[] = {KERNEL_F32, KERNEL_F16, KERNEL_BF16, KERNEL_Q8_0,
                                          KERNEL_Q4_0};
        for (int ti = 0; ti < 5; ti++) {
            printf("%-6s", kernel_type_info(all[ti])->name);
            for (int s = 0; s < 2; s++) {
                int K = s ? 3072 : 768, N = s ? 768 : 3072;
                weight_set ws = make_set(all[ti], KERNEL_OUT_IN, K, N, 0);
                for (int T = 64; T <= 512; T *= 8)
                    printf("  %-8.1f", 2.0 * T * K * N / time_matmul(&ws, out, in, T) / 1e9);
                free_set(&ws);
            }
            printf("\n");
        }
    }
    free(in);
    free(out);
    return 0;
}
