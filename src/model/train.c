/* train.c — forward with saved activations, backward, gradient norm and AdamW for one rank's
 * GPT-2 shard (see train.h for the split and the communication). The gradient norm and AdamW
 * walk the shard's parameter table. */
#include "linshard/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/kernels.h"
#include "linshard/layers_backward.h"
#include "linshard/loss.h"
#include "linshard/params.h"

/* ---- the trainer --------------------------------------------------------------------------- */

static size_t attn_saved_stride(const model_shard *m, int T) {
    int E = m->cfg.n_embd, D = m->cfg.head_dim;
    attention_weights aw = {.E = E, .D = D, .h_local = m->h_local};
    return attention_saved_floats(&aw, T);
}

int model_train_supported(const model_config *c, char *err, size_t errlen) {
    if (c->family == FAMILY_GPT2) return 0;
    snprintf(err, errlen,
             "training runs GPT-2 for now (LayerNorm, GELU, learned positions, tied head): "
             "%s cannot be trained yet",
             model_family_architecture(c->family));
    return -1;
}

int model_trainer_init(model_trainer *tr, const model_shard *m, int max_T, char *err,
                       size_t errlen) {
    memset(tr, 0, sizeof(*tr));
    const model_config *c = &m->cfg;
    if (model_train_supported(c, err, errlen)) return -1;
    if (m->wtype != KERNEL_F32) {
        snprintf(err, errlen, "trainer: the weights are held as %s; training needs f32",
                 kernel_type_info(m->wtype)->name);
        return -1;
    }
    if (max_T < 1 || max_T > m->cfg.n_positions) {
        snprintf(err, errlen, "trainer: sequences of %d tokens: must be 1..%d", max_T,
                 m->cfg.n_positions);
        return -1;
    }
    size_t E = (size_t)c->n_embd, T = (size_t)max_T, L = (size_t)c->n_layer;
    size_t fl = (size_t)m->f_local, vl = (size_t)m->v_local;
    int D = c->n_embd / c->n_head;
    attention_weights aw = {.E = c->n_embd, .D = D, .h_local = m->h_local};
    tr->max_T = max_T;
    tr->n_params = m->n_params;
    tr->grad_scale = 1.0f;
    tr->attn_saved_stride = attn_saved_stride(m, max_T);
    size_t scratch = attention_backward_scratch_floats(&aw, max_T);
    if (T * fl > scratch) scratch = T * fl;
    size_t ce = vocab_parallel_cross_entropy_scratch_floats(max_T, m->P);
    if (ce > scratch) scratch = ce;
    size_t n_acts = (2 * L + 1) * T * E + 2 * L * T * E + L * tr->attn_saved_stride +
                    2 * L * T * fl + T * E + T * vl + 2 * T * E + scratch;
    tr->grads = calloc(m->n_params, sizeof(float));
    tr->m = calloc(m->n_params, sizeof(float));
    tr->v = calloc(m->n_params, sizeof(float));
    tr->acts = malloc(n_acts * sizeof(float));
    if (!tr->grads || !tr->m || !tr->v || !tr->acts) {
        snprintf(err, errlen, "rank %d: out of memory for the trainer (%zu MiB)", m->rank,
                 (3 * m->n_params + n_acts) * sizeof(float) >> 20);
        model_trainer_free(tr);
        return -1;
    }
    float *p = tr->acts;
#define TAKE(view, n) (tr->view = p, p += (n))
    TAKE(resid, (2 * L + 1) * T * E);
    TAKE(ln1, L * T * E);
    TAKE(ln2, L * T * E);
    TAKE(attn_saved, L * tr->attn_saved_stride);
    TAKE(mlp_pre, L * T * fl);
    TAKE(mlp_act, L * T * fl);
    TAKE(lnf, T * E);
    TAKE(dlogits, T * vl);
    TAKE(dx, T * E);
    TAKE(dtmp, T * E);
    TAKE(scratch, scratch);
#undef TAKE
    return 0;
}

void model_trainer_free(model_trainer *tr) {
    free(tr->grads);
    free(tr->m);
    free(tr->v);
    free(tr->acts);
    memset(tr, 0, sizeof(*tr));
}

void model_trainer_zero_grad(model_trainer *tr) {
    memset(tr->grads, 0, tr->n_params * sizeof(float));
}

float *model_trainer_grad(const model_trainer *tr, const model_shard *m, const float *view) {
    return tr->grads + (view - m->params);
}

/* ---- forward and backward ------------------------------------------------------------------ */

