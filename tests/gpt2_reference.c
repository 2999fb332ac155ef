/* gpt2_reference.c — the test oracle: a plain double-precision GPT-2 forward pass.
 *
 * Clarity over speed: every tensor is converted whole to double, every matrix product is a
 * triple loop with one accumulator per output, and nothing is shared with the sharded code
 * beyond the safetensors reader. Only one transformer block is held in memory at a time, so a
 * real GPT-2 checkpoint still fits comfortably. */
#include "gpt2_reference.h"

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

typedef struct {
    int n_layer, n_embd, n_head, vocab, n_pos;
    double eps;
    int gelu_tanh; /* 1: "gelu_new" (tanh approximation), 0: "gelu" (exact, erf) */
    int tied;      /* tie_word_embeddings (default true): the LM head is wte, else lm_head.weight */
} ref_config;

/* One transformer block, Conv1D weights in Hugging Face's [in, out] layout. */
typedef struct {
    double *norm1_w, *norm1_b;
    double *attn_w, *attn_b; /* [E, 3E], [3E]: columns [Q | K | V] */
    double *proj_w, *proj_b; /* [E, E], [E] */
    double *norm2_w, *norm2_b;
    double *fc_w, *fc_b;   /* [E, 4E], [4E] */
    double *fc2_w, *fc2_b; /* [4E, E], [E] */
} ref_block;

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

