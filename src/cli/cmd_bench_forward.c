/* cmd_bench_forward.c — `linshard bench forward`: prefill throughput of a model split over P
 * ranks, beside P = 1 with a multi-threaded BLAS and PyTorch on the same weights, measured in
 * one run. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/linshard.h"

#define MAX_LIST 8
#define REPEATS 3

static const char bench_forward_usage[] =
    "usage: linshard bench forward (--model PATH | --shape NAME) [--tp LIST]\n"
    "                              [--tokens-count LIST] [--dtype T] [--json] [--no-peers]\n"
    "\n"
    "Prefill throughput (tokens/s) of the forward pass for each P (one core per rank), the\n"
    "speed-up over P = 1, and the fraction of time spent in communication. In the same run it\n"
    "also measures P = 1 with a 2-thread BLAS (what a user on one machine would otherwise do),\n"
    "single-core sgemm (the FLOP ceiling), and PyTorch running the same forward (GPT-2 or\n"
    "Llama family) on the same weights with 1 and 2 threads (bench/torch_gpt2_forward.py,\n"
    "which hands Llama-family directories to bench/torch_llama_forward.py; Debian's\n"
    "python3-torch).\n"
    "Each figure is the fastest of 3 passes after a warm-up.\n"
    "\n"
    "  --model PATH         a checkpoint of any family (a directory, or a .gguf file: then\n"
    "                       without the PyTorch peer, which reads directories)\n"
    "  --shape NAME         a seeded random model written to a temporary directory and\n"
    "                       removed afterwards: gpt2 (GPT-2 small, 124M parameters),\n"
    "                       llama-1b (Llama 3.2 1B's shape, 1.24B parameters: 5 GB in F32),\n"
    "                       tiny\n"
    "  --tp LIST            ranks to measure (default 1,2)\n"
    "  --tokens-count LIST  prompt lengths T (default 128,512)\n"
    "  --dtype T            the type linshard holds the weights as: auto (default: as the\n"
    "                       checkpoint stores them), f32, f16, bf16, q8_0 or q4_0\n"
    "  --json               one JSON object per line\n"
    "  --no-peers           skip PyTorch and the 2-thread BLAS row\n"
    "  -h, --help           this text\n"
    "\n"
    "environment: LINSHARD_PYTHON (default /usr/bin/python3), LINSHARD_TORCH_BENCH (default the\n"
    "repository's bench/torch_gpt2_forward.py).\n";

typedef struct {
    char who[32]; /* "linshard", "linshard-blas2", "pytorch" */
    int P, threads, T;
    double seconds, comm_seconds;
    int valid;
    const char *dtype;   /* linshard's rows: the type the weights were held as */
    size_t weight_bytes; /* linshard's rows: rank 0's shard */
    size_t resident_bytes;
} fwd_result;

/* --dtype, for every linshard row */
static int wtype_given;
static kernel_type wtype;

/* 2 * params FLOPs per token for the matrices, plus the attention scores and weighted sums. */
/* Single-core sgemm GFLOP/s at n = 1024: the FLOP ceiling of one rank. */
static double measure_sgemm_gflops(void) {
    const int n = 1024;
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float));
    float *c = malloc((size_t)n * n * sizeof(float));
    double best = 1e30;
    if (a && b && c) {
        for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = 1e-3f * (float)(i % 13);
        kernel_set_threads(1);
        for (int rep = 0; rep < 4; rep++) {
            double t0 = timer_seconds();
            kernel_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            double dt = timer_seconds() - t0;
            if (rep > 0 && dt < best) best = dt;
        }
    }
    free(a);
    free(b);
    free(c);
    return best < 1e30 ? 2.0 * n * n * n / best / 1e9 : 0;
}

static int run_linshard(const char *dir, int P, int blas_threads, int T, fwd_result *out) {
    int *tokens = malloc((size_t)T * sizeof(int));
    if (!tokens) return cli_job_error("out of memory");
    model_config cfg;
    char err[512];
    if (cli_model_config(dir, &cfg, err, sizeof(err))) {
        free(tokens);
        return cli_job_error("%s", err);
    }
    for (int t = 0; t < T; t++) tokens[t] = (int)(((long long)t * 7919 + 13) % cfg.vocab_size);
    model_run job = {.model_dir = dir,
                     .tokens = tokens,
                     .T = T,
                     .P = P,
                     .backend = COMM_BACKEND_THREADS,
                     .repeats = REPEATS,
                     .blas_threads = blas_threads,
                     .wtype_given = wtype_given,
                     .wtype = wtype};
    int rc = model_run_job(&job);
    if (!rc)
        *out = (fwd_result){"",
                            P,
                            blas_threads,
                            T,
                            job.forward_seconds,
                            job.comm_seconds,
                            1,
                            kernel_type_info(job.held_as)->name,
                            job.weight_bytes,
                            job.resident_bytes};
    snprintf(out->who, sizeof(out->who), "%s", blas_threads > 1 ? "linshard-blas2" : "linshard");
    model_run_free(&job);
    free(tokens);
    return rc;
}

