/* model_run.c — open a checkpoint, load every rank's shard, run the forward pass (cli_model.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/timer.h"

typedef struct {
    model_run *job;
    const st_file *file;
} run_ctx;

static int run_rank(comm_t *comm, void *arg) {
    run_ctx *ctx = arg;
    model_run *job = ctx->job;
    int r = comm_rank(comm), rc;
    gpt2_shard m;
    char err[512];
    double t0 = timer_seconds();
    if (gpt2_shard_load(&m, &job->cfg, ctx->file, r, comm_size(comm), job->T, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    if (r == 0) {
        job->load_seconds = timer_seconds() - t0;
        job->weight_bytes = gpt2_shard_weight_bytes(&m);
    }
    comm_ledger_reset(comm);
    rc = gpt2_forward(comm, &m, job->tokens, job->T);
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
        if ((rc = gpt2_forward(comm, &m, job->tokens, T))) break;
        double dt = timer_seconds() - s0;
        if (dt < best) {
            best = dt;
            best_comm = ledger_total_seconds(comm_ledger(comm)) - c0;
        }
    }
    if (!rc && r == 0 && job->repeats > 0) {
        job->forward_seconds = best;
        job->comm_seconds = best_comm;
    }
    gpt2_shard_free(&m);
    return rc;
}

int model_run_job(model_run *job) {
    char err[512];
    int printer = cli_is_printer(job->backend);
    if (job->top_k > (int)(sizeof(job->top_ids) / sizeof(job->top_ids[0])))
        return cli_job_error("top-k of %d: at most 16 are reported", job->top_k);
    if (gpt2_config_load(job->model_dir, &job->cfg, err, sizeof(err)) ||
        gpt2_config_check_tp(&job->cfg, job->P, err, sizeof(err)) ||
        gpt2_check_tokens(&job->cfg, job->tokens, job->T, err, sizeof(err)))
        return printer ? cli_job_error("%s", err) : EXIT_JOB;
    st_file file;
    if (cli_open_weights(job->model_dir, &job->cfg, &file, err, sizeof(err)))
        return printer ? cli_job_error("%s", err) : EXIT_JOB;
    /* One core per rank: BLAS must not start threads of its own inside each rank. */
    layers_set_blas_threads(job->P > 1 ? 1 : job->blas_threads);
    run_ctx ctx = {job, &file};
    int rc = comm_launch(job->backend, job->P, run_rank, &ctx, err, sizeof(err));
    st_close(&file);
    if (rc) return cli_job_error("%s", err);
    return EXIT_OK;
}

const gpt2_config gpt2_small_shape = {12, 768, 12, 50257, 1024, 1e-5f, GELU_TANH};
const gpt2_config gpt2_tiny_shape = {2, 48, 6, 101, 32, 1e-5f, GELU_TANH};

int cli_open_weights(const char *dir, const gpt2_config *cfg, st_file *file, char *err,
                     size_t errlen) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if (st_open(file, path, err, errlen)) return -1;
    if (gpt2_check_weights(cfg, file, err, errlen)) {
        st_close(file);
        return -1;
    }
    return 0;
}

void cli_remove_temp_model(const char *dir) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

int cli_temp_model(char *dir, const gpt2_config *cfg, uint64_t seed, char *err, size_t errlen) {
    if (!mkdtemp(dir)) {
        snprintf(err, errlen, "cannot create a temporary directory %s: %s", dir, strerror(errno));
        return -1;
    }
    gpt2_init_opts opts = {seed, ST_F32, 0, 0};
    if (gpt2_init_random(dir, cfg, &opts, err, errlen)) {
        cli_remove_temp_model(dir);
        return -1;
    }
    return 0;
}

const char *cli_torch_command(char *buf, size_t len) {
    const char *python = getenv("LINSHARD_PYTHON");
    if (!python || !*python)
        python = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    const char *script = getenv("LINSHARD_TORCH_BENCH");
    if (!script || !*script) script = LINSHARD_SOURCE_DIR "/bench/torch_gpt2_forward.py";
    snprintf(buf, len, "'%s' '%s'", python, script);
    return script;
}

void model_run_free(model_run *job) {
    free(job->logits);
    job->logits = NULL;
    if (job->have_ledger) ledger_free(&job->ledger);
    job->have_ledger = 0;
}
