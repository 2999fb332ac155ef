/* llama_reference.c — the test oracle for the Llama family: a plain double-precision forward pass.
 *
 * Clarity over speed: every tensor is converted to double, every matrix product is a loop with
 * one accumulator per output summing its terms in index order, angles are computed in double, and
 * nothing is shared with the sharded code beyond the safetensors reader. One decoder layer is
 * held in memory at a time; the embedding and the LM head are read row by row, so even a real
 * checkpoint's [vocab, hidden] matrices never need a double copy.
 *
 * Hugging Face layouts: nn.Linear weights are [out, in] and y = x W^T + b. The names are
 * model.embed_tokens.weight, model.layers.<i>.{input_layernorm, self_attn.{q,k,v,o}_proj,
 * self_attn.{q,k}_norm, post_attention_layernorm, mlp.{gate,up,down}_proj}.*, model.norm.weight
 * and lm_head.weight. */
#include "llama_reference.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "linshard/safetensors.h"

/* M_PI is not in C11, and we must not depend on feature-test macros for the oracle. */
#define REF_PI 3.14159265358979323846
#define REF_MAX_FILES 64 /* shards of one checkpoint */

typedef enum { ARCH_LLAMA, ARCH_MISTRAL, ARCH_QWEN2, ARCH_QWEN3 } ref_arch;

typedef struct {
    ref_arch arch;
    int n_layer, E, F, H, KV, D, V, n_pos;
    double eps, theta;
    int tie;              /* the LM head is embed_tokens */
    int qkv_bias, o_bias; /* biases on q/k/v_proj, on o_proj */
    int mlp_bias;         /* biases on gate/up/down_proj */
    int qk_norm;          /* Qwen3: RMSNorm of each head's q and k over D, before RoPE */
    int window;           /* sliding-window length, 0 for none: T must not exceed it */
    int llama3;           /* rope_scaling "llama3" with the four numbers below */
    double factor, low_ff, high_ff, orig_ctx;
} ref_config;

/* One decoder layer; a bias pointer is NULL where the configuration has none. */
typedef struct {
    double *ln1, *ln2;         /* input_layernorm, post_attention_layernorm [E] */
    double *wq, *wk, *wv, *wo; /* [H*D, E], [KV*D, E], [KV*D, E], [E, H*D] */
    double *bq, *bk, *bv, *bo; /* [H*D], [KV*D], [KV*D], [E] */
    double *q_norm, *k_norm;   /* [D] (Qwen3) */
    double *wg, *wu, *wd;      /* gate, up [F, E]; down [E, F] */
    double *bg, *bu, *bd;      /* [F], [F], [E] */
} ref_layer;

/* Where the tensors are: one file, or the shards model.safetensors.index.json names. */
typedef struct {
    const char *dir;
    cJSON *index; /* the parsed index (its "weight_map" maps names to file names), or NULL */
    int n_files;
    char *names[REF_MAX_FILES]; /* file names relative to dir, as the index spells them */
    char *paths[REF_MAX_FILES]; /* dir/name, for messages */
    st_file files[REF_MAX_FILES];
} ref_weights;

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* calloc of a * b doubles, NULL if the count overflows or memory runs out. */
static double *dalloc(size_t a, size_t b) {
    if (a != 0 && b > SIZE_MAX / sizeof(double) / a) return NULL;
    size_t n = a * b;
    return calloc(n ? n : 1, sizeof(double));
}

/* The whole file as a NUL-terminated string, or NULL. */
static char *read_text(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - 1 - len, fp);
        len += n;
        if (n == 0) {
            if (ferror(fp)) {
                free(buf);
                buf = NULL;
            } else {
                buf[len] = '\0';
            }
            break;
        }
    }
    fclose(fp);
    return buf;
}

