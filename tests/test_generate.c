/* test_generate.c — incremental decoding and sampling.
 *
 * The KV cache: logits for each new token, computed from the cache one step at a time (and in
 * chunks), must match a full forward pass over the whole sequence at P = 1, 2, 3; a decode step
 * must cost exactly 1 + 2 * n_layer AllReduce of one token's activations. Sampling: every rank
 * draws the same token; the same seed gives the same tokens at every P; and the draws follow
 * the distribution temperature, top-k and top-p define. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/model.h"
#include "linshard/kernels.h"
#include "linshard/sampling.h"
#include "linshard/split.h"

/* Both sides are float32 and differ only in how attention's sums are blocked: far below the
 * 2e-5-of-max-logit tolerance test_gpt2.c justifies against double precision. */
#define CACHE_TOL 2e-5
#define SEQ 12

static model_config shape; /* 2 layers, 48 wide, 6 heads, vocab 101, context 16 */
static char model_dir[64];
static st_set model_file;

static int setup_model(void **state) {
    (void)state;
    snprintf(model_dir, sizeof(model_dir), "/tmp/linshard-test-gen-XXXXXX");
    if (!mkdtemp(model_dir)) return -1;
    model_init_opts opts = {21, ST_F32, 0, 0, 0};
    char err[512];
    shape = model_config_gpt2(2, 48, 6, 101, 16, GELU_TANH);
    if (model_init_random(model_dir, &shape, &opts, err, sizeof(err))) return -1;
    return st_set_open(&model_file, model_dir, err, sizeof(err));
}

