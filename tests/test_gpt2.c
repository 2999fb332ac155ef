/* test_gpt2.c — the tensor-parallel layers and GPT-2 against independent references.
 *
 * Layers: every sharded layer at P = 1..5 against the same computation done whole, serially.
 * Model: logits at P = 1, 2, 3, 4, 5, 8 against tests/gpt2_reference.c, a plain double-precision
 * GPT-2 (checked against PyTorch float64 to 1e-13 when it was written), on models whose head
 * count and widths are and are not divisible by P; F32, F16 and BF16 files; names with and
 * without the "transformer." prefix; plus the model-level errors.
 *
 * Tolerance: |logit - reference| <= 2e-5 * max|reference logit|. The sharded model computes in
 * float32 (unit roundoff 6e-8); its error against double precision comes from rounding in dot
 * products of length <= 4 * n_embd, LayerNorm and softmax, and measures 1e-7..1e-6 of the
 * largest logit on these models at every P. A sharding bug moves logits by 1e-3 or more of it
 * (a bias added twice, a head read from the wrong block, GELU on a partial sum). */
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

#include "../src/kernels/fast_exp.h"
#include "compare.h"
#include "gpt2_reference.h"
#include "poison.h"
#include "linshard/model.h"
#include "linshard/kernels.h"
#include "linshard/layers.h"
#include "linshard/split.h"

#define LOGIT_TOL 2e-5

static float urand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((double)(*s >> 8) / 16777216.0 * 2.0 - 1.0);
}

static void fill(float *x, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) x[i] = urand(&seed);
}

/* ---- layers against whole, serial computations ------------------------------------------- */

enum { T_ = 5, IN_ = 7, OUT_ = 11 }; /* 11 columns/rows: divisible by no P in 2..5 */

typedef struct {
    const float *x, *w, *b; /* x [T, IN], w [IN, OUT] (column tests) or [OUT, IN] (row tests) */
    float col[8][T_ * OUT_], row[8][T_ * OUT_];
} linear_job;

static int linear_rank(comm_t *comm, void *arg) {
    linear_job *job = arg;
    int P = comm_size(comm), r = comm_rank(comm);
    /* Column-parallel: this rank's columns of w, gathered back. */
    size_t c0 = split_offset(OUT_, P, r), nc = split_count(OUT_, P, r);
    float wl[IN_ * OUT_], bl[OUT_], scratch[T_ * OUT_];
    for (int i = 0; i < IN_; i++)
        for (size_t j = 0; j < nc; j++) wl[i * nc + j] = job->w[i * OUT_ + c0 + j];
    for (size_t j = 0; j < nc; j++) bl[j] = job->b[c0 + j];
    kernel_weight kw = kernel_weight_f32(wl, IN_, (int)nc);
    int rc = column_parallel_forward_gather(comm, job->col[r], scratch, job->x, &kw, bl, T_, OUT_,
                                            "col");
    if (rc) return rc;
    /* Row-parallel: x's feature block [k0, k0 + nk) times rows [k0, k0 + nk) of a [IN, OUT]
     * weight; output [T, OUT]... reuse: y = x_blk · w_rows + b, compared in the test. */
    size_t k0 = split_offset(IN_, P, r), nk = split_count(IN_, P, r);
    float xl[T_ * IN_];
    for (int t = 0; t < T_; t++)
        for (size_t k = 0; k < nk; k++) xl[t * nk + k] = job->x[t * IN_ + k0 + k];
    kernel_weight kr = kernel_weight_f32(job->w + k0 * OUT_, (int)nk, OUT_);
    return row_parallel_forward(comm, job->row[r], xl, &kr, job->b, T_, "row");
}