static void add_inplace(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static model_layer layer_grads(const model_trainer *tr, const model_shard *m, int l) {
    const model_layer *L = &m->layers[l];
    model_layer g = {0}; /* GPT-2 has no q/k norms: those twins stay NULL */
#define TWIN(f) (g.f = model_trainer_grad(tr, m, L->f))
    TWIN(norm1_w);
    TWIN(norm1_b);
    TWIN(qkv_w);
    TWIN(qkv_b);
    TWIN(proj_w);
    TWIN(proj_b);
    TWIN(norm2_w);
    TWIN(norm2_b);
    TWIN(fc_w);
    TWIN(fc_b);
    TWIN(fcp_w);
    TWIN(fcp_b);
#undef TWIN
    return g;
}

int model_train_forward_backward(comm_t *comm, model_shard *m, model_trainer *tr, const int *tokens,
                                 const int *targets, int T, float *loss) {
    const model_config *c = &m->cfg;
    if (tr->n_params != m->n_params)
        return comm_fail(comm, "train: the trainer was made for another shard");
    if (T < 1 || T > tr->max_T)
        return comm_fail(comm, "train: %d tokens, but rank %d's trainer holds 1..%d", T, m->rank,
                         tr->max_T);
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size || targets[t] < 0 ||
            targets[t] >= c->vocab_size)
            return comm_fail(comm, "train: token %d or target %d (position %d) outside [0, %d)",
                             tokens[t], targets[t], t, c->vocab_size);
    int E = c->n_embd, nL = c->n_layer;
    size_t n = (size_t)T * (size_t)E, TE = (size_t)tr->max_T * (size_t)E;
    size_t Tf = (size_t)tr->max_T * (size_t)m->f_local;
    float eps = c->norm_eps;
    char tag[48];

    /* ---- forward, saving what the backward needs ---- */
    int rc = vocab_parallel_embedding_forward(comm, tr->resid, tokens, T, &m->embed, m->v0, m->wpe,
                                              "embed");
    for (int l = 0; l < nL && !rc; l++) {
        const model_layer *L = &m->layers[l];
        attention_weights aw = model_layer_attention(m, l);
        mlp_weights mw = model_layer_mlp(m, l);
        const float *x_in = tr->resid + (size_t)(2 * l) * TE;
        float *x_mid = tr->resid + (size_t)(2 * l + 1) * TE;
        float *x_out = tr->resid + (size_t)(2 * l + 2) * TE;
        float *ln1 = tr->ln1 + (size_t)l * TE, *ln2 = tr->ln2 + (size_t)l * TE;
        attention_saved as;
        attention_saved_view(&as, tr->attn_saved + (size_t)l * tr->attn_saved_stride, &aw, T);
        mlp_saved ms = {tr->mlp_pre + (size_t)l * Tf, tr->mlp_act + (size_t)l * Tf};

        layernorm_forward(ln1, x_in, L->norm1_w, L->norm1_b, T, E, eps);
        snprintf(tag, sizeof(tag), "layer%d.attn", l);
        if ((rc = parallel_attention_forward_train(comm, tr->dtmp, ln1, &aw, T, &as, tag))) break;
        for (size_t i = 0; i < n; i++) x_mid[i] = x_in[i] + tr->dtmp[i];

        layernorm_forward(ln2, x_mid, L->norm2_w, L->norm2_b, T, E, eps);
        snprintf(tag, sizeof(tag), "layer%d.mlp", l);
        if ((rc = parallel_mlp_forward_train(comm, tr->dtmp, ln2, &mw, T, &ms, tag))) break;
        for (size_t i = 0; i < n; i++) x_out[i] = x_mid[i] + tr->dtmp[i];
    }
    if (rc) return rc;
    const float *x_final = tr->resid + (size_t)(2 * nL) * TE;
    layernorm_forward(tr->lnf, x_final, m->normf_w, m->normf_b, T, E, eps);
    vocab_parallel_lm_head_forward(tr->dlogits, tr->lnf, &m->head, T);
    rc = vocab_parallel_cross_entropy(comm, tr->dlogits, T, m->v0, m->v_local, c->vocab_size,
                                      targets, loss, tr->dlogits, tr->scratch, "loss");
    if (rc) return rc;
    size_t nl = (size_t)T * (size_t)m->v_local;
    if (tr->grad_scale != 1.0f)
        for (size_t i = 0; i < nl; i++) tr->dlogits[i] *= tr->grad_scale;

    /* ---- backward ---- */
    float *d_wte = model_trainer_grad(tr, m, m->wte);
    /* LM head, tied to wte: logits = h · wte_local^T. d_wte_local += d_logits^T · h; d_h is a
     * partial sum over the vocabulary shards: one AllReduce. */
    if (m->v_local > 0) {
        kernel_sgemm(1, 0, m->v_local, E, T, 1.0f, tr->dlogits, m->v_local, tr->lnf, E, 1.0f, d_wte,
                     E);
        kernel_sgemm(0, 0, T, E, m->v_local, 1.0f, tr->dlogits, m->v_local, m->wte, E, 0.0f,
                     tr->dtmp, E);
    } else {
        memset(tr->dtmp, 0, n * sizeof(float));
    }
    if ((rc = comm_allreduce_sum(comm, tr->dtmp, n, "lm_head.backward"))) return rc;
    layernorm_backward(tr->dx, model_trainer_grad(tr, m, m->normf_w),
                       model_trainer_grad(tr, m, m->normf_b), x_final, m->normf_w, tr->dtmp, T, E,
                       eps);

    for (int l = nL - 1; l >= 0 && !rc; l--) {
        const model_layer *L = &m->layers[l];
        model_layer G = layer_grads(tr, m, l);
        attention_weights aw = model_layer_attention(m, l);
        mlp_weights mw = model_layer_mlp(m, l);
        attention_grads ag = {G.qkv_w, G.qkv_b, G.proj_w, G.proj_b};
        mlp_grads mg = {G.fc_w, G.fc_b, G.fcp_w, G.fcp_b};
        const float *x_in = tr->resid + (size_t)(2 * l) * TE;
        const float *x_mid = tr->resid + (size_t)(2 * l + 1) * TE;
        const float *ln1 = tr->ln1 + (size_t)l * TE, *ln2 = tr->ln2 + (size_t)l * TE;
        attention_saved as;
        attention_saved_view(&as, tr->attn_saved + (size_t)l * tr->attn_saved_stride, &aw, T);
        mlp_saved ms = {tr->mlp_pre + (size_t)l * Tf, tr->mlp_act + (size_t)l * Tf};

        /* x_out = x_mid + mlp(ln2(x_mid)): dx flows through both. */
        snprintf(tag, sizeof(tag), "layer%d.mlp.backward", l);
        rc = parallel_mlp_backward(comm, tr->dtmp, &mg, ln2, &mw, tr->dx, T, &ms, tr->scratch, tag);
        if (rc) break;
        layernorm_backward(tr->dtmp, G.norm2_w, G.norm2_b, x_mid, L->norm2_w, tr->dtmp, T, E, eps);
        add_inplace(tr->dx, tr->dtmp, n);

        /* x_mid = x_in + attn(ln1(x_in)). */
        snprintf(tag, sizeof(tag), "layer%d.attn.backward", l);
        rc = parallel_attention_backward(comm, tr->dtmp, &ag, ln1, &aw, tr->dx, T, &as, tr->scratch,
                                         tag);
        if (rc) break;
        layernorm_backward(tr->dtmp, G.norm1_w, G.norm1_b, x_in, L->norm1_w, tr->dtmp, T, E, eps);
        add_inplace(tr->dx, tr->dtmp, n);
    }
    if (rc) return rc;

    /* Embedding: x0[t] = wte[tokens[t]] + wpe[t]. dx is replicated, so d_wpe is the same bits on
     * every rank; a wte row gets its gradient only on the rank that owns it. No communication. */
    float *d_wpe = model_trainer_grad(tr, m, m->wpe);
    for (int t = 0; t < T; t++) {
        const float *g = tr->dx + (size_t)t * (size_t)E;
        add_inplace(d_wpe + (size_t)t * (size_t)E, g, (size_t)E);
        int row = tokens[t] - m->v0;
        if (row >= 0 && row < m->v_local)
            add_inplace(d_wte + (size_t)row * (size_t)E, g, (size_t)E);
    }
    return COMM_OK;
}

