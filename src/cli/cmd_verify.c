/* cmd_verify.c — `linshard verify`: the same logits from P ranks as from the unsplit model, and
 * the communication the Megatron pattern promises, read off the ledger. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/linshard.h"

#define MAX_TP 32

/* Agreement required between P ranks and P = 1, relative to the largest |logit| at P = 1.
 * Splitting changes only the order of float32 additions: each row-parallel GEMM sums P partial
 * dot products instead of one, and the AllReduce adds them in rank order. One reordered sum of
 * K products errs by at most ~K * 2^-24 * sum|terms| in theory, far less in practice (errors
 * are random, ~sqrt(K) * 2^-24). Over 2 layers (and 12 for GPT-2 small) measured differences
 * are 1e-7..1e-6 of the largest logit; 1e-4 leaves two orders of margin for deeper models while
 * a real sharding bug (a bias added P times, a head from the wrong block) errs by 1e-2 or more. */
#define VERIFY_REL_TOL 1e-4

static const char verify_usage[] =
    "usage: linshard verify [--model PATH] [--tp LIST] [--tokens IDS] [--backend threads|mpi]\n"
    "                       [--dtype T] [--comm-stats]\n"
    "\n"
    "Runs the model unsplit (P = 1) and split over each P in LIST on the same tokens; prints\n"
    "for each P the max absolute and relative difference of the logits against P = 1 and the\n"
    "AllReduce count per layer read from the comm ledger. Exit 0 only if every P is within\n"
    "tolerance (an absolute one: 1e-4 of the largest |logit| at P = 1; a NaN or infinite\n"
    "logit always fails) and every layer did exactly 2 AllReduce.\n"
    "\n"
    "  --model PATH    a checkpoint (a directory or a .gguf file); without it, a seeded random\n"
    "                  GPT-2 of 2 layers, 48 wide, 6 heads, vocabulary 101, context 32 is built\n"
    "                  (in a temporary directory that is removed afterwards)\n"
    "  --tp LIST       the P values to check (default 1,2,3,4,5,6)\n"
    "  --tokens IDS    comma-separated token ids (default: 16 ids spread over the vocabulary)\n"
    "  --backend B     threads (default) or mpi, the default under mpirun -np P: LIST is then P\n"
    "                  alone, --model is needed, and the P = 1 reference runs inside rank 0\n"
    "  --dtype T       the type the weights are held as at every P (P = 1 included): auto\n"
    "                  (default: as stored), f32, f16, bf16, q8_0 or q4_0\n"
    "  --comm-stats    print rank 0's full ledger for every P\n"
    "  -h, --help      this text\n";

typedef struct {
    int P;
    double max_abs, max_rel, scale;
    int allreduce_per_layer_ok, ok;
} verdict;

/* max that keeps NaN: fmax(x, NaN) returns x, so a NaN logit would vanish from the worst
 * difference and an all-NaN model would pass with tolerance 0 <= 0. */
static double max_keep_nan(double a, double b) {
    return isnan(a) || isnan(b) ? NAN : (a > b ? a : b);
}

static void compare(const float *got, const float *ref, size_t n, verdict *v) {
    double scale = 0, max_abs = 0, max_rel = 0;
    for (size_t i = 0; i < n; i++) scale = max_keep_nan(scale, fabs(ref[i]));
    double floor = 1e-3 * scale + 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        max_abs = max_keep_nan(max_abs, d);
        max_rel = max_keep_nan(max_rel, d / fmax(fabs(ref[i]), floor));
    }
    v->max_abs = max_abs;
    v->max_rel = max_rel;
    v->scale = scale;
}

/* Prints the per-layer AllReduce counts and returns 1 if the pattern is exactly right: one for
 * the embedding and two per layer, each of T * n_embd floats, and no other AllReduce. */
