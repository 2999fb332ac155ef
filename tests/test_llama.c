/* test_llama.c — the Llama family split over P ranks against the independent double-precision
 * reference (llama_reference.c), for P that divides the heads and P that does not.
 *
 * Tolerance: 2e-5 of the largest |logit|, as test_gpt2.c justifies for float32 against double
 * (dot products of at most a few hundred float32 terms, fast_expf in softmax and SiLU with
 * relative error <= 2e-7, norms with double statistics). The reference's author measured a
 * float32 PyTorch forward at 2e-7..4e-7 of these models' logits; the mistakes this guards
 * against (RoPE on adjacent pairs, a query head reading the wrong K/V head, a bias or q/k norm
 * dropped, llama3 scaling ignored) miss by 6e-3..0.7 of them.
 *
 * Cases: GQA with 2 K/V heads at P = 1..6 (K/V replicated at P = 3, 4, 5, 6; query heads
 * uneven at 4, 5), 8 heads at P = 8, MQA (one K/V head on every rank), Qwen2's q/k/v biases,
 * Qwen3's q/k norms with head_dim != hidden / heads, tied and untied heads, llama3 RoPE
 * scaling, Mistral, BF16 weights in a sharded checkpoint; KV-cached decoding equals full
 * forwards; bad configs and checkpoints refused in one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/kernels.h"
#include "linshard/ledger.h"
#include "linshard/model.h"
#include "compare.h"
#include "llama_reference.h"
#include "poison.h"
#include "temp_dir.h"

#define LOGIT_TOL 2e-5
#define CACHE_TOL 2e-5
#define MAX_T 20

/* ---- models ------------------------------------------------------------------------------ */

static char *make_model(const model_config *cfg, st_dtype dtype, size_t shard_bytes,
                        uint64_t seed) {
    char *dir = temp_dir_make("llama");
    model_init_opts opts = {seed, dtype, 0, 0, shard_bytes};
    char err[512];
    if (model_init_random(dir, cfg, &opts, err, sizeof(err))) fail_msg("init: %s", err);
    return dir;
}

/* 2 layers, 48 wide, vocab 101 (prime: no P divides it), MLP 80, context 32. */
static model_config small(model_family family, int heads, int kv_heads, int head_dim) {
    return model_config_llama(family, 2, 48, heads, kv_heads, head_dim, 80, 101, 32);
}

/* ---- sharded logits against the reference ------------------------------------------------- */

typedef struct {
    const model_config *cfg;
    const st_set *weights;
    const int *tokens;
    int T;
    float *logits; /* [T, V] gathered, from rank 0 */
    uint64_t allreduce_calls;
} model_job;

static int model_rank(comm_t *comm, void *arg) {
    model_job *job = arg;
    model_shard m;
    char err[512];
    if (model_shard_load(&m, job->cfg, job->weights, comm_rank(comm), comm_size(comm), job->T, err,
                         sizeof(err)))
        return comm_fail(comm, "%s", err);
    int V = job->cfg->vocab_size;
    float *full = malloc((size_t)job->T * (size_t)V * sizeof(float));
    float *scratch = malloc((size_t)job->T * (size_t)V * sizeof(float));
    int rc = (!full || !scratch) ? comm_fail(comm, "out of memory") : 0;
    comm_ledger_reset(comm);
    if (!rc) rc = model_forward(comm, &m, job->tokens, job->T);
    if (!rc && comm_rank(comm) == 0)
        job->allreduce_calls = ledger_op_total(comm_ledger(comm), LEDGER_ALLREDUCE).calls;
    if (!rc) rc = vocab_parallel_gather_logits(comm, full, scratch, m.logits, job->T, V, "g");
    if (!rc && comm_rank(comm) == 0) memcpy(job->logits, full, (size_t)job->T * V * sizeof(float));
    free(full);
    free(scratch);
    model_shard_free(&m);
    return rc;
}

static void test_tokens(const model_config *cfg, int *tokens, int T) {
    for (int t = 0; t < T; t++) tokens[t] = (t * 31 + 5) % cfg->vocab_size;
    tokens[0] = cfg->vocab_size - 1; /* the last vocabulary row lives on the last rank */
}

