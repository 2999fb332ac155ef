/* cmd_bench_generate.c — `linshard bench generate`: greedy decode tokens/s of a model split over
 * P ranks, beside the memory-bandwidth ceiling and PyTorch's decode on the same weights, all
 * measured in one run.
 *
 * Decoding one token reads every weight once and does little arithmetic on it, so its speed
 * limit is memory bandwidth: ceiling tokens/s = bandwidth / bytes of weights read per token.
 * With P ranks each reads only its shard, and P cores pull from memory at once — that is what
 * tensor parallelism buys for decoding on one machine. With --batch B, B sequences decode
 * together through the session library (session.h): one step reads the weights once for B
 * tokens, so the ceiling is B times higher. */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/linshard.h"
#include "linshard/model.h"
#include "linshard/sampling.h"
#include "linshard/session.h"

#define MAX_LIST 8
#define MAX_RUNS (MAX_LIST * KERNEL_TYPE_COUNT)
#define REPEATS 3

static const char bench_generate_usage[] =
    "usage: linshard bench generate (--model PATH | --shape NAME) [--tp LIST] [--prompt-count T]\n"
    "                               [-n N] [--batch B] [--dtype LIST] [--json] [--no-peers]\n"
    "\n"
    "Greedy decoding speed (tokens/s after a T-token prompt) for each P, one core per rank,\n"
    "beside the memory-bandwidth ceiling for that P (the read bandwidth of P cores together,\n"
    "measured now, divided by the bytes of weights all ranks read per token) and PyTorch's\n"
    "greedy decoding with a KV cache on the same weights (bench/torch_gpt2_forward.py\n"
    "--decode). The first token comes with the prompt; the N - 1 decoding steps after it are\n"
    "timed. Fastest of 3 runs. MB/token is the weights one rank reads per step; RSS MB the\n"
    "process's own resident memory while decoding (every rank's weights, activations and KV\n"
    "cache: RssAnon; a mapped checkpoint is the page cache's and not counted).\n"
    "\n"
    "  --model PATH       a checkpoint of any family: a directory or a .gguf file\n"
    "  --shape NAME       a seeded random model in a temporary directory, removed afterwards:\n"
    "                     gpt2 (GPT-2 small), llama-1b (Llama 3.2 1B's shape, 5 GB in F32),\n"
    "                     tiny\n"
    "  --tp LIST          ranks (default 1,2)\n"
    "  --prompt-count T   prompt length (default 16)\n"
    "  -n N               tokens to generate (default 64)\n"
    "  --batch B          B sequences (different prompts) decoded together, one step a token of\n"
    "                     each: tokens/s is the whole batch's, and the ceiling B times one\n"
    "                     sequence's (the weights read once per step); default 1\n"
    "  --dtype LIST       the types to hold the weights as, each run at every P: auto (as the\n"
    "                     checkpoint stores them; the default), f32, f16, bf16, q8_0, q4_0\n"
    "                     (e.g. f32,q8_0)\n"
    "  --json             one JSON object per line\n"
    "  --no-peers         skip PyTorch\n"
    "  -h, --help         this text\n";

typedef struct {
    const model_config *cfg;
    const model_source *src;
    int T, N, P, B;
    kernel_type wtype;
    double seconds, comm_seconds; /* best N - 1 decoding steps */
    size_t weight_bytes;          /* rank 0's shard */
    size_t resident_bytes;        /* the whole process (every rank), while decoding */
    int tokens[1024];             /* sequence 0's greedy tokens (first min(N, 1024)) */
} decode_job;

/* The driver's side of one run: REPEATS + 1 rounds (the first warms up) of B sequences of N
 * greedy tokens each; a round's first step prefills the B prompts and samples their first
 * tokens, its other N - 1 steps decode, and only those are timed. The session has no tokenizer,
 * so no end-of-text token ends a sequence early: every round is N tokens. */
