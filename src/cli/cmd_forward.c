/* cmd_forward.c — `linshard forward` (logits of a token sequence) and `linshard init` (a seeded
 * random checkpoint of any family). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/atomic_file.h"
#include "linshard/linshard.h"

static const char forward_usage[] =
    "usage: linshard forward --model PATH --tokens ID,ID,... [--tp P] [--backend threads|mpi]\n"
    "                        [--dtype T] [--dump-logits FILE] [--comm-stats]\n"
    "\n"
    "Runs a model (a Hugging Face directory: config.json and model.safetensors, or the files\n"
    "model.safetensors.index.json names; or a GGUF file; GPT-2, Llama, Mistral, Qwen2 or\n"
    "Qwen3) on the token ids, split over P ranks, and prints the top-5 next tokens after the\n"
    "last position.\n"
    "\n"
    "  --model PATH         the checkpoint: a directory or a .gguf file\n"
    "  --tokens LIST        comma-separated token ids (at most n_positions of them)\n"
    "  --tp P               ranks (default 1; at most the number of attention heads)\n"
    "  --backend B          threads (default) or mpi, the default under mpirun -np P (--tp is P)\n"
    "  --dtype T            the type the weights are held as in memory: auto (default: as\n"
    "                       the checkpoint stores them), f32, f16, bf16, q8_0 or q4_0\n"
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
                                             {"dtype", required_argument, 0, 'D'},
                                             {"comm-stats", no_argument, 0, 's'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    model_run job;
    memset(&job, 0, sizeof(job));
    job.P = 1;
    job.top_k = 5;
    const char *dump = NULL, *bad = NULL, *tokens_arg = NULL;
    int *tokens = NULL, comm_stats = 0, c, rc, backend_given = 0, tp_given = 0;
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
            tp_given = 1;
            break;
        case 'b':
            if ((rc = cli_parse_backend("forward", optarg, &job.backend))) return rc;
            backend_given = 1;
            break;
        case 'd':
            dump = optarg;
            break;
        case 'D':
            if ((rc = cli_parse_dtype("forward", optarg, &job.wtype_given, &job.wtype))) return rc;
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
    if ((rc = cli_resolve_backend("forward", backend_given, &job.backend, tp_given, &P))) return rc;
    job.P = (int)P;
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
        printf("top-%d next tokens after position %d (P=%d, %s, %s weights):\n", job.top_k,
               job.T - 1, job.P, comm_backend_name(job.backend),
               kernel_type_info(job.held_as)->name);
        for (int i = 0; i < job.top_k; i++)
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
    "usage: linshard init --out DIR [--family F] [--shape NAME | --layers L --embd E --heads H\n"
    "                     --vocab V --ctx C] [--kv-heads K] [--head-dim D] [--ff F] [--tied]\n"
    "                     [--untied] [--rope-theta X] [--rope-scaling llama3:F,LO,HI,ORIG]\n"
    "                     [--attention-bias] [--seed S] [--dtype f32|f16|bf16]\n"
    "                     [--shard-bytes N] [--prefix] [--hf-extras]\n"
    "\n"
    "Writes a seeded random model in its family's Hugging Face layout (DIR/config.json and the\n"
    "weights, each file written atomically). Biases and norm weights are random too, so\n"
    "sharding mistakes show in the logits.\n"
    "\n"
    "  --out DIR         directory to write (created if missing)\n"
    "  --family F        gpt2 (default), llama, mistral, qwen2 (q/k/v biases) or qwen3 (q/k\n"
    "                    norms)\n"
    "  --shape NAME      gpt2: GPT-2 small (12 layers, 768 wide, 12 heads, vocab 50257,\n"
    "                    context 1024); llama-1b: Llama 3.2 1B's shape (16 layers, 2048 wide,\n"
    "                    32 heads, 8 kv heads, MLP 8192, vocab 128256, tied, rope_theta 500000\n"
    "                    with llama3 scaling; context 2048 here)\n"
    "  --layers L --embd E --heads H --vocab V --ctx C\n"
    "                    an explicit shape; given values override --shape\n"
    "  --kv-heads K      key/value heads (grouped-query attention; default: --heads)\n"
    "  --head-dim D      head size (default E / H; Llama family only)\n"
    "  --ff F            MLP width (default 4 E for GPT-2; required for the Llama family)\n"
    "  --tied, --untied  LM head tied to the embedding or not (default: GPT-2 tied, others not)\n"
    "  --rope-theta X    RoPE base (default 10000; 1000000 for Qwen)\n"
    "  --rope-scaling llama3:FACTOR,LOW,HIGH,ORIGINAL_CONTEXT\n"
    "                    Llama 3's RoPE scaling, e.g. llama3:32,1,4,8192\n"
    "  --attention-bias  q/k/v/o biases (Llama, Qwen3's attention_bias)\n"
    "  --seed S          random seed (default 1)\n"
    "  --dtype T         storage type: f32 (default), f16 or bf16\n"
    "  --shard-bytes N   write a sharded checkpoint: files of at most N bytes (K, M, G\n"
    "                    suffixes) and model.safetensors.index.json\n"
    "  --prefix          GPT-2: name tensors 'transformer.*' (as save_pretrained does)\n"
    "  --hf-extras       GPT-2: also write attn.bias/attn.masked_bias buffers and a tied\n"
    "                    lm_head.weight\n"
    "  -h, --help        this text\n";

static int parse_family(const char *s, model_family *out) {
    static const char *const names[] = {"gpt2", "llama", "mistral", "qwen2", "qwen3"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) {
            *out = (model_family)i;
            return 0;
        }
    return -1;
}

int cmd_init(int argc, char **argv) {
    static const struct option longopts[] = {{"out", required_argument, 0, 'o'},
                                             {"shape", required_argument, 0, 'S'},
                                             {"family", required_argument, 0, 'F'},
                                             {"layers", required_argument, 0, 'l'},
                                             {"embd", required_argument, 0, 'e'},
                                             {"heads", required_argument, 0, 'H'},
                                             {"kv-heads", required_argument, 0, 'K'},
                                             {"head-dim", required_argument, 0, 'D'},
                                             {"ff", required_argument, 0, 'f'},
                                             {"vocab", required_argument, 0, 'v'},
                                             {"ctx", required_argument, 0, 'c'},
                                             {"tied", no_argument, 0, 't'},
                                             {"untied", no_argument, 0, 'u'},
                                             {"rope-theta", required_argument, 0, 'T'},
                                             {"rope-scaling", required_argument, 0, 'R'},
                                             {"attention-bias", no_argument, 0, 'b'},
                                             {"seed", required_argument, 0, 's'},
                                             {"dtype", required_argument, 0, 'd'},
                                             {"shard-bytes", required_argument, 0, 'B'},
                                             {"prefix", no_argument, 0, 'p'},
                                             {"hf-extras", no_argument, 0, 'x'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    /* Shape fields as given (0: not given), turned into a config once all flags are read. */
    int L = 0, E = 0, H = 0, KV = 0, D = 0, F = 0, V = 0, C = 0, tied = -1, attention_bias = 0;
    int have_family = 0;
    model_family family = FAMILY_GPT2;
    double theta = 0;
    rope_scaling_params scaling = {0, 0, 0, 0, 0, {0}};
    model_init_opts opts = {1, ST_F32, 0, 0, 0};
    const char *out = NULL, *shape = NULL;
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
            if (strcmp(optarg, "gpt2") && strcmp(optarg, "llama-1b"))
                return cli_usage_error("init", "unknown --shape '%s' (available: gpt2, llama-1b)",
                                       optarg);
            shape = optarg;
            break;
        case 'F':
            if (parse_family(optarg, &family))
                return cli_usage_error(
                    "init", "unknown --family '%s' (gpt2, llama, mistral, qwen2 or qwen3)", optarg);
            have_family = 1;
            break;
        case 'l':
            field = &L, hi = 1024;
            break;
        case 'e':
            field = &E, hi = 65536;
            break;
        case 'H':
            field = &H, hi = 4096;
            break;
        case 'K':
            field = &KV, hi = 4096;
            break;
        case 'D':
            field = &D, hi = 4096;
            break;
        case 'f':
            field = &F, hi = 1 << 20;
            break;
        case 'v':
            field = &V, hi = (1 << 24) - 1;
            break;
        case 'c':
            field = &C, hi = 1 << 20;
            break;
        case 't':
            tied = 1;
            break;
        case 'u':
            tied = 0;
            break;
        case 'b':
            attention_bias = 1;
            break;
        case 'T': {
            char *end;
            theta = strtod(optarg, &end);
            if (*end || !(theta > 1))
                return cli_usage_error("init", "--rope-theta must be a number > 1, got '%s'",
                                       optarg);
            break;
        }
        case 'R':
            if (sscanf(optarg, "llama3:%lf,%lf,%lf,%d", &scaling.factor, &scaling.low_freq_factor,
                       &scaling.high_freq_factor, &scaling.original_max_positions) != 4 ||
                !(scaling.factor > 0) || !(scaling.low_freq_factor > 0) ||
                !(scaling.high_freq_factor > scaling.low_freq_factor) ||
                scaling.original_max_positions < 1)
                return cli_usage_error("init",
                                       "--rope-scaling must be llama3:FACTOR,LOW,HIGH,CONTEXT "
                                       "with HIGH > LOW > 0, got '%s'",
                                       optarg);
            scaling.kind = ROPE_SCALING_LLAMA3;
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
        case 'B': {
            size_t bytes;
            const char *bad;
            if (cli_parse_sizes(optarg, &bytes, 1, &bad) != 1 || bytes < 1)
                return cli_usage_error("init", "--shard-bytes must be a size like 64K or 2M");
            opts.shard_bytes = bytes;
            break;
        }
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
    model_config cfg;
    if (shape) {
        cfg = !strcmp(shape, "gpt2") ? cli_shape_gpt2_small() : cli_shape_llama_1b();
        if (have_family && family != cfg.family)
            return cli_usage_error("init", "--shape %s is not of --family given", shape);
        family = cfg.family;
        L = L ? L : cfg.n_layer, E = E ? E : cfg.n_embd, H = H ? H : cfg.n_head;
        KV = KV ? KV : cfg.n_kv_head, F = F ? F : cfg.n_ff, V = V ? V : cfg.vocab_size;
        C = C ? C : cfg.n_positions;
    }
    if (!L || !E || !H || !V || !C || (family != FAMILY_GPT2 && !F))
        return cli_usage_error("init", "give --shape or all of --layers, --embd, --heads, "
                                       "--vocab, --ctx (and --ff for the Llama family)");
    if (family == FAMILY_GPT2) {
        if ((KV && KV != H) || D || (F && F != 4 * E) || tied == 0 || theta || scaling.kind ||
            attention_bias)
            return cli_usage_error("init", "GPT-2 has no --kv-heads, --head-dim, --ff, --untied, "
                                           "--rope-* or --attention-bias: use --family llama");
        cfg = model_config_gpt2(L, E, H, V, C, GELU_TANH);
    } else {
        model_config base = cfg;
        cfg = model_config_llama(family, L, E, H, KV ? KV : H, D, F, V, C);
        if (shape) { /* the preset's RoPE and tying, unless given */
            cfg.rope_theta = base.rope_theta;
            cfg.rope_scaling = base.rope_scaling;
            cfg.tied = base.tied;
        }
        if (tied >= 0) cfg.tied = tied;
        if (theta) cfg.rope_theta = theta;
        if (scaling.kind) cfg.rope_scaling = scaling;
        if (attention_bias) {
            if (family == FAMILY_MISTRAL || family == FAMILY_QWEN2)
                return cli_usage_error("init", "--attention-bias: not part of %s",
                                       model_family_architecture(family));
            cfg.qkv_bias = cfg.out_bias = 1;
        }
    }
    char err[512];
    if (model_config_check(&cfg, err, sizeof(err))) return cli_usage_error("init", "%s", err);
    fprintf(stderr,
            "init: writing a %d-layer %s (%d wide, %d heads, %d kv heads, vocab %d, context %d) "
            "to %s...\n",
            cfg.n_layer, model_family_architecture(cfg.family), cfg.n_embd, cfg.n_head,
            cfg.n_kv_head, cfg.vocab_size, cfg.n_positions, out);
    if (model_init_random(out, &cfg, &opts, err, sizeof(err))) return cli_job_error("%s", err);
    printf("wrote %s/config.json and %s/%s (seed %llu, %s)\n", out, out,
           opts.shard_bytes ? "model-*.safetensors + model.safetensors.index.json"
                            : "model.safetensors",
           (unsigned long long)opts.seed, st_dtype_name(opts.dtype));
    return EXIT_OK;
}