/* Runs the model in dir at each P and compares every logit with the reference; returns the
 * worst difference relative to the largest |logit|. */
static double check_against_reference(const char *dir, const int *Ps, int nP) {
    char err[512];
    model_config cfg;
    if (model_config_load(dir, &cfg, err, sizeof(err))) fail_msg("%s", err);
    int T = cfg.n_positions < MAX_T ? cfg.n_positions : MAX_T, tokens[MAX_T];
    test_tokens(&cfg, tokens, T);
    size_t n = (size_t)T * (size_t)cfg.vocab_size;
    double *ref = malloc(n * sizeof(double));
    float *got = malloc(n * sizeof(float));
    assert_non_null(ref);
    assert_non_null(got);
    if (llama_reference_logits(dir, tokens, T, ref, err, sizeof(err))) fail_msg("ref: %s", err);
    double scale = max_abs_d(ref, n), worst_all = 0;
    st_set weights;
    if (st_set_open(&weights, dir, err, sizeof(err))) fail_msg("%s", err);
    if (model_check_weights(&cfg, &weights, err, sizeof(err))) fail_msg("%s", err);
    for (int i = 0; i < nP; i++) {
        model_job job = {&cfg, &weights, tokens, T, got, 0};
        if (comm_launch(COMM_BACKEND_THREADS, Ps[i], model_rank, &job, err, sizeof(err)))
            fail_msg("P=%d: %s", Ps[i], err);
        double worst = max_diff_fd(got, ref, n);
        if (!within_tol(worst, LOGIT_TOL, scale))
            fail_msg("P=%d: max |logit - reference| = %.3e > %.1e * %.3f", Ps[i], worst, LOGIT_TOL,
                     scale);
        /* Whatever the family and P, replicated K/V included: 1 + 2 per layer. */
        assert_int_equal(job.allreduce_calls, 1 + 2 * cfg.n_layer);
        worst_all = max_keep_nan(worst_all, worst / scale);
    }
    st_set_close(&weights);
    free(ref);
    free(got);
    return worst_all;
}

static void run_case(const char *what, const model_config *cfg, st_dtype dtype, size_t shards,
                     uint64_t seed, const int *Ps, int nP) {
    char *dir = make_model(cfg, dtype, shards, seed);
    double worst = check_against_reference(dir, Ps, nP);
    printf("    %-44s max |diff| %.2e of max |logit| (tol %.0e)\n", what, worst, LOGIT_TOL);
    temp_dir_remove(dir);
}

static void test_gqa_kv_replicated(void **state) {
    (void)state;
    model_config c = small(FAMILY_LLAMA, 6, 2, 0); /* 3 query heads per K/V head */
    const int Ps[] = {1, 2, 3, 4, 5, 6};
    run_case("llama, 6 heads / 2 kv, untied, P=1..6", &c, ST_F32, 0, 21, Ps, 6);
    model_config c8 = model_config_llama(FAMILY_LLAMA, 2, 64, 8, 2, 0, 96, 101, 32);
    const int P8[] = {1, 3, 5, 8};
    run_case("llama, 8 heads / 2 kv, P=1,3,5,8", &c8, ST_F32, 0, 22, P8, 4);
}

static void test_mqa(void **state) {
    (void)state;
    model_config c = small(FAMILY_LLAMA, 6, 1, 0);
    const int Ps[] = {1, 2, 4, 5};
    run_case("llama MQA (1 kv head), P=1,2,4,5", &c, ST_F32, 0, 23, Ps, 4);
}

static void test_qwen2_biases_tied(void **state) {
    (void)state;
    model_config c = small(FAMILY_QWEN2, 6, 2, 0);
    c.tied = 1;
    const int Ps[] = {1, 2, 3, 4};
    run_case("qwen2 (q/k/v biases), tied, P=1..4", &c, ST_F32, 0, 24, Ps, 4);
}

