/* test_model_gguf.c — models written to GGUF and read back, against the same models read from
 * their Hugging Face safetensors.
 *
 * A Q8_0 or Q4_0 block re-quantised from its own dequantised values is the same block (the
 * largest |value| is exactly 127 d or -8 d, so the scale comes back exactly), and F16/BF16 widen
 * and narrow exactly. So a model written to GGUF as type T and loaded holding T must give the
 * SAME logits, bit for bit, as the safetensors model loaded holding T, at every P: any difference
 * is a loading mistake (a name, a transposition, the Q/K permutation, a block split). The
 * safetensors path itself is checked against the double-precision references in
 * test_weight_types.c.
 *
 * The Q/K permutation is also checked directly against llama.cpp's definition (convert_hf_to_
 * gguf.py's permute: reshape(heads, 2, D/2, in).swapaxes(1, 2)), which round trips alone would
 * not catch (a reader and writer wrong in opposite ways agree with each other). Malformed and
 * unsupported files are refused in one line. */
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

#include "linshard/model_gguf.h"
#include "linshard/model_source.h"
#include "temp_dir.h"

#define T_ 7

typedef struct {
    const model_source *src;
    kernel_type type;
    int tokens[T_];
    float *logits; /* [T, V] */
} job_t;

static int rank_main(comm_t *comm, void *arg) {
    job_t *job = arg;
    model_shard m;
    char err[512];
    if (model_source_load(job->src, &m, comm_rank(comm), comm_size(comm), T_, job->type, err,
                          sizeof(err)))
        return comm_fail(comm, "%s", err);
    size_t n = (size_t)T_ * (size_t)job->src->cfg.vocab_size;
    float *scratch = malloc(n * sizeof(float)), *full = malloc(n * sizeof(float));
    int rc = scratch && full ? model_forward(comm, &m, job->tokens, T_) : comm_fail(comm, "oom");
    if (!rc)
        rc = vocab_parallel_gather_logits(comm, full, scratch, m.logits, T_,
                                          job->src->cfg.vocab_size, "g");
    if (!rc && comm_rank(comm) == 0) memcpy(job->logits, full, n * sizeof(float));
    free(scratch);
    free(full);
    model_shard_free(&m);
    return rc;
}

static void logits_of(const model_source *src, kernel_type type, int P, float *out) {
    job_t job = {src, type, {0}, out};
    for (int t = 0; t < T_; t++) job.tokens[t] = (t * 13 + 2) % src->cfg.vocab_size;
    char err[512];
    if (comm_launch(COMM_BACKEND_THREADS, P, rank_main, &job, err, sizeof(err)))
        fail_msg("%s P=%d: %s", kernel_type_info(type)->name, P, err);
}