/* config.json or the index, parsed; NULL with a message if unreadable or not an object. */
static cJSON *read_json(const char *path, char *err, size_t errlen) {
    char *text = read_text(path);
    if (!text) {
        set_err(err, errlen, "cannot read %s", path);
        return NULL;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        set_err(err, errlen, "%s: not a JSON object", path);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* A positive integer under key; when absent (or null) and dflt > 0, dflt. */
static int json_pos_int(const cJSON *obj, const char *key, int dflt, int *out, const char *path,
                        char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if ((!v || cJSON_IsNull(v)) && dflt > 0) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v)) {
        set_err(err, errlen, "%s: missing or non-numeric \"%s\"", path, key);
        return -1;
    }
    double d = v->valuedouble;
    if (!(d >= 1 && d <= INT_MAX) || d != floor(d)) {
        set_err(err, errlen, "%s: \"%s\" must be a positive integer, got %g", path, key, d);
        return -1;
    }
    *out = (int)d;
    return 0;
}

/* A finite positive number under key, or dflt when absent (dflt < 0: required). */
static int json_pos_num(const cJSON *obj, const char *key, double dflt, double *out,
                        const char *path, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v && dflt >= 0) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble)) {
        set_err(err, errlen, "%s: \"%s\" must be a positive number", path, key);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

/* A boolean under key, or dflt when absent or null. */
static int json_bool(const cJSON *obj, const char *key, int dflt, int *out, const char *path,
                     char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(v)) {
        set_err(err, errlen, "%s: \"%s\" must be true or false", path, key);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

static int parse_arch(const cJSON *root, ref_arch *arch, const char *path, char *err,
                      size_t errlen) {
    static const struct {
        const char *cls, *model_type;
        ref_arch arch;
    } known[] = {{"LlamaForCausalLM", "llama", ARCH_LLAMA},
                 {"MistralForCausalLM", "mistral", ARCH_MISTRAL},
                 {"Qwen2ForCausalLM", "qwen2", ARCH_QWEN2},
                 {"Qwen3ForCausalLM", "qwen3", ARCH_QWEN3}};
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *first = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *name = cJSON_IsString(first) ? first->valuestring : NULL;
    const char *type = cJSON_IsString(mt) ? mt->valuestring : NULL;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        /* "architectures" decides; model_type only when it is absent. */
        if ((name && strcmp(name, known[i].cls) == 0) ||
            (!name && type && strcmp(type, known[i].model_type) == 0)) {
            *arch = known[i].arch;
            return 0;
        }
    }
    set_err(err, errlen,
            "%s: architecture %s is not one of LlamaForCausalLM, MistralForCausalLM, "
            "Qwen2ForCausalLM, Qwen3ForCausalLM",
            path,
            name   ? name
            : type ? type
                   : "(none given)");
    return -1;
}

/* rope_scaling (or transformers 5's rope_parameters): null, "default" or "llama3". */
static int parse_rope(const cJSON *root, ref_config *c, const char *path, char *err,
                      size_t errlen) {
    c->theta = 10000.0; /* the default of all four architectures */
    if (json_pos_num(root, "rope_theta", 10000.0, &c->theta, path, err, errlen)) return -1;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if ((!rs || cJSON_IsNull(rs)) && cJSON_IsObject(rp)) {
        if (json_pos_num(rp, "rope_theta", c->theta, &c->theta, path, err, errlen)) return -1;
        rs = rp;
    }
    c->llama3 = 0;
    if (!rs || cJSON_IsNull(rs)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(type) ||
        (strcmp(type->valuestring, "default") != 0 && strcmp(type->valuestring, "llama3") != 0)) {
        set_err(err, errlen,
                "%s: rope_scaling type %s is not supported (only null, default, llama3)", path,
                cJSON_IsString(type) ? type->valuestring : "(missing)");
        return -1;
    }
    if (strcmp(type->valuestring, "default") == 0) return 0;
    c->llama3 = 1;
    if (json_pos_num(rs, "factor", -1, &c->factor, path, err, errlen) ||
        json_pos_num(rs, "low_freq_factor", -1, &c->low_ff, path, err, errlen) ||
        json_pos_num(rs, "high_freq_factor", -1, &c->high_ff, path, err, errlen) ||
        json_pos_num(rs, "original_max_position_embeddings", -1, &c->orig_ctx, path, err, errlen))
        return -1;
    if (!(c->high_ff > c->low_ff)) {
        set_err(err, errlen, "%s: llama3 rope_scaling needs high_freq_factor > low_freq_factor",
                path);
        return -1;
    }
    return 0;
}

static int parse_config(const cJSON *root, ref_config *c, const char *path, char *err,
                        size_t errlen) {
    memset(c, 0, sizeof *c);
    if (parse_arch(root, &c->arch, path, err, errlen) ||
        json_pos_int(root, "num_hidden_layers", 0, &c->n_layer, path, err, errlen) ||
        json_pos_int(root, "hidden_size", 0, &c->E, path, err, errlen) ||
        json_pos_int(root, "intermediate_size", 0, &c->F, path, err, errlen) ||
        json_pos_int(root, "num_attention_heads", 0, &c->H, path, err, errlen) ||
        json_pos_int(root, "num_key_value_heads", c->H, &c->KV, path, err, errlen) ||
        json_pos_int(root, "vocab_size", 0, &c->V, path, err, errlen) ||
        json_pos_int(root, "max_position_embeddings", 0, &c->n_pos, path, err, errlen))
        return -1;
    /* head_dim defaults to hidden_size / heads, which must then divide exactly. */
    if (!cJSON_GetObjectItemCaseSensitive(root, "head_dim") ||
        cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "head_dim"))) {
        if (c->E % c->H != 0) {
            set_err(err, errlen, "%s: hidden_size %d is not divisible by num_attention_heads %d",
                    path, c->E, c->H);
            return -1;
        }
    }
    if (json_pos_int(root, "head_dim", c->E / c->H, &c->D, path, err, errlen)) return -1;
    if (c->D % 2 != 0) {
        set_err(err, errlen, "%s: head_dim %d is odd (RoPE pairs i with i + head_dim/2)", path,
                c->D);
        return -1;
    }
    if (c->H % c->KV != 0) {
        set_err(err, errlen,
                "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", path,
                c->H, c->KV);
        return -1;
    }
    if (json_pos_num(root, "rms_norm_eps", 1e-6, &c->eps, path, err, errlen) ||
        json_bool(root, "tie_word_embeddings", 0, &c->tie, path, err, errlen) ||
        parse_rope(root, c, path, err, errlen))
        return -1;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0)) {
        set_err(err, errlen, "%s: hidden_act must be \"silu\"", path);
        return -1;
    }
    const cJSON *prf = cJSON_GetObjectItemCaseSensitive(root, "partial_rotary_factor");
    if (prf && !(cJSON_IsNumber(prf) && prf->valuedouble == 1.0)) {
        set_err(err, errlen, "%s: partial_rotary_factor other than 1 is not supported", path);
        return -1;
    }
    /* Biases and norms, per architecture as transformers builds the modules. */
    int attention_bias = 0;
    if (json_bool(root, "attention_bias", 0, &attention_bias, path, err, errlen) ||
        json_bool(root, "mlp_bias", 0, &c->mlp_bias, path, err, errlen))
        return -1;
    switch (c->arch) {
    case ARCH_LLAMA: /* q/k/v/o all follow attention_bias; gate/up/down follow mlp_bias */
        c->qkv_bias = c->o_bias = attention_bias;
        break;
    case ARCH_MISTRAL: /* no biases anywhere */
        c->mlp_bias = 0;
        break;
    case ARCH_QWEN2: /* q/k/v always biased, o never, no MLP biases */
        c->qkv_bias = 1;
        c->mlp_bias = 0;
        break;
    case ARCH_QWEN3: /* q/k/v/o follow attention_bias, q/k norms always, no MLP biases */
        c->qkv_bias = c->o_bias = attention_bias;
        c->mlp_bias = 0;
        c->qk_norm = 1;
        break;
    }
    /* Sliding-window attention: Mistral when "sliding_window" is set, Qwen2/3 when also
     * "use_sliding_window". The oracle computes only full causal attention, so it refuses T
     * beyond the window (checked in llama_reference_logits). */
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
    int use_sw = c->arch == ARCH_MISTRAL;
    if (c->arch == ARCH_QWEN2 || c->arch == ARCH_QWEN3)
        if (json_bool(root, "use_sliding_window", 0, &use_sw, path, err, errlen)) return -1;
    if (use_sw && sw && !cJSON_IsNull(sw))
        if (json_pos_int(root, "sliding_window", 0, &c->window, path, err, errlen)) return -1;
    return 0;
}

