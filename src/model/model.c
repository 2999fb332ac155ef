/* model.c — one rank's shard of a transformer: which heads it owns, loading its slices through
 * the parameter table, the checks of a checkpoint, and the forward pass (see model.h). */
#include "linshard/model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/params.h"
#include "linshard/split.h"

/* ---- heads ------------------------------------------------------------------------------- */

head_split model_head_split(const model_config *cfg, int P, int r) {
    head_split hs;
    hs.h0 = (int)split_offset((size_t)cfg->n_head, P, r);
    hs.h_local = (int)split_count((size_t)cfg->n_head, P, r);
    /* Query head h reads K/V head h / group: this rank needs the K/V heads of its first and
     * last query heads and everything between. */
    int group = cfg->n_head / cfg->n_kv_head;
    hs.kv0 = hs.h0 / group;
    hs.kv_local = (hs.h0 + hs.h_local - 1) / group - hs.kv0 + 1;
    return hs;
}

/* ---- checks -------------------------------------------------------------------------------- */

static void format_shape(char *buf, size_t len, int ndim, const int64_t *shape) {
    int n = snprintf(buf, len, "[");
    for (int i = 0; i < ndim && n > 0 && (size_t)n < len; i++)
        n += snprintf(buf + n, len - (size_t)n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n > 0 && (size_t)n < len) snprintf(buf + n, len - (size_t)n, "]");
}

int model_check_weights(const model_config *cfg, const st_set *weights, char *err, size_t errlen) {
    int max = model_param_table_max(cfg), rc = 0;
    model_param *table = malloc((size_t)max * sizeof(*table));
    if (!table) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int n = model_param_table(cfg, 1, 0, table, NULL);
    const char *accept = cfg->family == FAMILY_GPT2 ? " (or 'transformer.%s')" : "";
    for (int i = 0; i < n && !rc; i++)
        for (int j = 0; j < table[i].n_src && !rc; j++) {
            const param_source *s = &table[i].src[j];
            const st_tensor *t = model_find_tensor(cfg, weights, "", s->name, NULL);
            if (!t) {
                char also[ST_NAME_MAX + 32] = "";
                if (*accept) snprintf(also, sizeof(also), accept, s->name);
                snprintf(err, errlen, "weights: missing tensor '%s'%s", s->name, also);
                rc = -1;
            } else if (t->ndim != s->ndim || t->shape[0] != s->shape[0] ||
                       (t->ndim == 2 && t->shape[1] != s->shape[1])) {
                char got[128], want[64];
                format_shape(got, sizeof(got), t->ndim, t->shape);
                format_shape(want, sizeof(want), s->ndim, s->shape);
                snprintf(err, errlen,
                         "weights: tensor '%s' has shape %s but config.json implies %s", t->name,
                         got, want);
                rc = -1;
            }
        }
    free(table);
    return rc;
}

