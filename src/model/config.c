/* model_config.c — GPT-2's config.json (Hugging Face layout): read, check, write. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/atomic_file.h"
#include "architecture.h"
#include "linshard/model.h"

#define CONFIG_MAX_BYTES (1 << 20)
/* Limits far above any real model (Llama 3.1 405B: 126 layers, 4.1e11 parameters). */
#define MODEL_MAX_LAYERS 1024
#define MODEL_MAX_PARAMS 1099511627776.0 /* 2^40 */

static char *read_small_file(const char *path, char *err, size_t errlen) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = malloc(CONFIG_MAX_BYTES + 1);
    size_t n = text ? fread(text, 1, CONFIG_MAX_BYTES + 1, fp) : 0;
    int bad = ferror(fp);
    fclose(fp);
    if (!text || bad || n > CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "%s: %s", path,
                 !text ? "out of memory"
                 : bad ? "read error"
                       : "larger than 1 MiB");
        free(text);
        return NULL;
    }
    text[n] = '\0';
    return text;
}

/* A required positive integer field (alt: an accepted older name, may be NULL). */
static int get_int(const cJSON *root, const char *key, const char *alt, int *out, const char *path,
                   char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v && alt) v = cJSON_GetObjectItemCaseSensitive(root, alt);
    if (!v) {
        snprintf(err, errlen, "%s: missing \"%s\"", path, key);
        return -1;
    }
    /* The range first: converting a double outside int's range to int is undefined. */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= 1e8) ||
        v->valuedouble != (double)(int)v->valuedouble) {
        snprintf(err, errlen, "%s: \"%s\" must be a positive integer", path, key);
        return -1;
    }
    *out = (int)v->valuedouble;
    return 0;
}

/* An optional number field: 0 and *out untouched when absent or null; -1 with a message when
 * not a number in (lo, hi]. */