static int read_config(const char *model_dir, ref_config *c, char *err, size_t errlen) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/config.json", model_dir) >= (int)sizeof path) {
        set_err(err, errlen, "model directory path too long: %s", model_dir);
        return -1;
    }
    cJSON *root = read_json(path, err, errlen);
    if (!root) return -1;
    int rc = parse_config(root, c, path, err, errlen);
    cJSON_Delete(root);
    return rc;
}

int llama_reference_vocab(const char *model_dir, char *err, size_t errlen) {
    ref_config c;
    if (read_config(model_dir, &c, err, errlen) != 0) return -1;
    return c.V;
}

/* ---- weights --------------------------------------------------------------------------------- */

static void weights_close(ref_weights *w) {
    for (int i = 0; i < w->n_files; i++) {
        st_close(&w->files[i]);
        free(w->names[i]);
        free(w->paths[i]);
    }
    cJSON_Delete(w->index);
    memset(w, 0, sizeof *w);
}

/* Opens dir/name as file number w->n_files. */
static int weights_add(ref_weights *w, const char *name, char *err, size_t errlen) {
    if (w->n_files == REF_MAX_FILES) {
        set_err(err, errlen, "%s: more than %d safetensors files", w->dir, REF_MAX_FILES);
        return -1;
    }
    size_t n = strlen(w->dir) + strlen(name) + 2;
    char *path = malloc(n), *copy = malloc(strlen(name) + 1);
    if (!path || !copy) {
        free(path), free(copy);
        set_err(err, errlen, "out of memory");
        return -1;
    }
    snprintf(path, n, "%s/%s", w->dir, name);
    strcpy(copy, name);
    if (st_open(&w->files[w->n_files], path, err, errlen) != 0) {
        free(path), free(copy);
        return -1;
    }
    w->names[w->n_files] = copy;
    w->paths[w->n_files] = path;
    w->n_files++;
    return 0;
}

