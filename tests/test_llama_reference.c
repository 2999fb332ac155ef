/* test_llama_reference.c — pins the Llama-family oracle (llama_reference.c) without Python.
 *
 * The oracle was cross-checked against bench/torch_llama_forward.py --double, a torch forward
 * written after transformers' modeling_llama/qwen2/qwen3, to ~1e-15 relative on twelve variants
 * (tests/data/crosscheck_llama_reference.py). This test keeps it there: it writes three tiny
 * checkpoints with deterministic weights and compares the oracle's logits with values that torch
 * float64 computed from those very files (pinned below: the last token's full row, and a weighted
 * sum of all T * vocab logits, so every row counts). Tolerance 1e-12 of the largest |logit|; a
 * RoPE, GQA, norm or bias mistake moves them by 1e-3 or more of it.
 *
 * To regenerate the pinned values: LLAMA_REF_KEEP=/some/dir ./test_llama_reference keeps the
 * checkpoints in /some/dir/{llama3,qwen3,qwen2}; then for each,
 *   python3 bench/torch_llama_forward.py DIR --double --dump-logits out.f8 --tokens TOKENS
 * and print the row and the sum (see pinned_sum) of out.f8 with %.17g.
 *
 * Also: a sharded checkpoint (index + 2 files) gives bitwise the logits of the same weights in
 * one file, a prefix's logits are bitwise the first rows of the longer run (causality), and
 * unsupported configurations are refused with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linshard/safetensors.h"
#include "llama_reference.h"

#define TOL 1e-12
#define T_ 8
#define V_ 37
#define MAX_TENSORS 64

static const int tokens[T_] = {3, 17, 36, 0, 22, 5, 5, 30};

/* ---- tiny deterministic checkpoints -------------------------------------------------------- */

typedef struct {
    const char *arch;
    int E, H, KV, D, F, L;
    int tie, attn_bias, mlp_bias;
    const char *extra; /* more config.json members, e.g. "\"rope_theta\": 500000.0, " */
} spec;

/* llama3: GQA 4:2, llama3 rope scaling (head_dim 8 puts wavelengths in all three of its bands),
 * all biases, tied. qwen3: head_dim 6 != 16/4, q/k norms, untied. qwen2: MQA, q/k/v biases. */
static const spec LLAMA3 = {
    "LlamaForCausalLM",
    32,
    4,
    2,
    8,
    40,
    2,
    1,
    1,
    1,
    "\"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": \"llama3\", "
    "\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
    "\"original_max_position_embeddings\": 8192}, "};
static const spec QWEN3 = {"Qwen3ForCausalLM",           16, 4, 2, 6, 24, 2, 0, 0, 0,
                           "\"rope_theta\": 1000000.0, "};
static const spec QWEN2 = {"Qwen2ForCausalLM", 16, 4, 1, 4, 24, 2, 0, 0, 0, ""};

static uint32_t rng_state;
static float urand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((double)(rng_state >> 8) / 16777216.0 * 2.0 - 1.0);
}

typedef struct {
    st_write_tensor t[MAX_TENSORS];
    float *data[MAX_TENSORS];
    int n;
} tensor_list;

/* Appends a tensor of shape [d0] (d1 == 0) or [d0, d1]: values center + scale * U[-1, 1). */
static void add(tensor_list *l, const char *name, int d0, int d1, float center, float scale) {
    assert_true(l->n < MAX_TENSORS);
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = center + scale * urand();
    st_write_tensor *t = &l->t[l->n];
    t->name = strdup(name);
    t->dtype = ST_F32;
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->data = x;
    l->data[l->n++] = x;
}

static void add_layer_tensor(tensor_list *l, int i, const char *name, int d0, int d1, float c,
                             float s) {
    char full[ST_NAME_MAX];
    snprintf(full, sizeof full, "model.layers.%d.%s", i, name);
    add(l, full, d0, d1, c, s);
}