static void check_family(model_config cfg, int max_P) {
    char *dir = temp_dir_make("mgguf"), err[512], path[600];
    model_init_opts opts = {3, ST_F32, 0, 0, 0};
    if (model_init_random(dir, &cfg, &opts, err, sizeof(err))) fail_msg("init: %s", err);
    model_source hf;
    if (model_source_open(&hf, dir, err, sizeof(err))) fail_msg("%s", err);
    size_t n = (size_t)T_ * (size_t)cfg.vocab_size;
    float *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    assert_true(want && got);
    for (int type = 0; type < KERNEL_TYPE_COUNT; type++) {
        snprintf(path, sizeof(path), "%s/model-%d.gguf", dir, type);
        if (model_write_gguf(path, &cfg, &hf.st, (kernel_type)type, err, sizeof(err)))
            fail_msg("write %s: %s", kernel_type_info((kernel_type)type)->name, err);
        model_source gg;
        if (model_source_open(&gg, path, err, sizeof(err))) fail_msg("open: %s", err);
        assert_true(gg.is_gguf);
        /* The config read back from the metadata is the config written. */
        assert_int_equal(gg.cfg.family == FAMILY_MISTRAL ? FAMILY_MISTRAL : gg.cfg.family,
                         cfg.family == FAMILY_MISTRAL ? FAMILY_LLAMA : cfg.family);
        assert_int_equal(gg.cfg.n_layer, cfg.n_layer);
        assert_int_equal(gg.cfg.n_embd, cfg.n_embd);
        assert_int_equal(gg.cfg.n_head, cfg.n_head);
        assert_int_equal(gg.cfg.n_kv_head, cfg.n_kv_head);
        assert_int_equal(gg.cfg.head_dim, cfg.head_dim);
        assert_int_equal(gg.cfg.n_ff, cfg.n_ff);
        assert_int_equal(gg.cfg.vocab_size, cfg.vocab_size);
        assert_int_equal(gg.cfg.n_positions, cfg.n_positions);
        assert_int_equal(gg.cfg.tied, cfg.tied);
        assert_int_equal(gg.cfg.qkv_bias, cfg.qkv_bias);
        assert_int_equal(gg.cfg.qk_norm, cfg.qk_norm);
        assert_true(gg.cfg.norm_eps == cfg.norm_eps);
        assert_true((float)gg.cfg.rope_theta == (float)cfg.rope_theta);
        assert_int_equal(model_source_stored_type(&gg), type);
        for (int P = 1; P <= max_P; P++) {
            logits_of(&hf, (kernel_type)type, P, want);
            logits_of(&gg, (kernel_type)type, P, got);
            for (size_t i = 0; i < n; i++)
                if (!(got[i] == want[i]))
                    fail_msg("%s P=%d: GGUF logit %zu = %.9g, safetensors %.9g",
                             kernel_type_info((kernel_type)type)->name, P, i, (double)got[i],
                             (double)want[i]);
        }
        /* A quantised file held as F32 (dequantised as read, split on its blocks) matches the
         * safetensors model held as that type within float rounding. */
        if (type == KERNEL_Q8_0) {
            logits_of(&hf, KERNEL_Q8_0, 3 <= max_P ? 3 : max_P, want);
            logits_of(&gg, KERNEL_F32, 3 <= max_P ? 3 : max_P, got);
            double worst = 0, scale = 0;
            for (size_t i = 0; i < n; i++) {
                worst = fmax(worst, fabs((double)got[i] - want[i]));
                scale = fmax(scale, fabs((double)want[i]));
            }
            /* held as F32 the activations are not rounded to Q8_0 blocks: 2e-2, as in
             * test_weight_types.c */
            assert_true(isfinite(worst) && worst <= 2e-2 * scale);
        }
        model_source_close(&gg);
    }
    model_source_close(&hf);
    free(want);
    free(got);
    temp_dir_remove(dir);
}

static void test_gpt2(void **state) {
    (void)state;
    check_family(model_config_gpt2(2, 64, 2, 37, 16, GELU_TANH), 2);
}

static void test_llama_gqa(void **state) {
    (void)state;
    model_config c = model_config_llama(FAMILY_LLAMA, 2, 64, 4, 2, 32, 96, 41, 16);
    c.tied = 1;
    check_family(c, 4);
}

static void test_qwen2_biases(void **state) {
    (void)state;
    check_family(model_config_llama(FAMILY_QWEN2, 1, 64, 2, 1, 32, 64, 29, 16), 2);
}

static void test_qwen3_qk_norm(void **state) {
    (void)state;
    check_family(model_config_llama(FAMILY_QWEN3, 1, 64, 4, 2, 32, 128, 29, 16), 3);
}

/* Llama 3's RoPE scaling travels as llama.cpp's rope_freqs tensor (one divisor per frequency,
 * F32): the GGUF model equals the Hugging Face one within float rounding of the divisors. */