/* With an index, shards are opened when first named; without, model.safetensors now. */
static int weights_open(ref_weights *w, const char *dir, char *err, size_t errlen) {
    memset(w, 0, sizeof *w);
    w->dir = dir;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir) >= (int)sizeof path) {
        set_err(err, errlen, "model directory path too long: %s", dir);
        return -1;
    }
    FILE *probe = fopen(path, "rb");
    if (!probe) return weights_add(w, "model.safetensors", err, errlen);
    fclose(probe);
    if (!(w->index = read_json(path, err, errlen))) return -1;
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(w->index, "weight_map"))) {
        set_err(err, errlen, "%s: no \"weight_map\" object", path);
        weights_close(w);
        return -1;
    }
    return 0;
}

/* The tensor called name, with the file holding it (for messages) in *path; NULL with a message
 * if it is not there. */
static const st_tensor *weights_find(ref_weights *w, const char *name, const st_file **file,
                                     const char **path, char *err, size_t errlen) {
    int fi = 0;
    if (w->index) {
        const cJSON *map = cJSON_GetObjectItemCaseSensitive(w->index, "weight_map");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(map, name);
        if (!cJSON_IsString(fn)) {
            set_err(err, errlen, "%s/model.safetensors.index.json: weight_map has no %s", w->dir,
                    name);
            return NULL;
        }
        if (strchr(fn->valuestring, '/')) {
            set_err(err, errlen, "%s/model.safetensors.index.json: file name %s has a '/'", w->dir,
                    fn->valuestring);
            return NULL;
        }
        for (fi = 0; fi < w->n_files; fi++)
            if (strcmp(w->names[fi], fn->valuestring) == 0) break;
        if (fi == w->n_files && weights_add(w, fn->valuestring, err, errlen) != 0) return NULL;
    }
    const st_tensor *t = st_find(&w->files[fi], name);
    if (!t) {
        set_err(err, errlen, "%s: tensor %s not found", w->paths[fi], name);
        return NULL;
    }
    *file = &w->files[fi];
    *path = w->paths[fi];
    return t;
}

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used +=
            (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

/* Reads rows [row0, row0 + nrows) of the tensor called name (prefixed by "model.layers.<layer>."
 * when layer >= 0) as doubles into a new array, after checking its shape is exactly [d0] (ndim 1,
 * one "row" of d0) or [d0, d1] (ndim 2). nrows < 0 means all rows. NULL with a message naming the
 * tensor on any failure. */
static double *load_rows(ref_weights *w, int layer, const char *name, int ndim, int64_t d0,
                         int64_t d1, int64_t row0, int64_t nrows, char *err, size_t errlen) {
    char full[ST_NAME_MAX];
    if (layer >= 0)
        snprintf(full, sizeof full, "model.layers.%d.%s", layer, name);
    else
        snprintf(full, sizeof full, "%s", name);
    const st_file *f;
    const char *path;
    const st_tensor *t = weights_find(w, full, &f, &path, err, errlen);
    if (!t) return NULL;
    const int64_t want[2] = {d0, d1};
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == want[i];
    if (!ok) {
        char got_s[128], want_s[128];
        fmt_shape(got_s, sizeof got_s, t->ndim, t->shape);
        fmt_shape(want_s, sizeof want_s, ndim, want);
        set_err(err, errlen, "%s: tensor %s has shape %s, expected %s", path, t->name, got_s,
                want_s);
        return NULL;
    }
    const size_t row_len = ndim == 2 ? (size_t)d1 : (size_t)d0;
    if (ndim == 1) row0 = 0, nrows = 1;
    if (nrows < 0) row0 = 0, nrows = d0;
    const size_t numel = (size_t)nrows * row_len, first = (size_t)row0 * row_len;
    double *out = dalloc(numel, 1);
    if (!out) {
        set_err(err, errlen, "out of memory loading tensor %s", t->name);
        return NULL;
    }
    /* Convert through a small float buffer rather than a second whole-tensor copy. */
    enum { CHUNK = 4096 };
    float buf[CHUNK];
    for (size_t start = 0; start < numel; start += CHUNK) {
        size_t count = numel - start < CHUNK ? numel - start : CHUNK;
        if (st_read_f32(f, t, first + start, count, buf) != 0) {
            set_err(err, errlen, "%s: reading tensor %s failed", path, t->name);
            free(out);
            return NULL;
        }
        for (size_t i = 0; i < count; i++) out[start + i] = (double)buf[i];
    }
    return out;
}

/* The whole tensor. */
static double *load(ref_weights *w, int layer, const char *name, int ndim, int64_t d0, int64_t d1,
                    char *err, size_t errlen) {
    return load_rows(w, layer, name, ndim, d0, d1, 0, -1, err, errlen);
}

static void free_layer(ref_layer *b) {
    double **all[] = {&b->ln1, &b->ln2, &b->wq, &b->wk, &b->wv,     &b->wo,
                      &b->bq,  &b->bk,  &b->bv, &b->bo, &b->q_norm, &b->k_norm,
                      &b->wg,  &b->wu,  &b->wd, &b->bg, &b->bu,     &b->bd};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        free(*all[i]);
        *all[i] = NULL;
    }
}