typedef struct {
    const int *Ts;
    int nT, threads;
    fwd_result *out;
} torch_lines;

/* One line of the PyTorch peer's output: {"T": ..., "seconds": ...}; other lines are ignored. */
static void take_torch_line(const char *line, void *arg) {
    torch_lines *t = arg;
    cJSON *o = cJSON_Parse(line);
    const cJSON *T = cJSON_GetObjectItemCaseSensitive(o, "T");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "seconds");
    if (cJSON_IsNumber(T) && cJSON_IsNumber(s))
        for (int i = 0; i < t->nT; i++)
            if (t->Ts[i] == T->valueint)
                t->out[i] = (fwd_result){.who = "pytorch",
                                         .P = 1,
                                         .threads = t->threads,
                                         .T = t->Ts[i],
                                         .seconds = s->valuedouble,
                                         .valid = 1};
    cJSON_Delete(o);
}

/* Runs the PyTorch peer for every T with `threads` threads; fills results it reports. */
static void run_pytorch(const char *dir, const int *Ts, int nT, int threads, fwd_result *out) {
    char ts[128] = "", th[16], reps[16];
    for (int i = 0; i < nT; i++)
        snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), "%s%d", i ? "," : "", Ts[i]);
    snprintf(th, sizeof(th), "%d", threads);
    snprintf(reps, sizeof(reps), "%d", REPEATS);
    const char *args[] = {dir, "--tokens-count", ts, "--threads", th, "--repeats", reps, NULL};
    torch_lines t = {Ts, nT, threads, out};
    cli_torch_peer(args, take_torch_line, &t);
}

static void print_json_row(const fwd_result *r, const fwd_result *base, double flops) {
    if (!r->valid) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "backend", r->who);
    cJSON_AddNumberToObject(o, "P", r->P);
    cJSON_AddNumberToObject(o, "threads", r->threads);
    cJSON_AddNumberToObject(o, "T", r->T);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON_AddNumberToObject(o, "tokens_per_s", r->T / r->seconds);
    cJSON_AddNumberToObject(o, "gflops", flops / r->seconds / 1e9);
    if (base && base->valid)
        cJSON_AddNumberToObject(o, "speedup_vs_P1", base->seconds / r->seconds);
    if (!strncmp(r->who, "linshard", 8)) {
        cJSON_AddNumberToObject(o, "comm_fraction", r->comm_seconds / r->seconds);
        cJSON_AddStringToObject(o, "dtype", r->dtype);
        cJSON_AddNumberToObject(o, "weight_bytes_per_rank", (double)r->weight_bytes);
        cJSON_AddNumberToObject(o, "resident_bytes", (double)r->resident_bytes);
    }
    char *text = cJSON_PrintUnformatted(o);
    if (text) puts(text);
    free(text);
    cJSON_Delete(o);
}

static void print_row(const fwd_result *r, const fwd_result *base, const fwd_result *torch1,
                      double flops, double peak) {
    if (!r->valid) return;
    char what[48];
    if (!strcmp(r->who, "pytorch"))
        snprintf(what, sizeof(what), "pytorch %d thread%s", r->threads, r->threads > 1 ? "s" : "");
    else if (r->threads > 1)
        snprintf(what, sizeof(what), "linshard P=1 %s, %d BLAS thr.", r->dtype, r->threads);
    else
        snprintf(what, sizeof(what), "linshard P=%d %s", r->P, r->dtype);
    double gf = flops / r->seconds / 1e9;
    printf("  %5d  %-30s %10.1f %9.1f %8.1f %6.0f%%", r->T, what, r->T / r->seconds,
           r->seconds * 1e3, gf,
           peak > 0 ? 100.0 * gf / (peak * (r->P > r->threads ? r->P : r->threads)) : 0);
    if (base && base->valid && r != base)
        printf(" %7.2fx", base->seconds / r->seconds);
    else
        printf(" %8s", "");
    if (!strncmp(r->who, "linshard", 8))
        printf(" %6.1f%%", 100.0 * r->comm_seconds / r->seconds);
    else
        printf(" %7s", "");
    char vt[32];
    if (r != torch1)
        printf(" %8s",
               cli_format_speedup(torch1 && torch1->valid ? torch1->seconds / r->seconds : 0, vt,
                                  sizeof(vt)));
    printf("\n");
}