static void free_list(tensor_list *l) {
    for (int i = 0; i < l->n; i++) {
        free((void *)l->t[i].name);
        free(l->data[i]);
    }
    l->n = 0;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Writes dir/config.json and the weights (seeded, so every call writes the same), in one
 * model.safetensors or, with shards, two files and model.safetensors.index.json. */
static void write_model(const char *dir, const spec *s, int shards) {
    mkdir(dir, 0755);
    const bool qwen3 = strcmp(s->arch, "Qwen3ForCausalLM") == 0;
    const bool qwen2 = strcmp(s->arch, "Qwen2ForCausalLM") == 0;
    char path[600], config[2048];
    snprintf(config, sizeof config,
             "{\"architectures\": [\"%s\"], \"hidden_size\": %d, \"intermediate_size\": %d, "
             "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": "
             "%d, \"head_dim\": %d, \"vocab_size\": %d, \"max_position_embeddings\": 16, "
             "\"rms_norm_eps\": 1e-05, \"hidden_act\": \"silu\", %s\"tie_word_embeddings\": %s, "
             "\"attention_bias\": %s, \"mlp_bias\": %s}\n",
             s->arch, s->E, s->F, s->L, s->H, s->KV, s->D, V_, s->extra, s->tie ? "true" : "false",
             s->attn_bias ? "true" : "false", s->mlp_bias ? "true" : "false");
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, config);

    rng_state = 12345;
    tensor_list l = {0};
    const int E = s->E, F = s->F, QD = s->H * s->D, KD = s->KV * s->D;
    const bool qkv_bias = qwen2 || s->attn_bias, o_bias = s->attn_bias && !qwen2;
    add(&l, "model.embed_tokens.weight", V_, E, 0, 1.5f);
    for (int i = 0; i < s->L; i++) {
        /* Linear weights U(-1, 1) * sqrt(3 / in): variance 1 / in, so scores stay O(1). */
        add_layer_tensor(&l, i, "input_layernorm.weight", E, 0, 1, 0.3f);
        add_layer_tensor(&l, i, "self_attn.q_proj.weight", QD, E, 0, sqrtf(3.0f / E));
        add_layer_tensor(&l, i, "self_attn.k_proj.weight", KD, E, 0, sqrtf(3.0f / E));
        add_layer_tensor(&l, i, "self_attn.v_proj.weight", KD, E, 0, sqrtf(3.0f / E));
        if (qkv_bias) {
            add_layer_tensor(&l, i, "self_attn.q_proj.bias", QD, 0, 0, 0.5f);
            add_layer_tensor(&l, i, "self_attn.k_proj.bias", KD, 0, 0, 0.5f);
            add_layer_tensor(&l, i, "self_attn.v_proj.bias", KD, 0, 0, 0.5f);
        }
        if (qwen3) {
            add_layer_tensor(&l, i, "self_attn.q_norm.weight", s->D, 0, 1, 0.3f);
            add_layer_tensor(&l, i, "self_attn.k_norm.weight", s->D, 0, 1, 0.3f);
        }
        add_layer_tensor(&l, i, "self_attn.o_proj.weight", E, QD, 0, sqrtf(3.0f / QD));
        if (o_bias) add_layer_tensor(&l, i, "self_attn.o_proj.bias", E, 0, 0, 0.5f);
        add_layer_tensor(&l, i, "post_attention_layernorm.weight", E, 0, 1, 0.3f);
        add_layer_tensor(&l, i, "mlp.gate_proj.weight", F, E, 0, sqrtf(3.0f / E));
        add_layer_tensor(&l, i, "mlp.up_proj.weight", F, E, 0, sqrtf(3.0f / E));
        add_layer_tensor(&l, i, "mlp.down_proj.weight", E, F, 0, sqrtf(3.0f / F));
        if (s->mlp_bias) {
            add_layer_tensor(&l, i, "mlp.gate_proj.bias", F, 0, 0, 0.5f);
            add_layer_tensor(&l, i, "mlp.up_proj.bias", F, 0, 0, 0.5f);
            add_layer_tensor(&l, i, "mlp.down_proj.bias", E, 0, 0, 0.5f);
        }
    }
    add(&l, "model.norm.weight", E, 0, 1, 0.3f);
    if (!s->tie) add(&l, "lm_head.weight", V_, E, 0, sqrtf(3.0f / E));

    char err[512];
    if (shards == 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        assert_int_equal(st_write(path, l.t, l.n, err, sizeof err), 0);
    } else {
        /* Split mid-list, so one layer's tensors straddle the two files. */
        const int half = l.n / 2;
        static const char *names[2] = {"model-00001-of-00002.safetensors",
                                       "model-00002-of-00002.safetensors"};
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "%s/%s", dir, names[k]);
            assert_int_equal(
                st_write(path, l.t + (k ? half : 0), k ? l.n - half : half, err, sizeof err), 0);
        }
        size_t cap = 65536, used = 0;
        char *index = malloc(cap);
        assert_non_null(index);
        used += (size_t)snprintf(index, cap, "{\"metadata\": {}, \"weight_map\": {");
        for (int i = 0; i < l.n; i++)
            used += (size_t)snprintf(index + used, cap - used, "%s\"%s\": \"%s\"", i ? ", " : "",
                                     l.t[i].name, names[i >= half]);
        assert_true(used + 4 < cap);
        snprintf(index + used, cap - used, "}}\n");
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        write_text(path, index);
        free(index);
    }
    free_list(&l);
}