static int load_layer(ref_weights *w, const ref_config *c, int i, ref_layer *b, char *err,
                      size_t errlen) {
    const int64_t E = c->E, F = c->F, QD = (int64_t)c->H * c->D, KD = (int64_t)c->KV * c->D;
    memset(b, 0, sizeof *b);
    /* Each load runs only if all before it succeeded; the caller frees whatever was loaded. */
    if (!(b->ln1 = load(w, i, "input_layernorm.weight", 1, E, 0, err, errlen)) ||
        !(b->wq = load(w, i, "self_attn.q_proj.weight", 2, QD, E, err, errlen)) ||
        !(b->wk = load(w, i, "self_attn.k_proj.weight", 2, KD, E, err, errlen)) ||
        !(b->wv = load(w, i, "self_attn.v_proj.weight", 2, KD, E, err, errlen)) ||
        !(b->wo = load(w, i, "self_attn.o_proj.weight", 2, E, QD, err, errlen)) ||
        !(b->ln2 = load(w, i, "post_attention_layernorm.weight", 1, E, 0, err, errlen)) ||
        !(b->wg = load(w, i, "mlp.gate_proj.weight", 2, F, E, err, errlen)) ||
        !(b->wu = load(w, i, "mlp.up_proj.weight", 2, F, E, err, errlen)) ||
        !(b->wd = load(w, i, "mlp.down_proj.weight", 2, E, F, err, errlen)))
        return -1;
    if (c->qkv_bias && (!(b->bq = load(w, i, "self_attn.q_proj.bias", 1, QD, 0, err, errlen)) ||
                        !(b->bk = load(w, i, "self_attn.k_proj.bias", 1, KD, 0, err, errlen)) ||
                        !(b->bv = load(w, i, "self_attn.v_proj.bias", 1, KD, 0, err, errlen))))
        return -1;
    if (c->o_bias && !(b->bo = load(w, i, "self_attn.o_proj.bias", 1, E, 0, err, errlen)))
        return -1;
    if (c->qk_norm &&
        (!(b->q_norm = load(w, i, "self_attn.q_norm.weight", 1, c->D, 0, err, errlen)) ||
         !(b->k_norm = load(w, i, "self_attn.k_norm.weight", 1, c->D, 0, err, errlen))))
        return -1;
    if (c->mlp_bias && (!(b->bg = load(w, i, "mlp.gate_proj.bias", 1, F, 0, err, errlen)) ||
                        !(b->bu = load(w, i, "mlp.up_proj.bias", 1, F, 0, err, errlen)) ||
                        !(b->bd = load(w, i, "mlp.down_proj.bias", 1, E, 0, err, errlen))))
        return -1;
    return 0;
}