static int get_number(const cJSON *root, const char *key, double lo, double hi, double *out,
                      const char *path, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble > lo) || v->valuedouble > hi) {
        snprintf(err, errlen, "%s: \"%s\" must be a number in (%g, %g]", path, key, lo, hi);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

/* An optional boolean field (absent or null: dflt). */
static int get_bool(const cJSON *root, const char *key, int dflt, int *out, const char *path,
                    char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = dflt;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) {
        snprintf(err, errlen, "%s: \"%s\" must be true or false", path, key);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

model_config model_config_gpt2(int n_layer, int n_embd, int n_head, int vocab_size, int n_positions,
                               gelu_kind gelu) {
    model_config c;
    memset(&c, 0, sizeof(c));
    c.family = FAMILY_GPT2;
    c.n_layer = n_layer;
    c.n_embd = n_embd;
    c.n_head = c.n_kv_head = n_head;
    c.head_dim = n_head > 0 ? n_embd / n_head : 0;
    c.n_ff = 4 * n_embd;
    c.vocab_size = vocab_size;
    c.n_positions = n_positions;
    c.norm = NORM_LAYERNORM;
    c.norm_eps = 1e-5f;
    c.mlp = MLP_GELU;
    c.gelu = gelu;
    c.qkv_bias = c.out_bias = c.mlp_bias = 1;
    c.learned_pos = 1;
    c.tied = 1;
    return c;
}

model_config model_config_llama(model_family family, int n_layer, int n_embd, int n_head,
                                int n_kv_head, int head_dim, int n_ff, int vocab_size,
                                int n_positions) {
    model_config c;
    memset(&c, 0, sizeof(c));
    int qwen = family == FAMILY_QWEN2 || family == FAMILY_QWEN3;
    c.family = family;
    c.n_layer = n_layer;
    c.n_embd = n_embd;
    c.n_head = n_head;
    c.n_kv_head = n_kv_head;
    c.head_dim = head_dim ? head_dim : (n_head > 0 ? n_embd / n_head : 0);
    c.n_ff = n_ff;
    c.vocab_size = vocab_size;
    c.n_positions = n_positions;
    c.norm = NORM_RMSNORM;
    c.norm_eps = qwen ? 1e-6f : 1e-5f;
    c.mlp = MLP_SWIGLU;
    c.qkv_bias = family == FAMILY_QWEN2;
    c.qk_norm = family == FAMILY_QWEN3;
    c.rope_theta = qwen ? 1e6 : 1e4;
    return c;
}

/* A quantized checkpoint (GPTQ, AWQ, bitsandbytes...) stores other tensors and needs other
 * kernels: refused by name, for every family, rather than failing on a missing tensor. */
static int refuse_quantized(const cJSON *root, const char *path, char *err, size_t errlen) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    if (!q || cJSON_IsNull(q)) return 0;
    snprintf(err, errlen, "%s: \"quantization_config\": quantized checkpoints are not supported",
             path);
    return -1;
}

/* GPT-2 fields deliberately ignored, because they cannot change the logits of a forward pass:
 * attn_pdrop, embd_pdrop, resid_pdrop, summary_* (dropout and GPT2DoubleHeadsModel's head);
 * reorder_and_upcast_attn (computes q.k in float32 with the scale applied first: the same
 * math, and linshard computes in float32 anyway); add_cross_attention (the cross-attention
 * layers are skipped without encoder states, so a decoder-only run is unchanged); use_cache,
 * bos/eos_token_id, torch_dtype (the file's dtypes are read from the file). */
static int load_gpt2(const cJSON *root, model_config *cfg, const char *path, char *err,
                     size_t errlen) {
    int n_layer = 0, n_embd = 0, n_head = 0, vocab = 0, n_pos = 0;
    int rc = get_int(root, "n_layer", NULL, &n_layer, path, err, errlen);
    if (!rc) rc = get_int(root, "n_embd", NULL, &n_embd, path, err, errlen);
    if (!rc) rc = get_int(root, "n_head", NULL, &n_head, path, err, errlen);
    if (!rc) rc = get_int(root, "vocab_size", NULL, &vocab, path, err, errlen);
    if (!rc) rc = get_int(root, "n_positions", "n_ctx", &n_pos, path, err, errlen);
    if (rc || refuse_quantized(root, path, err, errlen)) return -1;
    *cfg = model_config_gpt2(n_layer, n_embd, n_head, vocab, n_pos, GELU_TANH);
    double eps = 1e-5;
    if (get_number(root, "layer_norm_epsilon", 0, 1, &eps, path, err, errlen)) return -1;
    cfg->norm_eps = (float)eps;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
    const char *name = cJSON_IsString(act) ? act->valuestring : (act ? "" : "gelu_new");
    if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh")) {
        cfg->gelu = GELU_TANH;
    } else if (!strcmp(name, "gelu")) {
        cfg->gelu = GELU_ERF;
    } else {
        snprintf(err, errlen,
                 "%s: unsupported \"activation_function\" '%s' (expected gelu_new or gelu)", path,
                 name);
        return -1;
    }
    /* Variants of GPT-2's attention that linshard does not implement: refuse, never guess. */
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "scale_attn_weights")) ||
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "scale_attn_by_inverse_layer_idx"))) {
        snprintf(err, errlen,
                 "%s: unsupported attention scaling (scale_attn_weights must be "
                 "true and scale_attn_by_inverse_layer_idx false)",
                 path);
        return -1;
    }
    /* An untied GPT-2 has its own lm_head.weight: ignoring the flag ran wte as the head and gave
     * wrong logits without a word. */
    if (get_bool(root, "tie_word_embeddings", 1, &cfg->tied, path, err, errlen)) return -1;
    const cJSON *inner = cJSON_GetObjectItemCaseSensitive(root, "n_inner");
    if (inner && !cJSON_IsNull(inner) &&
        !(cJSON_IsNumber(inner) && inner->valuedouble == 4.0 * cfg->n_embd)) {
        snprintf(err, errlen, "%s: \"n_inner\" other than 4 * n_embd is not supported", path);
        return -1;
    }
    return 0;
}

