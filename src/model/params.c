/* params.c — the parameter table (see params.h): what each rank holds, built from the config
 * and the family's names; reading a rank's slices and placing them back into full tensors. */
#include "linshard/params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "architecture.h"
#include "linshard/split.h"

/* ---- building the table ------------------------------------------------------------------- */

typedef struct {
    const model_config *c;
    const architecture *a;
    model_param *table;
    int n;
    int layer;         /* the layer being listed, or -1 */
    kernel_type wtype; /* the type the shard holds its matrices as */
} table_builder;

/* Marks p as a matrix the kernels read, held as the builder's type, described by *kview. */
static void matrix(table_builder *b, model_param *p, kernel_weight *kview, int out_rows) {
    p->matrix = 1;
    p->out_rows = out_rows;
    p->type = b->wtype;
    p->kview = kview;
}

/* Starts a parameter of local shape [rows, cols] (rows = 1 for 1-D). */
static model_param *param(table_builder *b, const char *name, float **view, size_t rows,
                          size_t cols, int sharded, int decay, float mean, float std) {
    model_param *p = &b->table[b->n++];
    memset(p, 0, sizeof(*p));
    if (b->layer >= 0)
        snprintf(p->name, sizeof(p->name), "layers.%d.%s", b->layer, name);
    else
        snprintf(p->name, sizeof(p->name), "%s", name);
    p->view = view;
    p->rows = rows;
    p->cols = cols;
    p->sharded = sharded;
    p->decay = decay;
    p->init_mean = mean;
    p->init_std = std;
    return p;
}

/* Adds a source block to p: the checkpoint tensor base + suffix (base is a layer-relative name
 * when listing a layer), stored with shape [d0, d1] (d1 = 0: 1-D), block rows [r0, r0 + nr) and
 * columns [c0, c0 + nc) of its internal orientation, into columns from dst_col. */
static void source(table_builder *b, model_param *p, const char *base, const char *suffix,
                   int64_t d0, int64_t d1, int transposed, size_t r0, size_t nr, size_t c0,
                   size_t nc, size_t dst_col) {
    param_source *s = &p->src[p->n_src++];
    char layer[32] = "";
    if (b->layer >= 0) snprintf(layer, sizeof(layer), b->a->layer_fmt, b->layer);
    snprintf(s->name, sizeof(s->name), "%s%s%s", layer, base, suffix);
    s->ndim = d1 ? 2 : 1;
    s->shape[0] = d0;
    s->shape[1] = d1;
    s->transposed = d1 ? transposed : 0;
    s->r0 = r0;
    s->nr = nr;
    s->c0 = c0;
    s->nc = nc;
    s->dst_col = dst_col;
}

/* A replicated vector [n] (norm weight or bias) stored as `base suffix`. */
static void vector(table_builder *b, const char *name, float **view, const char *base,
                   const char *suffix, size_t n, float mean, float std) {
    model_param *p = param(b, name, view, 1, n, 0, 0, mean, std);
    source(b, p, base, suffix, (int64_t)n, 0, 0, 0, 1, 0, n, 0);
}

/* A linear layer's weight: internal [in, out]; stored [in, out] or (transposed) [out, in]. */
static void weight_source(table_builder *b, model_param *p, const char *base, int64_t in,
                          int64_t out, size_t r0, size_t nr, size_t c0, size_t nc, size_t dst_col) {
    int t = b->a->linear_transposed;
    source(b, p, base, ".weight", t ? out : in, t ? in : out, t, r0, nr, c0, nc, dst_col);
}