static int teardown_model(void **state) {
    (void)state;
    st_set_close(&model_file);
    char path[128];
    snprintf(path, sizeof(path), "%s/model.safetensors", model_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/config.json", model_dir);
    unlink(path);
    rmdir(model_dir);
    return 0;
}

static const int tokens[SEQ] = {100, 5, 17, 42, 0, 99, 64, 3, 3, 77, 12, 50};

/* ---- the KV cache ------------------------------------------------------------------------- */

typedef struct {
    double worst[8]; /* per rank: max |cached - full| relative to max |full| */
    uint64_t step_calls[8], step_elems[8];
    char err[256];
} cache_job;

static double compare_rows(const float *a, const float *b, int n) {
    double scale = 1e-30, worst = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    return worst / scale;
}

static int cache_rank(comm_t *comm, void *arg) {
    cache_job *job = arg;
    int r = comm_rank(comm), P = comm_size(comm), rc = 0;
    model_shard full, inc;
    char err[512];
    if (model_shard_load(&full, &shape, &model_file, r, P, SEQ, err, sizeof(err)) ||
        model_shard_load(&inc, &shape, &model_file, r, P, SEQ, err, sizeof(err)) ||
        model_shard_enable_cache(&inc, SEQ, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    int vl = full.v_local;
    /* A 4-token prompt, then one token at a time, then a chunk of 3, then one at a time. */
    int done = 0;
    while (done < SEQ && !rc) {
        int step = done == 0 ? 4 : (done == 7 ? 3 : 1);
        rc = done == 0 ? model_forward(comm, &inc, tokens, step)
                       : model_extend(comm, &inc, tokens + done, step);
        if (rc) break;
        if (done == 4) { /* the ledger of one decode step */
            job->step_calls[r] = ledger_op_total(comm_ledger(comm), LEDGER_ALLREDUCE).calls;
        }
        done += step;
        if ((rc = model_forward(comm, &full, tokens, done))) break;
        for (int t = 0; t < step; t++) {
            const float *a = inc.logits + (size_t)t * (size_t)vl;
            const float *b = full.logits + (size_t)(done - step + t) * (size_t)vl;
            job->worst[r] = fmax(job->worst[r], compare_rows(a, b, vl));
        }
    }
    /* One more decode step on its own, read off the ledger. */
    if (!rc) {
        model_shard_enable_cache(&inc, SEQ, err, sizeof(err));
        rc = model_forward(comm, &inc, tokens, SEQ - 1);
        comm_ledger_reset(comm);
        if (!rc) rc = model_extend(comm, &inc, tokens + SEQ - 1, 1);
        job->step_calls[r] = ledger_op_total(comm_ledger(comm), LEDGER_ALLREDUCE).calls;
        job->step_elems[r] = ledger_op_total(comm_ledger(comm), LEDGER_ALLREDUCE).elements;
        /* Past the end of the cache: refused, not overrun (after everyone finished the step). */
        if (!rc) rc = comm_barrier(comm, NULL);
        if (!rc && model_extend(comm, &inc, tokens, 1) == 0)
            rc = comm_fail(comm, "no overrun check");
        else if (!rc)
            rc = -1; /* expected failure: the group is now failed on purpose */
    }
    model_shard_free(&full);
    model_shard_free(&inc);
    return rc == -1 ? 0 : rc;
}

static void test_cache_matches_full_forward(void **state) {
    (void)state;
    for (int P = 1; P <= 3; P++) {
        cache_job job;
        memset(&job, 0, sizeof(job));
        char err[512];
        int rc = comm_launch(COMM_BACKEND_THREADS, P, cache_rank, &job, err, sizeof(err));
        /* The overrun drill fails the group with this message; anything else is a bug. */
        if (rc && !strstr(err, "exceed the cache")) fail_msg("P=%d: %s", P, err);
        for (int r = 0; r < P; r++) {
            if (job.worst[r] > CACHE_TOL)
                fail_msg("P=%d rank %d: cached logits differ by %.3e of max", P, r, job.worst[r]);
            assert_int_equal(job.step_calls[r], 1 + 2 * shape.n_layer);
            assert_int_equal(job.step_elems[r], (1 + 2 * shape.n_layer) * shape.n_embd);
        }
    }
}

/* ---- sampling ----------------------------------------------------------------------------- */

typedef struct {
    sampling_opts opts;
    int drawn[8][40];
    char err[256];
} sample_job;

/* Generates 40 tokens greedily / by sampling from the model on every rank. */
static int sample_rank(comm_t *comm, void *arg) {
    sample_job *job = arg;
    int r = comm_rank(comm), P = comm_size(comm), rc = 0;
    model_shard m;
    char err[512];
    if (model_shard_load(&m, &shape, &model_file, r, P, 4, err, sizeof(err)) ||
        model_shard_enable_cache(&m, shape.n_positions, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    float *scratch = malloc(2 * (size_t)shape.vocab_size * sizeof(float));
    sampler_rng rng;
    sampler_seed(&rng, 1234);
    int tok = 7;
    rc = model_forward(comm, &m, &tok, 1);
    for (int i = 0; i < 40 && !rc; i++) {
        if (m.cache_len == shape.n_positions) model_forward(comm, &m, &tok, 1); /* wrap */
        rc = sample_next_token(comm, m.logits, m.v0, m.v_local, shape.vocab_size, &job->opts, &rng,
                               scratch, &tok);
        if (!rc) job->drawn[r][i] = tok;
        if (!rc && m.cache_len < shape.n_positions) rc = model_extend(comm, &m, &tok, 1);
    }
    free(scratch);
    model_shard_free(&m);
    return rc;
}

static void check_sampling_mode(sampling_opts opts) {
    int first[40];
    for (int P = 1; P <= 3; P++) {
        sample_job job;
        memset(&job, 0, sizeof(job));
        job.opts = opts;
        char err[512];
        if (comm_launch(COMM_BACKEND_THREADS, P, sample_rank, &job, err, sizeof(err)))
            fail_msg("P=%d: %s", P, err);
        for (int r = 1; r < P; r++) /* replicas agree */
            assert_memory_equal(job.drawn[0], job.drawn[r], sizeof(job.drawn[0]));
        if (P == 1)
            memcpy(first, job.drawn[0], sizeof(first));
        else
            assert_memory_equal(first, job.drawn[0], sizeof(first)); /* same seed, any P */
    }
}

static void test_sampling_same_tokens_every_rank_and_P(void **state) {
    (void)state;
    check_sampling_mode((sampling_opts){0.0f, 0, 1.0f});  /* greedy */
    check_sampling_mode((sampling_opts){0.8f, 5, 1.0f});  /* top-k */
    check_sampling_mode((sampling_opts){1.0f, 20, 0.9f}); /* top-k + top-p */
    check_sampling_mode((sampling_opts){1.2f, 0, 1.0f});  /* whole vocabulary */
    check_sampling_mode((sampling_opts){0.9f, 0, 0.8f});  /* nucleus over the whole vocabulary */
}

/* The draws follow the distribution: logits log(p) with p = .5, .3, .2 on 3 of 7 tokens.
 * 10000 draws: a frequency's standard deviation is <= 0.005, and 0.0225 allows 4.5 of them. */
#define DRAWS 10000
#define FREQ_TOL 0.0225
typedef struct {
    sampling_opts opts;
    int counts[7];
} dist_job;

static int dist_rank(comm_t *comm, void *arg) {
    dist_job *job = arg;
    const float logits[7] = {logf(0.2f), -INFINITY,  logf(0.5f), -INFINITY,
                             -INFINITY,  logf(0.3f), -INFINITY};
    int P = comm_size(comm), r = comm_rank(comm), rc = 0;
    int v0 = (int)split_offset(7, P, r), vl = (int)split_count(7, P, r);
    float scratch[14];
    sampler_rng rng;
    sampler_seed(&rng, 99);
    for (int i = 0; i < DRAWS && !rc; i++) {
        int tok = -1;
        rc = sample_next_token(comm, logits + v0, v0, vl, 7, &job->opts, &rng, scratch, &tok);
        if (!rc && r == 0) job->counts[tok]++;
    }
    return rc;
}

static void test_sampling_distribution(void **state) {
    (void)state;
    struct {
        sampling_opts opts;
        double want[7];
    } cases[] = {
        {{1.0f, 0, 1.0f}, {.2, 0, .5, 0, 0, .3, 0}},    /* plain sampling */
        {{1.0f, 3, 1.0f}, {.2, 0, .5, 0, 0, .3, 0}},    /* top-3 keeps all three */
        {{1.0f, 2, 1.0f}, {0, 0, .625, 0, 0, .375, 0}}, /* top-2 renormalises .5 and .3 */
        {{1.0f, 0, 0.6f}, {0, 0, .625, 0, 0, .375, 0}}, /* nucleus .6 needs .5 + .3 */
        {{1.0f, 0, 0.5f}, {0, 0, 1, 0, 0, 0, 0}},       /* nucleus .5: the top token alone */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
        for (int P = 1; P <= 2; P++) {
            dist_job job;
            memset(&job, 0, sizeof(job));
            job.opts = cases[c].opts;
            char err[256];
            assert_int_equal(comm_launch(COMM_BACKEND_THREADS, P, dist_rank, &job, err, 256), 0);
            for (int i = 0; i < 7; i++) {
                double f = job.counts[i] / (double)DRAWS;
                if (fabs(f - cases[c].want[i]) > FREQ_TOL)
                    fail_msg("case %zu P=%d token %d: frequency %.4f, expected %.4f", c, P, i, f,
                             cases[c].want[i]);
            }
        }
}

static void test_sampling_options_checked(void **state) {
    (void)state;
    char err[256];
    assert_int_equal(sampling_opts_check(&(sampling_opts){0.7f, 40, 0.9f}, 100, err, 256), 0);
    assert_int_not_equal(sampling_opts_check(&(sampling_opts){-1.0f, 0, 1.0f}, 100, err, 256), 0);
    assert_int_not_equal(sampling_opts_check(&(sampling_opts){1.0f, 101, 1.0f}, 100, err, 256), 0);
    assert_int_not_equal(sampling_opts_check(&(sampling_opts){1.0f, 0, 0.0f}, 100, err, 256), 0);
    assert_int_not_equal(sampling_opts_check(&(sampling_opts){1.0f, 0, 1.5f}, 100, err, 256), 0);
}

int main(void) {
    kernel_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_matches_full_forward),
        cmocka_unit_test(test_sampling_same_tokens_every_rank_and_P),
        cmocka_unit_test(test_sampling_distribution),
        cmocka_unit_test(test_sampling_options_checked),
    };
    return cmocka_run_group_tests(tests, setup_model, teardown_model);
}
