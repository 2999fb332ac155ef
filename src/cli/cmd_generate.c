/* cmd_generate.c — `linshard generate`: a prompt in, text out, the model split over P ranks.
 *
 * Every rank runs the same loop: prefill the prompt into its head-sharded KV cache, then per
 * token: sample (identically on every rank, see sampling.h), decode one step (1 + 2 * n_layer
 * AllReduce of one token's activations). Rank 0 streams the text. */
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
#include "linshard/tokenizer.h"

static const char generate_usage[] =
    "usage: linshard generate [--model PATH] [--tp P] [--backend threads|mpi] [--prompt TEXT]\n"
    "                         [-n N] [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
    "                         [--dtype T]\n"
    "\n"
    "Generates text from the prompt with a model split over P ranks, streaming text to stdout\n"
    "(whole UTF-8 characters only); prompt and generation speed and the time spent in\n"
    "communication go to stderr. Stops at the end-of-text token (the tokenizer's EOS, or an\n"
    "end-of-turn token such as <|eot_id|> or <|im_end|>), after N tokens, or at the model's\n"
    "context length.\n"
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
    /* out (rank 0) */
    int generated;
    double prefill_s, decode_s, comm_prefill_s, comm_decode_s;
    const char *stop_reason;
} generate_job;

/* Prints what the stream has of whole characters (a character split across tokens waits for
 * its last byte). out holds TOKENIZER_STREAM_ROOM bytes. */
static void emit(tokenizer_stream *stream, int id, char *out, size_t room) {
    int n = id >= 0 ? tokenizer_stream_push(stream, id, out, room)
                    : tokenizer_stream_flush(stream, out, room);
    if (n > 0) fwrite(out, 1, (size_t)n, stdout);
    fflush(stdout);
}

static int generate_rank(comm_t *comm, void *arg) {
    generate_job *job = arg;
    int r = comm_rank(comm), rc;
    const model_config *c = &job->cfg;
    int capacity = job->n_prompt + job->n_new;
    if (capacity > c->n_positions) capacity = c->n_positions;
    model_shard m;
    char err[512];
    if (model_source_load(job->src, &m, r, comm_size(comm), job->n_prompt, job->wtype, err,
                          sizeof(err)) ||
        model_shard_enable_cache(&m, capacity, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    float *scratch = malloc(2 * (size_t)c->vocab_size * sizeof(float));
    if (!scratch) return comm_fail(comm, "out of memory on rank %d", r);
    size_t room = TOKENIZER_STREAM_ROOM(job->tok);
    char *text = malloc(room);
    if (!text) {
        free(scratch);
        return comm_fail(comm, "out of memory on rank %d", r);
    }
    tokenizer_stream stream;
    tokenizer_stream_init(&stream, job->tok);
    sampler_rng rng;
    sampler_seed(&rng, job->seed);
    const ledger_t *ledger = comm_ledger(comm);

    double t0 = timer_seconds(), c0 = ledger_total_seconds(ledger);
    rc = model_forward(comm, &m, job->prompt, job->n_prompt);
    double t1 = timer_seconds(), c1 = ledger_total_seconds(ledger);
    const float *last = m.logits + (size_t)(job->n_prompt - 1) * (size_t)m.v_local;
    int generated = 0, token = -1;
    const char *stop = NULL;
    while (!rc && !stop) {
        if ((rc = sample_next_token(comm, last, m.v0, m.v_local, c->vocab_size, &job->sampling,
                                    &rng, scratch, &token)))
            break;
        if (tokenizer_is_stop(job->tok, token)) {
            stop = "the end-of-text token";
            break;
        }
        generated++;
        if (r == 0) emit(&stream, token, text, room);
        if (generated == job->n_new)
            stop = "the requested number of tokens";
        else if (m.cache_len == capacity)
            stop = "the model's context length";
        else if ((rc = model_extend(comm, &m, &token, 1)))
            break;
        last = m.logits;
    }
    double t2 = timer_seconds(), c2 = ledger_total_seconds(ledger);
    if (r == 0) emit(&stream, -1, text, room); /* an incomplete last character, as it is */
    if (!rc && r == 0) {
        job->generated = generated;
        job->prefill_s = t1 - t0;
        job->decode_s = t2 - t1;
        job->comm_prefill_s = c1 - c0;
        job->comm_decode_s = c2 - c1;
        job->stop_reason = stop;
        if (job->comm_stats) ledger_print(ledger, 0, stderr);
    }
    free(scratch);
    free(text);
    model_shard_free(&m);
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
    if ((rc = cli_resolve_backend("generate", backend_given, &backend, tp_given, &P))) return rc;
    if ((rc = cli_start_backend(backend, (int)P))) return rc;
    int printer = cli_is_printer(backend);
    char err[512];
    tokenizer *tok = NULL;
    int *ids = NULL, builtin = !job.model_dir;
    size_t n_ids = 0;
    model_source src;
    int src_open = 0;
    rc = EXIT_OK;

    if (builtin ? cli_default_model_open(&src, err, sizeof(err))
                : model_source_open(&src, job.model_dir, err, sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    src_open = 1;
    job.cfg = src.cfg;
    if (builtin && printer)
        fprintf(stderr, "generate: no --model: using the built-in default, a 2-layer GPT-2 "
                        "trained on the King James Bible (data/default-model/README.md)\n");
    if (model_config_check_tp(&job.cfg, (int)P, err, sizeof(err)) ||
        sampling_opts_check(&job.sampling, job.cfg.vocab_size, err, sizeof(err)) ||
        cli_load_tokenizer(builtin ? NULL : job.model_dir, &job.cfg, &tok, err, sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    if (tokenizer_vocab_size(tok) > job.cfg.vocab_size) {
        rc = cli_job_error("the tokenizer has %d tokens but the model only %d",
                           tokenizer_vocab_size(tok), job.cfg.vocab_size);
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
        fprintf(stderr,
                "generate: P=%ld (%s); prompt %d tokens in %.1f ms (%.1f tokens/s); %d tokens "
                "generated in %.1f ms (%.1f tokens/s); communication %.1f%% of prompt time, "
                "%.1f%% of generation time; stopped at %s\n",
                P, comm_backend_name(backend), job.n_prompt, job.prefill_s * 1e3,
                job.n_prompt / job.prefill_s, job.generated, job.decode_s * 1e3,
                job.generated / job.decode_s, 100 * job.comm_prefill_s / job.prefill_s,
                100 * job.comm_decode_s / job.decode_s, job.stop_reason ? job.stop_reason : "?");
    }
done:
    if (src_open) model_source_close(&src);
    free(ids);
    if (tok) tokenizer_free(tok);
    cli_stop_backend(backend);
    return rc;
}
