/* test_weight_types.c — models whose matrices are held as F16, BF16, Q8_0 or Q4_0, split over P
 * ranks, against the independent double-precision references run on the same weights.
 *
 * "The same weights": the test writes a copy of the F32 checkpoint in which every matrix has
 * been rounded to the type and back (F16/BF16 by the safetensors writer; Q8_0/Q4_0 by the plain
 * block quantiser below, written from GGUF's definition, blocks of 32 along each output's
 * inputs). The references (gpt2_reference.c, llama_reference.c) compute that copy in double. The
 * model under test loads the ORIGINAL F32 checkpoint as the type, so loading, converting,
 * splitting in whole blocks and the typed kernels are all checked at once.
 *
 * Tolerances, relative to the largest |logit|:
 *  - F16, BF16: 2e-5, the float32-vs-double bound of test_gpt2.c / test_llama.c: the weights are
 *    exactly the reference's, the products accumulate in float32.
 *  - Q8_0, Q4_0: the int8 kernels also round each activation block to Q8_0 (as llama.cpp does):
 *    an activation's error is at most max|x_block| / 254 (0.4% of its block's largest value), in
 *    every product of every layer and the LM head. Measured on these models: 6.5e-3..7.5e-3 of the
 *    largest logit. ACT_TOL = 2e-2; a wrong block scale, nibble order or split off a block
 *    boundary misses by 0.1 or more (seen: a transposed matrix, 0.5..0.8).
 *  - Across P, the same type: 2e-5 (only the order of float32 sums changes: every rank's
 *    activation blocks are the P = 1 blocks, since splits fall on block boundaries).
 *  - Against the F32 model (quantisation error itself, reported, loosely bounded): F16 1e-3,
 *    BF16 1e-2, Q8_0 3e-2, Q4_0 0.25 of the largest logit.
 * Cases: GPT-2 (fused c_attn stored [in, out], tied head) at P = 1, 2, 3 (3 divides neither the
 * heads nor the MLP's blocks); Llama with GQA, head_dim != hidden / heads, untied head, at
 * P = 1..4 (K/V replicated at 3 and 4); a width that is not whole blocks refused in one line. */
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

#include "linshard/model.h"
#include "compare.h"
#include "gpt2_reference.h"
#include "llama_reference.h"
#include "temp_dir.h"

#define MAX_T 12
#define FLOAT_TOL 2e-5
#define ACT_TOL 2e-2

/* ---- a plain block quantiser, from GGUF's definition ------------------------------------- */

/* Rounds x[0..32) (stride: elements apart) to Q8_0 or Q4_0 and back, in place. */
static void round_block(float *x, size_t stride, kernel_type type) {
    float amax = 0, max = 0;
    for (int i = 0; i < 32; i++) {
        float v = x[i * stride];
        if (fabsf(v) > amax) {
            amax = fabsf(v);
            max = v;
        }
    }
    if (type == KERNEL_Q8_0) { /* d = amax / 127, q = round(x / d) */
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        float dh = st_f16_to_f32(st_f32_to_f16(d));
        for (int i = 0; i < 32; i++) x[i * stride] = dh * roundf(x[i * stride] * id);
    } else { /* Q4_0: d = max / -8, q = min(15, trunc(x / d + 8.5)), value d * (q - 8) */
        float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
        float dh = st_f16_to_f32(st_f32_to_f16(d));
        for (int i = 0; i < 32; i++) {
            int q = (int)(int8_t)(x[i * stride] * id + 8.5f);
            x[i * stride] = dh * (float)((q > 15 ? 15 : q) - 8);
        }
    }
}

/* ---- models ------------------------------------------------------------------------------ */

static char *make_model(const model_config *cfg) {
    char *dir = temp_dir_make("wtypes"), err[512];
    model_init_opts opts = {5, ST_F32, 0, 0, 0};
    if (model_init_random(dir, cfg, &opts, err, sizeof(err))) fail_msg("init: %s", err);
    return dir;
}

/* A copy of the model in src with every matrix rounded to type and back, as F32 (or F16/BF16).
 * GPT-2's Conv1D weights are stored [in, out] (blocks run down the columns); everything else,
 * the embedding included, is [out, in] (blocks along rows). wpe is not a matrix. */