static void list_layer(table_builder *b, model_shard *m, const head_split *hs, size_t f0,
                       size_t fl) {
    const model_config *c = b->c;
    const architecture *a = b->a;
    model_layer *L = m ? &m->layers[b->layer] : NULL;
#define VIEW(field) (L ? &L->field : NULL)
#define KVIEW(field) (L ? &L->field : NULL)
    size_t E = (size_t)c->n_embd, D = (size_t)c->head_dim, F = (size_t)c->n_ff;
    size_t qd = (size_t)hs->h_local * D, kd = (size_t)hs->kv_local * D;
    size_t q0 = (size_t)hs->h0 * D, k0 = (size_t)hs->kv0 * D;
    size_t QD = (size_t)c->n_head * D, KD = (size_t)c->n_kv_head * D;
    int ln = c->norm == NORM_LAYERNORM;
    const float std = 0.02f, proj_std = 0.02f / sqrtf(2.0f * (float)c->n_layer);

    vector(b, "norm1_w", VIEW(norm1_w), a->norm1, ".weight", E, 1.0f, 0.1f);
    if (ln) vector(b, "norm1_b", VIEW(norm1_b), a->norm1, ".bias", E, 0.0f, 0.1f);

    model_param *p = param(b, "qkv_w", VIEW(qkv_w), E, qd + 2 * kd, 1, 1, 0, std);
    matrix(b, p, KVIEW(qkv), 0);
    if (a->qkv) { /* fused [E, 3E]: Q | K | V column blocks */
        for (size_t part = 0; part < 3; part++)
            weight_source(b, p, a->qkv, (int64_t)E, 3 * (int64_t)E, 0, E,
                          part * E + (part ? k0 : q0), part ? kd : qd,
                          part == 0 ? 0 : qd + (part - 1) * kd);
    } else {
        weight_source(b, p, a->q, (int64_t)E, (int64_t)QD, 0, E, q0, qd, 0);
        weight_source(b, p, a->k, (int64_t)E, (int64_t)KD, 0, E, k0, kd, qd);
        weight_source(b, p, a->v, (int64_t)E, (int64_t)KD, 0, E, k0, kd, qd + kd);
    }
    if (c->qkv_bias) {
        p = param(b, "qkv_b", VIEW(qkv_b), 1, qd + 2 * kd, 1, 0, 0, std);
        if (a->qkv) {
            for (size_t part = 0; part < 3; part++)
                source(b, p, a->qkv, ".bias", 3 * (int64_t)E, 0, 0, 0, 1,
                       part * E + (part ? k0 : q0), part ? kd : qd,
                       part == 0 ? 0 : qd + (part - 1) * kd);
        } else {
            source(b, p, a->q, ".bias", (int64_t)QD, 0, 0, 0, 1, q0, qd, 0);
            source(b, p, a->k, ".bias", (int64_t)KD, 0, 0, 0, 1, k0, kd, qd);
            source(b, p, a->v, ".bias", (int64_t)KD, 0, 0, 0, 1, k0, kd, qd + kd);
        }
    }
    if (c->qk_norm) {
        vector(b, "q_norm_w", VIEW(q_norm_w), a->q_norm, ".weight", D, 1.0f, 0.1f);
        vector(b, "k_norm_w", VIEW(k_norm_w), a->k_norm, ".weight", D, 1.0f, 0.1f);
    }
    p = param(b, "proj_w", VIEW(proj_w), qd, E, 1, 1, 0, proj_std);
    matrix(b, p, KVIEW(proj), 0);
    weight_source(b, p, a->o, (int64_t)QD, (int64_t)E, q0, qd, 0, E, 0);
    if (c->out_bias) vector(b, "proj_b", VIEW(proj_b), a->o, ".bias", E, 0, std);

    vector(b, "norm2_w", VIEW(norm2_w), a->norm2, ".weight", E, 1.0f, 0.1f);
    if (ln) vector(b, "norm2_b", VIEW(norm2_b), a->norm2, ".bias", E, 0.0f, 0.1f);

    if (c->mlp == MLP_GELU) {
        p = param(b, "fc_w", VIEW(fc_w), E, fl, 1, 1, 0, std);
        matrix(b, p, KVIEW(fc), 0);
        weight_source(b, p, a->fc, (int64_t)E, (int64_t)F, 0, E, f0, fl, 0);
        if (c->mlp_bias) {
            p = param(b, "fc_b", VIEW(fc_b), 1, fl, 1, 0, 0, std);
            source(b, p, a->fc, ".bias", (int64_t)F, 0, 0, 0, 1, f0, fl, 0);
        }
    } else { /* [gate | up], the same column slice of each */
        p = param(b, "fc_w", VIEW(fc_w), E, 2 * fl, 1, 1, 0, std);
        matrix(b, p, KVIEW(fc), 0);
        weight_source(b, p, a->gate, (int64_t)E, (int64_t)F, 0, E, f0, fl, 0);
        weight_source(b, p, a->up, (int64_t)E, (int64_t)F, 0, E, f0, fl, fl);
        if (c->mlp_bias) {
            p = param(b, "fc_b", VIEW(fc_b), 1, 2 * fl, 1, 0, 0, std);
            source(b, p, a->gate, ".bias", (int64_t)F, 0, 0, 0, 1, f0, fl, 0);
            source(b, p, a->up, ".bias", (int64_t)F, 0, 0, 0, 1, f0, fl, fl);
        }
    }
    p = param(b, "fcp_w", VIEW(fcp_w), fl, E, 1, 1, 0, proj_std);
    matrix(b, p, KVIEW(fcp), 0);
    weight_source(b, p, a->down, (int64_t)F, (int64_t)E, f0, fl, 0, E, 0);
    if (c->mlp_bias) vector(b, "fcp_b", VIEW(fcp_b), a->down, ".bias", E, 0, std);
#undef VIEW
#undef KVIEW
}

