/* gpt2.c — one rank's shard of GPT-2: which slices it owns, loading them from a checkpoint,
 * and the forward pass (see gpt2.h for the split). */
#include "linshard/gpt2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/split.h"

/* ---- names and shapes --------------------------------------------------------------------- */

/* Hugging Face checkpoints name tensors with or without a "transformer." prefix. */
static const st_tensor *find_tensor(const st_file *file, const char *name) {
    char prefixed[ST_NAME_MAX + 16];
    snprintf(prefixed, sizeof(prefixed), "transformer.%s", name);
    const st_tensor *t = st_find(file, prefixed);
    return t ? t : st_find(file, name);
}

typedef struct {
    char name[64];
    int ndim;
    int64_t shape[2];
} expected_tensor;

static int expect(expected_tensor *list, int n, const char *name, int ndim, int64_t d0,
                  int64_t d1) {
    snprintf(list[n].name, sizeof(list[n].name), "%s", name);
    list[n].ndim = ndim;
    list[n].shape[0] = d0;
    list[n].shape[1] = d1;
    return n + 1;
}

/* Every tensor GPT-2 needs, with its shape. Returns the count; list must hold 4 + 12 * n_layer. */
static int expected_tensors(const gpt2_config *c, expected_tensor *list) {
    int64_t E = c->n_embd;
    int n = 0;
    n = expect(list, n, "wte.weight", 2, c->vocab_size, E);
    n = expect(list, n, "wpe.weight", 2, c->n_positions, E);
    char name[64];
    static const struct {
        const char *suffix;
        int ndim;
        int rows, cols; /* multiples of E; cols 0 for 1-D */
    } per_layer[] = {{"ln_1.weight", 1, 1, 0},        {"ln_1.bias", 1, 1, 0},
                     {"attn.c_attn.weight", 2, 1, 3}, {"attn.c_attn.bias", 1, 3, 0},
                     {"attn.c_proj.weight", 2, 1, 1}, {"attn.c_proj.bias", 1, 1, 0},
                     {"ln_2.weight", 1, 1, 0},        {"ln_2.bias", 1, 1, 0},
                     {"mlp.c_fc.weight", 2, 1, 4},    {"mlp.c_fc.bias", 1, 4, 0},
                     {"mlp.c_proj.weight", 2, 4, 1},  {"mlp.c_proj.bias", 1, 1, 0}};
    for (int l = 0; l < c->n_layer; l++)
        for (size_t k = 0; k < sizeof(per_layer) / sizeof(per_layer[0]); k++) {
            snprintf(name, sizeof(name), "h.%d.%s", l, per_layer[k].suffix);
            n = expect(list, n, name, per_layer[k].ndim, per_layer[k].rows * E,
                       per_layer[k].cols * E);
        }
    n = expect(list, n, "ln_f.weight", 1, E, 0);
    n = expect(list, n, "ln_f.bias", 1, E, 0);
    return n;
}

static void format_shape(char *buf, size_t len, int ndim, const int64_t *shape) {
    int n = snprintf(buf, len, "[");
    for (int i = 0; i < ndim && n > 0 && (size_t)n < len; i++)
        n += snprintf(buf + n, len - (size_t)n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n > 0 && (size_t)n < len) snprintf(buf + n, len - (size_t)n, "]");
}

int gpt2_check_weights(const gpt2_config *cfg, const st_file *file, char *err, size_t errlen) {
    expected_tensor *list = malloc((4 + 12 * (size_t)cfg->n_layer) * sizeof(*list));
    if (!list) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int n = expected_tensors(cfg, list), rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const st_tensor *t = find_tensor(file, list[i].name);
        if (!t) {
            snprintf(err, errlen, "model.safetensors: missing tensor '%s' (or 'transformer.%s')",
                     list[i].name, list[i].name);
            rc = -1;
        } else if (t->ndim != list[i].ndim || t->shape[0] != list[i].shape[0] ||
                   (t->ndim == 2 && t->shape[1] != list[i].shape[1])) {
            char got[128], want[64];
            format_shape(got, sizeof(got), t->ndim, t->shape);
            format_shape(want, sizeof(want), list[i].ndim, list[i].shape);
            snprintf(err, errlen,
                     "model.safetensors: tensor '%s' has shape %s but config.json implies %s",
                     t->name, got, want);
            rc = -1;
        }
    }
    free(list);
    return rc;
}