static char *rounded_copy(const char *src, const model_config *cfg, kernel_type type) {
    char *dir = temp_dir_make("wtypes"), path[600], err[512];
    if (model_config_save(dir, cfg, err, sizeof(err))) fail_msg("%s", err);
    snprintf(path, sizeof(path), "%s/model.safetensors", src);
    st_file f;
    if (st_open(&f, path, err, sizeof(err))) fail_msg("%s", err);
    st_write_tensor *out = calloc((size_t)f.n_tensors, sizeof(*out));
    float **data = calloc((size_t)f.n_tensors, sizeof(*data));
    assert_non_null(out);
    assert_non_null(data);
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        data[i] = malloc(t->numel * sizeof(float));
        assert_non_null(data[i]);
        assert_int_equal(st_read_f32(&f, t, 0, t->numel, data[i]), 0);
        int matrix = t->ndim == 2 && !strstr(t->name, "wpe");
        out[i] = (st_write_tensor){t->name, ST_F32, t->ndim, {0}, data[i]};
        memcpy(out[i].shape, t->shape, sizeof(t->shape));
        if (!matrix) continue;
        if (type == KERNEL_F16 || type == KERNEL_BF16) {
            out[i].dtype = type == KERNEL_F16 ? ST_F16 : ST_BF16; /* the writer rounds */
            continue;
        }
        size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1];
        int in_out = cfg->family == FAMILY_GPT2 && !strstr(t->name, "wte");
        if (in_out) /* [K, N]: each column's K inputs, in blocks of 32 */
            for (size_t c = 0; c < cols; c++)
                for (size_t r = 0; r < rows; r += 32)
                    round_block(data[i] + r * cols + c, cols, type);
        else
            for (size_t r = 0; r < rows; r++)
                for (size_t c = 0; c < cols; c += 32) round_block(data[i] + r * cols + c, 1, type);
    }
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if (st_write(path, out, f.n_tensors, err, sizeof(err))) fail_msg("%s", err);
    for (int i = 0; i < f.n_tensors; i++) free(data[i]);
    free(data);
    free(out);
    st_close(&f);
    return dir;
}

/* ---- running it -------------------------------------------------------------------------- */

typedef struct {
    const model_config *cfg;
    const st_set *weights;
    kernel_type type;
    const int *tokens;
    int T;
    float *logits; /* [T, V], gathered on rank 0 */
    size_t weight_bytes;
} job_t;

