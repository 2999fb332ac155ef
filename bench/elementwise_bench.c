/* elementwise_bench.c — throughput of the elementwise and normalisation kernels (kernels.h's
 * last section) per instruction set, at GPT-2 small's shapes (E = 768, T = 512, 4E = 3072):
 * built with the project, run by hand, never by CTest.
 *
 *   elementwise_bench [--rounds R]
 *
 * Each round times every kernel once under every level this CPU runs, in turn (interleaved, so
 * a busy machine slows all levels alike); the median over R rounds (default 15) is printed as
 * millions of elements per second (a softmax element: one kept score) and as the ratio to the
 * portable build. Times are the thread's CPU time. Inputs are copied fresh before each timed
 * call (in place kernels would otherwise run on their own output), outside the timing.
 *
 * Measured (AVX-512 server core, OpenBLAS's Cooperlake kernels, a shared 2-core machine; 21
 * rounds), Melem/s portable / avx2 / avx512: layernorm 621 / 1707 / 2516, rmsnorm 1250 / 3089 /
 * 6464, gelu tanh 172 / 1928 / 3606, swiglu 195 / 1380 / 2413, causal softmax 183 / 1273 /
 * 2166. The portable exp loops run scalar at the x86-64 baseline (elementwise_portable.c): on
 * GPT-2 small's 512-token prefill (`linshard bench forward --tp 1`) the elementwise work was 23%
 * of the forward's profile (perf: softmax inlined in attention 7.3%, GELU 6.8%, LayerNorm 1.0%,
 * against 51% in the sgemm) and is 2.3% with the AVX-512 build; tokens/s rose by a median 1.22x
 * over 10 interleaved rounds (1.24x over 6 more). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/kernels/kernels_internal.h"

enum { E = 768, T = 512, F = 3072, MAX_ROUNDS = 101 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *alloc_fill(size_t n, float lo, float hi, unsigned *seed) {
    float *x = malloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "elementwise_bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        x[i] = lo + (hi - lo) * (float)(*seed >> 8) / 16777216.0f;
    }
    return x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { K_LAYERNORM, K_RMSNORM, K_GELU, K_SWIGLU, K_SOFTMAX, K_COUNT };
static const char *const names[K_COUNT] = {"layernorm [512 x 768]", "rmsnorm [512 x 768]",
                                           "gelu tanh [512 x 3072]", "swiglu [512 x 2 x 2048]",
                                           "softmax causal [512 x 512]"};

int main(int argc, char **argv) {
    int rounds = 15;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
            if (rounds < 1 || rounds > MAX_ROUNDS) {
                fprintf(stderr, "elementwise_bench: --rounds must be 1..%d\n", MAX_ROUNDS);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: elementwise_bench [--rounds R]\n");
            return 2;
        }
    }
    unsigned seed = 7;
    size_t big = (size_t)T * F; /* the largest input: gelu's, swiglu's [T][2 * 2048] */
    float *x = alloc_fill(big, -3.0f, 3.0f, &seed), *w = alloc_fill(E, 0.5f, 1.5f, &seed);
    float *b = alloc_fill(E, -0.5f, 0.5f, &seed), *work = malloc(big * sizeof(float));
    float *out = malloc(big * sizeof(float));
    if (!work || !out) return 1;
    double elements[K_COUNT] = {(double)T * E, (double)T * E, (double)T * F, (double)T * 2048,
                                (double)T * (T + 1) / 2};
    int n_levels = (int)kernel_isa_best() >= KERNEL_ISA_AVX512 ? 3 : (int)kernel_isa_best() + 1;
    static double t[KERNEL_ISA_COUNT][K_COUNT][MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        for (int l = 0; l < n_levels; l++) {
            kernel_force_isa((kernel_isa_level)l);
            for (int k = 0; k < K_COUNT; k++) {
                memcpy(work, x, big * sizeof(float));
                double t0 = now();
                switch (k) {
                case K_LAYERNORM:
                    kernel_layernorm(out, work, w, b, T, E, 1e-5f);
                    break;
                case K_RMSNORM:
                    kernel_rmsnorm(out, work, w, T, E, 1e-5f);
                    break;
                case K_GELU:
                    kernel_gelu(work, (size_t)T * F, KERNEL_GELU_TANH);
                    break;
                case K_SWIGLU:
                    kernel_swiglu(out, work, T, 2048);
                    break;
                default:
                    kernel_softmax_causal(work, T, T, 0);
                    break;
                }
                t[l][k][r] = now() - t0;
            }
        }
    }
    printf("%-28s", "median over rounds");
    for (int l = 0; l < n_levels; l++) printf("  %22s", kernel_isa_level_name((kernel_isa_level)l));
    printf("\n");
    for (int k = 0; k < K_COUNT; k++) {
        double base = 0;
        printf("%-28s", names[k]);
        for (int l = 0; l < n_levels; l++) {
            qsort(t[l][k], (size_t)rounds, sizeof(double), cmp_double);
            double med = t[l][k][rounds / 2], rate = elements[k] / med / 1e6;
            if (l == 0) base = rate;
            printf("  %8.0f Melem/s x%5.2f", rate, rate / base);
        }
        printf("\n");
    }
    free(x), free(w), free(b), free(work), free(out);
    return 0;
}