static void test_qwen3_qk_norm_head_dim(void **state) {
    (void)state;
    model_config c = small(FAMILY_QWEN3, 6, 3, 12); /* head_dim 12 != 48 / 6 */
    const int Ps[] = {1, 2, 3, 5};
    run_case("qwen3 (q/k norms, head_dim 12), P=1,2,3,5", &c, ST_F32, 0, 25, Ps, 4);
}

static void test_rope_scaling_llama3_tied(void **state) {
    (void)state;
    model_config c = small(FAMILY_LLAMA, 6, 2, 16); /* head_dim 16: 8 frequencies to scale */
    c.tied = 1;
    c.rope_theta = 500000.0;
    c.rope_scaling = (rope_scaling_params){ROPE_SCALING_LLAMA3, 8.0, 1.0, 4.0, 16, {0}};
    const int Ps[] = {1, 3, 4};
    run_case("llama3 rope scaling, theta 5e5, tied", &c, ST_F32, 0, 26, Ps, 3);
}

static void test_mistral_and_biases_bf16_sharded(void **state) {
    (void)state;
    model_config m = small(FAMILY_MISTRAL, 6, 2, 0);
    const int Ps[] = {1, 2, 4};
    run_case("mistral, P=1,2,4", &m, ST_F32, 0, 27, Ps, 3);
    model_config c = small(FAMILY_LLAMA, 6, 2, 0);
    c.qkv_bias = c.out_bias = c.mlp_bias = 1; /* attention_bias and mlp_bias */
    const int P2[] = {1, 3, 5};
    run_case("llama biases, BF16, sharded in 64 KiB files", &c, ST_BF16, 64 << 10, 28, P2, 3);
}

/* ---- KV-cached decoding equals the full forward ------------------------------------------- */

typedef struct {
    const model_config *cfg;
    const st_set *weights;
    double worst[8];
    uint64_t step_calls[8];
} cache_job;

