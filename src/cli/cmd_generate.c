/* cmd_generate.c — `linshard generate`: a prompt in, text out, the model split over P ranks.
 *
 * One sequence through the session library (session.h, one slot): every rank opens the session
 * and steps it; the driver (rank 0) adds the prompt, streams the text each step releases (whole
 * UTF-8 characters, stop strings cut out) and ends the loop when the sequence has ended. The
 * first step prefills the prompt and samples the first token; each later step decodes one token
 * (1 + 2 * n_layer AllReduce of one token's activations) and samples the next, identically on
 * every rank. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/linshard.h"
#include "linshard/model.h"
#include "linshard/sampling.h"
#include "linshard/session.h"
#include "linshard/tokenizer.h"

static const char generate_usage[] =
    "usage: linshard generate [--model PATH] [--tp P] [--backend threads|mpi] [--prompt TEXT]\n"
    "                         [-n N] [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
    "                         [--dtype T] [--stop STRING]...\n"
    "\n"
    "Generates text from the prompt with a model split over P ranks, streaming text to stdout\n"
    "(whole UTF-8 characters only); prompt and generation speed and the time spent in\n"
    "communication go to stderr. Stops at the end-of-text token (the tokenizer's EOS, or an\n"
    "end-of-turn token such as <|eot_id|> or <|im_end|>), at a stop string, after N tokens, or\n"
    "at the model's context length.\n"
    "\n"
    "  --model PATH      a checkpoint of any family (a Hugging Face directory or a .gguf file),\n"
    "                    with its tokenizer (tokenizer.json + tokenizer_config.json in the\n"
    "                    directory; a .gguf file's own, else those files beside it; a GPT-2\n"
    "                    without one uses the built-in GPT-2 tokenizer). The prompt gets a\n"
    "                    BOS token when the tokenizer says so. Without --model: the built-in\n"
    "                    default, a small GPT-2 (2 layers, 128 wide, context 64, GPT-2\n"
    "                    vocabulary) trained by linshard on the King James Bible (public\n"
    "                    domain): see data/default-model/README.md\n"
    "  --tp P            ranks (default 1)\n"
    "  --backend B       threads (default) or mpi, the default under mpirun -np P (--tp is P)\n"
    "  --prompt TEXT     the prompt (default \"And it came to pass\"); special tokens in it\n"
    "                    (<|begin_of_text|>, <|im_start|>, ...) are matched; empty: start from\n"
    "                    BOS (GPT-2: <|endoftext|>)\n"
    "  -n N              tokens to generate (default 32)\n"
    "  --temperature T   0 = greedy (default 0.8)\n"
    "  --top-k K         sample among the K most likely tokens (default 40; 0 = all)\n"
    "  --top-p P         nucleus sampling: the smallest set with mass >= P (default 1 = off)\n"
    "  --seed S          random seed (default 1): the same seed gives the same text at every P\n"
    "  --dtype T         the type the weights are held as in memory: auto (default: as the\n"
    "                    checkpoint stores them), f32, f16, bf16, q8_0 or q4_0 (quantised\n"
    "                    as they load)\n"
    "  --stop STRING     stop when the text contains STRING (not printed; up to 4 of them, each\n"
    "                    1..256 bytes of UTF-8); text that may begin one is held back until\n"
    "                    it cannot\n"
    "  --comm-stats      print rank 0's comm ledger at the end\n"
    "  -h, --help        this text\n";

typedef struct {
    const char *model_dir;
    const model_source *src;
    model_config cfg;
    const tokenizer *tok;
    const int *prompt;
    int n_prompt, n_new, comm_stats;
    int wtype_given; /* 0: hold the matrices as stored */
    kernel_type wtype;
    sampling_opts sampling;
    uint64_t seed;
    const char *stop[SESSION_MAX_STOPS];
    int n_stop;
    /* out (rank 0) */
    int generated;
    long long decoded;                    /* decode steps */
    double prefill_s, decode_s;           /* the prompt's step (with the first token); the rest */
    double comm_prefill_s, comm_decode_s; /* of which in collectives */
    session_finish_reason finish;
} generate_job;

/* What the last line says for each way a sequence ends. */
static const char *stop_words(session_finish_reason r) {
    switch (r) {
    case SESSION_FINISH_EOS:
        return "the end-of-text token";
    case SESSION_FINISH_STOP:
        return "a stop string";
    case SESSION_FINISH_LENGTH:
        return "the requested number of tokens";
    case SESSION_FINISH_CONTEXT:
        return "the model's context length";
    default:
        return "?";
    }
}