/* rope_scaling: null, {"rope_type": "default"}, or Llama 3's; anything else is refused. */
static int load_rope_scaling(const cJSON *root, model_config *cfg, const char *path, char *err,
                             size_t errlen) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    /* Newer transformers write the same object as "rope_parameters" (with rope_theta in it). */
    if (!rs || cJSON_IsNull(rs)) rs = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs)) {
        snprintf(err, errlen, "%s: \"rope_scaling\" must be an object or null", path);
        return -1;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    const char *name = cJSON_IsString(type) ? type->valuestring : "";
    if (!strcmp(name, "default")) return 0;
    if (strcmp(name, "llama3")) {
        snprintf(err, errlen,
                 "%s: unsupported \"rope_scaling\" type '%s' (linshard implements llama3)", path,
                 name);
        return -1;
    }
    rope_scaling_params *s = &cfg->rope_scaling;
    s->kind = ROPE_SCALING_LLAMA3;
    const char *keys[] = {"factor", "low_freq_factor", "high_freq_factor"};
    double *vals[] = {&s->factor, &s->low_freq_factor, &s->high_freq_factor};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rs, keys[i]);
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || v->valuedouble > 1e6) {
            snprintf(err, errlen, "%s: \"rope_scaling\".\"%s\" must be a positive number", path,
                     keys[i]);
            return -1;
        }
        *vals[i] = v->valuedouble;
    }
    if (!(s->high_freq_factor > s->low_freq_factor)) {
        snprintf(err, errlen,
                 "%s: \"rope_scaling\": high_freq_factor must be greater than low_freq_factor",
                 path);
        return -1;
    }
    return get_int(rs, "original_max_position_embeddings", NULL, &s->original_max_positions, path,
                   err, errlen);
}

/* Llama-family fields deliberately ignored, because they cannot change the logits of a forward
 * pass: attention_dropout (dropout); pretraining_tp (splits each projection into slices whose
 * products are summed: the same math); initializer_range, use_cache, bos/eos/pad_token_id
 * (generation reads the tokenizer's), torch_dtype (the file's dtypes are read from the file);
 * max_window_layers (only with a sliding window, refused below). */