static void test_llama3_rope_freqs(void **state) {
    (void)state;
    model_config cfg = model_config_llama(FAMILY_LLAMA, 2, 64, 2, 1, 32, 64, 23, 16);
    cfg.rope_theta = 500000.0;
    cfg.rope_scaling = (rope_scaling_params){ROPE_SCALING_LLAMA3, 8.0, 1.0, 4.0, 64, {0}};
    char *dir = temp_dir_make("mgguf"), err[512], path[600];
    model_init_opts opts = {4, ST_F32, 0, 0, 0};
    if (model_init_random(dir, &cfg, &opts, err, sizeof(err))) fail_msg("init: %s", err);
    model_source hf, gg;
    if (model_source_open(&hf, dir, err, sizeof(err))) fail_msg("%s", err);
    snprintf(path, sizeof(path), "%s/m.gguf", dir);
    if (model_write_gguf(path, &cfg, &hf.st, KERNEL_F32, err, sizeof(err))) fail_msg("%s", err);
    if (model_source_open(&gg, path, err, sizeof(err))) fail_msg("%s", err);
    assert_int_equal(gg.cfg.rope_scaling.kind, ROPE_SCALING_FACTORS);
    /* the three bands: kept (1), slowed by the factor (8), and interpolated between */
    int ones = 0, eights = 0, between = 0;
    for (int i = 0; i < 16; i++) {
        float f = gg.cfg.rope_scaling.freq_factors[i];
        ones += f == 1.0f;
        eights += f == 8.0f;
        between += f > 1.0f && f < 8.0f;
    }
    assert_true(ones > 0 && eights > 0 && between > 0);
    size_t n = (size_t)T_ * (size_t)cfg.vocab_size;
    float *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    assert_true(want && got);
    for (int P = 1; P <= 2; P++) {
        logits_of(&hf, KERNEL_F32, P, want);
        logits_of(&gg, KERNEL_F32, P, got);
        double worst = 0, scale = 0;
        for (size_t i = 0; i < n; i++) {
            worst = fmax(worst, fabs((double)got[i] - want[i]));
            scale = fmax(scale, fabs((double)want[i]));
        }
        /* the divisors are float32 (angles move by ~1e-7 relative): float32 forward tolerance */
        if (!(worst <= 2e-5 * scale)) fail_msg("P=%d: %.3e of %.3f", P, worst, scale);
    }
    /* config.json cannot say it */
    assert_int_not_equal(model_config_save(dir, &gg.cfg, err, sizeof(err)), 0);
    /* ignoring the tensor changes the answer (little over 7 positions: the scaled frequencies
     * are the slow ones) */
    gg.cfg.rope_scaling.kind = ROPE_SCALING_NONE;
    logits_of(&gg, KERNEL_F32, 1, got);
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)got[i] - want[i]));
    assert_true(worst > 0);
    free(want);
    free(got);
    model_source_close(&gg);
    model_source_close(&hf);
    temp_dir_remove(dir);
}

/* llama.cpp's permute(w, n_head): w.reshape(n_head, 2, D / 2, in).swapaxes(1, 2).reshape(w.shape)
 * — written here as that index arithmetic: GGUF row (h, i, s) <- HF row (h, s, i). */
static void test_permutation_is_llama_cpps(void **state) {
    (void)state;
    model_config cfg = model_config_llama(FAMILY_LLAMA, 1, 32, 1, 1, 32, 32, 7, 8);
    char *dir = temp_dir_make("mgguf"), err[512], path[600];
    model_init_opts opts = {9, ST_F32, 0, 0, 0};
    if (model_init_random(dir, &cfg, &opts, err, sizeof(err))) fail_msg("%s", err);
    model_source hf;
    if (model_source_open(&hf, dir, err, sizeof(err))) fail_msg("%s", err);
    snprintf(path, sizeof(path), "%s/m.gguf", dir);
    if (model_write_gguf(path, &cfg, &hf.st, KERNEL_F32, err, sizeof(err))) fail_msg("%s", err);
    gguf_file g;
    if (gguf_open(&g, path, err, sizeof(err))) fail_msg("%s", err);
    const int D = 32, in = 32;
    float hf_q[32 * 32], gg_q[32 * 32], hf_v[32 * 32], gg_v[32 * 32];
    const st_file *f;
    const st_tensor *t = st_set_find(&hf.st, "model.layers.0.self_attn.q_proj.weight", &f);
    assert_non_null(t);
    assert_int_equal(st_read_f32(f, t, 0, 32 * 32, hf_q), 0);
    t = st_set_find(&hf.st, "model.layers.0.self_attn.v_proj.weight", &f);
    assert_int_equal(st_read_f32(f, t, 0, 32 * 32, hf_v), 0);
    assert_int_equal(gguf_read_bytes(&g, gguf_find_tensor(&g, "blk.0.attn_q.weight"), 0,
                                     sizeof(gg_q), gg_q, err, sizeof(err)),
                     0);
    assert_int_equal(gguf_read_bytes(&g, gguf_find_tensor(&g, "blk.0.attn_v.weight"), 0,
                                     sizeof(gg_v), gg_v, err, sizeof(err)),
                     0);
    for (int i = 0; i < D / 2; i++)
        for (int s = 0; s < 2; s++)
            for (int e = 0; e < in; e++)
                assert_true(gg_q[(i * 2 + s) * in + e] == hf_q[(s * D / 2 + i) * in + e]);
    assert_memory_equal(gg_v, hf_v, sizeof(gg_v)); /* V is not permuted */
    gguf_close(&g);
    model_source_close(&hf);
    temp_dir_remove(dir);
}

