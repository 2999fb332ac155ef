/* cmd_bench_train.c — `linshard bench train`: training-step throughput of GPT-2 split over P
 * ranks (forward, backward, global gradient norm, AdamW), beside PyTorch running the same step
 * on the same weights, measured in one run. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/model.h"
#include "linshard/train.h"
#include "linshard/linshard.h"

#define MAX_LIST 8
#define REPEATS 2

/* The stated shape: GPT-2's vocabulary with a body small enough to train on two cores. */

static const char bench_train_usage[] =
    "usage: linshard bench train [--model DIR] [--tp LIST] [--batch B] [--seq T] [--steps N]\n"
    "                            [--json] [--no-peers]\n"
    "\n"
    "Time per training step — B sequences of T tokens: forward, vocabulary-parallel loss,\n"
    "backward, global gradient norm, AdamW — for each P (one core per rank), the speed-up over\n"
    "P = 1 and the share of time in communication, beside PyTorch (autograd + torch.optim.AdamW)\n"
    "running the same step on the same weights with 1 and 2 threads. Fastest of 2 runs of N\n"
    "steps after a warm-up step.\n"
    "\n"
    "  --model DIR   a checkpoint; default: a seeded random GPT-2 of 4 layers, 256 wide, 8 heads,\n"
    "                vocabulary 50257, context 128 (written to a temporary directory)\n"
    "  --tp LIST     ranks (default 1,2)\n"
    "  --batch B     sequences per step (default 4)\n"
    "  --seq T       tokens per sequence (default 64)\n"
    "  --steps N     timed steps per run (default 3)\n"
    "  --json        one JSON object per line\n"
    "  --no-peers    skip PyTorch\n"
    "  -h, --help    this text\n";

typedef struct {
    const model_config *cfg;
    const st_set *file;
    int B, T, N;
    double seconds, comm_seconds; /* best run of N steps */
    float first_loss;
} train_job;

/* The B sequences of T + 1 tokens: the same formula as the PyTorch peer. */
static int token_at(int b, int t, int V) {
    return (int)((((long long)b * 131 + t) * 7919 + 13) % V);
}

static int train_rank(comm_t *comm, void *arg) {
    train_job *job = arg;
    int r = comm_rank(comm), B = job->B, T = job->T, rc = 0;
    model_shard m;
    model_trainer tr;
    char err[512];
    if (model_shard_load(&m, job->cfg, job->file, r, comm_size(comm), T, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    if (model_trainer_init(&tr, &m, T, err, sizeof(err))) {
        model_shard_free(&m);
        return comm_fail(comm, "%s", err);
    }
    tr.grad_scale = 1.0f / (float)B;
    int *seqs = malloc((size_t)B * (size_t)(T + 1) * sizeof(int));
    if (!seqs) rc = comm_fail(comm, "out of memory on rank %d", r);
    for (int b = 0; !rc && b < B; b++)
        for (int t = 0; t <= T; t++) seqs[b * (T + 1) + t] = token_at(b, t, job->cfg->vocab_size);
    double best = 1e30, best_comm = 0;
    for (int run = 0; run <= REPEATS && !rc; run++) { /* run 0: one warm-up step */
        int steps = run == 0 ? 1 : job->N;
        if ((rc = comm_barrier(comm, "sync"))) break;
        double t0 = timer_seconds(), c0 = ledger_total_seconds(comm_ledger(comm));
        for (int s = 0; s < steps && !rc; s++) {
            model_trainer_zero_grad(&tr);
            for (int b = 0; b < B && !rc; b++) {
                float loss;
                const int *x = seqs + b * (T + 1);
                rc = model_train_forward_backward(comm, &m, &tr, x, x + 1, T, &loss);
                if (!rc && run == 1 && s == 0 && r == 0) job->first_loss += loss / (float)B;
            }
            double norm = 0;
            if (!rc) rc = model_grad_norm(comm, &m, &tr, &norm);
            float clip = norm > 1.0 ? (float)(1.0 / norm) : 1.0f;
            if (!rc) model_adamw_step(&m, &tr, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, clip);
        }
        double dt = timer_seconds() - t0;
        if (run > 0 && dt < best) {
            best = dt;
            best_comm = ledger_total_seconds(comm_ledger(comm)) - c0;
        }
    }
    if (!rc && r == 0) {
        job->seconds = best;
        job->comm_seconds = best_comm;
    }
    free(seqs);
    model_trainer_free(&tr);
    model_shard_free(&m);
    return rc;
}

typedef struct {
    int threads, valid;
    double seconds_per_step, first_loss;
} torch_train;

/* The PyTorch peer's line: {"seconds_per_step": ..., "first_loss": ...}; others are ignored. */
static void take_torch_line(const char *line, void *arg) {
    torch_train *out = arg;
    cJSON *o = cJSON_Parse(line);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "seconds_per_step");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "first_loss");
    if (cJSON_IsNumber(s))
        *out =
            (torch_train){out->threads, 1, s->valuedouble, cJSON_IsNumber(l) ? l->valuedouble : 0};
    cJSON_Delete(o);
}