static int rank_main(comm_t *comm, void *arg) {
    job_t *job = arg;
    model_shard m;
    char err[512];
    if (model_shard_load_as(&m, job->cfg, job->weights, comm_rank(comm), comm_size(comm), job->T,
                            job->type, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    int V = job->cfg->vocab_size;
    float *full = malloc((size_t)job->T * (size_t)V * sizeof(float));
    float *scratch = malloc((size_t)job->T * (size_t)V * sizeof(float));
    int rc = (!full || !scratch) ? comm_fail(comm, "out of memory") : 0;
    if (!rc) rc = model_forward(comm, &m, job->tokens, job->T);
    if (!rc) rc = vocab_parallel_gather_logits(comm, full, scratch, m.logits, job->T, V, "g");
    if (!rc && comm_rank(comm) == 0) {
        memcpy(job->logits, full, (size_t)job->T * V * sizeof(float));
        job->weight_bytes = model_shard_weight_bytes(&m);
    }
    free(full);
    free(scratch);
    model_shard_free(&m);
    return rc;
}

static void run(const char *dir, const model_config *cfg, kernel_type type, int P,
                const int *tokens, int T, float *logits, size_t *weight_bytes) {
    char err[512];
    st_set weights;
    if (st_set_open(&weights, dir, err, sizeof(err))) fail_msg("%s", err);
    job_t job = {cfg, &weights, type, tokens, T, logits, 0};
    if (comm_launch(COMM_BACKEND_THREADS, P, rank_main, &job, err, sizeof(err)))
        fail_msg("%s at P=%d: %s", kernel_type_info(type)->name, P, err);
    st_set_close(&weights);
    if (weight_bytes) *weight_bytes = job.weight_bytes;
}

static double max_diff_ff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = max_keep_nan(m, fabs((double)a[i] - b[i]));
    return m;
}

static void check_family(const model_config *cfg, int max_P) {
    static const double vs_f32[KERNEL_TYPE_COUNT] = {0, 1e-3, 1e-2, 3e-2, 0.25};
    char *dir = make_model(cfg), err[512];
    int T = MAX_T, tokens[MAX_T];
    for (int t = 0; t < T; t++) tokens[t] = (t * 37 + 3) % cfg->vocab_size;
    tokens[0] = cfg->vocab_size - 1;
    size_t n = (size_t)T * (size_t)cfg->vocab_size, f32_bytes = 0;
    float *f32 = malloc(n * sizeof(float)), *p1 = malloc(n * sizeof(float));
    float *got = malloc(n * sizeof(float));
    double *ref = malloc(n * sizeof(double));
    assert_true(f32 && p1 && got && ref);
    run(dir, cfg, KERNEL_F32, 1, tokens, T, f32, &f32_bytes);
    double f32_scale = 0;
    for (size_t i = 0; i < n; i++) f32_scale = max_keep_nan(f32_scale, fabs(f32[i]));
    for (int type = KERNEL_F16; type < KERNEL_TYPE_COUNT; type++) {
        const char *name = kernel_type_info((kernel_type)type)->name;
        char *rdir = rounded_copy(dir, cfg, (kernel_type)type);
        int rc = cfg->family == FAMILY_GPT2
                     ? gpt2_reference_logits(rdir, tokens, T, ref, err, sizeof(err))
                     : llama_reference_logits(rdir, tokens, T, ref, err, sizeof(err));
        if (rc) fail_msg("reference: %s", err);
        double scale = max_abs_d(ref, n);
        double tol = type == KERNEL_F16 || type == KERNEL_BF16 ? FLOAT_TOL : ACT_TOL;
        size_t bytes = 0;
        double worst_ref = 0;
        for (int P = 1; P <= max_P; P++) {
            float *out = P == 1 ? p1 : got;
            run(dir, cfg, (kernel_type)type, P, tokens, T, out, P == 1 ? &bytes : NULL);
            double worst = max_diff_fd(out, ref, n);
            if (!within_tol(worst, tol, scale))
                fail_msg("%s P=%d: max |logit - reference| = %.3e > %.0e * %.3f", name, P, worst,
                         tol, scale);
            worst_ref = max_keep_nan(worst_ref, worst / scale);
            if (P > 1 && !within_tol(max_diff_ff(out, p1, n), FLOAT_TOL, scale))
                fail_msg("%s P=%d differs from P=1 by %.3e", name, P, max_diff_ff(out, p1, n));
        }
        double vs = max_diff_ff(p1, f32, n) / f32_scale;
        printf("  %-5s vs the reference on the same weights: %.2e; vs the F32 model: %.2e (of "
               "max |logit|); weights %zu bytes (F32 %zu)\n",
               name, worst_ref, vs, bytes, f32_bytes);
        if (!(vs <= vs_f32[type])) fail_msg("%s vs F32: %.3e > %.2e", name, vs, vs_f32[type]);
        assert_true(bytes < f32_bytes);
        temp_dir_remove(rdir);
    }
    free(f32);
    free(p1);
    free(got);
    free(ref);
    temp_dir_remove(dir);
}

static void test_gpt2_types(void **state) {
    (void)state;
    model_config cfg = model_config_gpt2(2, 128, 4, 101, 32, GELU_TANH); /* D = 32, ff = 512 */
    check_family(&cfg, 3);
}

static void test_llama_types(void **state) {
    (void)state;
    /* 4 query heads of 32 over 2 K/V heads, width 64 (head_dim != 64 / 4), MLP 96 = 3 blocks:
     * P = 2 splits it 2 + 1 blocks, P = 4 leaves a rank with none. */
    model_config cfg = model_config_llama(FAMILY_LLAMA, 2, 64, 4, 2, 32, 96, 101, 32);
    check_family(&cfg, 4);
}

static void test_refuses_partial_blocks(void **state) {
    (void)state;
    model_config cfg = model_config_llama(FAMILY_LLAMA, 1, 48, 2, 1, 24, 80, 50, 16);
    char err[512];
    assert_int_equal(model_check_weight_type(&cfg, KERNEL_F16, err, sizeof(err)), 0);
    assert_int_not_equal(model_check_weight_type(&cfg, KERNEL_Q8_0, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "hidden size 48 is not a multiple of 32"));
    assert_null(strchr(err, '\n'));
    model_shard m;
    assert_int_not_equal(
        model_shard_load_as(&m, &cfg, NULL, 0, 1, 4, KERNEL_Q4_0, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "q4_0"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2_types),
        cmocka_unit_test(test_llama_types),
        cmocka_unit_test(test_refuses_partial_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