/* ---- the forward pass ------------------------------------------------------------------------ */

/* y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w for each of the rows rows of length n (in place
 * allowed: each row is read fully before it is written). */
static void rms_norm(const double *x, double *y, int rows, int n, const double *w, double eps) {
    for (int r = 0; r < rows; r++) {
        const double *xr = x + (size_t)r * n;
        double ss = 0;
        for (int i = 0; i < n; i++) ss += xr[i] * xr[i];
        const double inv = 1.0 / sqrt(ss / n + eps);
        for (int i = 0; i < n; i++) y[(size_t)r * n + i] = xr[i] * inv * w[i];
    }
}

/* y[t][o] = b[o] + sum_i x[t][i] * W[o][i] (nn.Linear: W is [out, in]); b may be NULL. */
static void linear(const double *x, double *y, int T, int in, int out, const double *W,
                   const double *b) {
    for (int t = 0; t < T; t++) {
        const double *xt = x + (size_t)t * in;
        for (int o = 0; o < out; o++) {
            const double *row = W + (size_t)o * in;
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < in; i++) acc += xt[i] * row[i];
            y[(size_t)t * out + o] = acc;
        }
    }
}

/* inv_freq[i] = theta^(-2i/D) for i < D/2, then transformers' _compute_llama3_parameters: keep
 * the high frequencies, divide the low ones by factor, and interpolate between. */