/* A fresh temporary directory, or LLAMA_REF_KEEP/name when that is set (kept, for torch). */
static char *model_dir(const char *name) {
    const char *keep = getenv("LLAMA_REF_KEEP");
    char *dir = malloc(600);
    assert_non_null(dir);
    if (keep && *keep) {
        mkdir(keep, 0755);
        snprintf(dir, 600, "%s/%s", keep, name);
    } else {
        snprintf(dir, 600, "/tmp/linshard-test-llama-ref-XXXXXX");
        assert_non_null(mkdtemp(dir));
    }
    return dir;
}

static void remove_model(char *dir) {
    const char *keep = getenv("LLAMA_REF_KEEP");
    if (!(keep && *keep)) {
        static const char *files[] = {
            "config.json", "model.safetensors", "model.safetensors.index.json",
            "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
        char path[700];
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, files[i]);
            unlink(path);
        }
        rmdir(dir);
    }
    free(dir);
}

static void run(const char *dir, int T, double *logits) {
    char err[512] = "";
    int rc = llama_reference_logits(dir, tokens, T, logits, err, sizeof err);
    if (rc != 0) print_error("llama_reference_logits: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(llama_reference_vocab(dir, err, sizeof err), V_);
}

/* ---- pinned against torch float64 ---------------------------------------------------------- */

/* sum over all T * V logits of logit[i] * ((i % 7) - 3): any wrong row or column shows. */
static double pinned_sum(const double *logits) {
    double s = 0;
    for (int i = 0; i < T_ * V_; i++) s += logits[i] * (double)((i % 7) - 3);
    return s;
}

static void check_pinned(const char *name, const spec *s, int shards, const double *last_row,
                         double sum) {
    char *dir = model_dir(name);
    write_model(dir, s, shards);
    double logits[T_ * V_];
    run(dir, T_, logits);
    double scale = 0;
    for (int i = 0; i < T_ * V_; i++) scale = fmax(scale, fabs(logits[i]));
    const double *row = logits + (T_ - 1) * V_;
    double worst = 0;
    for (int v = 0; v < V_; v++) worst = fmax(worst, fabs(row[v] - last_row[v]));
    if (worst > TOL * scale || fabs(pinned_sum(logits) - sum) > TOL * scale * T_ * V_) {
        print_error("%s: last row off by %.3e (tolerance %.3e), sum %.17g vs pinned %.17g\n", name,
                    worst, TOL * scale, pinned_sum(logits), sum);
        for (int v = 0; v < V_; v++) print_error("%.17g,%s", row[v], v % 4 == 3 ? "\n" : " ");
        fail();
    }
    remove_model(dir);
}

static void test_pinned_llama3(void **state) {
    (void)state;
    static const double row[V_] = {
        -8.979291974816487,    -6.4488509849328368, -8.9984286769536403, 5.2264008455278237,
        -0.040316980255105453, 10.704193270354951,  -6.6963333982566073, -1.3223885956377515,
        8.8838243433105379,    -1.0255789883340105, -6.616179620413547,  -5.340577062403371,
        0.56761289928392533,   -1.199491857468679,  -3.1124166433478653, -7.1082336187623927,
        6.0415461319402448,    -4.0075952036159972, 8.4452341039699022,  -0.33592452614886475,
        -3.0541930905687935,   -7.6587440996184375, 1.7933380154779988,  -7.0725702939372592,
        -3.834274766863687,    -4.4799523600555204, 3.4790771121611082,  2.1469491193991899,
        -6.3380286207788981,   5.5481986173624973,  19.003857586077679,  0.87829289219983153,
        3.8690851697945514,    3.9207091315000078,  -2.1774674890435257, -0.90322001980922684,
        4.0449786975808548};
    check_pinned("llama3", &LLAMA3, 1, row, 37.022209723439374);
}

static void test_pinned_qwen3_sharded(void **state) {
    (void)state;
    static const double row[V_] = {
        -0.12199151639356901, 0.49038211763674189,  1.244304262871575,    0.085793559267703878,
        -0.6277738270530846,  1.642563790803365,    -0.39175177881058276, 0.76716604980575842,
        0.59558642702721565,  -0.40185045521332313, 0.8665851572581601,   -1.6873055413579903,
        0.67638972540960474,  -0.87928622020351699, -0.48819566886091575, 0.21112199976117343,
        0.93860283948690237,  -0.65785671503961896, -1.0287863356807445,  -0.30300554850466166,
        0.30133753678078323,  1.3814019068739705,   0.4282252766185301,   -2.1056659217034404,
        1.6703790238176386,   1.1126879964346741,   1.4278437896507312,   0.95961538732437279,
        -0.33986622202003097, -0.6110573951146322,  0.30971122891265895,  -0.55106440047310112,
        1.1054380381604714,   -0.82982390098722059, 1.6229245677111066,   0.059057604042149381,
        0.35499973430978016};
    check_pinned("qwen3", &QWEN3, 2, row, 8.0809528228364904);
}

static void test_pinned_qwen2(void **state) {
    (void)state;
    static const double row[V_] = {
        1.038875347478937,    0.90427911092474911,   -0.65875676896294422, 1.191105431159549,
        1.5665827757920743,   -1.3472356738053441,   -1.197898535835404,   0.31918800621758014,
        -1.5354369023914889,  -0.19927757576756783,  -1.2685690882645424,  0.82607259838431846,
        0.39382743239477269,  0.0018369002851520086, 1.2099865197369579,   -0.34080356277571849,
        -0.86284254247966663, -0.30684646666435761,  0.62974230141279042,  0.38043294277796819,
        -0.30713413860368455, -0.41427183849889276,  -0.33351110564553837, -0.37038197619206836,
        0.30069987302799761,  1.1405136185082601,    -0.31445760023771774, -0.68512825783343023,
        0.86512573830914408,  0.45291066527107959,   -0.20665498524570081, -1.8350095808902542,
        0.25373971880298324,  0.67235824966203683,   -0.84318769897015888, -0.008264203827235651,
        -1.0287852223856959};
    check_pinned("qwen2", &QWEN2, 1, row, -47.039809085082013);
}

/* ---- properties ---------------------------------------------------------------------------- */

static void test_sharded_equals_single_file(void **state) {
    (void)state;
    char *one = model_dir("single"), *two = model_dir("sharded");
    write_model(one, &QWEN3, 1);
    write_model(two, &QWEN3, 2);
    double a[T_ * V_], b[T_ * V_];
    run(one, T_, a);
    run(two, T_, b);
    assert_memory_equal(a, b, sizeof a);
    remove_model(one);
    remove_model(two);
}

static void test_prefix_is_causal(void **state) {
    (void)state;
    char *dir = model_dir("prefix");
    write_model(dir, &LLAMA3, 1);
    double full[T_ * V_], part[5 * V_];
    run(dir, T_, full);
    run(dir, 5, part);
    assert_memory_equal(part, full, sizeof part);
    remove_model(dir);
}

/* config.json replaced by text must be refused with a message containing want. */
static void expect_refused(const char *dir, const char *config, int T, const char *want) {
    char path[700], err[512] = "";
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, config);
    double logits[T_ * V_];
    assert_int_equal(llama_reference_logits(dir, tokens, T, logits, err, sizeof err), -1);
    if (!strstr(err, want)) {
        print_error("expected a message containing \"%s\", got \"%s\"\n", want, err);
        fail();
    }
}

