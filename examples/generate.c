/* generate.c — linshard as a library: greedy decoding with a model split over two ranks.
 *
 *   generate [MODEL_DIR] [N]
 *
 * Loads a Hugging Face model directory (config.json + model.safetensors), or, with none given,
 * writes a small seeded random GPT-2 into a temporary directory first. Then it runs P = 2 ranks
 * as two threads of this process (comm_launch, threads backend): each rank loads only its own
 * slices of the weights, prefills a short prompt into its KV cache with model_forward, and
 * decodes N tokens (default 8) one at a time with model_extend, choosing each with greedy
 * sampling. Rank 0 prints the token ids, beside those of the same run unsplit (P = 1). Build it
 * with either of:
 *
 *   cc generate.c $(pkg-config --cflags --libs linshard)
 *   find_package(linshard) and target_link_libraries(generate PRIVATE linshard::linshard) */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/linshard.h"

enum { P = 2 };

/* What every rank reads (the same on all of them) and what rank 0 writes back. */
typedef struct {
    model_config cfg;
    const st_set *weights; /* the memory-mapped checkpoint, shared by the ranks */
    const int *prompt;
    int n_prompt, n_new;
    int *out; /* the n_new generated ids */
} job;

/* The function each rank runs (SPMD: same code, own shard). Every collective inside
 * model_forward, model_extend and sample_next_token is called by both ranks in the same order. */
static int rank_main(comm_t *comm, void *arg) {
    job *j = arg;
    char err[512];
    int r = comm_rank(comm), capacity = j->n_prompt + j->n_new;
    model_shard m;
    /* Rank r's slices: its attention heads, MLP columns and vocabulary rows. */
    if (model_shard_load(&m, &j->cfg, j->weights, r, comm_size(comm), j->n_prompt, err,
                         sizeof(err)))
        return comm_fail(comm, "%s", err);
    if (model_shard_enable_cache(&m, capacity, err, sizeof(err))) {
        model_shard_free(&m);
        return comm_fail(comm, "%s", err);
    }
    /* The sampler needs 2 * vocab floats of scratch; greedy is temperature 0. */
    float *scratch = malloc(2 * (size_t)j->cfg.vocab_size * sizeof(float));
    if (!scratch) {
        model_shard_free(&m);
        return comm_fail(comm, "out of memory on rank %d", r);
    }
    sampling_opts greedy = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f};
    sampler_rng rng;
    sampler_seed(&rng, 1);

    /* Prefill: the whole prompt at once. m.logits holds this rank's vocabulary slice
     * [T, v_local]; the next token comes from the last row. */
    int rc = model_forward(comm, &m, j->prompt, j->n_prompt);
    const float *last = m.logits + (size_t)(j->n_prompt - 1) * (size_t)m.v_local;
    for (int i = 0; !rc && i < j->n_new; i++) {
        int token;
        /* Each rank's local argmax, then one small all-gather: every rank gets the same id. */
        rc = sample_next_token(comm, last, m.v0, m.v_local, j->cfg.vocab_size, &greedy, &rng,
                               scratch, &token);
        if (rc) break;
        if (r == 0) j->out[i] = token;
        /* Decode step: one new token after the cached ones (1 + 2 * n_layer AllReduce). */
        if (i + 1 < j->n_new) rc = model_extend(comm, &m, &token, 1);
        last = m.logits;
    }
    free(scratch);
    model_shard_free(&m);
    return rc;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : NULL;
    int n_new = argc > 2 ? atoi(argv[2]) : 8;
    char err[512], tmp[] = "/tmp/linshard-example-XXXXXX";
    if (n_new < 1) n_new = 1;

    if (!dir) {
        /* A seeded random GPT-2: 2 layers, 64 wide, 4 heads, vocabulary 101, context 32. */
        model_config cfg = model_config_gpt2(2, 64, 4, 101, 32, GELU_TANH);
        model_init_opts opts = {.seed = 42, .dtype = ST_F32};
        if (!mkdtemp(tmp) || model_init_random(tmp, &cfg, &opts, err, sizeof(err))) {
            fprintf(stderr, "generate: cannot write a random model in %s: %s\n", tmp, err);
            return 1;
        }
        dir = tmp;
    }

    /* The config, then the weights (memory-mapped, checked against the config). */
    job j = {0};
    st_set weights;
    if (model_config_load(dir, &j.cfg, err, sizeof(err)) ||
        model_config_check_tp(&j.cfg, P, err, sizeof(err)) ||
        st_set_open(&weights, dir, err, sizeof(err))) {
        fprintf(stderr, "generate: %s\n", err);
        return 1;
    }
    if (model_check_weights(&j.cfg, &weights, err, sizeof(err))) {
        fprintf(stderr, "generate: %s\n", err);
        st_set_close(&weights);
        return 1;
    }

    static const int prompt[] = {1, 2, 3, 4}; /* token ids; a tokenizer is in tokenizer.h */
    j.weights = &weights;
    j.prompt = prompt;
    j.n_prompt = 4;
    j.n_new = n_new;
    if (j.n_prompt + j.n_new > j.cfg.n_positions) j.n_new = j.cfg.n_positions - j.n_prompt;
    j.out = calloc((size_t)j.n_new, sizeof(int));

    /* The same decoding unsplit (P = 1), then split (P = 2). Both compute the same logits up to
     * float rounding (~1e-7 of the largest), so greedy picks the same tokens unless two logits
     * tie that closely: with the random model they must agree. */
    int *unsplit = calloc((size_t)j.n_new, sizeof(int));
    int rc = !j.out || !unsplit;
    if (!rc) rc = comm_launch(COMM_BACKEND_THREADS, 1, rank_main, &j, err, sizeof(err));
    if (!rc) {
        memcpy(unsplit, j.out, (size_t)j.n_new * sizeof(int));
        rc = comm_launch(COMM_BACKEND_THREADS, P, rank_main, &j, err, sizeof(err));
    }
    if (rc) {
        fprintf(stderr, "generate: %s\n", j.out && unsplit ? err : "out of memory");
    } else {
        const int *runs[2] = {unsplit, j.out};
        for (int k = 0; k < 2; k++) {
            printf("generated (P=%d):", k == 0 ? 1 : P);
            for (int i = 0; i < j.n_new; i++) printf(" %d", runs[k][i]);
            printf("\n");
        }
        if (dir == tmp && memcmp(unsplit, j.out, (size_t)j.n_new * sizeof(int))) {
            fprintf(stderr, "generate: P=1 and P=%d chose different tokens\n", P);
            rc = 1;
        }
    }
    free(unsplit);
    free(j.out);
    st_set_close(&weights);
    if (dir == tmp) { /* remove the random model */
        char path[sizeof(tmp) + 32];
        snprintf(path, sizeof(path), "%s/config.json", tmp);
        unlink(path);
        snprintf(path, sizeof(path), "%s/model.safetensors", tmp);
        unlink(path);
        rmdir(tmp);
    }
    return rc ? 1 : 0;
}