static int cache_rank(comm_t *comm, void *arg) {
    cache_job *job = arg;
    int r = comm_rank(comm), P = comm_size(comm), rc = 0, tokens[MAX_T];
    test_tokens(job->cfg, tokens, MAX_T);
    model_shard full, inc;
    char err[512];
    if (model_shard_load(&full, job->cfg, job->weights, r, P, MAX_T, err, sizeof(err)) ||
        model_shard_load(&inc, job->cfg, job->weights, r, P, MAX_T, err, sizeof(err)) ||
        model_shard_enable_cache(&inc, MAX_T, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    int vl = full.v_local;
    /* A 5-token prompt, then one at a time, a chunk of 4, then one at a time. */
    for (int done = 0; done < MAX_T && !rc;) {
        int step = done == 0 ? 5 : (done == 9 ? 4 : 1);
        comm_ledger_reset(comm);
        rc = done == 0 ? model_forward(comm, &inc, tokens, step)
                       : model_extend(comm, &inc, tokens + done, step);
        if (rc) break;
        if (step == 1)
            job->step_calls[r] = ledger_op_total(comm_ledger(comm), LEDGER_ALLREDUCE).calls;
        done += step;
        if ((rc = model_forward(comm, &full, tokens, done))) break;
        double scale = 1e-30, worst = 0;
        for (int t = 0; t < step; t++)
            for (int j = 0; j < vl; j++) {
                float a = inc.logits[(size_t)t * (size_t)vl + (size_t)j];
                float b = full.logits[(size_t)(done - step + t) * (size_t)vl + (size_t)j];
                scale = max_keep_nan(scale, fabs(b));
                worst = max_keep_nan(worst, fabs(a - b));
            }
        job->worst[r] = max_keep_nan(job->worst[r], worst / scale);
    }
    model_shard_free(&full);
    model_shard_free(&inc);
    return rc;
}

static void test_cache_matches_full_forward(void **state) {
    (void)state;
    model_config c = small(FAMILY_QWEN3, 6, 2, 12);
    char *dir = make_model(&c, ST_F32, 0, 29);
    char err[512];
    st_set weights;
    if (st_set_open(&weights, dir, err, sizeof(err))) fail_msg("%s", err);
    double worst = 0;
    for (int P = 1; P <= 4; P++) {
        cache_job job;
        memset(&job, 0, sizeof(job));
        job.cfg = &c;
        job.weights = &weights;
        if (comm_launch(COMM_BACKEND_THREADS, P, cache_rank, &job, err, sizeof(err)))
            fail_msg("P=%d: %s", P, err);
        for (int r = 0; r < P; r++) {
            if (!(job.worst[r] <= CACHE_TOL)) /* NaN fails too */
                fail_msg("P=%d rank %d: cached logits differ by %.3e of max", P, r, job.worst[r]);
            worst = max_keep_nan(worst, job.worst[r]);
            assert_int_equal(job.step_calls[r], 1 + 2 * c.n_layer);
        }
    }
    printf("    cached vs full forward, P=1..4 (K/V replicated at 3, 4): max %.2e (tol %.0e)\n",
           worst, CACHE_TOL);
    st_set_close(&weights);
    temp_dir_remove(dir);
}

/* ---- refusals ---------------------------------------------------------------------------- */

static void expect_config_error(const char *json, const char *needle) {
    char dir[] = "/tmp/linshard-test-llamacfg-XXXXXX", path[600], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    model_config cfg;
    assert_int_not_equal(model_config_load(dir, &cfg, err, sizeof(err)), 0);
    if (!strstr(err, needle)) fail_msg("config error '%s' lacks '%s'", err, needle);
    assert_null(strchr(err, '\n'));
    unlink(path);
    rmdir(dir);
}

#define LLAMA_JSON(extra)                                                                          \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 48, \"intermediate_size\": "     \
    "80, \"num_hidden_layers\": 2, \"num_attention_heads\": 6, \"vocab_size\": 101, "              \
    "\"max_position_embeddings\": 32" extra "}"

static void test_config_refusals(void **state) {
    (void)state;
    expect_config_error(LLAMA_JSON(", \"num_key_value_heads\": 4"),
                        "num_key_value_heads 4 does not divide num_attention_heads 6");
    expect_config_error(LLAMA_JSON(", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}"),
                        "unsupported \"rope_scaling\" type 'yarn'");
    expect_config_error(
        LLAMA_JSON(", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8}"),
        "\"rope_scaling\".\"low_freq_factor\"");
    expect_config_error(LLAMA_JSON(", \"hidden_act\": \"gelu\""), "unsupported \"hidden_act\"");
    expect_config_error(LLAMA_JSON(", \"partial_rotary_factor\": 0.5"), "partial_rotary_factor");
    expect_config_error(LLAMA_JSON(", \"num_local_experts\": 8"), "mixtures of experts");
    expect_config_error(LLAMA_JSON(", \"head_dim\": 7"), "head_dim 7 is odd");
    /* Issue 10: fields that change the answer are refused by name, never ignored. */
    expect_config_error(LLAMA_JSON(", \"quantization_config\": {\"quant_method\": \"gptq\"}"),
                        "\"quantization_config\": quantized checkpoints are not supported");
    expect_config_error(
        LLAMA_JSON(", \"layer_types\": [\"full_attention\", \"sliding_attention\"]"),
        "\"layer_types\": only full_attention layers are supported");
    expect_config_error(LLAMA_JSON(", \"rope_parameters\": {\"rope_type\": \"yarn\"}"),
                        "unsupported \"rope_scaling\" type 'yarn'");
    expect_config_error("{\"architectures\": [\"MistralForCausalLM\"], \"hidden_size\": 48, "
                        "\"intermediate_size\": 80, \"num_hidden_layers\": 2, "
                        "\"num_attention_heads\": 6, \"vocab_size\": 101, "
                        "\"max_position_embeddings\": 32, \"sliding_window\": 16}",
                        "\"sliding_window\" shorter than the context (32)");
    expect_config_error("{\"architectures\": [\"MixtralForCausalLM\"]}",
                        "unsupported architecture 'MixtralForCausalLM'");
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 48}",
                        "missing \"num_hidden_layers\"");
    /* Found by fuzz_model_config: an integer field far outside int's range was converted to int
     * before its range was checked (undefined behaviour). */
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"num_hidden_layers\": "
                        "1e50, \"hidden_size\": 48}",
                        "\"num_hidden_layers\" must be a positive integer");
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"num_hidden_layers\": "
                        "-3e12, \"hidden_size\": 48}",
                        "\"num_hidden_layers\" must be a positive integer");
    /* Found by fuzz_model_config: configs whose every field is in range but whose model is
     * absurd made model_total_param_floats build a parameter table of 16e8 entries (1e8
     * layers), or overflow size_t (1e6 heads of 1e8 dimensions); they are refused now. */
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 48, "
                        "\"intermediate_size\": 80, \"num_hidden_layers\": 100000000, "
                        "\"num_attention_heads\": 6, \"vocab_size\": 101, "
                        "\"max_position_embeddings\": 32}",
                        "100000000 layers is more than linshard supports (1024)");
    expect_config_error("{\"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 48, "
                        "\"intermediate_size\": 80, \"num_hidden_layers\": 2, "
                        "\"num_attention_heads\": 1000000, \"head_dim\": 100000000, "
                        "\"vocab_size\": 101, \"max_position_embeddings\": 32}",
                        "parameters, more than linshard supports");
    expect_config_error("{\"n_layer\": 1000, \"n_embd\": 100000, \"n_head\": 1, "
                        "\"vocab_size\": 1, \"n_positions\": 1}",
                        "parameters, more than linshard supports");
    /* fuzz_model_config's one-line check: a name quoted from the file broke the line. */
    expect_config_error("{\"architectures\": [\"Llama\\nForCausalLM\\r\"]}",
                        "unsupported architecture 'Llama?ForCausalLM?'");
    /* What is accepted at the limits still sizes without overflow. */
    model_config big =
        model_config_llama(FAMILY_LLAMA, 1024, 8192, 64, 8, 0, 28672, 128256, 131072);
    char why[512];
    assert_int_equal(model_config_check(&big, why, sizeof(why)), 0);
    assert_true(model_total_param_floats(&big) > (size_t)1 << 38);
    /* And what is accepted: a null sliding window, one as long as the context, "default". */
    char dir[] = "/tmp/linshard-test-llamacfg-XXXXXX", path[600], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 48, "
          "\"intermediate_size\": 80, \"num_hidden_layers\": 2, \"num_attention_heads\": 6, "
          "\"num_key_value_heads\": 2, \"vocab_size\": 101, \"max_position_embeddings\": 32, "
          "\"sliding_window\": 8, \"use_sliding_window\": false, "
          "\"rope_scaling\": {\"rope_type\": \"default\"}, \"tie_word_embeddings\": true}",
          f);
    fclose(f);
    model_config cfg;
    if (model_config_load(dir, &cfg, err, sizeof(err))) fail_msg("%s", err);
    assert_int_equal(cfg.family, FAMILY_QWEN2);
    assert_true(cfg.qkv_bias && !cfg.out_bias && cfg.tied && cfg.n_kv_head == 2);
    assert_int_equal(cfg.rope_scaling.kind, ROPE_SCALING_NONE);
    unlink(path);
    rmdir(dir);
}