/* A matrix's K (inputs) and N (outputs) from its internal shape. */
static size_t inputs_of(const model_param *p) {
    return p->out_rows ? p->cols : p->rows;
}
static size_t outputs_of(const model_param *p) {
    return p->out_rows ? p->rows : p->cols;
}

/* Bytes of a matrix held as a typed [N][K] array. */
static size_t typed_bytes(const model_param *p) {
    return outputs_of(p) * kernel_row_bytes(p->type, inputs_of(p));
}

int model_param_table_max(const model_config *cfg) {
    return 8 + 16 * cfg->n_layer;
}

static int build_table(const model_config *c, int P, int r, model_param *table, model_shard *m,
                       const architecture *names, kernel_type wtype);

int model_param_table(const model_config *c, int P, int r, model_param *table, model_shard *m) {
    kernel_type wtype = m ? m->wtype : KERNEL_F32;
    const architecture *names =
        m && m->gguf_names ? architecture_gguf(c->family) : architecture_of(c->family);
    return build_table(c, P, r, table, m, names, wtype);
}

int model_param_table_gguf(const model_config *c, model_param *table) {
    return build_table(c, 1, 0, table, NULL, architecture_gguf(c->family), KERNEL_F32);
}

static int build_table(const model_config *c, int P, int r, model_param *table, model_shard *m,
                       const architecture *names, kernel_type wtype) {
    table_builder b = {c, names, table, 0, -1, wtype};
    size_t E = (size_t)c->n_embd, V = (size_t)c->vocab_size, N = (size_t)c->n_positions;
    size_t v0 = split_offset(V, P, r), vl = split_count(V, P, r);
    int f0i, fli;
    model_ff_split(c, P, r, m ? m->split_block : 1, &f0i, &fli);
    size_t f0 = (size_t)f0i, fl = (size_t)fli;
    head_split hs = model_head_split(c, P, r);

    model_param *p = param(&b, "wte", m ? &m->wte : NULL, vl, E, 1, 1, 0, 0.02f);
    matrix(&b, p, m ? &m->embed : NULL, 1);
    source(&b, p, b.a->embed, "", (int64_t)V, (int64_t)E, 0, v0, vl, 0, E, 0);
    if (c->learned_pos) {
        p = param(&b, "wpe", m ? &m->wpe : NULL, N, E, 0, 1, 0, 0.01f);
        source(&b, p, b.a->positions, "", (int64_t)N, (int64_t)E, 0, 0, N, 0, E, 0);
    }
    for (b.layer = 0; b.layer < c->n_layer; b.layer++) list_layer(&b, m, &hs, f0, fl);
    b.layer = -1;
    vector(&b, "normf_w", m ? &m->normf_w : NULL, b.a->norm_f, ".weight", E, 1.0f, 0.1f);
    if (c->norm == NORM_LAYERNORM)
        vector(&b, "normf_b", m ? &m->normf_b : NULL, b.a->norm_f, ".bias", E, 0.0f, 0.1f);
    if (!c->tied) {
        p = param(&b, "lm_head", m ? &m->lm_head : NULL, vl, E, 1, 1, 0, 0.02f);
        matrix(&b, p, m ? &m->head : NULL, 1);
        source(&b, p, b.a->lm_head, "", (int64_t)V, (int64_t)E, 0, v0, vl, 0, E, 0);
    }
    size_t offset = 0, bytes = 0;
    for (int i = 0; i < b.n; i++) {
        model_param *q = &table[i];
        if (q->matrix && q->type != KERNEL_F32) {
            q->byte_offset = bytes;
            bytes += typed_bytes(q);
        } else {
            q->offset = offset;
            offset += q->rows * q->cols;
        }
    }
    return b.n;
}