/* A GGUF file with the given metadata and no tensors, or one tensor of a type id. */
static void write_file(const char *path, const char *arch, int bad_type) {
    char err[512];
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(
        gguf_writer_set_str(w, "general.architecture", arch, strlen(arch), err, sizeof(err)), 0);
    if (bad_type >= 0) {
        static uint8_t data[4096];
        uint64_t ne[2] = {256, 4};
        assert_int_equal(gguf_writer_add_tensor(w, "token_embd.weight", bad_type, 2, ne, data, NULL,
                                                NULL, err, sizeof(err)),
                         0);
    }
    assert_int_equal(gguf_writer_write(w, path, err, sizeof(err)), 0);
    gguf_writer_free(w);
}

static void test_refusals(void **state) {
    (void)state;
    char *dir = temp_dir_make("mgguf"), path[600], err[512];
    model_source s;
    snprintf(path, sizeof(path), "%s/mamba.gguf", dir);
    write_file(path, "mamba", -1);
    assert_int_not_equal(model_source_open(&s, path, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "general.architecture 'mamba' is not one linshard runs"));
    snprintf(path, sizeof(path), "%s/nokeys.gguf", dir);
    write_file(path, "llama", 0);
    assert_int_not_equal(model_source_open(&s, path, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "llama.block_count"));
    assert_null(strchr(err, '\n'));
    /* A complete model whose one tensor is q4_K: refused naming the tensor and the type. */
    model_config cfg = model_config_llama(FAMILY_LLAMA, 1, 256, 8, 8, 32, 256, 4, 8);
    char *mdir = temp_dir_make("mgguf");
    model_init_opts opts = {1, ST_F32, 0, 0, 0};
    if (model_init_random(mdir, &cfg, &opts, err, sizeof(err))) fail_msg("%s", err);
    model_source hf;
    if (model_source_open(&hf, mdir, err, sizeof(err))) fail_msg("%s", err);
    snprintf(path, sizeof(path), "%s/ok.gguf", dir);
    assert_int_equal(model_write_gguf(path, &cfg, &hf.st, KERNEL_Q8_0, err, sizeof(err)), 0);
    assert_int_equal(model_source_open(&s, path, err, sizeof(err)), 0);
    model_source_close(&s);
    model_source_close(&hf);
    /* not a GGUF file, and a file that is neither */
    snprintf(path, sizeof(path), "%s/config.json", mdir);
    assert_int_not_equal(model_source_open(&s, path, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "is a file but not a GGUF file"));
    temp_dir_remove(mdir);
    temp_dir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2),
        cmocka_unit_test(test_llama_gqa),
        cmocka_unit_test(test_qwen2_biases),
        cmocka_unit_test(test_qwen3_qk_norm),
        cmocka_unit_test(test_permutation_is_llama_cpps),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_llama3_rope_freqs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