static int json_pos_int(const cJSON *root, const char *key, int *out, const char *path, char *err,
                        size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
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

static int read_config(const char *model_dir, ref_config *c, char *err, size_t errlen) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/config.json", model_dir) >= (int)sizeof path) {
        set_err(err, errlen, "model directory path too long: %s", model_dir);
        return -1;
    }
    char *text = read_text(path);
    if (!text) {
        set_err(err, errlen, "cannot read %s", path);
        return -1;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        set_err(err, errlen, "%s: not a JSON object", path);
        cJSON_Delete(root);
        return -1;
    }
    int rc = -1;
    if (json_pos_int(root, "n_layer", &c->n_layer, path, err, errlen) ||
        json_pos_int(root, "n_embd", &c->n_embd, path, err, errlen) ||
        json_pos_int(root, "n_head", &c->n_head, path, err, errlen) ||
        json_pos_int(root, "vocab_size", &c->vocab, path, err, errlen) ||
        json_pos_int(root, "n_positions", &c->n_pos, path, err, errlen))
        goto done;
    if (c->n_embd % c->n_head != 0) {
        set_err(err, errlen, "%s: n_embd = %d is not divisible by n_head = %d", path, c->n_embd,
                c->n_head);
        goto done;
    }
    c->eps = 1e-5; /* Hugging Face's default */
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
    if (!eps) eps = cJSON_GetObjectItemCaseSensitive(root, "norm_eps");
    if (eps && !cJSON_IsNull(eps)) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble >= 0) || !isfinite(eps->valuedouble)) {
            set_err(err, errlen, "%s: norm_eps must be a non-negative number", path);
            goto done;
        }
        c->eps = eps->valuedouble;
    }
    c->gelu_tanh = 1; /* Hugging Face's default is "gelu_new" */
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
    if (act) {
        if (cJSON_IsString(act) && strcmp(act->valuestring, "gelu_new") == 0) {
            c->gelu_tanh = 1;
        } else if (cJSON_IsString(act) && strcmp(act->valuestring, "gelu") == 0) {
            c->gelu_tanh = 0;
        } else {
            set_err(err, errlen, "%s: activation_function must be \"gelu_new\" or \"gelu\"", path);
            goto done;
        }
    }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    c->tied = !cJSON_IsFalse(tie); /* GPT2LMHeadModel's default is tied */
    /* Hugging Face options that change the attention scale: refuse rather than be silently
     * wrong, since this is the oracle. */
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "scale_attn_weights")) ||
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "scale_attn_by_inverse_layer_idx"))) {
        set_err(err, errlen,
                "%s: only the standard 1/sqrt(head_dim) attention scale is supported "
                "(scale_attn_weights must be true, scale_attn_by_inverse_layer_idx false)",
                path);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

int gpt2_reference_vocab(const char *model_dir, char *err, size_t errlen) {
    ref_config c;
    if (read_config(model_dir, &c, err, errlen) != 0) return -1;
    return c.vocab;
}

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used +=
            (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

/* Loads the tensor called name (prefixed by "h.<layer>." when layer >= 0), trying the
 * "transformer." prefix first, as doubles, after checking its shape is exactly [d0] (ndim 1) or
 * [d0, d1] (ndim 2). Returns NULL with a message naming the tensor on any failure. */
static double *load(const st_file *f, const char *st_path, int layer, const char *name, int ndim,
                    int64_t d0, int64_t d1, char *err, size_t errlen) {
    char base[ST_NAME_MAX], prefixed[ST_NAME_MAX + 16];
    if (layer >= 0)
        snprintf(base, sizeof base, "h.%d.%s", layer, name);
    else
        snprintf(base, sizeof base, "%s", name);
    snprintf(prefixed, sizeof prefixed, "transformer.%s", base);
    const st_tensor *t = st_find(f, prefixed);
    if (!t) t = st_find(f, base);
    if (!t) {
        set_err(err, errlen, "%s: tensor %s (or %s) not found", st_path, base, prefixed);
        return NULL;
    }
    const int64_t want[2] = {d0, d1};
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == want[i];
    if (!ok) {
        char got_s[128], want_s[128];
        fmt_shape(got_s, sizeof got_s, t->ndim, t->shape);
        fmt_shape(want_s, sizeof want_s, ndim, want);
        set_err(err, errlen, "%s: tensor %s has shape %s, expected %s", st_path, t->name, got_s,
                want_s);
        return NULL;
    }
    size_t numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
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
        if (st_read_f32(f, t, start, count, buf) != 0) {
            set_err(err, errlen, "%s: reading tensor %s failed", st_path, t->name);
            free(out);
            return NULL;
        }
        for (size_t i = 0; i < count; i++) out[start + i] = (double)buf[i];
    }
    return out;
}

static void free_block(ref_block *b) {
    free(b->norm1_w), free(b->norm1_b), free(b->attn_w), free(b->attn_b);
    free(b->proj_w), free(b->proj_b), free(b->norm2_w), free(b->norm2_b);
    free(b->fc_w), free(b->fc_b), free(b->fc2_w), free(b->fc2_b);
    memset(b, 0, sizeof *b);
}

static int load_block(const st_file *f, const char *st_path, const ref_config *c, int i,
                      ref_block *b, char *err, size_t errlen) {
    const int64_t E = c->n_embd;
    memset(b, 0, sizeof *b);
    /* Each load runs only if all before it succeeded; the caller frees whatever was loaded. */
    if ((b->norm1_w = load(f, st_path, i, "ln_1.weight", 1, E, 0, err, errlen)) &&
        (b->norm1_b = load(f, st_path, i, "ln_1.bias", 1, E, 0, err, errlen)) &&
        (b->attn_w = load(f, st_path, i, "attn.c_attn.weight", 2, E, 3 * E, err, errlen)) &&
        (b->attn_b = load(f, st_path, i, "attn.c_attn.bias", 1, 3 * E, 0, err, errlen)) &&
        (b->proj_w = load(f, st_path, i, "attn.c_proj.weight", 2, E, E, err, errlen)) &&
        (b->proj_b = load(f, st_path, i, "attn.c_proj.bias", 1, E, 0, err, errlen)) &&
        (b->norm2_w = load(f, st_path, i, "ln_2.weight", 1, E, 0, err, errlen)) &&
        (b->norm2_b = load(f, st_path, i, "ln_2.bias", 1, E, 0, err, errlen)) &&
        (b->fc_w = load(f, st_path, i, "mlp.c_fc.weight", 2, E, 4 * E, err, errlen)) &&
        (b->fc_b = load(f, st_path, i, "mlp.c_fc.bias", 1, 4 * E, 0, err, errlen)) &&
        (b->fc2_w = load(f, st_path, i, "mlp.c_proj.weight", 2, 4 * E, E, err, errlen)) &&
        (b->fc2_b = load(f, st_path, i, "mlp.c_proj.bias", 1, E, 0, err, errlen)))
        return 0;
    return -1;
}

/* y[t] = (x[t] - mean) / sqrt(var + eps) * w + b, with the biased variance. */
static void layer_norm(const double *x, double *y, int T, int E, const double *w, const double *b,
                       double eps) {
    for (int t = 0; t < T; t++) {
        const double *xt = x + (size_t)t * E;
        double mean = 0, var = 0;
        for (int e = 0; e < E; e++) mean += xt[e];
        mean /= E;
        for (int e = 0; e < E; e++) var += (xt[e] - mean) * (xt[e] - mean);
        var /= E;
        double inv = 1.0 / sqrt(var + eps);
        for (int e = 0; e < E; e++) y[(size_t)t * E + e] = (xt[e] - mean) * inv * w[e] + b[e];
    }
}

/* y[t][o] = b[o] + sum_i x[t][i] * W[i][o], with W stored [in, out] (Hugging Face Conv1D).
 * The i loop is outside the o loop only so that W is read row by row; each y[t][o] still sums
 * its terms in order i = 0, 1, ..., exactly as the formula reads. */
static void linear(const double *x, double *y, int T, int in, int out, const double *W,
                   const double *b) {
    for (int t = 0; t < T; t++) {
        double *yt = y + (size_t)t * out;
        for (int o = 0; o < out; o++) yt[o] = b[o];
        for (int i = 0; i < in; i++) {
            const double xi = x[(size_t)t * in + i];
            const double *row = W + (size_t)i * out;
            for (int o = 0; o < out; o++) yt[o] += xi * row[o];
        }
    }
}

static double gelu(double x, int tanh_form) {
    if (tanh_form) return 0.5 * x * (1.0 + tanh(sqrt(2.0 / REF_PI) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

/* Causal multi-head attention: qkv is [T, 3E] with columns [Q | K | V], head h of each at
 * h*D. out is [T, E], heads concatenated in order. scores has room for T values. */
static void attention(const double *qkv, double *out, int T, int E, int H, double *scores) {
    const int D = E / H;
    const double scale = 1.0 / sqrt((double)D);
    for (int h = 0; h < H; h++) {
        for (int t = 0; t < T; t++) {
            const double *q = qkv + (size_t)t * 3 * E + (size_t)h * D;
            double max = -INFINITY;
            for (int u = 0; u <= t; u++) {
                const double *k = qkv + (size_t)u * 3 * E + E + (size_t)h * D;
                double s = 0;
                for (int d = 0; d < D; d++) s += q[d] * k[d];
                scores[u] = s * scale;
                if (scores[u] > max) max = scores[u];
            }
            double sum = 0;
            for (int u = 0; u <= t; u++) {
                scores[u] = exp(scores[u] - max);
                sum += scores[u];
            }
            double *o = out + (size_t)t * E + (size_t)h * D;
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int u = 0; u <= t; u++)
                    acc += scores[u] * qkv[(size_t)u * 3 * E + 2 * (size_t)E + (size_t)h * D + d];
                o[d] = acc / sum;
            }
        }
    }
}

int gpt2_reference_logits(const char *model_dir, const int *tokens, int T, double *logits,
                          char *err, size_t errlen) {
    ref_config c;
    if (read_config(model_dir, &c, err, errlen) != 0) return -1;
    if (!tokens || !logits || T < 1) {
        set_err(err, errlen, "gpt2_reference_logits: need T >= 1 tokens and a logits buffer");
        return -1;
    }
    if (T > c.n_pos) {
        set_err(err, errlen, "T = %d exceeds n_positions = %d", T, c.n_pos);
        return -1;
    }
    for (int t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= c.vocab) {
            set_err(err, errlen, "token %d at position %d is outside [0, %d)", tokens[t], t,
                    c.vocab);
            return -1;
        }
    }

    char st_path[4096];
    if (snprintf(st_path, sizeof st_path, "%s/model.safetensors", model_dir) >=
        (int)sizeof st_path) {
        set_err(err, errlen, "model directory path too long: %s", model_dir);
        return -1;
    }
    st_file f;
    if (st_open(&f, st_path, err, errlen) != 0) return -1;

    const int E = c.n_embd, V = c.vocab;
    int rc = -1;
    ref_block blk = {0};
    double *wte = NULL, *wpe = NULL, *normf_w = NULL, *normf_b = NULL, *head = NULL;
    double *x = dalloc((size_t)T, (size_t)E);       /* residual stream */
    double *h = dalloc((size_t)T, (size_t)E);       /* layer-norm output */
    double *qkv = dalloc((size_t)T, 3 * (size_t)E); /* c_attn output */
    double *att = dalloc((size_t)T, (size_t)E);     /* attention output, heads concatenated */
    double *y = dalloc((size_t)T, (size_t)E);       /* a projection, before the residual add */
    double *ff = dalloc((size_t)T, 4 * (size_t)E);  /* MLP hidden */
    double *scores = dalloc((size_t)T, 1);
    if (!x || !h || !qkv || !att || !y || !ff || !scores) {
        set_err(err, errlen, "out of memory for activations (T = %d, n_embd = %d)", T, E);
        goto done;
    }
    if (!(wte = load(&f, st_path, -1, "wte.weight", 2, V, E, err, errlen)) ||
        !(wpe = load(&f, st_path, -1, "wpe.weight", 2, c.n_pos, E, err, errlen)) ||
        !(normf_w = load(&f, st_path, -1, "ln_f.weight", 1, E, 0, err, errlen)) ||
        !(normf_b = load(&f, st_path, -1, "ln_f.bias", 1, E, 0, err, errlen)) ||
        (!c.tied && !(head = load(&f, st_path, -1, "lm_head.weight", 2, V, E, err, errlen))))
        goto done;
    const double *lm = c.tied ? wte : head;

    for (int t = 0; t < T; t++)
        for (int e = 0; e < E; e++)
            x[(size_t)t * E + e] = wte[(size_t)tokens[t] * E + e] + wpe[(size_t)t * E + e];

    for (int l = 0; l < c.n_layer; l++) {
        if (load_block(&f, st_path, &c, l, &blk, err, errlen) != 0) goto done;

        layer_norm(x, h, T, E, blk.norm1_w, blk.norm1_b, c.eps);
        linear(h, qkv, T, E, 3 * E, blk.attn_w, blk.attn_b);
        attention(qkv, att, T, E, c.n_head, scores);
        linear(att, y, T, E, E, blk.proj_w, blk.proj_b);
        for (size_t i = 0; i < (size_t)T * E; i++) x[i] += y[i];

        layer_norm(x, h, T, E, blk.norm2_w, blk.norm2_b, c.eps);
        linear(h, ff, T, E, 4 * E, blk.fc_w, blk.fc_b);
        for (size_t i = 0; i < (size_t)T * 4 * E; i++) ff[i] = gelu(ff[i], c.gelu_tanh);
        linear(ff, y, T, 4 * E, E, blk.fc2_w, blk.fc2_b);
        for (size_t i = 0; i < (size_t)T * E; i++) x[i] += y[i];

        free_block(&blk);
    }

    /* LM head: logits[t][v] = ln_f(x)[t] . lm[v], lm = wte when tied. */
    layer_norm(x, h, T, E, normf_w, normf_b, c.eps);
    for (int t = 0; t < T; t++) {
        for (int v = 0; v < V; v++) {
            double acc = 0;
            for (int e = 0; e < E; e++) acc += h[(size_t)t * E + e] * lm[(size_t)v * E + e];
            logits[(size_t)t * V + v] = acc;
        }
    }
    rc = 0;
done:
    free_block(&blk);
    free(wte), free(wpe), free(normf_w), free(normf_b), free(head);
    free(x), free(h), free(qkv), free(att), free(y), free(ff), free(scores);
    st_close(&f);
    return rc;
}