/* A config written by linshard reads back as the same model. */
static void test_config_round_trip(void **state) {
    (void)state;
    model_config c = small(FAMILY_QWEN3, 6, 2, 12);
    c.tied = 1;
    c.rope_scaling = (rope_scaling_params){ROPE_SCALING_LLAMA3, 8.0, 1.0, 4.0, 16, {0}};
    char dir[] = "/tmp/linshard-test-llamacfg-XXXXXX", err[512], path[600];
    assert_non_null(mkdtemp(dir));
    if (model_config_save(dir, &c, err, sizeof(err))) fail_msg("%s", err);
    model_config back;
    if (model_config_load(dir, &back, err, sizeof(err))) fail_msg("%s", err);
    /* Field by field where the struct has padding (clang leaves stack bytes in it). */
    assert_memory_equal(&back, &c, offsetof(model_config, rope_scaling));
    assert_int_equal(back.rope_scaling.kind, c.rope_scaling.kind);
    assert_memory_equal(&back.rope_scaling.factor, &c.rope_scaling.factor, 3 * sizeof(double));
    assert_int_equal(back.rope_scaling.original_max_positions,
                     c.rope_scaling.original_max_positions);
    assert_int_equal(back.tied, c.tied);
    /* Newer transformers put rope_theta in "rope_parameters": read there, not defaulted. */
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(LLAMA_JSON(", \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": "
                     "500000}"),
          f);
    fclose(f);
    if (model_config_load(dir, &back, err, sizeof(err))) fail_msg("%s", err);
    assert_true(back.rope_theta == 500000.0);
    unlink(path);
    rmdir(dir);
}

