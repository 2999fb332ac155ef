/* model_run.c — open a checkpoint of any family, load every rank's shard, run the forward pass
 * (cli_model.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/kernels.h"
#include "linshard/params.h"
#include "linshard/timer.h"

typedef struct {
    model_run *job;
    const model_source *src;
} run_ctx;

static int run_rank(comm_t *comm, void *arg) {
    run_ctx *ctx = arg;
    model_run *job = ctx->job;
    int r = comm_rank(comm), rc;
    model_shard m;
    char err[512];
    double t0 = timer_seconds();
    if (model_source_load(ctx->src, &m, r, comm_size(comm), job->T, job->held_as, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    if (r == 0) {
        job->load_seconds = timer_seconds() - t0;
        job->weight_bytes = model_shard_weight_bytes(&m);
    }
    comm_ledger_reset(comm);
    rc = model_forward(comm, &m, job->tokens, job->T);
    if (!rc && r == 0) job->have_ledger = ledger_copy(&job->ledger, comm_ledger(comm)) == 0;
    int V = job->cfg.vocab_size, T = job->T;
    if (!rc && job->want_logits) {
        float *scratch = malloc((size_t)T * (size_t)V * sizeof(float));
        float *full = malloc((size_t)T * (size_t)V * sizeof(float));
        if (!scratch || !full) rc = comm_fail(comm, "out of memory gathering logits on rank %d", r);
        if (!rc)
            rc =
                vocab_parallel_gather_logits(comm, full, scratch, m.logits, T, V, "lm_head.gather");
        if (!rc && r == 0) {
            job->logits = full;
            full = NULL;
        }
        free(full);
        free(scratch);
    }
    if (!rc && job->top_k > 0) {
        /* Every rank gets the same top-k; only rank 0 writes it into the shared job. */
        int ids[16];
        float values[16];
        rc = vocab_parallel_topk(comm, m.logits + (size_t)(T - 1) * (size_t)m.v_local, m.v0,
                                 m.v_local, V, job->top_k, ids, values, "lm_head.topk");
        if (!rc && r == 0) {
            memcpy(job->top_ids, ids, (size_t)job->top_k * sizeof(int));
            memcpy(job->top_values, values, (size_t)job->top_k * sizeof(float));
        }
    }
    double best = 1e30, best_comm = 0;
    for (int i = 0; i < job->repeats && !rc; i++) {
        if ((rc = comm_barrier(comm, "sync"))) break;
        double c0 = ledger_total_seconds(comm_ledger(comm)), s0 = timer_seconds();
        if ((rc = model_forward(comm, &m, job->tokens, T))) break;
        double dt = timer_seconds() - s0;
        if (dt < best) {
            best = dt;
            best_comm = ledger_total_seconds(comm_ledger(comm)) - c0;
        }
    }
    if (!rc && r == 0) job->resident_bytes = cli_resident_bytes();
    if (!rc && r == 0 && job->repeats > 0) {
        job->forward_seconds = best;
        job->comm_seconds = best_comm;
    }
    model_shard_free(&m);
    return rc;
}

int cli_parse_dtype(const char *cmd, const char *arg, int *given, kernel_type *wtype) {
    int t = strcmp(arg, "auto") == 0 ? -1 : kernel_type_from_name(arg);
    if (t < 0 && strcmp(arg, "auto") != 0)
        return cli_usage_error(cmd, "--dtype must be auto, f32, f16, bf16, q8_0 or q4_0, got '%s'",
                               arg);
    *given = t >= 0;
    if (t >= 0) *wtype = (kernel_type)t;
    return 0;
}

int cli_parse_dtype_list(const char *arg, int *types, int max) {
    int n = 0;
    const char *p = arg;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char name[16];
        if (len == 0 || len >= sizeof(name) || n == max) return -1;
        memcpy(name, p, len);
        name[len] = '\0';
        int t = strcmp(name, "auto") == 0 ? -1 : kernel_type_from_name(name);
        if (t < 0 && strcmp(name, "auto") != 0) return -1;
        types[n++] = t;
        if (!comma) break;
        p = comma + 1;
        if (!*p) return -1; /* a trailing comma */
    }
    return n > 0 ? n : -1;
}

size_t cli_resident_bytes(void) {
    /* RssAnon: the process's own resident memory (weights, activations, caches). A mapped
     * checkpoint's pages are the page cache's, shared and reclaimable: not counted. */
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kib = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "RssAnon: %zu kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib * 1024;
}