static int load_llama(const cJSON *root, model_family family, model_config *cfg, const char *path,
                      char *err, size_t errlen) {
    int L = 0, E = 0, H = 0, KV = 0, F = 0, V = 0, N = 0, D = 0;
    int rc = get_int(root, "num_hidden_layers", NULL, &L, path, err, errlen);
    if (!rc) rc = get_int(root, "hidden_size", NULL, &E, path, err, errlen);
    if (!rc) rc = get_int(root, "num_attention_heads", NULL, &H, path, err, errlen);
    if (!rc) rc = get_int(root, "intermediate_size", NULL, &F, path, err, errlen);
    if (!rc) rc = get_int(root, "vocab_size", NULL, &V, path, err, errlen);
    if (!rc) rc = get_int(root, "max_position_embeddings", NULL, &N, path, err, errlen);
    if (rc || refuse_quantized(root, path, err, errlen)) return -1;
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(root, "num_key_value_heads");
    KV = H;
    if (kv && !cJSON_IsNull(kv) &&
        get_int(root, "num_key_value_heads", NULL, &KV, path, err, errlen))
        return -1;
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    if (hd && !cJSON_IsNull(hd) && get_int(root, "head_dim", NULL, &D, path, err, errlen))
        return -1;
    *cfg = model_config_llama(family, L, E, H, KV, D, F, V, N);

    double eps = cfg->norm_eps, theta = cfg->rope_theta;
    if (get_number(root, "rms_norm_eps", 0, 1, &eps, path, err, errlen) ||
        get_number(root, "rope_theta", 0, 1e12, &theta, path, err, errlen))
        return -1;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (cJSON_IsObject(rp) && get_number(rp, "rope_theta", 0, 1e12, &theta, path, err, errlen))
        return -1;
    cfg->norm_eps = (float)eps;
    cfg->rope_theta = theta;
    int attention_bias = 0, mlp_bias = 0;
    if (get_bool(root, "tie_word_embeddings", 0, &cfg->tied, path, err, errlen) ||
        get_bool(root, "attention_bias", 0, &attention_bias, path, err, errlen) ||
        get_bool(root, "mlp_bias", 0, &mlp_bias, path, err, errlen))
        return -1;
    if (attention_bias) {
        if (family == FAMILY_MISTRAL || family == FAMILY_QWEN2) {
            snprintf(err, errlen, "%s: \"attention_bias\" is not part of %s", path,
                     model_family_architecture(family));
            return -1;
        }
        cfg->qkv_bias = cfg->out_bias = 1;
    }
    if (mlp_bias) {
        if (family != FAMILY_LLAMA) {
            snprintf(err, errlen, "%s: \"mlp_bias\" is not part of %s", path,
                     model_family_architecture(family));
            return -1;
        }
        cfg->mlp_bias = 1;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "silu"))) {
        snprintf(err, errlen, "%s: unsupported \"hidden_act\" (the Llama family's MLP is silu)",
                 path);
        return -1;
    }
    /* What linshard does not implement: refused by name, never approximated. */
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
    int use_sw = family == FAMILY_MISTRAL;
    if ((family == FAMILY_QWEN2 || family == FAMILY_QWEN3) &&
        get_bool(root, "use_sliding_window", 0, &use_sw, path, err, errlen))
        return -1;
    if (use_sw && sw && !cJSON_IsNull(sw) &&
        !(cJSON_IsNumber(sw) && sw->valuedouble >= (double)cfg->n_positions)) {
        snprintf(err, errlen,
                 "%s: \"sliding_window\" shorter than the context (%d) is not supported", path,
                 cfg->n_positions);
        return -1;
    }
    /* Per-layer attention kinds (newer Qwen configs): anything but full attention is a
     * sliding window on some layers. */
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    const cJSON *lt;
    cJSON_ArrayForEach(lt, types) {
        if (!(cJSON_IsString(lt) && !strcmp(lt->valuestring, "full_attention"))) {
            snprintf(err, errlen,
                     "%s: \"layer_types\": only full_attention layers are supported (sliding "
                     "windows are not)",
                     path);
            return -1;
        }
    }
    static const char *const moe[] = {"num_experts", "num_local_experts", "n_routed_experts"};
    for (size_t i = 0; i < sizeof(moe) / sizeof(moe[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, moe[i]);
        if (cJSON_IsNumber(v) && v->valuedouble > 0) {
            snprintf(err, errlen, "%s: \"%s\": mixtures of experts are not supported", path,
                     moe[i]);
            return -1;
        }
    }
    const cJSON *partial = cJSON_GetObjectItemCaseSensitive(root, "partial_rotary_factor");
    if (partial && !(cJSON_IsNumber(partial) && partial->valuedouble == 1.0)) {
        snprintf(err, errlen, "%s: \"partial_rotary_factor\" other than 1 is not supported", path);
        return -1;
    }
    return load_rope_scaling(root, cfg, path, err, errlen);
}

/* Messages quote the file's own strings (a token, a name), which may hold any character: keep
 * the message on one line whatever they hold. */
static void keep_one_line(char *err, size_t errlen) {
    for (size_t i = 0; i < errlen && err[i]; i++)
        if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f) err[i] = '?';
}

int model_config_load(const char *dir, model_config *cfg, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    char *text = read_small_file(path, err, errlen);
    if (!text) {
        keep_one_line(err, errlen);
        return -1;
    }
    int rc = model_config_parse(text, strlen(text), path, cfg, err, errlen);
    free(text);
    return rc;
}

int model_config_parse(const char *text, size_t len, const char *path, model_config *cfg, char *err,
                       size_t errlen) {
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s: not a JSON object (malformed JSON)", path);
        keep_one_line(err, errlen);
        cJSON_Delete(root);
        return -1;
    }
    memset(cfg, 0, sizeof(*cfg));
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *arch0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *arch_name = cJSON_IsString(arch0) ? arch0->valuestring : NULL;
    const char *type_name = cJSON_IsString(type) ? type->valuestring : NULL;
    const architecture *a = architecture_find(arch_name, arch_name ? NULL : type_name);
    int rc;
    if (!a && !arch_name && !type_name) {
        a = architecture_of(FAMILY_GPT2); /* older GPT-2 files name neither */
    }
    if (!a) {
        snprintf(err, errlen,
                 "%s: unsupported architecture '%s' (linshard runs GPT2LMHeadModel, "
                 "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)",
                 path, arch_name ? arch_name : type_name);
        rc = -1;
    } else if (a->family == FAMILY_GPT2) {
        rc = load_gpt2(root, cfg, path, err, errlen);
    } else {
        rc = load_llama(root, a->family, cfg, path, err, errlen);
    }
    cJSON_Delete(root);
    if (!rc) {
        char why[256];
        if (model_config_check(cfg, why, sizeof(why))) {
            snprintf(err, errlen, "%s: %s", path, why);
            rc = -1;
        }
    }
    if (rc) keep_one_line(err, errlen);
    return rc;
}