static void test_linear_layers_match_unsplit(void **state) {
    (void)state;
    float x[T_ * IN_], w[IN_ * OUT_], b[OUT_];
    fill(x, T_ * IN_, 1);
    fill(w, IN_ * OUT_, 2);
    fill(b, OUT_, 3);
    double want[T_ * OUT_];
    for (int t = 0; t < T_; t++)
        for (int j = 0; j < OUT_; j++) {
            double s = b[j];
            for (int i = 0; i < IN_; i++) s += (double)x[t * IN_ + i] * w[i * OUT_ + j];
            want[t * OUT_ + j] = s;
        }
    static linear_job job;
    job.x = x;
    job.w = w;
    job.b = b;
    for (int P = 1; P <= 5; P++) {
        char err[256];
        assert_int_equal(comm_launch(COMM_BACKEND_THREADS, P, linear_rank, &job, err, 256), 0);
        for (int r = 0; r < P; r++)
            for (int i = 0; i < T_ * OUT_; i++) {
                /* 7-term float32 dot products of values in [-1, 1]: error < 7 * 2^-24 * 7. */
                assert_true(fabs(job.col[r][i] - want[i]) < 1e-5);
                /* The bias is added once, after the sum: not P times. */
                assert_true(fabs(job.row[r][i] - want[i]) < 1e-5);
            }
    }
}

typedef struct {
    const float *row; /* [V] */
    int V, k;
    int ids[8][16];
    float vals[8][16];
    const float *logits_local_src; /* [T, V] */
    float full[8][3 * 37];
} vocab_job;

static int vocab_rank(comm_t *comm, void *arg) {
    vocab_job *job = arg;
    int P = comm_size(comm), r = comm_rank(comm), V = job->V;
    int v0 = (int)split_offset((size_t)V, P, r), vl = (int)split_count((size_t)V, P, r);
    int rc = vocab_parallel_topk(comm, job->row + v0, v0, vl, V, job->k, job->ids[r], job->vals[r],
                                 "topk");
    if (rc) return rc;
    float local[3 * 37], scratch[3 * 37];
    for (int t = 0; t < 3; t++)
        for (int j = 0; j < vl; j++) local[t * vl + j] = job->logits_local_src[t * V + v0 + j];
    return vocab_parallel_gather_logits(comm, job->full[r], scratch, local, 3, V, "gather");
}

static void test_vocab_topk_and_gather(void **state) {
    (void)state;
    enum { V = 37 };
    float row[V], logits[3 * V];
    fill(row, V, 9);
    row[30] = row[4]; /* a tie: the lower id must come first */
    fill(logits, 3 * V, 10);
    static vocab_job job;
    job.row = row;
    job.V = V;
    job.k = 5;
    job.logits_local_src = logits;
    /* Serial top-5 by selection. */
    int want[5] = {0};
    for (int i = 0; i < 5; i++) {
        int best = -1;
        for (int j = 0; j < V; j++) {
            int taken = 0;
            for (int q = 0; q < i; q++) taken |= want[q] == j;
            if (!taken && (best < 0 || row[j] > row[best])) best = j;
        }
        want[i] = best;
    }
    for (int P = 1; P <= 5; P++) {
        char err[256];
        assert_int_equal(comm_launch(COMM_BACKEND_THREADS, P, vocab_rank, &job, err, 256), 0);
        for (int r = 0; r < P; r++) {
            for (int i = 0; i < 5; i++) {
                assert_int_equal(job.ids[r][i], want[i]);
                assert_true(job.vals[r][i] == row[want[i]]);
            }
            assert_memory_equal(job.full[r], logits, sizeof(logits));
        }
    }
}

/* The vectorisable exp used by GELU and softmax: relative error under 2e-7 on its range. */
static void test_fast_exp_accuracy(void **state) {
    (void)state;
    double worst = 0;
    for (double x = -87.0; x <= 88.0; x += 1e-3) {
        float xf = (float)x;
        worst = max_keep_nan(worst, fabs(fast_expf(xf) / exp((double)xf) - 1.0));
    }
    assert_true(worst < 2e-7);
    assert_true(fast_expf(-1000.0f) > 0.0f && isfinite(fast_expf(1000.0f))); /* clamped */
    assert_true(isnan(fast_expf(NAN))); /* NaN propagates (and converts no NaN to an integer) */
}

/* ---- the model against the double-precision reference ------------------------------------ */

typedef struct {
    const model_config *cfg;
    const st_set *file;
    const int *tokens;
    int T;
    float *logits; /* [T, V] gathered, from rank 0 */
    char err[512];
} model_job;