int model_run_job(model_run *job) {
    char err[512];
    if (job->top_k > (int)(sizeof(job->top_ids) / sizeof(job->top_ids[0])))
        return cli_job_error("top-k of %d: at most 16 are reported", job->top_k);
    model_source src;
    if (model_source_open(&src, job->model_dir, err, sizeof(err))) return cli_job_error("%s", err);
    job->cfg = src.cfg;
    if (model_config_check_tp(&job->cfg, job->P, err, sizeof(err)) ||
        model_check_tokens(&job->cfg, job->tokens, job->T, err, sizeof(err))) {
        model_source_close(&src);
        return cli_job_error("%s", err);
    }
    /* Top-5 of a 3-token vocabulary is its top 3. */
    if (job->top_k > job->cfg.vocab_size) job->top_k = job->cfg.vocab_size;
    job->held_as = job->wtype_given ? job->wtype : model_source_stored_type(&src);
    if (model_check_weight_type(&job->cfg, job->held_as, err, sizeof(err))) {
        model_source_close(&src);
        return cli_job_error("%s", err);
    }
    /* One core per rank: BLAS must not start threads of its own inside each rank. */
    int blas_threads = job->P > 1 ? 1 : job->blas_threads < 1 ? 1 : job->blas_threads;
    int callers = job->backend == COMM_BACKEND_MPI ? 1 : job->P; /* ranks in this process */
    if (cli_reserve_blas(callers, blas_threads, err, sizeof(err))) {
        model_source_close(&src);
        return cli_job_error("%s", err);
    }
    kernel_set_threads(blas_threads);
    run_ctx ctx = {job, &src};
    int rc = comm_launch(job->backend, job->P, run_rank, &ctx, err, sizeof(err));
    model_source_close(&src);
    if (rc) return cli_job_error("%s", err);
    return EXIT_OK;
}

model_config cli_shape_gpt2_small(void) {
    return model_config_gpt2(12, 768, 12, 50257, 1024, GELU_TANH);
}

model_config cli_shape_gpt2_tiny(void) {
    return model_config_gpt2(2, 48, 6, 101, 32, GELU_TANH);
}

model_config cli_shape_llama_1b(void) {
    model_config c = model_config_llama(FAMILY_LLAMA, 16, 2048, 32, 8, 64, 8192, 128256, 2048);
    c.tied = 1;
    c.rope_theta = 500000.0;
    c.rope_scaling = (rope_scaling_params){ROPE_SCALING_LLAMA3, 32.0, 1.0, 4.0, 8192, {0}};
    return c;
}

const char *cli_describe_model(const model_config *c, char *buf, size_t len) {
    char kv[32] = "";
    if (c->n_kv_head != c->n_head) snprintf(kv, sizeof(kv), " (%d kv)", c->n_kv_head);
    snprintf(buf, len, "%s, %d layers x %d wide, %d heads%s of %d, MLP %d, vocab %d%s",
             model_family_architecture(c->family), c->n_layer, c->n_embd, c->n_head, kv,
             c->head_dim, c->n_ff, c->vocab_size, c->tied ? ", tied head" : "");
    return buf;
}

int cli_shape_named(const char *name, model_config *cfg) {
    if (!strcmp(name, "gpt2"))
        *cfg = cli_shape_gpt2_small();
    else if (!strcmp(name, "tiny"))
        *cfg = cli_shape_gpt2_tiny();
    else if (!strcmp(name, "llama-1b"))
        *cfg = cli_shape_llama_1b();
    else
        return -1;
    return 0;
}

double cli_forward_flops(const model_config *c, int T) {
    double E = c->n_embd, L = c->n_layer, V = c->vocab_size, D = c->head_dim;
    double q = (double)c->n_head * D, kv = (double)c->n_kv_head * D;
    double mlp = (c->mlp == MLP_SWIGLU ? 3.0 : 2.0) * E * c->n_ff;
    double per_layer = E * (q + 2 * kv) + q * E + mlp; /* multiply-adds per token */
    double matmul = 2.0 * T * (L * per_layer + V * E);
    double attention = L * 2.0 * 2.0 * (double)T * T * q; /* QK^T and PV, full (masked) */
    return matmul + attention;
}

int cli_open_weights(const char *dir, const model_config *cfg, st_set *weights, char *err,
                     size_t errlen) {
    if (st_set_open(weights, dir, err, errlen)) return -1;
    if (model_check_weights(cfg, weights, err, errlen)) {
        st_set_close(weights);
        return -1;
    }
    return 0;
}

int cli_model_config(const char *path, model_config *cfg, char *err, size_t errlen) {
    struct stat sb;
    if (!(path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)))
        return model_config_load(path, cfg, err, errlen); /* config.json alone will do */
    model_source src;
    if (model_source_open(&src, path, err, errlen)) return -1;
    *cfg = src.cfg;
    model_source_close(&src);
    return 0;
}