/* ---- gradient norm and AdamW --------------------------------------------------------------- */

static double sum_squares(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

int model_grad_norm(comm_t *comm, const model_shard *m, const model_trainer *tr, double *norm) {
    if (tr->n_params != m->n_params)
        return comm_fail(comm, "grad_norm: the trainer was made for another shard");
    double sharded = 0, replicated = 0;
    for (int i = 0; i < m->n_table; i++) {
        const model_param *s = &m->table[i];
        double ss = sum_squares(tr->grads + s->offset, s->rows * s->cols);
        if (s->sharded)
            sharded += ss;
        else
            replicated += ss;
    }
    /* Only the sharded part is summed over ranks; the replicated part, identical everywhere, is
     * added once afterwards. */
    float buf = (float)sharded;
    int rc = comm_allreduce_sum(comm, &buf, 1, "grad_norm");
    if (rc) return rc;
    *norm = sqrt((double)buf + replicated);
    return COMM_OK;
}

void model_adamw_step(model_shard *m, model_trainer *tr, float lr, float beta1, float beta2,
                      float eps, float weight_decay, float clip_scale) {
    tr->step++;
    double bc1 = 1.0 - pow((double)beta1, (double)tr->step);
    double bc2 = 1.0 - pow((double)beta2, (double)tr->step);
    float c1 = (float)(1.0 / bc1), c2 = (float)(1.0 / bc2);
    for (int i = 0; i < m->n_table; i++) {
        const model_param *s = &m->table[i];
        size_t count = s->rows * s->cols;
        float *p = m->params + s->offset, *g = tr->grads + s->offset;
        float *mm = tr->m + s->offset, *vv = tr->v + s->offset;
        float wd = s->decay ? weight_decay : 0.0f;
        for (size_t j = 0; j < count; j++) {
            float gj = g[j] * clip_scale;
            mm[j] = beta1 * mm[j] + (1.0f - beta1) * gj;
            vv[j] = beta2 * vv[j] + (1.0f - beta2) * gj * gj;
            float mhat = mm[j] * c1, vhat = vv[j] * c2;
            p[j] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[j]);
        }
    }
}