int model_config_check(const model_config *cfg, char *err, size_t errlen) {
    if (cfg->n_layer < 1 || cfg->n_embd < 1 || cfg->n_head < 1 || cfg->vocab_size < 1 ||
        cfg->n_positions < 1 || cfg->n_kv_head < 1 || cfg->head_dim < 1 || cfg->n_ff < 1) {
        snprintf(err, errlen,
                 "layers, width, heads, kv heads, head size, MLP width, vocabulary and context "
                 "must be >= 1");
        return -1;
    }
    if (cfg->family == FAMILY_GPT2 && cfg->n_embd % cfg->n_head != 0) {
        snprintf(err, errlen, "n_embd %d is not divisible by n_head %d", cfg->n_embd, cfg->n_head);
        return -1;
    }
    if (cfg->n_head % cfg->n_kv_head != 0) {
        snprintf(err, errlen,
                 "num_key_value_heads %d does not divide num_attention_heads %d (each K/V head "
                 "must serve a whole group of query heads)",
                 cfg->n_kv_head, cfg->n_head);
        return -1;
    }
    if (!cfg->learned_pos && cfg->head_dim % 2 != 0) {
        snprintf(err, errlen, "head_dim %d is odd: RoPE rotates pairs of dimensions",
                 cfg->head_dim);
        return -1;
    }
    if ((size_t)cfg->n_embd * (size_t)cfg->vocab_size > ((size_t)1 << 40) ||
        (size_t)cfg->n_ff * (size_t)cfg->n_embd > ((size_t)1 << 40)) {
        snprintf(err, errlen, "the model's tensors are too large");
        return -1;
    }
    /* The parameter table (params.c) has 16 entries a layer and sizes every tensor in size_t:
     * bound the layers, and the parameter count computed in double (no product can overflow),
     * so that nothing derived from an accepted config overflows or allocates absurdly. */
    if (cfg->n_layer > MODEL_MAX_LAYERS) {
        snprintf(err, errlen, "%d layers is more than linshard supports (%d)", cfg->n_layer,
                 MODEL_MAX_LAYERS);
        return -1;
    }
    double E = cfg->n_embd, D = cfg->head_dim, F = cfg->n_ff;
    double QD = (double)cfg->n_head * D, KD = (double)cfg->n_kv_head * D;
    double layer = E * (QD + 2 * KD) + QD * E + 3 * E * F + QD + 2 * KD + 2 * D + 2 * F + 6 * E;
    double total = (double)cfg->n_layer * layer +
                   (2 * (double)cfg->vocab_size + (double)cfg->n_positions + 2) * E;
    if (total > MODEL_MAX_PARAMS) {
        snprintf(err, errlen,
                 "the model has about %.3g parameters, more than linshard supports (%.3g)", total,
                 MODEL_MAX_PARAMS);
        return -1;
    }
    if (cfg->vocab_size >= (1 << 24)) {
        snprintf(err, errlen, "vocab_size %d is too large (token ids must fit a float exactly)",
                 cfg->vocab_size);
        return -1;
    }
    return 0;
}

int model_config_check_tp(const model_config *cfg, int P, char *err, size_t errlen) {
    if (P < 1) {
        snprintf(err, errlen, "tensor-parallel size must be at least 1 (got %d)", P);
        return -1;
    }
    if (P > cfg->n_head) {
        snprintf(err, errlen,
                 "cannot split a model with %d attention heads over %d ranks: every rank needs "
                 "at least one head (use --tp %d or less)",
                 cfg->n_head, P, cfg->n_head);
        return -1;
    }
    return 0;
}