size_t model_param_table_floats(const model_param *table, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++)
        if (!table[i].matrix || table[i].type == KERNEL_F32) total += table[i].rows * table[i].cols;
    return total;
}

size_t model_param_table_typed_bytes(const model_param *table, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++)
        if (table[i].matrix && table[i].type != KERNEL_F32) total += typed_bytes(&table[i]);
    return total;
}

static size_t table_floats_of(const model_config *cfg, int P, int r) {
    int max = model_param_table_max(cfg);
    model_param *t = malloc((size_t)max * sizeof(*t));
    if (!t) return 0;
    int n = model_param_table(cfg, P, r, t, NULL);
    size_t total = model_param_table_floats(t, n);
    free(t);
    return total;
}

size_t model_rank_param_floats(const model_config *cfg, int P, int r) {
    return table_floats_of(cfg, P, r);
}

size_t model_total_param_floats(const model_config *cfg) {
    return table_floats_of(cfg, 1, 0);
}

/* ---- names -------------------------------------------------------------------------------- */

const st_tensor *model_find_tensor(const model_config *cfg, const st_set *weights,
                                   const char *prefix, const char *name, const st_file **file) {
    const char *accept = architecture_of(cfg->family)->accept_prefix;
    char full[ST_NAME_MAX + 64];
    const st_tensor *t = NULL;
    if (accept[0]) { /* "m." + "transformer." + name: the optional prefix after the caller's */
        snprintf(full, sizeof(full), "%s%s%s", prefix, accept, name);
        t = st_set_find(weights, full, file);
    }
    if (!t) {
        snprintf(full, sizeof(full), "%s%s", prefix, name);
        t = st_set_find(weights, full, file);
    }
    return t;
}

void model_save_name(const model_config *cfg, const char *name, char *out, size_t len) {
    snprintf(out, len, "%s%s", architecture_of(cfg->family)->save_prefix, name);
}

/* ---- reading and placing blocks ------------------------------------------------------------ */

/* A block is a run of contiguous elements in each of `runs` stored rows. Element e of run k
 * lands at local index k * ld + dst_col + e, or (transposed) e * ld + dst_col + k. */
typedef struct {
    size_t runs, run_len, first, stored_cols, col0;
} block_runs;

static block_runs runs_of(const param_source *s) {
    size_t cols = s->ndim == 2 ? (size_t)s->shape[1] : (size_t)s->shape[0];
    if (s->transposed) /* stored [C, R]: stored rows are the block's internal columns */
        return (block_runs){s->nc, s->nr, s->c0, cols, s->r0};
    return (block_runs){s->nr, s->nc, s->r0, cols, s->c0};
}

static size_t local_index(const param_source *s, size_t ld, size_t k, size_t e) {
    return s->transposed ? e * ld + s->dst_col + k : k * ld + s->dst_col + e;
}

/* Stored rows read per pass of a transposed block: they become a band of TILE consecutive
 * columns, written TILE floats at a time instead of one float per cache line. */
#define TILE 64

/* Index of the first NaN or infinity of x[0..n), or n. A model with one such weight runs to
 * NaN logits and loss without any error, so loading refuses it; the block was just read, so
 * the check costs a pass over data already in cache. */