/* The checkpoint must hold what the config implies, named as the family names it. */
static void test_weights_refusals(void **state) {
    (void)state;
    model_config c = small(FAMILY_LLAMA, 6, 2, 0);
    char *dir = make_model(&c, ST_F32, 0, 30);
    char err[512];
    st_set weights;
    assert_int_equal(st_set_open(&weights, dir, err, sizeof(err)), 0);
    model_config wrong = c;
    wrong.tied = 0;
    wrong.qkv_bias = 1;
    assert_int_not_equal(model_check_weights(&wrong, &weights, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "missing tensor 'model.layers.0.self_attn.q_proj.bias'"));
    wrong = c;
    wrong.n_kv_head = 3;
    assert_int_not_equal(model_check_weights(&wrong, &weights, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "'model.layers.0.self_attn.k_proj.weight' has shape [16, 48] "
                                "but config.json implies [24, 48]"));
    model_shard m;
    assert_int_not_equal(model_shard_load(&m, &c, &weights, 0, 7, 4, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "6 attention heads over 7 ranks"));
    st_set_close(&weights);
    temp_dir_remove(dir);
}

/* One NaN or infinity in a checkpoint is refused at load, naming the tensor: in a stored
 * [out, in] projection (read transposed, through the tile) and in the untied LM head. */
static void test_non_finite_weight_refused(void **state) {
    (void)state;
    model_config c = small(FAMILY_LLAMA, 6, 2, 0);
    char *dir = make_model(&c, ST_F32, 0, 31);
    char path[600], err[512];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    assert_int_equal(poison_f32(path, "model.layers.1.self_attn.k_proj.weight", 48 * 3 + 1, NAN),
                     0);
    st_set w;
    model_shard m;
    assert_int_equal(st_set_open(&w, dir, err, sizeof(err)), 0);
    assert_int_not_equal(model_shard_load(&m, &c, &w, 0, 3, 4, err, sizeof(err)), 0);
    if (!strstr(err, "tensor 'model.layers.1.self_attn.k_proj.weight' holds a non-finite value"))
        fail_msg("unexpected message: %s", err);
    st_set_close(&w);
    assert_int_equal(poison_f32(path, "model.layers.1.self_attn.k_proj.weight", 48 * 3 + 1, 0.0f),
                     0);
    assert_int_equal(poison_f32(path, "lm_head.weight", 100 * 48, INFINITY), 0);
    assert_int_equal(st_set_open(&w, dir, err, sizeof(err)), 0);
    assert_int_not_equal(model_shard_load(&m, &c, &w, 2, 3, 4, err, sizeof(err)), 0);
    if (!strstr(err, "tensor 'lm_head.weight' holds a non-finite value (inf at element 4800)"))
        fail_msg("unexpected message: %s", err);
    st_set_close(&w);
    temp_dir_remove(dir);
}

int main(void) {
    kernel_set_threads(1); /* one core per rank */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gqa_kv_replicated),
        cmocka_unit_test(test_mqa),
        cmocka_unit_test(test_qwen2_biases_tied),
        cmocka_unit_test(test_qwen3_qk_norm_head_dim),
        cmocka_unit_test(test_rope_scaling_llama3_tied),
        cmocka_unit_test(test_mistral_and_biases_bf16_sharded),
        cmocka_unit_test(test_cache_matches_full_forward),
        cmocka_unit_test(test_config_refusals),
        cmocka_unit_test(test_config_round_trip),
        cmocka_unit_test(test_weights_refusals),
        cmocka_unit_test(test_non_finite_weight_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