int model_config_save(const char *dir, const model_config *cfg, char *err, size_t errlen) {
    if (cfg->rope_scaling.kind == ROPE_SCALING_FACTORS) {
        snprintf(err, errlen,
                 "%s: RoPE divisors per frequency (a GGUF file's rope_freqs) have no config.json "
                 "form",
                 dir);
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    return model_config_write(path, cfg, err, errlen);
}

static void add_gpt2_fields(cJSON *root, const model_config *cfg) {
    cJSON_AddStringToObject(root, "activation_function",
                            cfg->gelu == GELU_ERF ? "gelu" : "gelu_new");
    cJSON_AddNumberToObject(root, "layer_norm_epsilon", cfg->norm_eps);
    cJSON_AddNumberToObject(root, "n_ctx", cfg->n_positions);
    cJSON_AddNumberToObject(root, "n_embd", cfg->n_embd);
    cJSON_AddNumberToObject(root, "n_head", cfg->n_head);
    cJSON_AddNullToObject(root, "n_inner");
    cJSON_AddNumberToObject(root, "n_layer", cfg->n_layer);
    cJSON_AddNumberToObject(root, "n_positions", cfg->n_positions);
    cJSON_AddNumberToObject(root, "vocab_size", cfg->vocab_size);
    cJSON_AddBoolToObject(root, "tie_word_embeddings", cfg->tied);
}

static void add_llama_fields(cJSON *root, const model_config *cfg) {
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    cJSON_AddNumberToObject(root, "hidden_size", cfg->n_embd);
    cJSON_AddNumberToObject(root, "intermediate_size", cfg->n_ff);
    cJSON_AddNumberToObject(root, "num_hidden_layers", cfg->n_layer);
    cJSON_AddNumberToObject(root, "num_attention_heads", cfg->n_head);
    cJSON_AddNumberToObject(root, "num_key_value_heads", cfg->n_kv_head);
    cJSON_AddNumberToObject(root, "head_dim", cfg->head_dim);
    cJSON_AddNumberToObject(root, "rms_norm_eps", cfg->norm_eps);
    cJSON_AddNumberToObject(root, "rope_theta", cfg->rope_theta);
    cJSON_AddNumberToObject(root, "max_position_embeddings", cfg->n_positions);
    cJSON_AddNumberToObject(root, "vocab_size", cfg->vocab_size);
    cJSON_AddBoolToObject(root, "tie_word_embeddings", cfg->tied);
    if (cfg->family == FAMILY_LLAMA || cfg->family == FAMILY_QWEN3)
        cJSON_AddBoolToObject(root, "attention_bias", cfg->out_bias);
    if (cfg->family == FAMILY_LLAMA) cJSON_AddBoolToObject(root, "mlp_bias", cfg->mlp_bias);
    const rope_scaling_params *s = &cfg->rope_scaling;
    if (s->kind == ROPE_SCALING_LLAMA3) {
        cJSON *rs = cJSON_AddObjectToObject(root, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "llama3");
        cJSON_AddNumberToObject(rs, "factor", s->factor);
        cJSON_AddNumberToObject(rs, "low_freq_factor", s->low_freq_factor);
        cJSON_AddNumberToObject(rs, "high_freq_factor", s->high_freq_factor);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", s->original_max_positions);
    } else {
        cJSON_AddNullToObject(root, "rope_scaling");
    }
    if (cfg->family == FAMILY_MISTRAL) cJSON_AddNullToObject(root, "sliding_window");
}

int model_config_write(const char *path, const model_config *cfg, char *err, size_t errlen) {
    const architecture *a = architecture_of(cfg->family);
    cJSON *root = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(a->architecture));
    cJSON_AddStringToObject(root, "model_type", a->model_type);
    if (cfg->family == FAMILY_GPT2)
        add_gpt2_fields(root, cfg);
    else
        add_llama_fields(root, cfg);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        snprintf(err, errlen, "config.json: out of memory");
        return -1;
    }
    int rc = atomic_file_write(path, text, strlen(text), err, errlen);
    free(text);
    return rc;
}