static void run_torch_train(const char *dir, int B, int T, int N, int threads, torch_train *out) {
    char n[16], b[16], t[16], th[16], reps[16];
    snprintf(n, sizeof(n), "%d", N);
    snprintf(b, sizeof(b), "%d", B);
    snprintf(t, sizeof(t), "%d", T);
    snprintf(th, sizeof(th), "%d", threads);
    snprintf(reps, sizeof(reps), "%d", REPEATS);
    const char *args[] = {dir, "--train-steps", n,  "--batch",   b,    "--seq",
                          t,   "--threads",     th, "--repeats", reps, NULL};
    out->threads = threads;
    cli_torch_peer(args, take_torch_line, out);
}

int cmd_bench_train(int argc, char **argv) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"tp", required_argument, 0, 'p'},
                                             {"batch", required_argument, 0, 'B'},
                                             {"seq", required_argument, 0, 'T'},
                                             {"steps", required_argument, 0, 'N'},
                                             {"json", no_argument, 0, 'j'},
                                             {"no-peers", no_argument, 0, 'x'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *dir = NULL;
    int json = 0, peers = 1, c, B = 4, T = 64, N = 3;
    int tps[MAX_LIST] = {1, 2}, n_tp = 2;
    long v;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            dir = optarg;
            break;
        case 'p':
            if ((n_tp = cli_parse_int_list(optarg, tps, MAX_LIST, 1, 256)) < 0)
                return cli_usage_error("bench train", "--tp must be a list like 1,2");
            break;
        case 'B':
        case 'T':
        case 'N':
            if (cli_parse_int(optarg, 1, 1 << 16, &v))
                return cli_usage_error("bench train", "%s must be a positive integer, got '%s'",
                                       argv[optind - 2], optarg);
            if (c == 'B')
                B = (int)v;
            else if (c == 'T')
                T = (int)v;
            else
                N = (int)v;
            break;
        case 'j':
            json = 1;
            break;
        case 'x':
            peers = 0;
            break;
        case 'h':
            fputs(bench_train_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("bench train", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("bench train", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("bench train", "unexpected argument '%s'", argv[optind]);
    if (cli_refuse_launcher("bench train")) return EXIT_USAGE;
    char tmpdir[] = "/tmp/linshard-bench-XXXXXX", err[512];
    int made = 0, rc = EXIT_OK, file_open = 0;
    if (!dir) {
        model_config train_shape = model_config_gpt2(4, 256, 8, 50257, 128, GELU_TANH);
        if (cli_temp_model(tmpdir, &train_shape, 1, err, sizeof(err)))
            return cli_job_error("bench train: cannot write the model: %s", err);
        made = 1;
    }
    const char *model = made ? tmpdir : dir;
    model_config cfg;
    st_set file = {0};
    if (model_config_load(model, &cfg, err, sizeof(err)) ||
        model_train_supported(&cfg, err, sizeof(err)) ||
        cli_open_weights(model, &cfg, &file, err, sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    file_open = 1;
    if (T > cfg.n_positions) {
        rc = cli_job_error("--seq %d exceeds the model's context of %d", T, cfg.n_positions);
        goto done;
    }
    for (int i = 0; i < n_tp; i++)
        if (model_config_check_tp(&cfg, tps[i], err, sizeof(err))) {
            rc = cli_job_error("%s", err);
            goto done;
        }
    int most = 1;
    for (int i = 0; i < n_tp; i++) most = tps[i] > most ? tps[i] : most;
    if (cli_reserve_blas(most, 1, err, sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    kernel_set_threads(1);
    train_job jobs[MAX_LIST];
    for (int i = 0; i < n_tp && !rc; i++) {
        if (!json) fprintf(stderr, "bench train: P=%d...\n", tps[i]);
        jobs[i] = (train_job){&cfg, &file, B, T, N, 0, 0, 0};
        if (comm_launch(COMM_BACKEND_THREADS, tps[i], train_rank, &jobs[i], err, sizeof(err)))
            rc = cli_job_error("%s", err);
    }
    torch_train torch[2];
    memset(torch, 0, sizeof(torch));
    if (peers && !rc) {
        if (!json) fprintf(stderr, "bench train: PyTorch, 1 and 2 threads...\n");
        run_torch_train(model, B, T, N, 1, &torch[0]);
        run_torch_train(model, B, T, N, 2, &torch[1]);
    }
    if (rc) goto done;
    double tokens = (double)B * T;
    if (!json)
        printf("training step, GPT-2 %d layers x %d wide, %d heads, vocab %d: %d x %d tokens per "
               "step\n  %-22s %10s %11s %8s %8s %10s %9s\n",
               cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.vocab_size, B, T, "configuration",
               "tokens/s", "ms/step", "comm", "vs P=1", "vs torch1", "loss 1");
    for (int i = 0; i < n_tp; i++) {
        double per_step = jobs[i].seconds / N, vs1 = 0;
        for (int k = 0; k < n_tp; k++)
            if (tps[k] == 1) vs1 = jobs[k].seconds / jobs[i].seconds;
        double vst = torch[0].valid ? torch[0].seconds_per_step / per_step : 0;
        if (json)
            printf(
                "{\"backend\":\"linshard\",\"P\":%d,\"batch\":%d,\"seq\":%d,\"seconds_per_step\":"
                "%g,\"tokens_per_s\":%g,\"comm_fraction\":%g,\"first_loss\":%g}\n",
                tps[i], B, T, per_step, tokens / per_step, jobs[i].comm_seconds / jobs[i].seconds,
                jobs[i].first_loss);
        else {
            char what[32], v1[32], vt[32];
            snprintf(what, sizeof(what), "linshard P=%d", tps[i]);
            printf("  %-22s %10.1f %11.1f %7.1f%% %8s %10s %9.4f\n", what, tokens / per_step,
                   per_step * 1e3, 100 * jobs[i].comm_seconds / jobs[i].seconds,
                   cli_format_speedup(vs1, v1, sizeof(v1)), cli_format_speedup(vst, vt, sizeof(vt)),
                   jobs[i].first_loss);
        }
    }
    for (int k = 0; k < 2; k++) {
        if (!torch[k].valid) continue;
        double per_step = torch[k].seconds_per_step;
        if (json)
            printf("{\"backend\":\"pytorch\",\"threads\":%d,\"batch\":%d,\"seq\":%d,"
                   "\"seconds_per_step\":%g,\"tokens_per_s\":%g,\"first_loss\":%g}\n",
                   torch[k].threads, B, T, per_step, tokens / per_step, torch[k].first_loss);
        else {
            char vt[32];
            printf("  pytorch %d thread%-8s %10.1f %11.1f %8s %8s %10s %9.4f\n", torch[k].threads,
                   torch[k].threads > 1 ? "s" : "", tokens / per_step, per_step * 1e3, "", "",
                   cli_format_speedup(torch[0].valid ? torch[0].seconds_per_step / per_step : 0, vt,
                                      sizeof(vt)),
                   torch[k].first_loss);
        }
    }
done:
    if (file_open) st_set_close(&file);
    if (made) cli_remove_temp_model(tmpdir);
    return rc;
}