/* The driver: adds the one sequence, steps until it has ended, prints its text as it comes. */
static int generate_driver(comm_t *comm, session *s, generate_job *job) {
    session_params p = {job->sampling, job->seed, job->n_new, job->stop, job->n_stop};
    char err[512];
    int id = session_add(s, job->prompt, job->n_prompt, &p, err, sizeof(err));
    if (id < 0) return comm_fail(comm, "%s", id == SESSION_BUSY ? "the session is full" : err);
    const ledger_t *ledger = comm_ledger(comm);
    int rc = 0, first = 1;
    while (!rc) {
        if (session_pending(s) == 0) session_finish(s);
        const session_event *ev;
        int n_ev;
        session_stats st;
        double t0 = timer_seconds(), c0 = ledger_total_seconds(ledger);
        rc = session_step(s, &ev, &n_ev);
        double dt = timer_seconds() - t0, dc = ledger_total_seconds(ledger) - c0;
        if (rc) break;
        *(first ? &job->prefill_s : &job->decode_s) += dt;
        *(first ? &job->comm_prefill_s : &job->comm_decode_s) += dc;
        first = 0;
        for (int e = 0; e < n_ev; e++) {
            if (ev[e].text_len) fwrite(ev[e].text, 1, ev[e].text_len, stdout);
            job->generated = ev[e].n_generated;
            if (ev[e].finish) job->finish = ev[e].finish;
        }
        fflush(stdout);
        session_get_stats(s, &st);
        job->decoded = st.decode_steps;
    }
    return rc == SESSION_DONE ? 0 : rc;
}