static int check_ledger(const ledger_t *l, const model_config *cfg, int T, int P, int print) {
    uint64_t payload = (uint64_t)T * (uint64_t)cfg->n_embd;
    int ok = 1;
    char tag[32];
    ledger_counts e = ledger_tag_counts(l, "embed", LEDGER_ALLREDUCE);
    ok &= e.calls == 1 && e.elements == payload;
    if (print)
        printf("  ledger at P=%d (rank 0): embed 1 allreduce x %llu floats; per layer:", P,
               (unsigned long long)payload);
    for (int i = 0; i < cfg->n_layer; i++) {
        snprintf(tag, sizeof(tag), "layer%d.attn", i);
        ledger_counts a = ledger_tag_counts(l, tag, LEDGER_ALLREDUCE);
        snprintf(tag, sizeof(tag), "layer%d.mlp", i);
        ledger_counts m = ledger_tag_counts(l, tag, LEDGER_ALLREDUCE);
        int layer_ok =
            a.calls == 1 && m.calls == 1 && a.elements == payload && m.elements == payload;
        ok &= layer_ok;
        if (print) printf(" %llu+%llu", (unsigned long long)a.calls, (unsigned long long)m.calls);
    }
    ledger_counts total = ledger_op_total(l, LEDGER_ALLREDUCE);
    ok &= total.calls == 1 + 2 * (uint64_t)cfg->n_layer;
    if (print)
        printf(" (attn+mlp); total %llu allreduce = 1 + 2 x %d layers; %llu bytes sent by rank 0\n",
               (unsigned long long)total.calls, cfg->n_layer, (unsigned long long)total.bytes_sent);
    return ok;
}