static size_t first_non_finite(const float *x, size_t n) {
    int all = 1;
    for (size_t i = 0; i < n; i++) all &= isfinite(x[i]) != 0; /* branch-free: vectorises */
    if (all) return n;
    size_t i = 0;
    while (isfinite(x[i])) i++;
    return i;
}

int model_param_read_with(const model_param *p, const model_weight_reader *rd, float *dst,
                          char *err, size_t errlen) {
    float *tile = NULL;
    size_t bad;
    int rc = 0;
    for (int i = 0; i < p->n_src && !rc; i++) {
        const param_source *s = &p->src[i];
        char name[ST_NAME_MAX + 64];
        const void *t = rd->find(rd->ctx, s, name, sizeof(name), err, errlen);
        if (!t) {
            rc = -1;
            break;
        }
        block_runs b = runs_of(s);
        if (s->transposed) {
            float *grown = realloc(tile, TILE * (b.run_len ? b.run_len : 1) * sizeof(float));
            if (!grown) {
                snprintf(err, errlen, "out of memory reading '%s'", name);
                rc = -1;
                break;
            }
            tile = grown;
        }
        for (size_t k0 = 0; k0 < b.runs && !rc; k0 += TILE) {
            size_t nk = b.runs - k0 < TILE ? b.runs - k0 : TILE;
            for (size_t k = k0; k < k0 + nk && !rc; k++) {
                size_t start = (b.first + k) * b.stored_cols + b.col0;
                float *out = s->transposed ? tile + (k - k0) * b.run_len
                                           : dst + local_index(s, p->cols, k, 0);
                if (rd->read(rd->ctx, t, start, b.run_len, out, err, errlen) != 0) {
                    rc = -1;
                } else if ((bad = first_non_finite(out, b.run_len)) < b.run_len) {
                    snprintf(err, errlen,
                             "tensor '%s' holds a non-finite value (%g at element %zu): the "
                             "checkpoint is corrupt or diverged",
                             name, (double)out[bad], start + bad);
                    rc = -1;
                }
            }
            if (s->transposed && !rc) /* stored rows k0.. are columns k0.. of the parameter */
                for (size_t e = 0; e < b.run_len; e++) {
                    float *out = dst + local_index(s, p->cols, k0, e);
                    for (size_t k = 0; k < nk; k++) out[k] = tile[k * b.run_len + e];
                }
        }
    }
    free(tile);
    return rc;
}

/* ---- the safetensors reader ---------------------------------------------------------------- */

static const void *st_find_source(void *ctx, const param_source *s, char *name, size_t namelen,
                                  char *err, size_t errlen) {
    model_st_reader *r = ctx;
    const st_tensor *t = model_find_tensor(r->cfg, r->weights, r->prefix, s->name, &r->file);
    snprintf(name, namelen, "%s", t ? t->name : s->name);
    if (!t) {
        snprintf(err, errlen, "missing tensor '%s%s'", r->prefix, s->name);
        return NULL;
    }
    if (t->ndim != s->ndim || t->shape[0] != s->shape[0] ||
        (s->ndim == 2 && t->shape[1] != s->shape[1])) {
        snprintf(err, errlen, "tensor '%s' does not have the shape the config implies", t->name);
        return NULL;
    }
    if (!st_dtype_readable(t->dtype)) {
        snprintf(err, errlen, "tensor '%s' has dtype %s: linshard reads F32, F16 and BF16", t->name,
                 st_dtype_name(t->dtype));
        return NULL;
    }
    return t;
}

static int st_read_run(void *ctx, const void *tensor, size_t start, size_t count, float *out,
                       char *err, size_t errlen) {
    const model_st_reader *r = ctx;
    const st_tensor *t = tensor;
    if (st_read_f32(r->file, t, start, count, out) == 0) return 0;
    snprintf(err, errlen, "cannot read tensor '%s' (shape or size mismatch)", t->name);
    return -1;
}