int gpt2_check_tokens(const gpt2_config *cfg, const int *tokens, int T, char *err, size_t errlen) {
    if (T < 1) {
        snprintf(err, errlen, "no tokens given");
        return -1;
    }
    if (T > cfg->n_positions) {
        snprintf(err, errlen, "%d tokens exceed the model's context of %d positions", T,
                 cfg->n_positions);
        return -1;
    }
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= cfg->vocab_size) {
            snprintf(err, errlen, "token id %d (position %d) is outside the vocabulary [0, %d)",
                     tokens[t], t, cfg->vocab_size);
            return -1;
        }
    return 0;
}

/* ---- loading one rank's slices ------------------------------------------------------------ */

typedef struct {
    const st_file *file;
    char *err;
    size_t errlen;
    int failed;
} loader;

/* The tensor `name`, or of layer `layer` when layer >= 0 ("h.{layer}.name"). */
static const st_tensor *tensor(loader *ld, int layer, const char *name_in) {
    char name[64];
    if (layer >= 0)
        snprintf(name, sizeof(name), "h.%d.%s", layer, name_in);
    else
        snprintf(name, sizeof(name), "%s", name_in);
    const st_tensor *t = find_tensor(ld->file, name);
    if (!t && !ld->failed) {
        snprintf(ld->err, ld->errlen, "model.safetensors: missing tensor '%s'", name);
        ld->failed = 1;
    }
    return t;
}

/* dst[rows, n] <- columns [c0, c0 + n) of a [rows, cols] tensor (or of a 1-D one: rows = 1). */
static void read_cols(loader *ld, const st_tensor *t, size_t rows, size_t cols, size_t c0, size_t n,
                      float *dst, size_t dst_ld) {
    for (size_t i = 0; i < rows && t && !ld->failed; i++)
        if (st_read_f32(ld->file, t, i * cols + c0, n, dst + i * dst_ld) != 0) {
            snprintf(ld->err, ld->errlen, "model.safetensors: cannot read tensor '%s'", t->name);
            ld->failed = 1;
        }
}

/* dst <- elements [start, start + n) of t: a block of whole rows, or a whole tensor. */
static void read_span(loader *ld, const st_tensor *t, size_t start, size_t n, float *dst) {
    read_cols(ld, t, 1, 0, start, n, dst, 0);
}

/* The fused c_attn weight is [E, 3E] laid out [Q | K | V]: this rank's heads are three column
 * blocks, one inside each of Q, K and V — not one contiguous slice. dst is [rows, 3*hd]. */
static void read_qkv(loader *ld, const st_tensor *t, size_t rows, size_t E, size_t c0, size_t hd,
                     float *dst) {
    for (size_t part = 0; part < 3; part++)
        read_cols(ld, t, rows, 3 * E, part * E + c0, hd, dst + part * hd, 3 * hd);
}

static size_t shard_param_floats(const gpt2_shard *m) {
    size_t E = (size_t)m->cfg.n_embd, D = E / (size_t)m->cfg.n_head;
    size_t hd = (size_t)m->h_local * D, fl = (size_t)m->f_local;
    size_t per_layer = 2 * E + E * 3 * hd + 3 * hd + hd * E + E + 2 * E + E * fl + fl + fl * E + E;
    return (size_t)m->v_local * E + (size_t)m->cfg.n_positions * E + 2 * E +
           (size_t)m->cfg.n_layer * per_layer;
}