int cli_load_tokenizer(const char *model_dir, const model_config *cfg, tokenizer **tok, char *err,
                       size_t errlen) {
    char parent[4096];
    struct stat sb;
    const char *given = model_dir;
    if (model_dir && stat(model_dir, &sb) == 0 && S_ISREG(sb.st_mode)) {
        /* A GGUF file: the tokenizer stored in it, else tokenizer files beside it, else (GPT-2)
         * the built-in one. */
        gguf_file g;
        if (gguf_open(&g, model_dir, err, errlen)) return -1;
        int r = tokenizer_load_gguf(tok, &g, err, errlen);
        gguf_close(&g);
        if (r <= 0) return r;
        snprintf(parent, sizeof(parent), "%s", model_dir);
        char *slash = strrchr(parent, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(parent, sizeof(parent), ".");
        model_dir = parent;
    }
    if (model_dir) {
        static const char *const names[] = {"encoder.json", "vocab.json", "tokenizer.json"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            char path[4096 + 32];
            snprintf(path, sizeof(path), "%s/%s", model_dir, names[i]);
            if (access(path, R_OK) == 0) return tokenizer_load_dir(tok, model_dir, err, errlen);
        }
        model_config own;
        if (!cfg) {
            if (cli_model_config(given, &own, err, errlen)) return -1;
            cfg = &own;
        }
        if (cfg->family != FAMILY_GPT2) {
            snprintf(err, errlen,
                     "%s has no tokenizer.json: a %s checkpoint needs the tokenizer it was "
                     "trained with%s",
                     model_dir, model_family_architecture(cfg->family),
                     model_dir == parent ? " (the GGUF file holds none either: convert it again "
                                           "from a directory with its tokenizer.json, or put the "
                                           "tokenizer.json beside the file)"
                                         : "");
            return -1;
        }
    }
    return tokenizer_load_builtin(tok, err, errlen);
}

void cli_remove_temp_model(const char *dir) {
    /* What cli_temp_model and cli_default_model write: config.json and one weights file. */
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

int cli_temp_model(char *dir, const model_config *cfg, uint64_t seed, char *err, size_t errlen) {
    if (!mkdtemp(dir)) {
        snprintf(err, errlen, "cannot create a temporary directory %s: %s", dir, strerror(errno));
        return -1;
    }
    model_init_opts opts = {seed, ST_F32, 0, 0, 0};
    if (model_init_random(dir, cfg, &opts, err, errlen)) {
        cli_remove_temp_model(dir);
        return -1;
    }
    return 0;
}

int cli_open_generation_model(const char *cmd, const char *model_dir, int P, int announce,
                              model_source *src, tokenizer **tok, char *err, size_t errlen) {
    *tok = NULL;
    if (model_dir ? model_source_open(src, model_dir, err, errlen)
                  : cli_default_model_open(src, err, errlen))
        return -1;
    if (!model_dir && announce)
        fprintf(stderr,
                "%s: no --model: using the built-in default, a 2-layer GPT-2 trained on "
                "the King James Bible (data/default-model/README.md)\n",
                cmd);
    if (model_config_check_tp(&src->cfg, P, err, errlen) ||
        cli_load_tokenizer(model_dir, &src->cfg, tok, err, errlen))
        goto fail;
    if (tokenizer_vocab_size(*tok) > src->cfg.vocab_size) {
        snprintf(err, errlen, "the tokenizer has %d tokens but the model only %d",
                 tokenizer_vocab_size(*tok), src->cfg.vocab_size);
        goto fail;
    }
    return 0;
fail:
    if (*tok) tokenizer_free(*tok);
    *tok = NULL;
    model_source_close(src);
    return -1;
}

int cli_torch_peer(const char *const *args, cli_line_fn on_line, void *ctx) {
    const char *python = getenv("LINSHARD_PYTHON");
    if (!python || !*python)
        python = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    const char *script = getenv("LINSHARD_TORCH_BENCH");
    if (!script || !*script) script = LINSHARD_SOURCE_DIR "/bench/torch_gpt2_forward.py";
    const char *argv[32];
    int n = 0;
    argv[n++] = python;
    argv[n++] = script;
    while (*args && n < (int)(sizeof(argv) / sizeof(argv[0])) - 1) argv[n++] = *args++;
    argv[n] = NULL;
    int rc = cli_spawn(argv, 0, on_line, ctx);
    if (rc != 0)
        fprintf(stderr,
                "linshard: note: the PyTorch peer failed (%s %s exited with %d; needs "
                "python3-torch)\n",
                python, script, rc);
    return rc;
}

void model_run_free(model_run *job) {
    free(job->logits);
    job->logits = NULL;
    if (job->have_ledger) ledger_free(&job->ledger);
    job->have_ledger = 0;
}