static void test_refusals(void **state) {
    (void)state;
    char *dir = model_dir("refusals");
    write_model(dir, &QWEN2, 1);
#define BASE_CFG                                                                                   \
    "\"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 2, "                   \
    "\"num_attention_heads\": 4, \"num_key_value_heads\": 1, \"vocab_size\": 37, "                 \
    "\"max_position_embeddings\": 16"
    expect_refused(dir, "{\"architectures\": [\"GPT2LMHeadModel\"], " BASE_CFG "}", T_,
                   "GPT2LMHeadModel");
    expect_refused(dir,
                   "{\"architectures\": [\"Qwen2ForCausalLM\"], " BASE_CFG
                   ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}}",
                   T_, "yarn");
    expect_refused(
        dir, "{\"architectures\": [\"Qwen2ForCausalLM\"], " BASE_CFG ", \"hidden_act\": \"gelu\"}",
        T_, "hidden_act");
    expect_refused(dir,
                   "{\"architectures\": [\"Qwen2ForCausalLM\"], " BASE_CFG
                   ", \"use_sliding_window\": true, \"sliding_window\": 4}",
                   T_, "sliding_window");
    expect_refused(dir, "{\"architectures\": [\"Qwen2ForCausalLM\"], " BASE_CFG "}", 17,
                   "max_position_embeddings");
    /* The weights are Qwen2's: as Qwen3 the q/k norms are missing, as Llama with
     * attention_bias the o_proj bias is. */
    expect_refused(dir, "{\"architectures\": [\"Qwen3ForCausalLM\"], " BASE_CFG "}", T_,
                   "q_norm.weight not found");
    expect_refused(
        dir, "{\"architectures\": [\"LlamaForCausalLM\"], " BASE_CFG ", \"attention_bias\": true}",
        T_, "o_proj.bias not found");
    expect_refused(dir,
                   "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 16, "
                   "\"intermediate_size\": 25, \"num_hidden_layers\": 2, "
                   "\"num_attention_heads\": 4, \"num_key_value_heads\": 1, "
                   "\"vocab_size\": 37, \"max_position_embeddings\": 16}",
                   T_, "has shape");
#undef BASE_CFG
    remove_model(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pinned_llama3),    cmocka_unit_test(test_pinned_qwen3_sharded),
        cmocka_unit_test(test_pinned_qwen2),     cmocka_unit_test(test_sharded_equals_single_file),
        cmocka_unit_test(test_prefix_is_causal), cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