/* Points every named view into the one parameter buffer, in a fixed order. */
static void assign_views(gpt2_shard *m) {
    size_t E = (size_t)m->cfg.n_embd, D = E / (size_t)m->cfg.n_head;
    size_t hd = (size_t)m->h_local * D, fl = (size_t)m->f_local;
    float *p = m->params;
#define TAKE(view, n) (view = p, p += (n))
    TAKE(m->wte, (size_t)m->v_local * E);
    TAKE(m->wpe, (size_t)m->cfg.n_positions * E);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        gpt2_layer *L = &m->layers[l];
        TAKE(L->ln1_w, E);
        TAKE(L->ln1_b, E);
        TAKE(L->qkv_w, E * 3 * hd);
        TAKE(L->qkv_b, 3 * hd);
        TAKE(L->proj_w, hd * E);
        TAKE(L->proj_b, E);
        TAKE(L->ln2_w, E);
        TAKE(L->ln2_b, E);
        TAKE(L->fc_w, E * fl);
        TAKE(L->fc_b, fl);
        TAKE(L->fcp_w, fl * E);
        TAKE(L->fcp_b, E);
    }
    TAKE(m->lnf_w, E);
    TAKE(m->lnf_b, E);
#undef TAKE
}

static void load_layer(loader *ld, const gpt2_shard *m, int l) {
    size_t E = (size_t)m->cfg.n_embd, D = E / (size_t)m->cfg.n_head;
    size_t hd = (size_t)m->h_local * D, c0 = (size_t)m->h0 * D;
    size_t F = 4 * E, f0 = (size_t)m->f0, fl = (size_t)m->f_local;
    const gpt2_layer *L = &m->layers[l];
    read_span(ld, tensor(ld, l, "ln_1.weight"), 0, E, L->ln1_w);
    read_span(ld, tensor(ld, l, "ln_1.bias"), 0, E, L->ln1_b);
    read_qkv(ld, tensor(ld, l, "attn.c_attn.weight"), E, E, c0, hd, L->qkv_w);
    read_qkv(ld, tensor(ld, l, "attn.c_attn.bias"), 1, E, c0, hd, L->qkv_b);
    read_span(ld, tensor(ld, l, "attn.c_proj.weight"), c0 * E, hd * E, L->proj_w);
    read_span(ld, tensor(ld, l, "attn.c_proj.bias"), 0, E, L->proj_b);
    read_span(ld, tensor(ld, l, "ln_2.weight"), 0, E, L->ln2_w);
    read_span(ld, tensor(ld, l, "ln_2.bias"), 0, E, L->ln2_b);
    read_cols(ld, tensor(ld, l, "mlp.c_fc.weight"), E, F, f0, fl, L->fc_w, fl);
    read_span(ld, tensor(ld, l, "mlp.c_fc.bias"), f0, fl, L->fc_b);
    read_span(ld, tensor(ld, l, "mlp.c_proj.weight"), f0 * E, fl * E, L->fcp_w);
    read_span(ld, tensor(ld, l, "mlp.c_proj.bias"), 0, E, L->fcp_b);
}

static size_t scratch_floats(const gpt2_shard *m, int T, int context) {
    size_t D = (size_t)(m->cfg.n_embd / m->cfg.n_head);
    attention_weights aw = {.E = m->cfg.n_embd, .D = (int)D, .h_local = m->h_local};
    size_t att = attention_scratch_floats(&aw, T, context), mlp = (size_t)T * (size_t)m->f_local;
    return att > mlp ? att : mlp;
}

/* (Re)allocates the activations for max_T tokens attending to up to m->context positions. */
static int alloc_activations(gpt2_shard *m, char *err, size_t errlen) {
    size_t E = (size_t)m->cfg.n_embd, T = (size_t)m->max_T;
    size_t scratch = scratch_floats(m, m->max_T, m->context);
    size_t n_acts = 3 * T * E + scratch + T * (size_t)m->v_local;
    float *acts = malloc(n_acts * sizeof(float));
    if (!acts) {
        snprintf(err, errlen, "rank %d: out of memory for %zu MiB of activations", m->rank,
                 n_acts * sizeof(float) >> 20);
        return -1;
    }
    free(m->acts);
    m->acts = acts;
    m->x = acts;
    m->ln = m->x + T * E;
    m->tmp = m->ln + T * E;
    m->scratch = m->tmp + T * E;
    m->logits = m->scratch + scratch;
    return 0;
}