static int model_rank(comm_t *comm, void *arg) {
    model_job *job = arg;
    model_shard m;
    char err[512];
    if (model_shard_load(&m, job->cfg, job->file, comm_rank(comm), comm_size(comm), job->T, err,
                         sizeof(err)))
        return comm_fail(comm, "%s", err);
    int V = job->cfg->vocab_size;
    float *full = malloc((size_t)job->T * (size_t)V * sizeof(float));
    float *scratch = malloc((size_t)job->T * (size_t)V * sizeof(float));
    int rc = (!full || !scratch) ? comm_fail(comm, "out of memory") : 0;
    if (!rc) rc = model_forward(comm, &m, job->tokens, job->T);
    if (!rc) rc = vocab_parallel_gather_logits(comm, full, scratch, m.logits, job->T, V, "g");
    if (!rc && comm_rank(comm) == 0) memcpy(job->logits, full, (size_t)job->T * V * sizeof(float));
    free(full);
    free(scratch);
    model_shard_free(&m);
    return rc;
}

static char *make_model(const model_config *cfg, st_dtype dtype, int prefix, int extras,
                        uint64_t seed) {
    char *dir = strdup("/tmp/linshard-test-gpt2-XXXXXX");
    assert_non_null(mkdtemp(dir));
    model_init_opts opts = {seed, dtype, prefix, extras, 0};
    char err[512];
    if (model_init_random(dir, cfg, &opts, err, sizeof(err))) fail_msg("init: %s", err);
    return dir;
}

static void remove_model(char *dir) {
    char path[512];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    free(dir);
}

/* Runs the model at each P and compares every logit with the reference. */
static void check_against_reference(const char *dir, const int *Ps, int nP) {
    char err[512];
    model_config cfg;
    if (model_config_load(dir, &cfg, err, sizeof(err))) fail_msg("%s", err);
    int T = cfg.n_positions < 9 ? cfg.n_positions : 9;
    int tokens[9];
    for (int t = 0; t < T; t++) tokens[t] = (t * 31 + 5) % cfg.vocab_size;
    tokens[0] = cfg.vocab_size - 1; /* the last vocabulary row lives on the last rank */
    size_t n = (size_t)T * (size_t)cfg.vocab_size;
    double *ref = malloc(n * sizeof(double));
    float *got = malloc(n * sizeof(float));
    assert_non_null(ref);
    assert_non_null(got);
    if (gpt2_reference_logits(dir, tokens, T, ref, err, sizeof(err))) fail_msg("ref: %s", err);
    double scale = max_abs_d(ref, n);
    st_set file;
    if (st_set_open(&file, dir, err, sizeof(err))) fail_msg("%s", err);
    if (model_check_weights(&cfg, &file, err, sizeof(err))) fail_msg("%s", err);
    for (int i = 0; i < nP; i++) {
        model_job job = {&cfg, &file, tokens, T, got, ""};
        if (comm_launch(COMM_BACKEND_THREADS, Ps[i], model_rank, &job, err, sizeof(err)))
            fail_msg("P=%d: %s", Ps[i], err);
        double worst = max_diff_fd(got, ref, n);
        if (!within_tol(worst, LOGIT_TOL, scale))
            fail_msg("P=%d: max |logit - reference| = %.3e > %.1e * %.3f", Ps[i], worst, LOGIT_TOL,
                     scale);
    }
    st_set_close(&file);
    free(ref);
    free(got);
}

/* 6 heads, 48 wide, vocab 101: P = 2, 3 divide the heads; 4, 5 do not; 101 is prime. */
static model_config shape_a; /* = model_config_gpt2(2, 48, 6, 101, 16, GELU_TANH), in main */
/* 8 heads of size 5, erf GELU: P = 8 gets one head per rank; 3 and 5 split unevenly. */
static model_config shape_b; /* = model_config_gpt2(2, 40, 8, 53, 12, GELU_ERF), in main */

static void test_model_f32_no_prefix(void **state) {
    (void)state;
    char *dir = make_model(&shape_a, ST_F32, 0, 0, 11);
    const int Ps[] = {1, 2, 3, 4, 5};
    check_against_reference(dir, Ps, 5);
    remove_model(dir);
}