static int decode_driver(comm_t *comm, session *s, decode_job *job, const int *prompts) {
    const ledger_t *ledger = comm_ledger(comm);
    session_params greedy = {{0.0f, 0, 1.0f}, 1, job->N, NULL, 0};
    double best = 1e30, best_comm = 0;
    char err[512];
    int rc = 0;
    for (int rep = 0; rep <= REPEATS && !rc; rep++) {
        int first_id = -1;
        for (int b = 0; b < job->B; b++) {
            int id = session_add(s, prompts + (size_t)b * (size_t)job->T, job->T, &greedy, err,
                                 sizeof(err));
            if (id < 0) return comm_fail(comm, "%s", id == SESSION_BUSY ? "session full" : err);
            if (b == 0) first_id = id;
        }
        double dt = 0, dc = 0;
        int n_tok = 0;
        for (int step = 0; !rc && session_pending(s) > 0; step++) {
            const session_event *ev;
            int n_ev;
            double t0 = timer_seconds(), c0 = ledger_total_seconds(ledger);
            rc = session_step(s, &ev, &n_ev);
            if (step > 0) {
                dt += timer_seconds() - t0;
                dc += ledger_total_seconds(ledger) - c0;
            }
            for (int e = 0; !rc && e < n_ev; e++)
                if (ev[e].seq == first_id && ev[e].token >= 0 && n_tok < 1024)
                    job->tokens[n_tok++] = ev[e].token;
        }
        if (rep > 0 && dt < best) {
            best = dt;
            best_comm = dc;
        }
    }
    job->seconds = best;
    job->comm_seconds = best_comm;
    job->resident_bytes = cli_resident_bytes();
    return rc;
}

