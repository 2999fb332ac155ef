/* decode_batch_bench.c — what batched decoding buys: built with the project, run by hand, never
 * by CTest.
 *
 *   decode_batch_bench --kernels [--seconds S]
 *   decode_batch_bench --model DIR [--tp P] [--dtype LIST] [--batch LIST] [--steps S]
 *
 * --kernels: the products of one decoding step on GPT-2 small's shapes, one core, F32 and Q8_0:
 *   what kernel_matmul runs at T = 1 (F32: the BLAS GEMV; Q8_0: the dot products) against
 *   kernel_matmul_rows (linshard's own dot product for [N][K] weights, its row accumulation for
 *   [K][N]) at T = 1, and kernel_matmul_rows at T = 4 and 16 (one read of the weights for all
 *   rows). GB/s of weight
 *   bytes (each call reads them once: enough copies are cycled through that they come from
 *   memory); thread CPU time, best of 3 interleaved runs of >= S seconds / 3 (default 0.3).
 * --model: decoding throughput of B sequences (slots) on a checkpoint at P ranks (threads
 *   backend, one BLAS thread per rank): after a 16-token prompt in every slot, S steps (default
 *   8) of model_decode_batch of all B rows, and S rounds of B separate one-token steps
 *   (model_extend_slot: what a server without batching does), alternated three times; total
 *   tokens/s of the best run of each, wall clock. --batch default 1,4,16; --dtype f32 (any
 *   of f32, f16, bf16, q8_0, q4_0, comma separated); --tp 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/kernels/kernels_internal.h"
#include "linshard/comm.h"
#include "linshard/model.h"
#include "linshard/timer.h"

/* ---- the kernels --------------------------------------------------------------------------- */