static void rope_inv_freq(const ref_config *c, double *inv_freq) {
    const int D = c->D;
    for (int i = 0; i < D / 2; i++) {
        double f = 1.0 / pow(c->theta, (double)(2 * i) / D);
        if (c->llama3) {
            const double wavelen = 2 * REF_PI / f;
            const double low_wavelen = c->orig_ctx / c->low_ff;
            const double high_wavelen = c->orig_ctx / c->high_ff;
            if (wavelen < high_wavelen) {
                /* high frequency: unchanged */
            } else if (wavelen > low_wavelen) {
                f = f / c->factor;
            } else {
                const double smooth =
                    (c->orig_ctx / wavelen - c->low_ff) / (c->high_ff - c->low_ff);
                f = (1 - smooth) * f / c->factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}

/* Rotates each of the n_heads heads of x [T, n_heads * D] at positions 0..T-1 in place, "rotate
 * half" style: dimension i pairs with i + D/2 at angle pos * inv_freq[i]. */
static void rope(double *x, int T, int n_heads, int D, const double *inv_freq) {
    const int half = D / 2;
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < n_heads; h++) {
            double *v = x + ((size_t)t * n_heads + h) * D;
            for (int i = 0; i < half; i++) {
                const double angle = (double)t * inv_freq[i];
                const double cs = cos(angle), sn = sin(angle);
                const double a = v[i], b = v[i + half];
                v[i] = a * cs - b * sn;
                v[i + half] = b * cs + a * sn;
            }
        }
    }
}

/* Causal grouped-query attention: q [T, H*D], k and v [T, KV*D]; query head h reads kv head
 * h / (H / KV). out is [T, H*D], heads concatenated in order. scores has room for T values. */
static void attention(const double *q, const double *k, const double *v, double *out, int T, int H,
                      int KV, int D, double *scores) {
    const double scale = 1.0 / sqrt((double)D);
    const int group = H / KV;
    for (int h = 0; h < H; h++) {
        const int kvh = h / group;
        for (int t = 0; t < T; t++) {
            const double *qt = q + ((size_t)t * H + h) * D;
            double max = -INFINITY;
            for (int u = 0; u <= t; u++) {
                const double *ku = k + ((size_t)u * KV + kvh) * D;
                double s = 0;
                for (int d = 0; d < D; d++) s += qt[d] * ku[d];
                scores[u] = s * scale;
                if (scores[u] > max) max = scores[u];
            }
            double sum = 0;
            for (int u = 0; u <= t; u++) {
                scores[u] = exp(scores[u] - max);
                sum += scores[u];
            }
            double *o = out + ((size_t)t * H + h) * D;
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int u = 0; u <= t; u++) acc += scores[u] * v[((size_t)u * KV + kvh) * D + d];
                o[d] = acc / sum;
            }
        }
    }
}

static double silu(double x) {
    return x / (1.0 + exp(-x));
}