int cmd_verify(int argc, char **argv) {
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},  {"tp", required_argument, 0, 'p'},
        {"tokens", required_argument, 0, 't'}, {"backend", required_argument, 0, 'b'},
        {"comm-stats", no_argument, 0, 's'},   {"dtype", required_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *model_dir = NULL, *tokens_arg = NULL;
    int tps[MAX_TP] = {1, 2, 3, 4, 5, 6}, n_tp = 6, comm_stats = 0, c, rc;
    int backend_given = 0, tp_given = 0, wtype_given = 0;
    kernel_type wtype = KERNEL_F32;
    comm_backend_t backend = COMM_BACKEND_THREADS;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_dir = optarg;
            break;
        case 'p':
            n_tp = cli_parse_int_list(optarg, tps, MAX_TP, 1, 256);
            if (n_tp < 0)
                return cli_usage_error("verify",
                                       "--tp must be a list like 1,2,4 of up to %d "
                                       "integers in 1..256, got '%s'",
                                       MAX_TP, optarg);
            tp_given = 1;
            break;
        case 't':
            tokens_arg = optarg;
            break;
        case 'b':
            if ((rc = cli_parse_backend("verify", optarg, &backend))) return rc;
            backend_given = 1;
            break;
        case 'D':
            if ((rc = cli_parse_dtype("verify", optarg, &wtype_given, &wtype))) return rc;
            break;
        case 's':
            comm_stats = 1;
            break;
        case 'h':
            fputs(verify_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("verify", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("verify", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("verify", "unexpected argument '%s'", argv[optind]);
    long P = tps[0];
    if ((rc = cli_resolve_backend("verify", backend_given, &backend, tp_given, &P))) return rc;
    if (backend == COMM_BACKEND_MPI && !tp_given) {
        tps[0] = (int)P;
        n_tp = 1;
    }
    if (backend == COMM_BACKEND_MPI && n_tp != 1)
        return cli_usage_error(
            "verify", "with --backend mpi give one P, the number of MPI "
                      "processes (e.g. mpirun -np 4 linshard verify --backend mpi --tp 4)");
    /* The default model is built by rank 0 alone, in its own temporary directory. */
    if (backend == COMM_BACKEND_MPI && tps[0] > 1 && !model_dir)
        return cli_usage_error("verify", "with the mpi backend give --model DIR (a checkpoint "
                                         "every process can read)");
    int *tokens = NULL, T = 0;
    const char *bad = NULL;
    if (tokens_arg && (T = cli_parse_tokens(tokens_arg, &tokens, &bad)) < 0)
        return cli_usage_error("verify", "bad token id at '%s' in --tokens", bad);
    if ((rc = cli_start_backend(backend, tps[0]))) {
        free(tokens);
        return rc;
    }
    int printer = cli_is_printer(backend);

    /* Without --model, build the default random model in a temporary directory. */
    char tmpdir[] = "/tmp/linshard-verify-XXXXXX", err[512];
    int made_model = 0;
    if (!model_dir) {
        model_config tiny = cli_shape_gpt2_tiny();
        if (cli_temp_model(tmpdir, &tiny, 1, err, sizeof(err))) {
            free(tokens);
            cli_stop_backend(backend);
            return cli_job_error("verify: cannot build the default model: %s", err);
        }
        model_dir = tmpdir;
        made_model = 1;
        printf("verify: seeded random GPT-2 (seed 1): 2 layers, n_embd 48, 6 heads, vocab 101, "
               "context 32\n");
    }
    model_config cfg;
    if (cli_model_config(model_dir, &cfg, err, sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    if (printer && !made_model) {
        char what[256];
        printf("verify: %s\n", cli_describe_model(&cfg, what, sizeof(what)));
    }
    if (!tokens) {
        T = cfg.n_positions < 16 ? cfg.n_positions : 16;
        tokens = malloc((size_t)T * sizeof(int));
        if (!tokens) {
            rc = cli_job_error("out of memory");
            goto done;
        }
        for (int t = 0; t < T; t++) tokens[t] = (int)(((long long)t * 7919 + 13) % cfg.vocab_size);
    }

    /* The reference: P = 1, in this process (rank 0's, under MPI). */
    model_run ref = {.model_dir = model_dir,
                     .tokens = tokens,
                     .T = T,
                     .P = 1,
                     .backend = COMM_BACKEND_THREADS,
                     .want_logits = 1,
                     .wtype_given = wtype_given,
                     .wtype = wtype};
    if (printer && (rc = model_run_job(&ref))) goto done;
    if (printer) {
        printf("  weights held as %s; tolerance: absolute, max |diff| <= %.0e x max |logit at P=1| "
               "(max rel diff is shown, not judged)\n",
               kernel_type_info(ref.held_as)->name, VERIFY_REL_TOL);
        printf("  %4s  %14s  %14s  %10s  %16s  %s\n", "P", "max |diff|", "max rel diff", "abs tol",
               "allreduce/layer", "result");
    }
    int all_ok = 1;
    size_t n = (size_t)T * (size_t)cfg.vocab_size;
    for (int i = 0; i < n_tp; i++) {
        model_run job = {.model_dir = model_dir,
                         .tokens = tokens,
                         .T = T,
                         .P = tps[i],
                         .backend = backend,
                         .want_logits = 1,
                         .wtype_given = wtype_given,
                         .wtype = wtype};
        if ((rc = model_run_job(&job))) {
            all_ok = 0;
            model_run_free(&job);
            break;
        }
        if (printer) {
            verdict v = {.P = tps[i]};
            compare(job.logits, ref.logits, n, &v);
            int ledger_ok = job.have_ledger && check_ledger(&job.ledger, &cfg, T, tps[i], 0);
            double tol = VERIFY_REL_TOL * v.scale;
            /* A NaN or infinite reference or difference fails: every comparison with NaN is
             * false, and isfinite(tol) rules out inf <= inf. */
            int ok = ledger_ok && isfinite(tol) && isfinite(v.max_abs) && v.max_abs <= tol;
            all_ok &= ok;
            printf("  %4d  %14.3e  %14.3e  %10.2e  %16s  %s\n", tps[i], v.max_abs, v.max_rel, tol,
                   ledger_ok ? "2 (ok)" : "WRONG", ok ? "ok" : "FAIL");
            if (comm_stats || i == n_tp - 1) check_ledger(&job.ledger, &cfg, T, tps[i], 1);
            if (comm_stats) ledger_print(&job.ledger, 0, stdout);
        }
        model_run_free(&job);
    }
    if (printer && rc == EXIT_OK) {
        printf("verify: %s\n", all_ok ? "every P matches P=1 within tolerance, with exactly 2 "
                                        "AllReduce per layer"
                                      : "FAILED");
        if (!all_ok) rc = EXIT_JOB;
    }
    model_run_free(&ref);
done:
    if (made_model) cli_remove_temp_model(tmpdir);
    free(tokens);
    cli_stop_backend(backend);
    return rc;
}