static void test_model_f32_prefix_extras_erf(void **state) {
    (void)state;
    char *dir = make_model(&shape_b, ST_F32, 1, 1, 12);
    const int Ps[] = {1, 2, 3, 4, 5, 8};
    check_against_reference(dir, Ps, 6);
    remove_model(dir);
}

static void test_model_f16(void **state) {
    (void)state;
    char *dir = make_model(&shape_a, ST_F16, 1, 0, 13);
    const int Ps[] = {1, 3, 4};
    check_against_reference(dir, Ps, 3);
    remove_model(dir);
}

static void test_model_bf16(void **state) {
    (void)state;
    char *dir = make_model(&shape_b, ST_BF16, 0, 0, 14);
    const int Ps[] = {1, 2, 5, 8};
    check_against_reference(dir, Ps, 4);
    remove_model(dir);
}

/* tie_word_embeddings false: the model's own lm_head.weight is the head (it was ignored, and
 * the logits came from wte). The reference honours the flag too. */
static void test_model_untied_head(void **state) {
    (void)state;
    model_config c = shape_a;
    c.tied = 0;
    char *dir = make_model(&c, ST_F32, 1, 1, 19);
    model_config back;
    char err[512];
    assert_int_equal(model_config_load(dir, &back, err, sizeof(err)), 0);
    assert_int_equal(back.tied, 0); /* written and read back */
    const int Ps[] = {1, 2, 3};
    check_against_reference(dir, Ps, 3);
    remove_model(dir);
}

/* The fused c_attn weight is [E, 3E] = [Q | K | V]: rank r's slice is three column blocks. */
static void test_fused_qkv_slices_are_per_head(void **state) {
    (void)state;
    char *dir = make_model(&shape_a, ST_F32, 0, 0, 15);
    char path[600], err[512];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    st_file file;
    model_config cfg;
    assert_int_equal(model_config_load(dir, &cfg, err, sizeof(err)), 0);
    assert_int_equal(st_open(&file, path, err, sizeof(err)), 0);
    st_set weights;
    assert_int_equal(st_set_open(&weights, dir, err, sizeof(err)), 0);
    const st_tensor *t = st_find(&file, "h.1.attn.c_attn.weight");
    assert_non_null(t);
    int E = cfg.n_embd, D = E / cfg.n_head, P = 4;
    for (int r = 0; r < P; r++) {
        model_shard m;
        assert_int_equal(model_shard_load(&m, &cfg, &weights, r, P, 4, err, sizeof(err)), 0);
        int hd = m.h_local * D, c0 = m.h0 * D;
        float want;
        for (int i = 0; i < E; i += 7)
            for (int part = 0; part < 3; part++)
                for (int j = 0; j < hd; j++) {
                    assert_int_equal(
                        st_read_f32(&file, t, (size_t)i * 3 * E + part * E + c0 + j, 1, &want), 0);
                    assert_true(m.layers[1].qkv_w[(size_t)i * 3 * hd + part * hd + j] == want);
                }
        model_shard_free(&m);
    }
    st_close(&file);
    st_set_close(&weights);
    remove_model(dir);
}

/* ---- model-level errors ------------------------------------------------------------------- */

static void expect_config_error(const char *json, const char *needle) {
    char dir[] = "/tmp/linshard-test-cfg-XXXXXX", path[600], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    model_config cfg;
    assert_int_not_equal(model_config_load(dir, &cfg, err, sizeof(err)), 0);
    if (!strstr(err, needle)) fail_msg("config error '%s' lacks '%s'", err, needle);
    unlink(path);
    rmdir(dir);
}