int model_check_tokens(const model_config *cfg, const int *tokens, int T, char *err,
                       size_t errlen) {
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

attention_weights model_layer_attention(const model_shard *m, int l) {
    const model_config *c = &m->cfg;
    const model_layer *L = &m->layers[l];
    attention_weights aw = {.qkv = L->qkv,
                            .qkv_b = L->qkv_b,
                            .proj = L->proj,
                            .proj_b = L->proj_b,
                            .E = c->n_embd,
                            .D = c->head_dim,
                            .h_local = m->heads.h_local,
                            .kv_local = m->heads.kv_local,
                            .group = c->n_head / c->n_kv_head,
                            .h0 = m->heads.h0,
                            .kv0 = m->heads.kv0,
                            .q_norm = L->q_norm_w,
                            .k_norm = L->k_norm_w,
                            .norm_eps = c->norm_eps,
                            .rope = m->rope};
    return aw;
}

mlp_weights model_layer_mlp(const model_shard *m, int l) {
    const model_layer *L = &m->layers[l];
    mlp_weights mw = {.fc = L->fc,
                      .fc_b = L->fc_b,
                      .proj = L->fcp,
                      .proj_b = L->fcp_b,
                      .E = m->cfg.n_embd,
                      .f_local = m->f_local,
                      .gelu = m->cfg.gelu,
                      .gated = m->cfg.mlp == MLP_SWIGLU};
    return mw;
}

static size_t scratch_floats(const model_shard *m, int T, int context) {
    attention_weights aw = model_layer_attention(m, 0);
    size_t att = attention_scratch_floats(&aw, T, context);
    size_t step = attention_decode_scratch_floats(&aw, T, context);
    if (step > att) att = step;
    size_t mlp = (size_t)T * (size_t)m->f_local * (m->cfg.mlp == MLP_SWIGLU ? 2 : 1);
    return att > mlp ? att : mlp;
}

/* (Re)allocates the activations for max_T tokens attending to up to m->context positions. */
static int alloc_activations(model_shard *m, char *err, size_t errlen) {
    size_t E = (size_t)m->cfg.n_embd, T = (size_t)m->max_T;
    size_t scratch = scratch_floats(m, m->max_T, m->context);
    size_t rope = m->cfg.learned_pos ? 0 : T * (size_t)m->cfg.head_dim;
    size_t n_acts = 3 * T * E + scratch + rope + T * (size_t)m->v_local;
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
    m->rope = rope ? m->scratch + scratch : NULL;
    m->logits = m->scratch + scratch + rope;
    return 0;
}

void model_ff_split(const model_config *cfg, int P, int r, int block_size, int *f0, int *f_local) {
    size_t block = block_size > 0 ? (size_t)block_size : 1, units = (size_t)cfg->n_ff / block;
    *f0 = (int)(split_offset(units, P, r) * block);
    *f_local = (int)(split_count(units, P, r) * block);
}

int model_check_weight_type(const model_config *cfg, kernel_type wtype, char *err, size_t errlen) {
    const kernel_type_traits *t = kernel_type_info(wtype);
    if (!t) {
        snprintf(err, errlen, "weight type %d is not one linshard knows", (int)wtype);
        return -1;
    }
    /* The reduction dimensions: E (QKV, MLP up, LM head, embedding rows), a rank's heads * D
     * (attention out), a rank's MLP features (MLP down; split in whole blocks). */
    struct {
        const char *name;
        int value;
    } dims[] = {{"hidden size", cfg->n_embd}, {"head_dim", cfg->head_dim}, {"n_ff", cfg->n_ff}};
    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
        if (dims[i].value % t->block) {
            snprintf(err, errlen,
                     "weights as %s need every row to be whole blocks of %d values: %s %d is "
                     "not a multiple of %d (use f16, bf16 or f32)",
                     t->name, t->block, dims[i].name, dims[i].value, t->block);
            return -1;
        }
    return 0;
}

int model_shard_load(model_shard *m, const model_config *cfg, const st_set *weights, int rank,
                     int P, int max_T, char *err, size_t errlen) {
    return model_shard_load_as(m, cfg, weights, rank, P, max_T, KERNEL_F32, err, errlen);
}

/* Points p's views at its storage: the float buffer, or the typed buffer as [N][K] rows. */
static void set_views(model_shard *m, const model_param *p) {
    int K = (int)(p->out_rows ? p->cols : p->rows), N = (int)(p->out_rows ? p->rows : p->cols);
    if (!p->matrix || p->type == KERNEL_F32) {
        float *data = m->params + p->offset;
        *p->view = data;
        if (p->matrix)
            *p->kview =
                p->out_rows ? kernel_weight_f32_out_in(data, K, N) : kernel_weight_f32(data, K, N);
        return;
    }
    *p->view = NULL;
    kernel_weight w = {p->type, KERNEL_OUT_IN, K, N, m->typed + p->byte_offset};
    *p->kview = w;
}

/* Reads p through rd (then rd's after hook) and stores it: F32 tensors straight into the float
 * buffer, other types through an F32 copy converted into the typed buffer. */
static int read_param(model_shard *m, const model_param *p, const model_weight_reader *rd,
                      void (*after)(void *ctx, const model_param *p, float *data), void *after_ctx,
                      char *why, size_t whylen) {
    int typed = p->matrix && p->type != KERNEL_F32;
    float *dst = typed ? malloc(p->rows * p->cols * sizeof(float)) : m->params + p->offset;
    if (!dst) {
        snprintf(why, whylen, "out of memory converting %s", p->name);
        return -1;
    }
    int rc = model_param_read_with(p, rd, dst, why, whylen);
    if (!rc && after) after(after_ctx, p, dst);
    if (!rc && typed && model_param_store_typed(p, dst, m->typed + p->byte_offset)) {
        snprintf(why, whylen, "out of memory converting %s", p->name);
        rc = -1;
    }
    if (typed) free(dst);
    return rc;
}

/* ---- matrices as stored ------------------------------------------------------------------- */

/* A source block of a matrix as stored bytes. Stored row `first + k` (k < runs) holds values
 * [col0, col0 + run_len) of the block. rows_out: stored rows are outputs (an [out, in] tensor,
 * or an embedding's vocabulary rows), so each run is a stretch of one [N][K] row; otherwise
 * (GPT-2's Conv1D [in, out]) stored rows are inputs and the block is transposed. */
typedef struct {
    const void *tensor;
    model_stored_bytes sb;
    size_t first, runs, run_len, col0, stored_cols;
    size_t out0, in0; /* the block's first output row and first input of the [N][K] array */
    int rows_out;
    char name[ST_NAME_MAX + 64];
} stored_block;

typedef struct {
    int usable; /* every block is in memory as p->type, in a layout copied as bytes */
    const unsigned char *in_place; /* p's [N][K] rows, contiguous in the source, or NULL */
    int n;
    stored_block b[3];
} stored_plan;

/* Whether p can be held as its stored bytes, and where (see stored_plan). Never fails: anything
 * unusual leaves usable 0, and the F32 path reads p (and reports any error). */
static void plan_stored(const model_param *p, const model_weight_reader *rd, int has_after,
                        stored_plan *pl) {
    memset(pl, 0, sizeof(*pl));
    if (!p->matrix || p->type == KERNEL_F32 || !rd->stored || p->n_src < 1 || p->n_src > 3) return;
    if (has_after && !rd->permute_rows) return;
    const kernel_type_traits *tr = kernel_type_info(p->type);
    size_t blk = (size_t)tr->block, K = p->out_rows ? p->cols : p->rows;
    char err[8];
    for (int i = 0; i < p->n_src; i++) {
        const param_source *s = &p->src[i];
        stored_block *b = &pl->b[i];
        b->tensor = rd->find(rd->ctx, s, b->name, sizeof(b->name), err, sizeof(err));
        if (!b->tensor || s->ndim != 2 || !rd->stored(rd->ctx, b->tensor, &b->sb) ||
            b->sb.type != p->type)
            return;
        b->stored_cols = (size_t)s->shape[1];
        if (b->sb.row_bytes != kernel_row_bytes(p->type, b->stored_cols)) return;
        b->rows_out = p->out_rows ? !s->transposed : s->transposed;
        /* runs_of (params.c): a transposed block's stored rows are its internal columns. */
        b->first = s->transposed ? s->c0 : s->r0;
        b->runs = s->transposed ? s->nc : s->nr;
        b->col0 = s->transposed ? s->r0 : s->c0;
        b->run_len = s->transposed ? s->nr : s->nc;
        b->out0 = p->out_rows ? 0 : s->dst_col;
        b->in0 = p->out_rows ? s->dst_col : 0;
        if (b->rows_out) {
            if (b->col0 % blk || b->run_len % blk || b->in0 % blk) return;
        } else if (blk != 1 || p->out_rows || kernel_row_bytes(p->type, 1) != 2) {
            return; /* only a 16-bit [in, out] tensor is transposed as bytes */
        }
    }
    pl->usable = 1;
    pl->n = p->n_src;
    /* In place: [out, in] whole rows, consecutive in one tensor in the parameter's order. */
    if (!rd->keep || (has_after && rd->permute_rows(rd->ctx, p, NULL, 0))) return;
    size_t next_row = pl->b[0].first, next_out = 0;
    for (int i = 0; i < pl->n; i++) {
        const stored_block *b = &pl->b[i];
        if (!b->rows_out || b->tensor != pl->b[0].tensor || b->col0 || b->run_len != K ||
            b->stored_cols != K || b->in0 || b->first != next_row || b->out0 != next_out)
            return;
        next_row += b->runs;
        next_out += b->runs;
    }
    const unsigned char *rows = pl->b[0].sb.data + pl->b[0].first * pl->b[0].sb.row_bytes;
    /* The typed kernels read 16-bit values and block scales: they need 2-byte alignment. */
    if (kernel_row_bytes(p->type, blk) % 2 == 0 && (uintptr_t)rows % 2) return;
    pl->in_place = rows;
}

/* Checks n values of type t at bytes (whole blocks) finite: F16/BF16 values, Q8_0/Q4_0 block
 * scales (a finite scale gives finite values). 0, or -1 with the message model_param_read_with
 * gives for the first non-finite value (start: the element index of bytes in the tensor). */
static int check_stored_finite(kernel_type t, const unsigned char *bytes, size_t n,
                               const char *name, size_t start, char *why, size_t whylen) {
    const kernel_type_traits *tr = kernel_type_info(t);
    size_t blk = (size_t)tr->block, step = tr->block_bytes, blocks = n / blk;
    uint16_t mask = t == KERNEL_BF16 ? 0x7f80u : 0x7c00u; /* the exponent of bf16, or of f16 */
    int bad = 0;
    if (step == 2) { /* F16/BF16: chunks copied to aligned 16-bit values, so the test vectorises */
        uint16_t chunk[512];
        for (size_t i0 = 0; i0 < blocks; i0 += 512) {
            size_t nb = blocks - i0 < 512 ? blocks - i0 : 512;
            memcpy(chunk, bytes + 2 * i0, nb * 2);
            for (size_t i = 0; i < nb; i++) bad |= (chunk[i] & mask) == mask;
        }
    } else { /* the block types: each block's scale */
        for (size_t i = 0; i < blocks; i++) {
            unsigned h = (unsigned)bytes[i * step] | (unsigned)bytes[i * step + 1] << 8;
            bad |= (h & mask) == mask;
        }
    }
    if (!bad) return 0;
    for (size_t i = 0; i < blocks; i++) {
        float v[KERNEL_QK];
        tr->to_f32(bytes + i * step, v, blk);
        for (size_t j = 0; j < blk; j++)
            if (!isfinite(v[j])) {
                snprintf(why, whylen,
                         "tensor '%s' holds a non-finite value (%g at element %zu): the "
                         "checkpoint is corrupt or diverged",
                         name, (double)v[j], start + i * blk + j);
                return -1;
            }
    }
    return 0;
}

/* Copies p's blocks as bytes into its [N][K] rows at dst (checking each run finite), then lets
 * the reader reorder them. */
static int copy_stored(const model_param *p, const stored_plan *pl, const model_weight_reader *rd,
                       int has_after, unsigned char *dst, char *why, size_t whylen) {
    const kernel_type_traits *tr = kernel_type_info(p->type);
    size_t blk = (size_t)tr->block, bb = tr->block_bytes;
    size_t K = p->out_rows ? p->cols : p->rows, rb = kernel_row_bytes(p->type, K);
    for (int i = 0; i < pl->n; i++) {
        const stored_block *b = &pl->b[i];
        if (b->rows_out) {
            size_t bytes = b->run_len / blk * bb;
            for (size_t k = 0; k < b->runs; k++) {
                const unsigned char *src =
                    b->sb.data + (b->first + k) * b->sb.row_bytes + b->col0 / blk * bb;
                if (check_stored_finite(p->type, src, b->run_len, b->name,
                                        (b->first + k) * b->stored_cols + b->col0, why, whylen))
                    return -1;
                memcpy(dst + (b->out0 + k) * rb + b->in0 / blk * bb, src, bytes);
            }
            continue;
        }
        /* [in, out] 16-bit values: stored row first + k is input k; value e of it is output
         * out0 + e. BAND outputs at a time, so each stored row gives a run of BAND values. */
        enum { BAND = 32 };
        for (size_t k = 0; k < b->runs; k++) {
            const unsigned char *src = b->sb.data + (b->first + k) * b->sb.row_bytes;
            if (check_stored_finite(p->type, src + b->col0 * 2, b->run_len, b->name,
                                    (b->first + k) * b->stored_cols + b->col0, why, whylen))
                return -1;
        }
        for (size_t e0 = 0; e0 < b->run_len; e0 += BAND) {
            size_t ne = b->run_len - e0 < BAND ? b->run_len - e0 : BAND;
            for (size_t k = 0; k < b->runs; k++) {
                const unsigned char *src =
                    b->sb.data + (b->first + k) * b->sb.row_bytes + (b->col0 + e0) * 2;
                for (size_t e = 0; e < ne; e++)
                    memcpy(dst + (b->out0 + e0 + e) * rb + k * 2, src + e * 2, 2);
            }
        }
    }
    if (has_after) rd->permute_rows(rd->ctx, p, dst, rb);
    return 0;
}

/* Points p's kernel view at its [N][K] rows. */
static void set_typed_view(const model_param *p, const void *rows) {
    int K = (int)(p->out_rows ? p->cols : p->rows), N = (int)(p->out_rows ? p->rows : p->cols);
    kernel_weight w = {p->type, KERNEL_OUT_IN, K, N, rows};
    *p->view = NULL;
    *p->kview = w;
}

/* Bytes of p held as its type: [N][K] rows. */
static size_t param_typed_bytes(const model_param *p) {
    size_t K = p->out_rows ? p->cols : p->rows, N = p->out_rows ? p->rows : p->cols;
    return N * kernel_row_bytes(p->type, K);
}

/* Decides which matrices are used in place, and sizes the typed buffer for the rest (setup
 * sized it for all; the memory it allocated was never touched, so replacing it is cheap). */
static int place_matrices(model_shard *m, const model_weight_reader *rd, int has_after,
                          const unsigned char **in_place, char *err, size_t errlen) {
    size_t bytes = 0, mapped = 0;
    for (int i = 0; i < m->n_table; i++) {
        model_param *p = &m->table[i];
        if (!p->matrix || p->type == KERNEL_F32) continue;
        stored_plan pl;
        plan_stored(p, rd, has_after, &pl);
        in_place[i] = pl.in_place;
        if (pl.in_place) {
            mapped += param_typed_bytes(p);
        } else {
            p->byte_offset = bytes;
            bytes += param_typed_bytes(p);
        }
    }
    if (!mapped) return 0;
    free(m->typed);
    m->typed = bytes ? malloc(bytes) : NULL;
    m->typed_bytes = bytes;
    if (bytes && !m->typed) {
        snprintf(err, errlen, "rank %d: out of memory for %zu MiB of weights", m->rank,
                 bytes >> 20);
        return -1;
    }
    m->mapped_bytes = mapped;
    model_keep_retain(rd->keep);
    m->keep = rd->keep;
    for (int i = 0; i < m->n_table; i++) {
        const model_param *p = &m->table[i];
        if (p->matrix && p->type != KERNEL_F32)
            set_typed_view(p, in_place[i] ? (const void *)in_place[i] : m->typed + p->byte_offset);
    }
    if (m->cfg.tied) m->head = m->embed;
    return 0;
}

int model_shard_setup(model_shard *m, const model_config *cfg, int rank, int P, int max_T,
                      kernel_type wtype, int gguf_names, int split_block, char *err,
                      size_t errlen) {
    memset(m, 0, sizeof(*m));
    if (model_config_check(cfg, err, errlen) || model_config_check_tp(cfg, P, err, errlen) ||
        model_check_weight_type(cfg, wtype, err, errlen))
        return -1;
    m->cfg = *cfg;
    m->rank = rank;
    m->P = P;
    m->wtype = wtype;
    m->gguf_names = gguf_names;
    m->split_block = split_block > 0 ? split_block : kernel_type_info(wtype)->block;
    m->heads = model_head_split(cfg, P, rank);
    m->h0 = m->heads.h0;
    m->h_local = m->heads.h_local;
    model_ff_split(cfg, P, rank, m->split_block, &m->f0, &m->f_local);
    m->v0 = (int)split_offset((size_t)cfg->vocab_size, P, rank);
    m->v_local = (int)split_count((size_t)cfg->vocab_size, P, rank);
    m->max_T = max_T < 1 ? 1 : (max_T > cfg->n_positions ? cfg->n_positions : max_T);
    m->context = m->max_T;
    m->layers = calloc((size_t)cfg->n_layer, sizeof(model_layer));
    m->table = malloc((size_t)model_param_table_max(cfg) * sizeof(model_param));
    if (!m->layers || !m->table) {
        snprintf(err, errlen, "rank %d: out of memory", rank);
        model_shard_free(m);
        return -1;
    }
    m->n_table = model_param_table(cfg, P, rank, m->table, m);
    m->n_params = model_param_table_floats(m->table, m->n_table);
    m->typed_bytes = model_param_table_typed_bytes(m->table, m->n_table);
    m->params = malloc((m->n_params ? m->n_params : 1) * sizeof(float));
    m->typed = m->typed_bytes ? malloc(m->typed_bytes) : NULL;
    if (!m->params || (m->typed_bytes && !m->typed)) {
        snprintf(err, errlen, "rank %d: out of memory for %zu MiB of weights", rank,
                 (m->n_params * sizeof(float) + m->typed_bytes) >> 20);
        model_shard_free(m);
        return -1;
    }
    /* The table drives the views: each tensor's pointer is its offset in its buffer. */
    for (int i = 0; i < m->n_table; i++) set_views(m, &m->table[i]);
    if (cfg->tied) {
        m->lm_head = m->wte;
        m->head = m->embed;
    }
    if (alloc_activations(m, err, errlen)) {
        model_shard_free(m);
        return -1;
    }
    return 0;
}

int model_shard_read(model_shard *m, const model_weight_reader *rd,
                     void (*after)(void *ctx, const model_param *p, float *data), void *after_ctx,
                     char *err, size_t errlen) {
    const unsigned char **in_place =
        calloc((size_t)m->n_table ? (size_t)m->n_table : 1, sizeof(*in_place));
    if (!in_place) {
        snprintf(err, errlen, "rank %d: out of memory", m->rank);
        return -1;
    }
    int rc = place_matrices(m, rd, after != NULL, in_place, err, errlen);
    for (int i = 0; i < m->n_table && !rc; i++) {
        const model_param *p = &m->table[i];
        char why[400];
        stored_plan pl;
        plan_stored(p, rd, after != NULL, &pl);
        if (in_place[i]) {
            size_t K = p->out_rows ? p->cols : p->rows, N = p->out_rows ? p->rows : p->cols;
            rc = check_stored_finite(p->type, in_place[i], N * K, pl.b[0].name,
                                     pl.b[0].first * pl.b[0].stored_cols, why, sizeof(why));
        } else if (pl.usable) {
            rc =
                copy_stored(p, &pl, rd, after != NULL, m->typed + p->byte_offset, why, sizeof(why));
        } else {
            rc = read_param(m, p, rd, after, after_ctx, why, sizeof(why));
        }
        if (rc) snprintf(err, errlen, "rank %d: weights: %s", m->rank, why);
    }
    free(in_place);
    return rc ? -1 : 0;
}

static int load_st(model_shard *m, const model_config *cfg, const st_set *weights, model_keep *keep,
                   int rank, int P, int max_T, kernel_type wtype, char *err, size_t errlen) {
    if (model_shard_setup(m, cfg, rank, P, max_T, wtype, 0, 0, err, errlen)) return -1;
    if (weights) {
        model_st_reader ctx;
        model_weight_reader rd = model_st_reader_init(&ctx, cfg, weights, "");
        rd.keep = keep;
        if (model_shard_read(m, &rd, NULL, NULL, err, errlen)) {
            model_shard_free(m);
            return -1;
        }
    }
    return 0;
}

int model_shard_load_kept(model_shard *m, const model_config *cfg, const st_set *weights,
                          model_keep *keep, int rank, int P, int max_T, kernel_type wtype,
                          char *err, size_t errlen) {
    return load_st(m, cfg, weights, keep, rank, P, max_T, wtype, err, errlen);
}

int model_shard_load_as(model_shard *m, const model_config *cfg, const st_set *weights, int rank,
                        int P, int max_T, kernel_type wtype, char *err, size_t errlen) {
    return load_st(m, cfg, weights, NULL, rank, P, max_T, wtype, err, errlen);
}

int model_shard_enable_slots(model_shard *m, int n_slots, int positions, char *err, size_t errlen) {
    if (positions < 1 || positions > m->cfg.n_positions) {
        snprintf(err, errlen, "KV cache of %d positions: must be 1..%d (the model's context)",
                 positions, m->cfg.n_positions);
        return -1;
    }
    if (n_slots < 1 || n_slots > 4096) {
        snprintf(err, errlen, "KV cache of %d sequences: must be 1..4096", n_slots);
        return -1;
    }
    size_t L = (size_t)m->cfg.n_layer, S = (size_t)n_slots;
    size_t kd = (size_t)m->heads.kv_local * (size_t)m->cfg.head_dim;
    size_t per_layer = 2 * (size_t)positions * kd;
    float *kv = malloc(S * L * per_layer * sizeof(float));
    kv_cache *caches = calloc(S * L, sizeof(kv_cache));
    int *slot_len = calloc(S, sizeof(int));
    int old_context = m->context;
    m->context = positions > m->max_T ? positions : m->max_T;
    if (!kv || !caches || !slot_len || alloc_activations(m, err, errlen)) {
        if (!kv || !caches || !slot_len)
            snprintf(err, errlen,
                     "rank %d: out of memory for a KV cache of %d sequences of %d positions",
                     m->rank, n_slots, positions);
        free(kv);
        free(caches);
        free(slot_len);
        m->context = old_context;
        return -1;
    }
    for (size_t c = 0; c < S * L; c++) {
        caches[c].k = kv + c * per_layer;
        caches[c].v = caches[c].k + (size_t)positions * kd;
        caches[c].capacity = positions;
    }
    free(m->kv);
    free(m->caches);
    free(m->slot_len);
    m->kv = kv;
    m->caches = caches;
    m->slot_len = slot_len;
    m->n_slots = n_slots;
    m->cache_len = 0;
    return 0;
}

int model_shard_enable_cache(model_shard *m, int positions, char *err, size_t errlen) {
    return model_shard_enable_slots(m, 1, positions, err, errlen);
}

void model_slot_reset(model_shard *m, int slot) {
    if (slot < 0 || slot >= m->n_slots) return;
    m->slot_len[slot] = 0;
    if (slot == 0) m->cache_len = 0;
}

int model_slot_len(const model_shard *m, int slot) {
    return slot >= 0 && slot < m->n_slots ? m->slot_len[slot] : 0;
}

void model_shard_free(model_shard *m) {
    model_keep_release(m->keep); /* after this, nothing may read the in-place weights */
    free(m->params);
    free(m->typed);
    free(m->layers);
    free(m->table);
    free(m->acts);
    free(m->kv);
    free(m->caches);
    free(m->slot_len);
    memset(m, 0, sizeof(*m));
}

size_t model_shard_weight_bytes(const model_shard *m) {
    return m->n_params * sizeof(float) + m->typed_bytes + m->mapped_bytes;
}

/* ---- forward ------------------------------------------------------------------------------ */

static void add_inplace(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static void norm(const model_shard *m, float *out, const float *in, const float *w, const float *b,
                 int T) {
    if (m->cfg.norm == NORM_RMSNORM)
        rmsnorm_forward(out, in, w, T, m->cfg.n_embd, m->cfg.norm_eps);
    else
        layernorm_forward(out, in, w, b, T, m->cfg.n_embd, m->cfg.norm_eps);
}

/* The rows of one pass through the layers. Either a SEQUENCE: T consecutive tokens of one
 * sequence at positions [pos0, pos0 + T) of cache slot `slot` (a prefill, model_forward), with
 * the fastest products (kernel_matmul: GEMMs); or a STEP: one token of each of T sequences, row
 * b in slot slots[b] at position pos[b] (model_decode_batch, and model_extend_slot of one
 * token), with the row-exact products (kernel_matmul_rows), so that a row's logits do not
 * depend on what else is in the step. */
typedef struct {
    int T;
    int pos0, slot;        /* a sequence */
    const int *slots;      /* a step: [T] distinct slots; NULL for a sequence */
    const int *pos;        /* a step: [T] each row's position (its slot's length) */
    kv_cache **row_caches; /* a step: [T] scratch, one layer's cache of each row */
} pass_rows;

/* Row t's position. */
static int row_position(const pass_rows *p, int t) {
    return p->slots ? p->pos[t] : p->pos0 + t;
}

/* The embedding (one AllReduce) of the pass's tokens into m->x, plus the learned position rows,
 * and the RoPE table rows of the pass's positions into m->rope. */
static int embed(comm_t *comm, model_shard *m, const int *tokens, const pass_rows *p) {
    const model_config *c = &m->cfg;
    size_t E = (size_t)c->n_embd;
    int seq = p->slots == NULL;
    const float *wpe = m->wpe && seq ? m->wpe + (size_t)p->pos0 * E : NULL;
    int rc =
        vocab_parallel_embedding_forward(comm, m->x, tokens, p->T, &m->embed, m->v0, wpe, "embed");
    if (rc) return rc;
    if (m->wpe && !seq) /* each row its own position: added as the layer adds a contiguous wpe */
        for (int t = 0; t < p->T; t++) {
            float *x = m->x + (size_t)t * E;
            const float *w = m->wpe + (size_t)p->pos[t] * E;
            for (size_t i = 0; i < E; i++) x[i] += w[i];
        }
    if (m->rope) {
        if (seq)
            rope_table(m->rope, p->pos0, p->T, c->head_dim, c->rope_theta, &c->rope_scaling);
        else /* a table row is computed from its own position alone, whatever T */
            for (int t = 0; t < p->T; t++)
                rope_table(m->rope + (size_t)t * (size_t)c->head_dim, p->pos[t], 1, c->head_dim,
                           c->rope_theta, &c->rope_scaling);
    }
    return COMM_OK;
}

/* The pass: embedding, the layers, the final norm and the LM head (m->logits [T, v_local]),
 * then the slots' new lengths. Communication: 1 + 2 * n_layer AllReduce of T * n_embd floats. */
static int run_pass(comm_t *comm, model_shard *m, const int *tokens, const pass_rows *p) {
    const model_config *c = &m->cfg;
    int E = c->n_embd, T = p->T, step = p->slots != NULL;
    size_t n = (size_t)T * (size_t)E;
    char tag[32];
    int rc = embed(comm, m, tokens, p);
    for (int l = 0; l < c->n_layer && !rc; l++) {
        const model_layer *L = &m->layers[l];
        attention_weights aw = model_layer_attention(m, l);
        mlp_weights mw = model_layer_mlp(m, l);

        norm(m, m->ln, m->x, L->norm1_w, L->norm1_b, T);
        snprintf(tag, sizeof(tag), "layer%d.attn", l);
        if (step) {
            for (int t = 0; t < T; t++)
                p->row_caches[t] = &m->caches[(size_t)p->slots[t] * (size_t)c->n_layer + l];
            rc = parallel_attention_decode(comm, m->tmp, m->ln, &aw, T, p->pos, p->row_caches,
                                           m->scratch, tag);
        } else {
            kv_cache *cache =
                m->caches ? &m->caches[(size_t)p->slot * (size_t)c->n_layer + l] : NULL;
            rc = parallel_attention_forward(comm, m->tmp, m->ln, &aw, T, p->pos0, cache, m->scratch,
                                            tag);
        }
        if (rc) break;
        add_inplace(m->x, m->tmp, n);

        norm(m, m->ln, m->x, L->norm2_w, L->norm2_b, T);
        snprintf(tag, sizeof(tag), "layer%d.mlp", l);
        rc = step ? parallel_mlp_forward_rows(comm, m->tmp, m->ln, &mw, T, m->scratch, tag)
                  : parallel_mlp_forward(comm, m->tmp, m->ln, &mw, T, m->scratch, tag);
        if (rc) break;
        add_inplace(m->x, m->tmp, n);
    }
    if (rc) return rc;
    /* Finite weights can still overflow (activations past float's range in a diverged or
     * mis-scaled model): say so rather than hand NaN logits to sampling or verify. The residual
     * stream is the same on every rank (each layer ends in an AllReduce), so every rank fails
     * together; checking it costs T * E compares, nothing next to the layers. */
    for (size_t i = 0; i < n; i++)
        if (!isfinite(m->x[i]))
            return comm_fail(comm,
                             "forward: the hidden state of position %d is not finite (%g): "
                             "the weights overflow float32",
                             row_position(p, (int)(i / (size_t)E)), (double)m->x[i]);
    norm(m, m->ln, m->x, m->normf_w, m->normf_b, T);
    if (step) /* the LM head needs no communication: the rows' logits stay split by vocabulary */
        kernel_matmul_rows(m->logits, m->ln, &m->head, T, 0);
    else
        vocab_parallel_lm_head_forward(m->logits, m->ln, &m->head, T);
    if (m->caches)
        for (int t = step ? 0 : T - 1; t < T; t++) {
            int slot = step ? p->slots[t] : p->slot;
            m->slot_len[slot] = row_position(p, t) + 1;
            if (slot == 0) m->cache_len = m->slot_len[0];
        }
    return COMM_OK;
}

/* The forward pass of T tokens at positions [pos0, pos0 + T), in slot `slot` of the cache (when
 * the shard has one). */
static int forward_at(comm_t *comm, model_shard *m, const int *tokens, int T, int pos0, int slot) {
    if (T < 1 || T > m->max_T)
        return comm_fail(comm, "forward: %d tokens, but rank %d allocated for 1..%d", T, m->rank,
                         m->max_T);
    pass_rows p = {.T = T, .pos0 = pos0, .slot = slot};
    return run_pass(comm, m, tokens, &p);
}

int model_forward(comm_t *comm, model_shard *m, const int *tokens, int T) {
    return forward_at(comm, m, tokens, T, 0, 0);
}

/* A step of one token is model_decode_batch of one row: a sequence decoded alone and inside a
 * batch runs the same row-exact code. */
int model_extend_slot(comm_t *comm, model_shard *m, int slot, const int *tokens, int T) {
    if (!m->caches) return comm_fail(comm, "extend: the shard has no KV cache");
    if (slot < 0 || slot >= m->n_slots)
        return comm_fail(comm, "extend: slot %d of a cache of %d sequences", slot, m->n_slots);
    if (T == 1) return model_decode_batch(comm, m, &slot, tokens, 1);
    int len = m->slot_len[slot];
    if (len + T > m->caches[0].capacity)
        return comm_fail(comm, "extend: %d cached + %d new positions exceed the cache of %d", len,
                         T, m->caches[0].capacity);
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= m->cfg.vocab_size)
            return comm_fail(comm, "extend: token id %d is outside the vocabulary", tokens[t]);
    return forward_at(comm, m, tokens, T, len, slot);
}

int model_extend(comm_t *comm, model_shard *m, const int *tokens, int T) {
    return model_extend_slot(comm, m, 0, tokens, T);
}

int model_decode_batch(comm_t *comm, model_shard *m, const int *slots, const int *tokens, int B) {
    if (!m->caches) return comm_fail(comm, "decode: the shard has no KV cache");
    if (B < 1 || B > m->max_T)
        return comm_fail(comm, "decode: %d sequences, but rank %d allocated for 1..%d", B, m->rank,
                         m->max_T);
    for (int b = 0; b < B; b++) {
        if (slots[b] < 0 || slots[b] >= m->n_slots)
            return comm_fail(comm, "decode: slot %d of a cache of %d sequences", slots[b],
                             m->n_slots);
        for (int a = 0; a < b; a++)
            if (slots[a] == slots[b])
                return comm_fail(comm, "decode: slot %d appears twice in one step", slots[b]);
        if (m->slot_len[slots[b]] >= m->caches[0].capacity)
            return comm_fail(comm,
                             "decode: slot %d is full: %d cached + 1 new positions exceed "
                             "the cache of %d",
                             slots[b], m->slot_len[slots[b]], m->caches[0].capacity);
        if (tokens[b] < 0 || tokens[b] >= m->cfg.vocab_size)
            return comm_fail(comm, "decode: token id %d (slot %d) is outside the vocabulary",
                             tokens[b], slots[b]);
    }
    /* Each row's position, and room for one layer's cache pointer per row. */
    int *pos = malloc((size_t)B * sizeof(*pos));
    kv_cache **row_caches = malloc((size_t)B * sizeof(*row_caches));
    if (!pos || !row_caches) {
        free(pos);
        free(row_caches);
        return comm_fail(comm, "decode: out of memory on rank %d", m->rank);
    }
    for (int b = 0; b < B; b++) pos[b] = m->slot_len[slots[b]];
    pass_rows p = {.T = B, .slots = slots, .pos = pos, .row_caches = row_caches};
    int rc = run_pass(comm, m, tokens, &p);
    free(pos);
    free(row_caches);
    return rc;
}