static int generate_rank(comm_t *comm, void *arg) {
    generate_job *job = arg;
    const model_config *c = &job->cfg;
    int capacity = job->n_prompt + job->n_new, rc = 0;
    if (capacity > c->n_positions) capacity = c->n_positions;
    /* One slot of just the positions this text needs; the whole prompt in one pass. */
    session_opts o = {1, capacity, job->n_prompt, 1, job->wtype};
    session *s;
    char err[512];
    if (session_open(&s, comm, job->src, job->tok, &o, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    /* Every rank has loaded its shard before the prompt's clock starts. */
    if ((rc = comm_barrier(comm, "start"))) {
        session_close(s);
        return rc;
    }
    if (comm_rank(comm) == 0) {
        rc = generate_driver(comm, s, job);
        if (!rc && job->comm_stats) ledger_print(comm_ledger(comm), 0, stderr);
    } else {
        while (!rc) rc = session_step(s, NULL, NULL);
        if (rc == SESSION_DONE) rc = 0;
    }
    session_close(s);
    return rc;
}

/* Loads the tokenizer: the model directory's files if it has them, else (GPT-2 only) the
 * built-in one — any other family needs the tokenizer it was trained with. */
int cmd_generate(int argc, char **argv) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"tp", required_argument, 0, 'p'},
                                             {"backend", required_argument, 0, 'b'},
                                             {"prompt", required_argument, 0, 'P'},
                                             {"temperature", required_argument, 0, 't'},
                                             {"top-k", required_argument, 0, 'k'},
                                             {"top-p", required_argument, 0, 'q'},
                                             {"seed", required_argument, 0, 's'},
                                             {"comm-stats", no_argument, 0, 'c'},
                                             {"dtype", required_argument, 0, 'd'},
                                             {"stop", required_argument, 0, 'S'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    generate_job job;
    memset(&job, 0, sizeof(job));
    job.sampling = (sampling_opts){0.8f, 40, 1.0f};
    job.seed = 1;
    job.n_new = 32;
    const char *prompt = "And it came to pass";
    long P = 1, v;
    comm_backend_t backend = COMM_BACKEND_THREADS;
    int c, rc, backend_given = 0, tp_given = 0;
    char *end;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":hn:", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            job.model_dir = optarg;
            break;
        case 'p':
            if (cli_parse_int(optarg, 1, 256, &P))
                return cli_usage_error("generate", "--tp must be an integer in 1..256, got '%s'",
                                       optarg);
            tp_given = 1;
            break;
        case 'b':
            if ((rc = cli_parse_backend("generate", optarg, &backend))) return rc;
            backend_given = 1;
            break;
        case 'P':
            prompt = optarg;
            break;
        case 'n':
            if (cli_parse_int(optarg, 1, 1 << 20, &v))
                return cli_usage_error("generate", "-n must be a positive integer, got '%s'",
                                       optarg);
            job.n_new = (int)v;
            break;
        case 't':
            job.sampling.temperature = strtof(optarg, &end);
            if (*end || end == optarg || !(job.sampling.temperature >= 0) ||
                !isfinite(job.sampling.temperature))
                return cli_usage_error("generate", "--temperature must be a number >= 0, got '%s'",
                                       optarg);
            break;
        case 'k':
            if (cli_parse_int(optarg, 0, 1 << 24, &v))
                return cli_usage_error("generate", "--top-k must be an integer >= 0, got '%s'",
                                       optarg);
            job.sampling.top_k = (int)v;
            break;
        case 'q':
            job.sampling.top_p = strtof(optarg, &end);
            if (*end || end == optarg || !(job.sampling.top_p > 0 && job.sampling.top_p <= 1))
                return cli_usage_error("generate", "--top-p must be in (0, 1], got '%s'", optarg);
            break;
        case 's':
            if (cli_parse_int(optarg, 0, 0x7fffffffL, &v))
                return cli_usage_error("generate", "--seed must be a non-negative integer");
            job.seed = (uint64_t)v;
            break;
        case 'd':
            if ((rc = cli_parse_dtype("generate", optarg, &job.wtype_given, &job.wtype))) return rc;
            break;
        case 'c':
            job.comm_stats = 1;
            break;
        case 'S':
            if (job.n_stop == SESSION_MAX_STOPS)
                return cli_usage_error("generate", "at most %d --stop strings", SESSION_MAX_STOPS);
            if (!optarg[0] || strlen(optarg) > SESSION_MAX_STOP_BYTES)
                return cli_usage_error("generate", "--stop must be 1..%d bytes",
                                       SESSION_MAX_STOP_BYTES);
            job.stop[job.n_stop++] = optarg;
            break;
        case 'h':
            fputs(generate_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("generate", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("generate", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("generate", "unexpected argument '%s'", argv[optind]);
    { /* the stop strings (UTF-8), before anything is loaded; sampling against the vocabulary
         is checked once the model is open */
        session_params stops = {{0.0f, 0, 1.0f}, job.seed, job.n_new, job.stop, job.n_stop};
        char why[256];
        if (session_check_params(&stops, 1, why, sizeof(why)))
            return cli_usage_error("generate", "%s", why);
    }
    if ((rc = cli_resolve_backend("generate", backend_given, &backend, tp_given, &P))) return rc;
    if ((rc = cli_start_backend(backend, (int)P))) return rc;
    int printer = cli_is_printer(backend);
    char err[512];
    tokenizer *tok = NULL;
    int *ids = NULL;
    size_t n_ids = 0;
    model_source src;
    int src_open = 0;
    rc = EXIT_OK;

    if (cli_open_generation_model("generate", job.model_dir, (int)P, printer, &src, &tok, err,
                                  sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    src_open = 1;
    job.cfg = src.cfg;
    if (sampling_opts_check(&job.sampling, job.cfg.vocab_size, err, sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    if (tokenizer_encode_prompt(tok, prompt, strlen(prompt), &ids, &n_ids)) {
        rc = cli_job_error("out of memory encoding the prompt");
        goto done;
    }
    if (n_ids == 0) { /* unconditional text starts from BOS (GPT-2: <|endoftext|>) */
        int start = tokenizer_bos(tok) >= 0 ? tokenizer_bos(tok) : tokenizer_eos(tok);
        free(ids);
        ids = malloc(sizeof(int));
        if (!ids || start < 0) {
            rc = cli_job_error(ids ? "an empty prompt needs a BOS or EOS token, and the "
                                     "tokenizer has neither"
                                   : "out of memory");
            goto done;
        }
        ids[0] = start;
        n_ids = 1;
    }
    if ((int)n_ids >= job.cfg.n_positions) {
        rc = cli_job_error("the prompt has %zu tokens; the model's context is %d positions", n_ids,
                           job.cfg.n_positions);
        goto done;
    }
    if (!job.wtype_given) job.wtype = model_source_stored_type(&src);
    if (model_check_weight_type(&job.cfg, job.wtype, err, sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    job.src = &src;
    job.tok = tok;
    job.prompt = ids;
    job.n_prompt = (int)n_ids;
    if (cli_reserve_blas(backend == COMM_BACKEND_MPI ? 1 : (int)P, 1, err, sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    kernel_set_threads(1);
    if (printer) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    rc = comm_launch(backend, (int)P, generate_rank, &job, err, sizeof(err));
    if (rc) {
        if (printer) putchar('\n');
        rc = cli_job_error("%s", err);
        goto done;
    }
    if (printer) {
        putchar('\n');
        fflush(stdout); /* the text first, then the figures on stderr */
        double rate = job.decode_s > 0 ? job.decoded / job.decode_s : 0;
        fprintf(stderr,
                "generate: P=%ld (%s); prompt %d tokens in %.1f ms (%.1f tokens/s, the first new "
                "token with it); %d tokens generated, %lld decoded in %.1f ms (%.1f tokens/s); "
                "communication %.1f%% of prompt time, %.1f%% of decoding time; stopped at %s\n",
                P, comm_backend_name(backend), job.n_prompt, job.prefill_s * 1e3,
                job.n_prompt / job.prefill_s, job.generated, job.decoded, job.decode_s * 1e3, rate,
                100 * job.comm_prefill_s / job.prefill_s,
                job.decode_s > 0 ? 100 * job.comm_decode_s / job.decode_s : 0.0,
                stop_words(job.finish));
    }
done:
    if (src_open) model_source_close(&src);
    free(ids);
    if (tok) tokenizer_free(tok);
    cli_stop_backend(backend);
    return rc;
}