static void test_config_errors(void **state) {
    (void)state;
    char err[512];
    model_config cfg;
    assert_int_not_equal(model_config_load("/nonexistent-dir", &cfg, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "No such file"));
    expect_config_error("{\"n_layer\": 2,", "malformed JSON");
    expect_config_error("{\"n_embd\": 48, \"n_head\": 6, \"vocab_size\": 10, \"n_positions\": 8}",
                        "missing \"n_layer\"");
    expect_config_error("{\"n_layer\": 2.5, \"n_embd\": 48, \"n_head\": 6, \"vocab_size\": 10, "
                        "\"n_positions\": 8}",
                        "\"n_layer\" must be a positive integer");
    expect_config_error("{\"n_layer\": 2, \"n_embd\": 50, \"n_head\": 6, \"vocab_size\": 10, "
                        "\"n_positions\": 8}",
                        "not divisible by n_head");
    expect_config_error("{\"n_layer\": 2, \"n_embd\": 48, \"n_head\": 6, \"vocab_size\": 10, "
                        "\"n_positions\": 8, \"activation_function\": \"relu\"}",
                        "unsupported \"activation_function\" 'relu'");
    expect_config_error("{\"n_layer\": 2, \"n_embd\": 48, \"n_head\": 6, \"vocab_size\": 10, "
                        "\"n_positions\": 8, \"quantization_config\": {}}",
                        "quantized checkpoints are not supported");
    expect_config_error("{\"n_layer\": 2, \"n_embd\": 48, \"n_head\": 6, \"vocab_size\": 10, "
                        "\"n_positions\": 8, \"tie_word_embeddings\": 0}",
                        "\"tie_word_embeddings\" must be true or false");
}

static void test_weights_must_match_config(void **state) {
    (void)state;
    char *dir = make_model(&shape_a, ST_F32, 0, 0, 16);
    char err[512];
    st_set file;
    assert_int_equal(st_set_open(&file, dir, err, sizeof(err)), 0);
    model_config wrong = shape_a;
    wrong.vocab_size = 100;
    assert_int_not_equal(model_check_weights(&wrong, &file, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "tensor 'wte.weight' has shape [101, 48] but config.json "
                                "implies [100, 48]"));
    wrong = shape_a;
    wrong.n_layer = 3;
    assert_int_not_equal(model_check_weights(&wrong, &file, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "missing tensor 'h.2.ln_1.weight'"));
    /* P larger than the head count is refused with a clear message. */
    model_shard m;
    assert_int_not_equal(model_shard_load(&m, &shape_a, &file, 0, 7, 4, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "6 attention heads over 7 ranks"));
    st_set_close(&file);
    /* Token ids outside the vocabulary and sequences past the context are refused. */
    int bad[2] = {3, 101};
    assert_int_not_equal(model_check_tokens(&shape_a, bad, 2, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "token id 101 (position 1) is outside the vocabulary"));
    int many[17] = {0};
    assert_int_not_equal(model_check_tokens(&shape_a, many, 17, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "17 tokens exceed the model's context of 16"));
    remove_model(dir);
}

/* The tests' NaN-aware max: fmax would drop the NaN and let a NaN logit pass. */
static void test_max_keep_nan(void **state) {
    (void)state;
    assert_true(fmax(0.5, NAN) == 0.5); /* why the helper exists */
    assert_true(isnan(max_keep_nan(0.5, NAN)));
    assert_true(isnan(max_keep_nan(NAN, 0.5)));
    assert_true(max_keep_nan(0.5, 2.0) == 2.0);
    const double ref[3] = {1.0, -3.0, 2.0};
    const float got[3] = {1.0f, NAN, 2.0f}, inf[3] = {1.0f, INFINITY, 2.0f};
    assert_true(max_abs_d(ref, 3) == 3.0);
    assert_true(isnan(max_diff_fd(got, ref, 3)));
    assert_false(within_tol(max_diff_fd(got, ref, 3), 1.0, max_abs_d(ref, 3)));
    assert_false(within_tol(max_diff_fd(inf, ref, 3), 1.0, max_abs_d(ref, 3)));
    const float close[3] = {1.0f, -3.0f, 2.5f};
    assert_true(within_tol(max_diff_fd(close, ref, 3), 0.2, max_abs_d(ref, 3)));
    const double nan_ref[3] = {NAN, NAN, NAN};
    const float nan_got[3] = {NAN, NAN, NAN};
    assert_false(within_tol(max_diff_fd(nan_got, nan_ref, 3), 1.0, max_abs_d(nan_ref, 3)));
}

/* A checkpoint with one NaN (or infinity) in it loads as a model that runs to NaN logits:
 * refused at load, naming the tensor, on the rank whose slice holds it. */