int cmd_bench_forward(int argc, char **argv) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"shape", required_argument, 0, 'S'},
                                             {"tp", required_argument, 0, 'p'},
                                             {"tokens-count", required_argument, 0, 'T'},
                                             {"json", no_argument, 0, 'j'},
                                             {"no-peers", no_argument, 0, 'n'},
                                             {"dtype", required_argument, 0, 'D'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *dir = NULL;
    model_config shape_cfg;
    int shape = 0, json = 0, peers = 1, c;
    int tps[MAX_LIST] = {1, 2}, n_tp = 2, Ts[MAX_LIST] = {128, 512}, n_T = 2;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            dir = optarg;
            break;
        case 'S':
            if (cli_shape_named(optarg, &shape_cfg))
                return cli_usage_error("bench forward",
                                       "unknown --shape '%s' (available: gpt2, llama-1b, tiny)",
                                       optarg);
            shape = 1;
            break;
        case 'p':
            if ((n_tp = cli_parse_int_list(optarg, tps, MAX_LIST, 1, 256)) < 0)
                return cli_usage_error("bench forward", "--tp must be a list like 1,2 (at most %d)",
                                       MAX_LIST);
            break;
        case 'T':
            if ((n_T = cli_parse_int_list(optarg, Ts, MAX_LIST, 1, 1 << 20)) < 0)
                return cli_usage_error("bench forward",
                                       "--tokens-count must be a list like "
                                       "128,512 (at most %d)",
                                       MAX_LIST);
            break;
        case 'D': {
            int rc = cli_parse_dtype("bench forward", optarg, &wtype_given, &wtype);
            if (rc) return rc;
            break;
        }
        case 'j':
            json = 1;
            break;
        case 'n':
            peers = 0;
            break;
        case 'h':
            fputs(bench_forward_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("bench forward", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("bench forward", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("bench forward", "unexpected argument '%s'", argv[optind]);
    if (cli_refuse_launcher("bench forward")) return EXIT_USAGE;
    if (!dir == !shape) return cli_usage_error("bench forward", "give --model DIR or --shape NAME");

    char tmpdir[] = "/tmp/linshard-bench-XXXXXX", err[512];
    if (shape) {
        if (!json) fprintf(stderr, "bench forward: writing a random model to %s...\n", tmpdir);
        if (cli_temp_model(tmpdir, &shape_cfg, 7, err, sizeof(err))) {
            return cli_job_error("bench forward: cannot write the model: %s", err);
        }
        dir = tmpdir;
    }
    model_config cfg;
    int rc = EXIT_OK;
    if (cli_model_config(dir, &cfg, err, sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    if (cli_reserve_blas(1, 1, err, sizeof(err))) { /* the sgemm below, before any job */
        rc = cli_job_error("%s", err);
        goto done;
    }
    double peak = measure_sgemm_gflops();
    fwd_result mine[MAX_LIST][MAX_LIST], blas2[MAX_LIST], torch1[MAX_LIST], torch2[MAX_LIST];
    memset(mine, 0, sizeof(mine));
    memset(blas2, 0, sizeof(blas2));
    memset(torch1, 0, sizeof(torch1));
    memset(torch2, 0, sizeof(torch2));
    for (int t = 0; t < n_T && !rc; t++) {
        for (int i = 0; i < n_tp && !rc; i++) {
            if (!json) fprintf(stderr, "bench forward: T=%d, P=%d...\n", Ts[t], tps[i]);
            rc = run_linshard(dir, tps[i], 1, Ts[t], &mine[t][i]);
        }
        if (peers && !rc) {
            if (!json) fprintf(stderr, "bench forward: T=%d, P=1 with 2 BLAS threads...\n", Ts[t]);
            rc = run_linshard(dir, 1, 2, Ts[t], &blas2[t]);
        }
    }
    if (peers && !rc) {
        if (!json) fprintf(stderr, "bench forward: PyTorch, 1 and 2 threads...\n");
        run_pytorch(dir, Ts, n_T, 1, torch1);
        run_pytorch(dir, Ts, n_T, 2, torch2);
    }
    if (rc) goto done;
    if (!json) {
        char what[256];
        printf("prefill, %s; sgemm peak %.0f GFLOP/s per core (measured now, OpenBLAS %s "
               "kernels)\n",
               cli_describe_model(&cfg, what, sizeof(what)), peak, kernel_blas_description());
        printf("  %5s  %-30s %10s %9s %8s %7s %8s %7s %8s\n", "T", "configuration", "tokens/s",
               "ms", "GFLOP/s", "%peak", "vs P=1", "comm", "vs torch1");
    }
    for (int t = 0; t < n_T; t++) {
        double flops = cli_forward_flops(&cfg, Ts[t]);
        const fwd_result *base = NULL;
        for (int i = 0; i < n_tp; i++)
            if (tps[i] == 1) base = &mine[t][i];
        for (int i = 0; i < n_tp; i++) {
            if (json)
                print_json_row(&mine[t][i], base, flops);
            else
                print_row(&mine[t][i], base, &torch1[t], flops, peak);
        }
        const fwd_result *extra[3] = {&blas2[t], &torch1[t], &torch2[t]};
        for (int k = 0; k < 3; k++) {
            if (json)
                print_json_row(extra[k], base, flops);
            else
                print_row(extra[k], base, &torch1[t], flops, peak);
        }
    }
done:
    if (shape) cli_remove_temp_model(tmpdir);
    return rc;
}