int llama_reference_logits(const char *model_dir, const int *tokens, int T, double *logits,
                           char *err, size_t errlen) {
    ref_config c;
    if (read_config(model_dir, &c, err, errlen) != 0) return -1;
    if (!tokens || !logits || T < 1) {
        set_err(err, errlen, "llama_reference_logits: need T >= 1 tokens and a logits buffer");
        return -1;
    }
    if (T > c.n_pos) {
        set_err(err, errlen, "T = %d exceeds max_position_embeddings = %d", T, c.n_pos);
        return -1;
    }
    if (c.window > 0 && T > c.window) {
        set_err(err, errlen, "T = %d exceeds sliding_window = %d (not supported by the reference)",
                T, c.window);
        return -1;
    }
    for (int t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= c.V) {
            set_err(err, errlen, "token %d at position %d is outside [0, %d)", tokens[t], t, c.V);
            return -1;
        }
    }
    ref_weights w;
    if (weights_open(&w, model_dir, err, errlen) != 0) return -1;

    const int E = c.E, F = c.F, V = c.V, QD = c.H * c.D, KD = c.KV * c.D;
    int rc = -1;
    ref_layer blk = {0};
    double *norm = NULL, *row = NULL;
    double *x = dalloc((size_t)T, (size_t)E);  /* residual stream */
    double *n = dalloc((size_t)T, (size_t)E);  /* RMSNorm output */
    double *q = dalloc((size_t)T, (size_t)QD); /* queries, then RoPE'd */
    double *k = dalloc((size_t)T, (size_t)KD);
    double *v = dalloc((size_t)T, (size_t)KD);
    double *att = dalloc((size_t)T, (size_t)QD); /* attention output, heads concatenated */
    double *y = dalloc((size_t)T, (size_t)E);    /* a projection, before the residual add */
    double *g = dalloc((size_t)T, (size_t)F);    /* gate, then silu(gate) * up */
    double *u = dalloc((size_t)T, (size_t)F);    /* up */
    double *scores = dalloc((size_t)T, 1);
    double *inv_freq = dalloc((size_t)c.D / 2, 1);
    if (!x || !n || !q || !k || !v || !att || !y || !g || !u || !scores || !inv_freq) {
        set_err(err, errlen, "out of memory for activations (T = %d, hidden_size = %d)", T, E);
        goto done;
    }
    rope_inv_freq(&c, inv_freq);

    /* x[t] = embed_tokens[tokens[t]], one row at a time. */
    for (int t = 0; t < T; t++) {
        if (!(row = load_rows(&w, -1, "model.embed_tokens.weight", 2, V, E, tokens[t], 1, err,
                              errlen)))
            goto done;
        memcpy(x + (size_t)t * E, row, (size_t)E * sizeof(double));
        free(row);
        row = NULL;
    }

    for (int l = 0; l < c.n_layer; l++) {
        if (load_layer(&w, &c, l, &blk, err, errlen) != 0) goto done;

        /* h = x + o_proj(attention(rope(q), rope(k), v)) of n = rmsnorm(x) */
        rms_norm(x, n, T, E, blk.ln1, c.eps);
        linear(n, q, T, E, QD, blk.wq, blk.bq);
        linear(n, k, T, E, KD, blk.wk, blk.bk);
        linear(n, v, T, E, KD, blk.wv, blk.bv);
        if (c.qk_norm) { /* each head's D values are one RMSNorm row */
            rms_norm(q, q, T * c.H, c.D, blk.q_norm, c.eps);
            rms_norm(k, k, T * c.KV, c.D, blk.k_norm, c.eps);
        }
        rope(q, T, c.H, c.D, inv_freq);
        rope(k, T, c.KV, c.D, inv_freq);
        attention(q, k, v, att, T, c.H, c.KV, c.D, scores);
        linear(att, y, T, QD, E, blk.wo, blk.bo);
        for (size_t i = 0; i < (size_t)T * E; i++) x[i] += y[i];

        /* x = h + down(silu(gate(n)) * up(n)) of n = rmsnorm(h) */
        rms_norm(x, n, T, E, blk.ln2, c.eps);
        linear(n, g, T, E, F, blk.wg, blk.bg);
        linear(n, u, T, E, F, blk.wu, blk.bu);
        for (size_t i = 0; i < (size_t)T * F; i++) g[i] = silu(g[i]) * u[i];
        linear(g, y, T, F, E, blk.wd, blk.bd);
        for (size_t i = 0; i < (size_t)T * E; i++) x[i] += y[i];

        free_layer(&blk);
    }

    /* logits[t][v] = rmsnorm(x)[t] . head[v], head = lm_head, or embed_tokens when tied; read
     * one vocabulary row at a time. */
    if (!(norm = load(&w, -1, "model.norm.weight", 1, E, 0, err, errlen))) goto done;
    rms_norm(x, n, T, E, norm, c.eps);
    const char *head = c.tie ? "model.embed_tokens.weight" : "lm_head.weight";
    for (int vi = 0; vi < V; vi++) {
        if (!(row = load_rows(&w, -1, head, 2, V, E, vi, 1, err, errlen))) goto done;
        for (int t = 0; t < T; t++) {
            double acc = 0;
            for (int e = 0; e < E; e++) acc += n[(size_t)t * E + e] * row[e];
            logits[(size_t)t * V + vi] = acc;
        }
        free(row);
        row = NULL;
    }
    rc = 0;
done:
    free_layer(&blk);
    free(norm), free(row);
    free(x), free(n), free(q), free(k), free(v), free(att), free(y), free(g), free(u);
    free(scores), free(inv_freq);
    weights_close(&w);
    return rc;
}