static void test_non_finite_weight_refused(void **state) {
    (void)state;
    char *dir = make_model(&shape_a, ST_F32, 1, 0, 17);
    char path[600], err[512];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    /* c_fc is [48, 192]: element 5 of row 0 is column 5, rank 0's slice at P = 2. */
    assert_int_equal(poison_f32(path, "transformer.h.1.mlp.c_fc.weight", 5, NAN), 0);
    st_set w;
    assert_int_equal(st_set_open(&w, dir, err, sizeof(err)), 0);
    assert_int_equal(model_check_weights(&shape_a, &w, err, sizeof(err)), 0); /* shapes are fine */
    model_shard m;
    assert_int_not_equal(model_shard_load(&m, &shape_a, &w, 0, 2, 4, err, sizeof(err)), 0);
    if (!strstr(err, "tensor 'transformer.h.1.mlp.c_fc.weight' holds a non-finite value (nan"))
        fail_msg("unexpected message: %s", err);
    assert_int_equal(model_shard_load(&m, &shape_a, &w, 1, 2, 4, err, sizeof(err)), 0);
    model_shard_free(&m); /* rank 1 of 2 does not read column 5 */
    st_set_close(&w);
    assert_int_equal(poison_f32(path, "transformer.h.1.mlp.c_fc.weight", 5, 0.0f), 0);
    assert_int_equal(poison_f32(path, "transformer.wte.weight", 100 * 48 + 3, -INFINITY), 0);
    assert_int_equal(st_set_open(&w, dir, err, sizeof(err)), 0);
    assert_int_not_equal(model_shard_load(&m, &shape_a, &w, 0, 1, 4, err, sizeof(err)), 0);
    if (!strstr(err, "tensor 'transformer.wte.weight' holds a non-finite value (-inf at element "
                     "4803)"))
        fail_msg("unexpected message: %s", err);
    st_set_close(&w);
    remove_model(dir);
}

/* Finite weights that overflow float32 in the forward pass: model_forward fails, naming the
 * position, rather than returning NaN logits. */
static void test_forward_overflow_fails(void **state) {
    (void)state;
    char *dir = make_model(&shape_a, ST_F32, 0, 0, 18);
    char path[600], err[512];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    /* Token 1 at position 0: 3e38 + 3e38 overflows in the embedding's sum. */
    assert_int_equal(poison_f32(path, "wte.weight", 48 + 7, 3e38f), 0);
    assert_int_equal(poison_f32(path, "wpe.weight", 7, 3e38f), 0);
    st_set w;
    assert_int_equal(st_set_open(&w, dir, err, sizeof(err)), 0);
    int tokens[3] = {1, 2, 3};
    float logits[3 * 101];
    model_job job = {&shape_a, &w, tokens, 3, logits, ""};
    assert_int_not_equal(comm_launch(COMM_BACKEND_THREADS, 2, model_rank, &job, err, sizeof(err)),
                         0);
    if (!strstr(err, "hidden state of position 0 is not finite"))
        fail_msg("unexpected message: %s", err);
    st_set_close(&w);
    remove_model(dir);
}

int main(void) {
    kernel_set_threads(1); /* one core per rank */
    shape_a = model_config_gpt2(2, 48, 6, 101, 16, GELU_TANH);
    shape_b = model_config_gpt2(2, 40, 8, 53, 12, GELU_ERF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_layers_match_unsplit),
        cmocka_unit_test(test_vocab_topk_and_gather),
        cmocka_unit_test(test_fast_exp_accuracy),
        cmocka_unit_test(test_model_f32_no_prefix),
        cmocka_unit_test(test_model_f32_prefix_extras_erf),
        cmocka_unit_test(test_model_f16),
        cmocka_unit_test(test_model_bf16),
        cmocka_unit_test(test_model_untied_head),
        cmocka_unit_test(test_fused_qkv_slices_are_per_head),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_weights_must_match_config),
        cmocka_unit_test(test_max_keep_nan),
        cmocka_unit_test(test_non_finite_weight_refused),
        cmocka_unit_test(test_forward_overflow_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