/* A 2-D F32/F16/BF16 tensor's bytes in the mapped file (or the image in memory). */
static int st_stored(void *ctx, const void *tensor, model_stored_bytes *out) {
    const model_st_reader *r = ctx;
    const st_tensor *t = tensor;
    kernel_type k = t->dtype == ST_F16    ? KERNEL_F16
                    : t->dtype == ST_BF16 ? KERNEL_BF16
                    : t->dtype == ST_F32  ? KERNEL_F32
                                          : KERNEL_TYPE_COUNT;
    size_t es = st_dtype_size(t->dtype);
    if (k == KERNEL_TYPE_COUNT || !r->file || !r->file->data || t->ndim != 2 || t->begin > t->end ||
        t->end > r->file->data_size || t->end - t->begin != t->numel * es)
        return 0;
    out->data = r->file->data + t->begin;
    out->type = k;
    out->row_bytes = (size_t)t->shape[1] * es;
    return 1;
}

int model_param_read(const model_config *cfg, const model_param *p, const st_set *weights,
                     const char *prefix, float *dst, char *err, size_t errlen) {
    model_st_reader ctx;
    model_weight_reader rd = model_st_reader_init(&ctx, cfg, weights, prefix);
    return model_param_read_with(p, &rd, dst, err, errlen);
}

model_weight_reader model_st_reader_init(model_st_reader *ctx, const model_config *cfg,
                                         const st_set *weights, const char *prefix) {
    *ctx = (model_st_reader){cfg, weights, prefix, NULL};
    model_weight_reader rd = {st_find_source, st_read_run, ctx, st_stored, NULL, NULL};
    return rd;
}

void model_param_place(const param_source *s, const model_param *p, const float *src, float *full) {
    block_runs b = runs_of(s);
    for (size_t k = 0; k < b.runs; k++) {
        float *out = full + (b.first + k) * b.stored_cols + b.col0;
        for (size_t e = 0; e < b.run_len; e++) out[e] = src[local_index(s, p->cols, k, e)];
    }
}

int model_param_store_typed(const model_param *p, const float *src, void *dst) {
    const kernel_type_traits *tr = kernel_type_info(p->type);
    size_t K = inputs_of(p), N = outputs_of(p), rb = kernel_row_bytes(p->type, K);
    unsigned char *out = dst;
    if (p->out_rows) { /* already [N][K] */
        for (size_t n = 0; n < N; n++) tr->from_f32(src + n * K, out + n * rb, K);
        return 0;
    }
    /* [K][N] -> [N][K], BAND outputs at a time: each stored row k gives BAND contiguous floats
     * (one cache line's worth or more), not one float per line. */
    enum { BAND = 16 };
    float *rows = malloc(BAND * K * sizeof(float));
    if (!rows) return -1;
    for (size_t n0 = 0; n0 < N; n0 += BAND) {
        size_t nb = N - n0 < BAND ? N - n0 : BAND;
        for (size_t k = 0; k < K; k++)
            for (size_t j = 0; j < nb; j++) rows[j * K + k] = src[k * N + n0 + j];
        for (size_t j = 0; j < nb; j++) tr->from_f32(rows + j * K, out + (n0 + j) * rb, K);
    }
    free(rows);
    return 0;
}

int model_stored_matrix_type(const model_config *cfg, const st_set *weights) {
    int max = model_param_table_max(cfg), found = -1;
    model_param *table = malloc((size_t)max * sizeof(*table));
    if (!table) return KERNEL_F32;
    int n = model_param_table(cfg, 1, 0, table, NULL);
    for (int i = 0; i < n; i++) {
        if (!table[i].matrix) continue;
        for (int k = 0; k < table[i].n_src; k++) {
            const st_tensor *t = model_find_tensor(cfg, weights, "", table[i].src[k].name, NULL);
            if (!t) continue;
            int type = t->dtype == ST_F16    ? KERNEL_F16
                       : t->dtype == ST_BF16 ? KERNEL_BF16
                                             : KERNEL_F32;
            if (found >= 0 && type != found) found = KERNEL_F32; /* mixed: widen */
            if (found < 0) found = type;
        }
    }
    free(table);
    return found < 0 ? KERNEL_F32 : found;
}