static int decode_rank(comm_t *comm, void *arg) {
    decode_job *job = arg;
    const model_config *c = job->cfg;
    int r = comm_rank(comm), rc = 0;
    session_opts o = {job->B, job->T + job->N, job->T, job->B, job->wtype};
    session *s;
    char err[512];
    if (session_open(&s, comm, job->src, NULL, &o, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    if (r == 0) {
        /* Sequence b's prompt: a fixed pattern, shifted by b (b = 0: what it always was). */
        int *prompts = malloc((size_t)job->B * (size_t)job->T * sizeof(int));
        if (!prompts) rc = comm_fail(comm, "out of memory on rank %d", r);
        for (int b = 0; !rc && b < job->B; b++)
            for (int t = 0; t < job->T; t++)
                prompts[(size_t)b * (size_t)job->T + (size_t)t] =
                    (int)(((long long)t * 7919 + 13 + (long long)b * 101) % c->vocab_size);
        if (!rc) rc = decode_driver(comm, s, job, prompts);
        free(prompts);
        if (!rc) {
            job->weight_bytes = model_shard_weight_bytes(session_shard(s));
            session_finish(s);
            rc = session_step(s, NULL, NULL);
        }
    } else {
        while (!rc) rc = session_step(s, NULL, NULL);
    }
    session_close(s);
    return rc == SESSION_DONE ? 0 : rc;
}

/* ---- memory bandwidth: P threads each summing its own 256 MiB ----------------------------- */

#define BW_FLOATS ((size_t)64 << 20) /* 256 MiB per thread: well past the L3 */

typedef struct {
    float *buf;
    double sum;
} bw_arg;

static void *bw_thread(void *p) {
    bw_arg *a = p;
    float acc[16] = {0};
    for (size_t i = 0; i < BW_FLOATS; i += 16)
        for (int k = 0; k < 16; k++) acc[k] += a->buf[i + k];
    for (int k = 0; k < 16; k++) a->sum += acc[k];
    return NULL;
}

/* Bytes/s that P cores read together (best of 3). Returns 0 if memory is short. */
static double read_bandwidth(int P) {
    float **bufs = calloc((size_t)P, sizeof(float *));
    bw_arg *args = calloc((size_t)P, sizeof(bw_arg));
    pthread_t *th = calloc((size_t)P, sizeof(pthread_t));
    double best = 0;
    int ok = bufs && args && th;
    for (int i = 0; ok && i < P; i++) {
        bufs[i] = malloc(BW_FLOATS * sizeof(float));
        if (!bufs[i])
            ok = 0;
        else
            for (size_t j = 0; j < BW_FLOATS; j++) bufs[i][j] = 1e-3f;
    }
    for (int rep = 0; ok && rep < 3; rep++) {
        double t0 = timer_seconds();
        for (int i = 0; i < P; i++) {
            args[i] = (bw_arg){bufs[i], 0};
            pthread_create(&th[i], NULL, bw_thread, &args[i]);
        }
        for (int i = 0; i < P; i++) pthread_join(th[i], NULL);
        double bw = (double)P * BW_FLOATS * sizeof(float) / (timer_seconds() - t0);
        if (bw > best) best = bw;
    }
    for (int i = 0; bufs && i < P; i++) free(bufs[i]);
    free(bufs);
    free(args);
    free(th);
    return best;
}

/* ---- PyTorch ------------------------------------------------------------------------------ */

typedef struct {
    int threads, valid;
    double seconds;
    int tokens[1024], n_tokens;
} torch_result;

/* The PyTorch peer's line: {"seconds": ..., "tokens": [...]}; other lines are ignored. */
static void take_torch_line(const char *line, void *arg) {
    torch_result *out = arg;
    cJSON *o = cJSON_Parse(line);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "seconds");
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(o, "tokens");
    if (cJSON_IsNumber(s)) {
        out->seconds = s->valuedouble;
        out->valid = 1;
        const cJSON *t;
        out->n_tokens = 0;
        cJSON_ArrayForEach(t, toks) if (out->n_tokens < 1024 && cJSON_IsNumber(t))
            out->tokens[out->n_tokens++] = t->valueint;
    }
    cJSON_Delete(o);
}

static void run_torch_decode(const char *dir, int T, int N, int threads, torch_result *out) {
    char n[16], t[16], th[16], reps[16];
    snprintf(n, sizeof(n), "%d", N);
    snprintf(t, sizeof(t), "%d", T);
    snprintf(th, sizeof(th), "%d", threads);
    snprintf(reps, sizeof(reps), "%d", REPEATS);
    const char *args[] = {dir,         "--decode", n,   "--prompt-count", t, "--threads", th,
                          "--repeats", reps,       NULL};
    out->threads = threads;
    cli_torch_peer(args, take_torch_line, out);
}

/* ---- the command -------------------------------------------------------------------------- */

static int agree(const int *a, const int *b, int n) {
    int same = 0;
    while (same < n && a[same] == b[same]) same++;
    return same;
}

int cmd_bench_generate(int argc, char **argv) {
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"shape", required_argument, 0, 'S'},
        {"tp", required_argument, 0, 'p'},    {"prompt-count", required_argument, 0, 'T'},
        {"json", no_argument, 0, 'j'},        {"no-peers", no_argument, 0, 'x'},
        {"dtype", required_argument, 0, 'D'}, {"batch", required_argument, 0, 'B'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *dir = NULL;
    model_config shape_cfg;
    int shape = 0, json = 0, peers = 1, c, T = 16, N = 64, B = 1;
    int tps[MAX_LIST] = {1, 2}, n_tp = 2;
    int types[KERNEL_TYPE_COUNT] = {-1}, n_types = 1; /* -1: as stored */
    long v;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":hn:", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            dir = optarg;
            break;
        case 'S':
            if (cli_shape_named(optarg, &shape_cfg))
                return cli_usage_error("bench generate",
                                       "unknown --shape '%s' (available: gpt2, llama-1b, tiny)",
                                       optarg);
            shape = 1;
            break;
        case 'p':
            if ((n_tp = cli_parse_int_list(optarg, tps, MAX_LIST, 1, 256)) < 0)
                return cli_usage_error("bench generate", "--tp must be a list like 1,2");
            break;
        case 'T':
            if (cli_parse_int(optarg, 1, 1 << 20, &v))
                return cli_usage_error("bench generate", "--prompt-count must be >= 1");
            T = (int)v;
            break;
        case 'n':
            if (cli_parse_int(optarg, 2, 1 << 20, &v))
                return cli_usage_error("bench generate", "-n must be >= 2 (the first token "
                                                         "comes with the prompt)");
            N = (int)v;
            break;
        case 'D':
            if ((n_types = cli_parse_dtype_list(optarg, types, KERNEL_TYPE_COUNT)) < 0)
                return cli_usage_error("bench generate",
                                       "--dtype must be a list of auto, f32, f16, bf16, q8_0, "
                                       "q4_0, got '%s'",
                                       optarg);
            break;
        case 'B':
            if (cli_parse_int(optarg, 1, 1024, &v))
                return cli_usage_error("bench generate", "--batch must be in 1..1024, got '%s'",
                                       optarg);
            B = (int)v;
            break;
        case 'j':
            json = 1;
            break;
        case 'x':
            peers = 0;
            break;
        case 'h':
            fputs(bench_generate_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("bench generate", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("bench generate", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("bench generate", "unexpected argument '%s'", argv[optind]);
    if (cli_refuse_launcher("bench generate")) return EXIT_USAGE;
    if (!dir == !shape)
        return cli_usage_error("bench generate", "give --model DIR or --shape NAME");
    char tmpdir[] = "/tmp/linshard-bench-XXXXXX", err[512];
    if (shape) {
        if (cli_temp_model(tmpdir, &shape_cfg, 7, err, sizeof(err))) {
            return cli_job_error("bench generate: cannot write the model: %s", err);
        }
        dir = tmpdir;
    }
    model_config cfg;
    model_source src;
    int rc = EXIT_OK, file_open = 0;
    if (model_source_open(&src, dir, err, sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    file_open = 1;
    cfg = src.cfg;
    if (T + N > cfg.n_positions) {
        rc = cli_job_error("prompt %d + %d new tokens exceed the model's context of %d positions",
                           T, N, cfg.n_positions);
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
    for (int k = 0; k < n_types; k++) {
        if (types[k] < 0) types[k] = (int)model_source_stored_type(&src);
        if (model_check_weight_type(&cfg, (kernel_type)types[k], err, sizeof(err))) {
            rc = cli_job_error("%s", err);
            goto done;
        }
    }
    /* Every type at every P; the bandwidth of P cores is measured once per P. */
    static decode_job jobs[MAX_RUNS];
    double bw[MAX_LIST];
    int n_runs = 0;
    for (int i = 0; i < n_tp && !rc; i++) bw[i] = read_bandwidth(tps[i]);
    for (int k = 0; k < n_types && !rc; k++)
        for (int i = 0; i < n_tp && !rc; i++) {
            const char *tname = kernel_type_info((kernel_type)types[k])->name;
            if (!json) fprintf(stderr, "bench generate: P=%d, %s weights...\n", tps[i], tname);
            decode_job *j = &jobs[n_runs++];
            memset(j, 0, sizeof(*j));
            j->cfg = &cfg;
            j->src = &src;
            j->T = T;
            j->N = N;
            j->B = B;
            j->P = tps[i];
            j->wtype = (kernel_type)types[k];
            if (comm_launch(COMM_BACKEND_THREADS, tps[i], decode_rank, j, err, sizeof(err)))
                rc = cli_job_error("%s", err);
        }
    torch_result torch[2];
    memset(torch, 0, sizeof(torch));
    if (peers && !rc) {
        if (!json) fprintf(stderr, "bench generate: PyTorch, 1 and 2 threads...\n");
        run_torch_decode(dir, T, N, 1, &torch[0]);
        run_torch_decode(dir, T, N, 2, &torch[1]);
    }
    if (rc) goto done;
    int n_check = N < 1024 ? N : 1024;
    char what[256];
    char batch[64] = "";
    if (B > 1) snprintf(batch, sizeof(batch), ", %d sequences decoded together", B);
    if (!json)
        printf("greedy decode, %s: %d tokens after a %d-token "
               "prompt%s\n  %-22s %10s %9s %7s %9s %8s %8s %12s %9s %8s %9s\n",
               cli_describe_model(&cfg, what, sizeof(what)), N, T, batch, "configuration",
               "tokens/s", B > 1 ? "ms/step" : "ms/token", "comm", B > 1 ? "MB/step" : "MB/token",
               "RSS MB", "GB/s", "ceiling t/s", "%ceiling", "vs P=1", "vs torch1");
    for (int i = 0; i < n_runs; i++) {
        decode_job *j = &jobs[i];
        int bi = 0;
        while (tps[bi] != j->P) bi++;
        /* P cores share bw: each rank streams its shard at bw / P. */
        /* N - 1 timed steps of B tokens; each step reads the weights once (the ceiling). */
        double steps = N - 1, tps_ = B * steps / j->seconds;
        double ceiling = B * (bw[bi] / j->P / (double)j->weight_bytes);
        double vs1 = 0, vst = torch[0].valid ? tps_ / (N / torch[0].seconds) : 0;
        const decode_job *first = j; /* the first run of the same type: its tokens */
        for (int k = 0; k < n_runs; k++) {
            if (jobs[k].P == 1 && jobs[k].wtype == KERNEL_F32) vs1 = jobs[k].seconds / j->seconds;
            if (k < i && first == j && jobs[k].wtype == j->wtype) first = &jobs[k];
        }
        if (vs1 == 0) /* no F32 P=1 run: against P=1 of the same type */
            for (int k = 0; k < n_runs; k++)
                if (jobs[k].P == 1 && jobs[k].wtype == j->wtype) vs1 = jobs[k].seconds / j->seconds;
        int same = agree(j->tokens, first->tokens, n_check);
        const char *tname = kernel_type_info(j->wtype)->name;
        if (json) {
            printf("{\"backend\":\"linshard\",\"P\":%d,\"dtype\":\"%s\",\"T\":%d,\"new_tokens\":%d,"
                   "\"batch\":%d,\"timed_steps\":%d,"
                   "\"seconds\":%g,\"tokens_per_s\":%g,\"comm_fraction\":%g,"
                   "\"weight_bytes_per_rank\":%zu,\"resident_bytes\":%zu,"
                   "\"read_bandwidth_GBps\":%g,\"ceiling_tokens_per_s\":%g,"
                   "\"tokens_agree_with_first_of_dtype\":%d}\n",
                   j->P, tname, T, N, B, N - 1, j->seconds, tps_, j->comm_seconds / j->seconds,
                   j->weight_bytes, j->resident_bytes, bw[bi] / 1e9, ceiling, same);
        } else {
            char label[32], v1[32], vt[32];
            snprintf(label, sizeof(label), "linshard P=%d %s", j->P, tname);
            printf("  %-22s %10.1f %9.2f %6.1f%% %9.1f %8.1f %8.1f %12.1f %8.0f%% %8s %9s\n", label,
                   tps_, 1e3 * j->seconds / steps, 100 * j->comm_seconds / j->seconds,
                   j->weight_bytes / 1e6, j->resident_bytes / 1e6, bw[bi] / 1e9, ceiling,
                   100 * tps_ / ceiling, cli_format_speedup(vs1, v1, sizeof(v1)),
                   cli_format_speedup(vst, vt, sizeof(vt)));
        }
    }
    for (int k = 0; k < 2; k++) {
        torch_result *t = &torch[k];
        if (!t->valid) continue;
        int same = agree(t->tokens, jobs[0].tokens, t->n_tokens < n_check ? t->n_tokens : n_check);
        if (json)
            printf("{\"backend\":\"pytorch\",\"threads\":%d,\"T\":%d,\"new_tokens\":%d,"
                   "\"seconds\":%g,\"tokens_per_s\":%g,\"tokens_agree_with_linshard\":%d}\n",
                   t->threads, T, N, t->seconds, N / t->seconds, same);
        else {
            char vt[32];
            printf("  pytorch %d thread%-8s %10.1f %9.2f %59s %9s   (greedy tokens equal "
                   "linshard's for the first %d of %d)\n",
                   t->threads, t->threads > 1 ? "s" : "", N / t->seconds, 1e3 * t->seconds / N, "",
                   cli_format_speedup(torch[0].valid ? torch[0].seconds / t->seconds : 0, vt,
                                      sizeof(vt)),
                   same, n_check);
        }
    }
    if (!json)
        for (int i = 0; i < n_runs; i++)
            if (i % n_tp) /* the runs of one type: P = tps[0], tps[1], ... */
                printf("  %s: P=%d greedy tokens equal P=%d's for the first %d of %d\n",
                       kernel_type_info(jobs[i].wtype)->name, jobs[i].P, tps[0],
                       agree(jobs[i].tokens, jobs[i - i % n_tp].tokens, n_check), n_check);
done:
    if (file_open) model_source_close(&src);
    if (shape) cli_remove_temp_model(tmpdir);
    return rc;
}