int gpt2_shard_load(gpt2_shard *m, const gpt2_config *cfg, const st_file *file, int rank, int P,
                    int max_T, char *err, size_t errlen) {
    memset(m, 0, sizeof(*m));
    if (gpt2_config_check(cfg, err, errlen) || gpt2_config_check_tp(cfg, P, err, errlen)) return -1;
    m->cfg = *cfg;
    m->rank = rank;
    m->P = P;
    m->h0 = (int)split_offset((size_t)cfg->n_head, P, rank);
    m->h_local = (int)split_count((size_t)cfg->n_head, P, rank);
    m->f0 = (int)split_offset(4 * (size_t)cfg->n_embd, P, rank);
    m->f_local = (int)split_count(4 * (size_t)cfg->n_embd, P, rank);
    m->v0 = (int)split_offset((size_t)cfg->vocab_size, P, rank);
    m->v_local = (int)split_count((size_t)cfg->vocab_size, P, rank);
    m->max_T = max_T < 1 ? 1 : (max_T > cfg->n_positions ? cfg->n_positions : max_T);
    m->context = m->max_T;
    m->n_params = shard_param_floats(m);
    size_t E = (size_t)cfg->n_embd;
    m->params = malloc(m->n_params * sizeof(float));
    m->layers = calloc((size_t)cfg->n_layer, sizeof(gpt2_layer));
    if (!m->params || !m->layers) {
        snprintf(err, errlen, "rank %d: out of memory for %zu MiB of weights", rank,
                 m->n_params * sizeof(float) >> 20);
        gpt2_shard_free(m);
        return -1;
    }
    if (alloc_activations(m, err, errlen)) {
        gpt2_shard_free(m);
        return -1;
    }
    assign_views(m);

    loader ld = {file, err, errlen, 0};
    size_t v0 = (size_t)m->v0, vl = (size_t)m->v_local;
    read_span(&ld, tensor(&ld, -1, "wte.weight"), v0 * E, vl * E, m->wte);
    read_span(&ld, tensor(&ld, -1, "wpe.weight"), 0, (size_t)cfg->n_positions * E, m->wpe);
    for (int l = 0; l < cfg->n_layer && !ld.failed; l++) load_layer(&ld, m, l);
    read_span(&ld, tensor(&ld, -1, "ln_f.weight"), 0, E, m->lnf_w);
    read_span(&ld, tensor(&ld, -1, "ln_f.bias"), 0, E, m->lnf_b);
    if (ld.failed) {
        gpt2_shard_free(m);
        return -1;
    }
    return 0;
}

int gpt2_shard_enable_cache(gpt2_shard *m, int positions, char *err, size_t errlen) {
    if (positions < 1 || positions > m->cfg.n_positions) {
        snprintf(err, errlen, "KV cache of %d positions: must be 1..%d (the model's context)",
                 positions, m->cfg.n_positions);
        return -1;
    }
    size_t hd = (size_t)m->h_local * (size_t)(m->cfg.n_embd / m->cfg.n_head);
    size_t per_layer = 2 * (size_t)positions * hd;
    float *kv = malloc((size_t)m->cfg.n_layer * per_layer * sizeof(float));
    kv_cache *caches = calloc((size_t)m->cfg.n_layer, sizeof(kv_cache));
    int old_context = m->context;
    m->context = positions > m->max_T ? positions : m->max_T;
    if (!kv || !caches || alloc_activations(m, err, errlen)) {
        if (!kv || !caches)
            snprintf(err, errlen, "rank %d: out of memory for a KV cache of %d positions", m->rank,
                     positions);
        free(kv);
        free(caches);
        m->context = old_context;
        return -1;
    }
    for (int l = 0; l < m->cfg.n_layer; l++) {
        caches[l].k = kv + (size_t)l * per_layer;
        caches[l].v = caches[l].k + (size_t)positions * hd;
        caches[l].capacity = positions;
    }
    free(m->kv);
    free(m->caches);
    m->kv = kv;
    m->caches = caches;
    m->cache_len = 0;
    return 0;
}

