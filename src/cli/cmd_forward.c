/* cmd_forward.c — `linshard forward` (logits of a token sequence) and `linshard init` (a seeded
 * random GPT-2 checkpoint). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/atomic_file.h"
#include "linshard/linshard.h"

static const char forward_usage[] =
    "usage: linshard forward --model DIR --tokens ID,ID,... [--tp P] [--backend threads|mpi]\n"
    "                        [--dump-logits FILE] [--comm-stats]\n"
    "\n"
    "Runs GPT-2 (a Hugging Face directory: config.json + model.safetensors) on the token ids,\n"
    "split over P ranks, and prints the top-5 next tokens after the last position.\n"
    "\n"
    "  --model DIR          the checkpoint directory\n"
    "  --tokens LIST        comma-separated token ids (at most n_positions of them)\n"
    "  --tp P               ranks (default 1; at most the number of attention heads)\n"
    "  --backend B          threads (default) or mpi (run under: mpirun -np P linshard ...)\n"
    "  --dump-logits FILE   write the float32 logits [T, vocab] (row-major, little-endian,\n"
    "                       nothing else) to FILE, atomically\n"
    "  --comm-stats         print rank 0's comm ledger of the forward pass\n"
    "  -h, --help           this text\n";

static int write_logits(const char *path, const float *logits, size_t n) {
    char err[512];
    if (atomic_file_write(path, logits, n * sizeof(float), err, sizeof(err)))
        return cli_job_error("%s", err);
    return EXIT_OK;
}

int cmd_forward(int argc, char **argv) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"tokens", required_argument, 0, 't'},
                                             {"tp", required_argument, 0, 'p'},
                                             {"backend", required_argument, 0, 'b'},
                                             {"dump-logits", required_argument, 0, 'd'},
                                             {"comm-stats", no_argument, 0, 's'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    model_run job;
    memset(&job, 0, sizeof(job));
    job.P = 1;
    job.top_k = 5;
    const char *dump = NULL, *bad = NULL, *tokens_arg = NULL;
    int *tokens = NULL, comm_stats = 0, c, rc;
    long P = 1;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            job.model_dir = optarg;
            break;
        case 't':
            tokens_arg = optarg;
            break;
        case 'p':
            if (cli_parse_int(optarg, 1, 256, &P))
                return cli_usage_error("forward", "--tp must be an integer in 1..256, got '%s'",
                                       optarg);
            job.P = (int)P;
            break;
        case 'b':
            if ((rc = cli_parse_backend("forward", optarg, &job.backend))) return rc;
            break;
        case 'd':
            dump = optarg;
            break;
        case 's':
            comm_stats = 1;
            break;
        case 'h':
            fputs(forward_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("forward", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("forward", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("forward", "unexpected argument '%s'", argv[optind]);
    if (!job.model_dir) return cli_usage_error("forward", "--model DIR is required");
    if (!tokens_arg) return cli_usage_error("forward", "--tokens is required");
    if ((job.T = cli_parse_tokens(tokens_arg, &tokens, &bad)) < 0)
        return cli_usage_error("forward", "bad token id at '%s' in --tokens", bad);
    job.tokens = tokens;
    job.want_logits = dump != NULL;
    if ((rc = cli_start_backend(job.backend, job.P))) {
        free(tokens);
        return rc;
    }
    rc = model_run_job(&job);
    if (rc == EXIT_OK && cli_is_printer(job.backend)) {
        printf("top-5 next tokens after position %d (P=%d, %s):\n", job.T - 1, job.P,
               comm_backend_name(job.backend));
        for (int i = 0; i < 5 && i < job.cfg.vocab_size; i++)
            printf("  %d  %8d  logit %.6f\n", i + 1, job.top_ids[i], job.top_values[i]);
        if (dump) {
            rc = write_logits(dump, job.logits, (size_t)job.T * (size_t)job.cfg.vocab_size);
            if (rc == EXIT_OK)
                printf("logits [%d, %d] float32 written to %s\n", job.T, job.cfg.vocab_size, dump);
        }
        if (comm_stats && job.have_ledger) ledger_print(&job.ledger, 0, stderr);
    }
    model_run_free(&job);
    free(tokens);
    cli_stop_backend(job.backend);
    return rc;
}

static const char init_usage[] =
    "usage: linshard init --out DIR [--shape gpt2 | --layers L --embd E --heads H --vocab V\n"
    "                     --ctx C] [--seed S] [--dtype f32|f16|bf16] [--prefix] [--hf-extras]\n"
    "\n"
    "Writes a seeded random GPT-2 in the Hugging Face layout (DIR/config.json and\n"
    "DIR/model.safetensors, each written atomically). Biases and LayerNorm parameters are\n"
    "random too, so sharding mistakes show in the logits.\n"
    "\n"
    "  --out DIR       directory to write (created if missing)\n"
    "  --shape gpt2    GPT-2 small: 12 layers, 768 wide, 12 heads, vocab 50257, context 1024\n"
    "  --layers L --embd E --heads H --vocab V --ctx C\n"
    "                  an explicit shape (E divisible by H); given values override --shape\n"
    "  --seed S        random seed (default 1)\n"
    "  --dtype T       storage type: f32 (default), f16 or bf16\n"
    "  --prefix        name tensors 'transformer.*' (as GPT2LMHeadModel.save_pretrained does)\n"
    "  --hf-extras     also write attn.bias/attn.masked_bias buffers and a tied lm_head.weight\n"
    "  -h, --help      this text\n";

int cmd_init(int argc, char **argv) {
    static const struct option longopts[] = {{"out", required_argument, 0, 'o'},
                                             {"shape", required_argument, 0, 'S'},
                                             {"layers", required_argument, 0, 'l'},
                                             {"embd", required_argument, 0, 'e'},
                                             {"heads", required_argument, 0, 'H'},
                                             {"vocab", required_argument, 0, 'v'},
                                             {"ctx", required_argument, 0, 'c'},
                                             {"seed", required_argument, 0, 's'},
                                             {"dtype", required_argument, 0, 'd'},
                                             {"prefix", no_argument, 0, 'p'},
                                             {"hf-extras", no_argument, 0, 'x'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    gpt2_config cfg = {0, 0, 0, 0, 0, 1e-5f, GELU_TANH};
    gpt2_init_opts opts = {1, ST_F32, 0, 0};
    const char *out = NULL;
    int c;
    long v;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int *field = NULL;
        long hi = 1 << 20;
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'S':
            if (strcmp(optarg, "gpt2"))
                return cli_usage_error("init", "unknown --shape '%s' (available: gpt2)", optarg);
            cfg = gpt2_small_shape;
            break;
        case 'l':
            field = &cfg.n_layer;
            hi = 1024;
            break;
        case 'e':
            field = &cfg.n_embd;
            hi = 65536;
            break;
        case 'H':
            field = &cfg.n_head;
            hi = 4096;
            break;
        case 'v':
            field = &cfg.vocab_size;
            hi = (1 << 24) - 1;
            break;
        case 'c':
            field = &cfg.n_positions;
            hi = 1 << 20;
            break;
        case 's':
            if (cli_parse_int(optarg, 0, 0x7fffffffL, &v))
                return cli_usage_error("init", "--seed must be a non-negative integer");
            opts.seed = (uint64_t)v;
            break;
        case 'd':
            if (!strcmp(optarg, "f32"))
                opts.dtype = ST_F32;
            else if (!strcmp(optarg, "f16"))
                opts.dtype = ST_F16;
            else if (!strcmp(optarg, "bf16"))
                opts.dtype = ST_BF16;
            else
                return cli_usage_error("init", "--dtype must be f32, f16 or bf16, got '%s'",
                                       optarg);
            break;
        case 'p':
            opts.prefix = 1;
            break;
        case 'x':
            opts.hf_extras = 1;
            break;
        case 'h':
            fputs(init_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("init", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("init", "unknown option '%s'", argv[optind - 1]);
        }
        if (field) {
            if (cli_parse_int(optarg, 1, hi, &v)) {
                const char *name = "";
                for (const struct option *o = longopts; o->name; o++)
                    if (o->val == c) name = o->name;
                return cli_usage_error("init", "--%s must be an integer in 1..%ld, got '%s'", name,
                                       hi, optarg);
            }
            *field = (int)v;
        }
    }
    if (optind < argc) return cli_usage_error("init", "unexpected argument '%s'", argv[optind]);
    if (!out) return cli_usage_error("init", "--out DIR is required");
    if (!cfg.n_layer || !cfg.n_embd || !cfg.n_head || !cfg.vocab_size || !cfg.n_positions)
        return cli_usage_error("init", "give --shape gpt2 or all of --layers, --embd, --heads, "
                                       "--vocab, --ctx");
    char err[512];
    if (gpt2_config_check(&cfg, err, sizeof(err))) return cli_usage_error("init", "%s", err);
    fprintf(stderr,
            "init: writing a %d-layer GPT-2 (%d wide, %d heads, vocab %d, context %d) to "
            "%s...\n",
            cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.vocab_size, cfg.n_positions, out);
    if (gpt2_init_random(out, &cfg, &opts, err, sizeof(err))) return cli_job_error("%s", err);
    printf("wrote %s/config.json and %s/model.safetensors (seed %llu, %s)\n", out, out,
           (unsigned long long)opts.seed, st_dtype_name(opts.dtype));
    return EXIT_OK;
}