static double min_seconds = 0.3;

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 1) != 0) {
        fprintf(stderr, "decode_batch_bench: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static uint32_t rng = 12345;
static float rnd(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 8388608.0f - 1.0f;
}

enum { MAX_COPIES = 64 };

typedef struct {
    kernel_weight w[MAX_COPIES];
    int copies;
    size_t bytes;
} weight_set;

/* Copies of one weight (F32 in either layout, or a typed [N][K] weight), together at least
 * 256 MB: a call never finds its weight in cache. */
static weight_set make_set(kernel_type type, kernel_layout layout, int K, int N) {
    weight_set s;
    size_t row = kernel_row_bytes(type, (size_t)K);
    s.bytes = row * (size_t)N;
    s.copies = (int)(((size_t)256 << 20) / s.bytes) + 1;
    if (s.copies > MAX_COPIES) s.copies = MAX_COPIES;
    float *values = xmalloc((size_t)K * sizeof(float));
    for (int c = 0; c < s.copies; c++) {
        unsigned char *data = xmalloc(s.bytes);
        for (int n = 0; n < N; n++) {
            for (int k = 0; k < K; k++) values[k] = rnd() * 0.05f;
            kernel_type_info(type)->from_f32(values, data + (size_t)n * row, (size_t)K);
        }
        s.w[c] = (kernel_weight){type, layout, K, N, data};
    }
    free(values);
    return s;
}

typedef void (*product_fn)(float *out, const float *in, const kernel_weight *w, int T,
                           int accumulate);

/* Seconds per call, one run of >= min_seconds / 3. */
static double time_once(product_fn f, weight_set *s, float *out, const float *in, int T) {
    int calls = 0;
    double t0 = cpu_now(), t;
    do {
        f(out, in, &s->w[calls % s->copies], T, 0);
        calls++;
        t = cpu_now() - t0;
    } while (t < min_seconds / 3 || calls < 2);
    return t / calls;
}

static void kernels_section(void) {
    static const struct {
        int K, N;
        kernel_type type;
        kernel_layout layout;
        const char *what;
    } shapes[] = {{768, 2304, KERNEL_F32, KERNEL_IN_OUT, "qkv"},
                  {768, 3072, KERNEL_F32, KERNEL_IN_OUT, "fc"},
                  {3072, 768, KERNEL_F32, KERNEL_IN_OUT, "fcp"},
                  {768, 50257, KERNEL_F32, KERNEL_OUT_IN, "lm head"},
                  {768, 2304, KERNEL_Q8_0, KERNEL_OUT_IN, "qkv"},
                  {768, 3072, KERNEL_Q8_0, KERNEL_OUT_IN, "fc"},
                  {3072, 768, KERNEL_Q8_0, KERNEL_OUT_IN, "fcp"},
                  {768, 50257, KERNEL_Q8_0, KERNEL_OUT_IN, "lm head"}};
    kernel_set_threads(1);
    printf("The products of a decoding step, GPT-2 small shapes, one core (ISA %s, BLAS %s)\n",
           kernel_isa(), kernel_blas_description());
    printf("GB/s of weight bytes, best of 3 interleaved runs\n");
    printf("%-8s %-5s %-11s %-7s %12s %12s %12s %12s\n", "matrix", "type", "K x N", "layout",
           "matmul T=1", "rows T=1", "rows T=4", "rows T=16");
    float *in = xmalloc((size_t)16 * 3072 * sizeof(float));
    float *out = xmalloc((size_t)16 * 50257 * sizeof(float));
    for (size_t i = 0; i < (size_t)16 * 3072; i++) in[i] = rnd();
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        weight_set s = make_set(shapes[i].type, shapes[i].layout, shapes[i].K, shapes[i].N);
        double best[4] = {1e30, 1e30, 1e30, 1e30};
        for (int rep = 0; rep < 3; rep++) {
            double t[4] = {time_once(kernel_matmul, &s, out, in, 1),
                           time_once(kernel_matmul_rows, &s, out, in, 1),
                           time_once(kernel_matmul_rows, &s, out, in, 4),
                           time_once(kernel_matmul_rows, &s, out, in, 16)};
            for (int j = 0; j < 4; j++)
                if (t[j] < best[j]) best[j] = t[j];
        }
        char shape[32];
        snprintf(shape, sizeof(shape), "%dx%d", shapes[i].K, shapes[i].N);
        printf("%-8s %-5s %-11s %-7s", shapes[i].what, kernel_type_info(shapes[i].type)->name,
               shape, shapes[i].layout == KERNEL_IN_OUT ? "[K][N]" : "[N][K]");
        for (int j = 0; j < 4; j++) printf(" %12.1f", (double)s.bytes / best[j] / 1e9);
        printf("\n");
        for (int c = 0; c < s.copies; c++) free((void *)s.w[c].data);
    }
    free(in);
    free(out);
}

/* ---- the model ----------------------------------------------------------------------------- */

#define PROMPT 16

typedef struct {
    const model_config *cfg;
    const st_set *weights;
    kernel_type wtype;
    int B, steps;
    double batch_tps, separate_tps; /* best of the runs, rank 0's wall clock */
} model_job;

static int model_rank(comm_t *comm, void *arg) {
    model_job *job = arg;
    int r = comm_rank(comm), P = comm_size(comm), B = job->B, rc = 0;
    model_shard m;
    char err[512];
    kernel_set_threads(1);
    int positions = PROMPT + 6 * job->steps + 2;
    if (model_shard_load_as(&m, job->cfg, job->weights, r, P, B > PROMPT ? B : PROMPT, job->wtype,
                            err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    if (model_shard_enable_slots(&m, B, positions, err, sizeof(err))) {
        model_shard_free(&m);
        return comm_fail(comm, "%s", err);
    }
    int slots[256], tokens[256], prompt[PROMPT];
    for (int b = 0; b < B && !rc; b++) {
        for (int t = 0; t < PROMPT; t++) prompt[t] = (b * 131 + t * 17 + 1) % job->cfg->vocab_size;
        slots[b] = b;
        tokens[b] = (b * 7 + 3) % job->cfg->vocab_size;
        rc = model_extend_slot(comm, &m, b, prompt, PROMPT);
    }
    job->batch_tps = job->separate_tps = 0;
    for (int run = 0; run < 3 && !rc; run++) {
        /* B rows in one step, S times */
        if ((rc = comm_barrier(comm, NULL))) break;
        double t0 = timer_seconds();
        for (int s = 0; s < job->steps && !rc; s++)
            rc = model_decode_batch(comm, &m, slots, tokens, B);
        if (!rc) rc = comm_barrier(comm, NULL);
        double tps = (double)B * job->steps / (timer_seconds() - t0);
        if (r == 0 && tps > job->batch_tps) job->batch_tps = tps;
        /* B separate one-token steps, S times */
        t0 = timer_seconds();
        for (int s = 0; s < job->steps && !rc; s++)
            for (int b = 0; b < B && !rc; b++)
                rc = model_extend_slot(comm, &m, slots[b], &tokens[b], 1);
        if (!rc) rc = comm_barrier(comm, NULL);
        tps = (double)B * job->steps / (timer_seconds() - t0);
        if (r == 0 && tps > job->separate_tps) job->separate_tps = tps;
    }
    model_shard_free(&m);
    return rc;
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c) break;
        s = c + 1;
    }
    return n;
}

static int model_section(const char *dir, int P, const char *dtypes, const char *batches,
                         int steps) {
    model_config cfg;
    st_set weights;
    char err[512];
    if (model_config_load(dir, &cfg, err, sizeof(err)) ||
        st_set_open(&weights, dir, err, sizeof(err))) {
        fprintf(stderr, "decode_batch_bench: %s\n", err);
        return 1;
    }
    int bs[16], nb = parse_list(batches, bs, 16);
    printf("decoding throughput, %s, P = %d (threads), %d-token prompts, %d steps, best of 3\n",
           dir, P, PROMPT, steps);
    printf("%-6s %4s %16s %16s %8s\n", "dtype", "B", "batched tok/s", "separate tok/s", "ratio");
    char list[256];
    snprintf(list, sizeof(list), "%s", dtypes);
    int rc = 0;
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name && !rc;
         name = strtok_r(NULL, ",", &save)) {
        int t = kernel_type_from_name(name);
        if (t < 0) {
            fprintf(stderr, "decode_batch_bench: --dtype %s: not a weight type\n", name);
            rc = 1;
            break;
        }
        for (int i = 0; i < nb && !rc; i++) {
            if (bs[i] < 1 || bs[i] > 256) {
                fprintf(stderr, "decode_batch_bench: --batch %d: must be 1..256\n", bs[i]);
                rc = 1;
                break;
            }
            model_job job = {&cfg, &weights, (kernel_type)t, bs[i], steps, 0, 0};
            if (comm_launch(COMM_BACKEND_THREADS, P, model_rank, &job, err, sizeof(err))) {
                fprintf(stderr, "decode_batch_bench: %s\n", err);
                rc = 1;
                break;
            }
            printf("%-6s %4d %16.1f %16.1f %7.2fx\n", name, bs[i], job.batch_tps, job.separate_tps,
                   job.batch_tps / job.separate_tps);
            fflush(stdout);
        }
    }
    st_set_close(&weights);
    return rc;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *dtypes = "f32", *batches = "1,4,16";
    int P = 2, steps = 8, kernels = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--kernels") == 0) {
            kernels = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "decode_batch_bench: %s: missing value or unknown option\n", a);
            return 1;
        }
        i++;
        if (strcmp(a, "--model") == 0)
            dir = v;
        else if (strcmp(a, "--tp") == 0)
            P = atoi(v);
        else if (strcmp(a, "--dtype") == 0)
            dtypes = v;
        else if (strcmp(a, "--batch") == 0)
            batches = v;
        else if (strcmp(a, "--steps") == 0)
            steps = atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            min_seconds = atof(v);
        else {
            fprintf(stderr, "decode_batch_bench: unknown option %s\n", a);
            return 1;
        }
    }
    if ((!kernels && !dir) || P < 1 || P > 64 || steps < 1 || !(min_seconds > 0)) {
        fprintf(stderr, "usage: decode_batch_bench --kernels [--seconds S]\n"
                        "       decode_batch_bench --model DIR [--tp P] [--dtype LIST] "
                        "[--batch LIST] [--steps S]\n");
        return 1;
    }
    if (kernels) kernels_section();
    return dir ? model_section(dir, P, dtypes, batches, steps) : 0;
}