void gpt2_shard_free(gpt2_shard *m) {
    free(m->params);
    free(m->layers);
    free(m->acts);
    free(m->kv);
    free(m->caches);
    memset(m, 0, sizeof(*m));
}

size_t gpt2_shard_weight_bytes(const gpt2_shard *m) {
    return m->n_params * sizeof(float);
}

/* ---- forward ------------------------------------------------------------------------------ */

static void add_inplace(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* The forward pass of T tokens at positions [pos0, pos0 + T). */
static int forward_at(comm_t *comm, gpt2_shard *m, const int *tokens, int T, int pos0) {
    if (T < 1 || T > m->max_T)
        return comm_fail(comm, "forward: %d tokens, but rank %d allocated for 1..%d", T, m->rank,
                         m->max_T);
    const gpt2_config *c = &m->cfg;
    int E = c->n_embd, D = E / c->n_head;
    size_t n = (size_t)T * (size_t)E;
    char tag[32];
    int rc = vocab_parallel_embedding_forward(comm, m->x, tokens, T, m->wte, m->v0, m->v_local,
                                              m->wpe + (size_t)pos0 * (size_t)E, E, "embed");
    for (int l = 0; l < c->n_layer && !rc; l++) {
        const gpt2_layer *L = &m->layers[l];
        attention_weights aw = {L->qkv_w, L->qkv_b, L->proj_w, L->proj_b, E, D, m->h_local};
        mlp_weights mw = {L->fc_w, L->fc_b, L->fcp_w, L->fcp_b, E, m->f_local, c->activation};
        kv_cache *cache = m->caches ? &m->caches[l] : NULL;

        layernorm_forward(m->ln, m->x, L->ln1_w, L->ln1_b, T, E, c->layer_norm_epsilon);
        snprintf(tag, sizeof(tag), "layer%d.attn", l);
        rc = parallel_attention_forward(comm, m->tmp, m->ln, &aw, T, pos0, cache, m->scratch, tag);
        if (rc) break;
        add_inplace(m->x, m->tmp, n);

        layernorm_forward(m->ln, m->x, L->ln2_w, L->ln2_b, T, E, c->layer_norm_epsilon);
        snprintf(tag, sizeof(tag), "layer%d.mlp", l);
        if ((rc = parallel_mlp_forward(comm, m->tmp, m->ln, &mw, T, m->scratch, tag))) break;
        add_inplace(m->x, m->tmp, n);
    }
    if (rc) return rc;
    layernorm_forward(m->ln, m->x, m->lnf_w, m->lnf_b, T, E, c->layer_norm_epsilon);
    vocab_parallel_lm_head_forward(m->logits, m->ln, m->wte, T, E, m->v_local);
    if (m->caches) m->cache_len = pos0 + T;
    return COMM_OK;
}

int gpt2_forward(comm_t *comm, gpt2_shard *m, const int *tokens, int T) {
    return forward_at(comm, m, tokens, T, 0);
}

int gpt2_extend(comm_t *comm, gpt2_shard *m, const int *tokens, int T) {
    if (!m->caches) return comm_fail(comm, "extend: the shard has no KV cache");
    if (m->cache_len + T > m->caches[0].capacity)
        return comm_fail(comm, "extend: %d cached + %d new positions exceed the cache of %d",
                         m->cache_len, T, m->caches[0].capacity);
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= m->cfg.vocab_size)
            return comm_fail(comm, "extend: token id %d is outside the vocabulary", tokens[t]);
    return forward_at(comm, m, tokens, T, m->cache_len);
}
