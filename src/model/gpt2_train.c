/* gpt2_train.c — forward with saved activations, backward, gradient norm and AdamW for one
 * rank's GPT-2 shard (see gpt2_train.h for the split and the communication). */
#include "linshard/gpt2_train.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/layers_backward.h"
#include "linshard/loss.h"

/* ---- the trainer --------------------------------------------------------------------------- */

static void add_seg(gpt2_trainer *tr, const gpt2_shard *m, const float *view, size_t count,
                    int sharded, int decay) {
    gpt2_param_segment *s = &tr->segs[tr->n_segs++];
    s->offset = (size_t)(view - m->params);
    s->count = count;
    s->sharded = sharded;
    s->decay = decay;
}

/* Every view of the shard with its size, sharding and decay, from the public struct. */
static void build_segments(gpt2_trainer *tr, const gpt2_shard *m) {
    size_t E = (size_t)m->cfg.n_embd, D = E / (size_t)m->cfg.n_head;
    size_t hd = (size_t)m->h_local * D, fl = (size_t)m->f_local;
    tr->n_segs = 0;
    add_seg(tr, m, m->wte, (size_t)m->v_local * E, 1, 1);
    add_seg(tr, m, m->wpe, (size_t)m->cfg.n_positions * E, 0, 1);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const gpt2_layer *L = &m->layers[l];
        add_seg(tr, m, L->ln1_w, E, 0, 0);
        add_seg(tr, m, L->ln1_b, E, 0, 0);
        add_seg(tr, m, L->qkv_w, E * 3 * hd, 1, 1);
        add_seg(tr, m, L->qkv_b, 3 * hd, 1, 0);
        add_seg(tr, m, L->proj_w, hd * E, 1, 1);
        add_seg(tr, m, L->proj_b, E, 0, 0);
        add_seg(tr, m, L->ln2_w, E, 0, 0);
        add_seg(tr, m, L->ln2_b, E, 0, 0);
        add_seg(tr, m, L->fc_w, E * fl, 1, 1);
        add_seg(tr, m, L->fc_b, fl, 1, 0);
        add_seg(tr, m, L->fcp_w, fl * E, 1, 1);
        add_seg(tr, m, L->fcp_b, E, 0, 0);
    }
    add_seg(tr, m, m->lnf_w, E, 0, 0);
    add_seg(tr, m, m->lnf_b, E, 0, 0);
}

static size_t attn_saved_stride(const gpt2_shard *m, int T) {
    int E = m->cfg.n_embd, D = E / m->cfg.n_head;
    attention_weights aw = {.E = E, .D = D, .h_local = m->h_local};
    return attention_saved_floats(&aw, T);
}

int gpt2_trainer_init(gpt2_trainer *tr, const gpt2_shard *m, int max_T, char *err, size_t errlen) {
    memset(tr, 0, sizeof(*tr));
    if (max_T < 1 || max_T > m->cfg.n_positions) {
        snprintf(err, errlen, "trainer: sequences of %d tokens: must be 1..%d", max_T,
                 m->cfg.n_positions);
        return -1;
    }
    const gpt2_config *c = &m->cfg;
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
    tr->segs = malloc((4 + 12 * L) * sizeof(gpt2_param_segment));
    if (!tr->grads || !tr->m || !tr->v || !tr->acts || !tr->segs) {
        snprintf(err, errlen, "rank %d: out of memory for the trainer (%zu MiB)", m->rank,
                 (3 * m->n_params + n_acts) * sizeof(float) >> 20);
        gpt2_trainer_free(tr);
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
    build_segments(tr, m);
    return 0;
}

void gpt2_trainer_free(gpt2_trainer *tr) {
    free(tr->grads);
    free(tr->m);
    free(tr->v);
    free(tr->acts);
    free(tr->segs);
    memset(tr, 0, sizeof(*tr));
}

void gpt2_trainer_zero_grad(gpt2_trainer *tr) {
    memset(tr->grads, 0, tr->n_params * sizeof(float));
}

float *gpt2_trainer_grad(const gpt2_trainer *tr, const gpt2_shard *m, const float *view) {
    return tr->grads + (view - m->params);
}

/* ---- forward and backward ------------------------------------------------------------------ */

static void add_inplace(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static gpt2_layer layer_grads(const gpt2_trainer *tr, const gpt2_shard *m, int l) {
    const gpt2_layer *L = &m->layers[l];
    gpt2_layer g;
#define TWIN(f) (g.f = gpt2_trainer_grad(tr, m, L->f))
    TWIN(ln1_w);
    TWIN(ln1_b);
    TWIN(qkv_w);
    TWIN(qkv_b);
    TWIN(proj_w);
    TWIN(proj_b);
    TWIN(ln2_w);
    TWIN(ln2_b);
    TWIN(fc_w);
    TWIN(fc_b);
    TWIN(fcp_w);
    TWIN(fcp_b);
#undef TWIN
    return g;
}

int gpt2_train_forward_backward(comm_t *comm, gpt2_shard *m, gpt2_trainer *tr, const int *tokens,
                                const int *targets, int T, float *loss) {
    const gpt2_config *c = &m->cfg;
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
    int E = c->n_embd, D = E / c->n_head, nL = c->n_layer;
    size_t n = (size_t)T * (size_t)E, TE = (size_t)tr->max_T * (size_t)E;
    size_t Tf = (size_t)tr->max_T * (size_t)m->f_local;
    float eps = c->layer_norm_epsilon;
    char tag[48];

    /* ---- forward, saving what the backward needs ---- */
    int rc = vocab_parallel_embedding_forward(comm, tr->resid, tokens, T, m->wte, m->v0, m->v_local,
                                              m->wpe, E, "embed");
    for (int l = 0; l < nL && !rc; l++) {
        const gpt2_layer *L = &m->layers[l];
        attention_weights aw = {L->qkv_w, L->qkv_b, L->proj_w, L->proj_b, E, D, m->h_local};
        mlp_weights mw = {L->fc_w, L->fc_b, L->fcp_w, L->fcp_b, E, m->f_local, c->activation};
        const float *x_in = tr->resid + (size_t)(2 * l) * TE;
        float *x_mid = tr->resid + (size_t)(2 * l + 1) * TE;
        float *x_out = tr->resid + (size_t)(2 * l + 2) * TE;
        float *ln1 = tr->ln1 + (size_t)l * TE, *ln2 = tr->ln2 + (size_t)l * TE;
        attention_saved as;
        attention_saved_view(&as, tr->attn_saved + (size_t)l * tr->attn_saved_stride, &aw, T);
        mlp_saved ms = {tr->mlp_pre + (size_t)l * Tf, tr->mlp_act + (size_t)l * Tf};

        layernorm_forward(ln1, x_in, L->ln1_w, L->ln1_b, T, E, eps);
        snprintf(tag, sizeof(tag), "layer%d.attn", l);
        if ((rc = parallel_attention_forward_train(comm, tr->dtmp, ln1, &aw, T, &as, tag))) break;
        for (size_t i = 0; i < n; i++) x_mid[i] = x_in[i] + tr->dtmp[i];

        layernorm_forward(ln2, x_mid, L->ln2_w, L->ln2_b, T, E, eps);
        snprintf(tag, sizeof(tag), "layer%d.mlp", l);
        if ((rc = parallel_mlp_forward_train(comm, tr->dtmp, ln2, &mw, T, &ms, tag))) break;
        for (size_t i = 0; i < n; i++) x_out[i] = x_mid[i] + tr->dtmp[i];
    }
    if (rc) return rc;
    const float *x_final = tr->resid + (size_t)(2 * nL) * TE;
    layernorm_forward(tr->lnf, x_final, m->lnf_w, m->lnf_b, T, E, eps);
    vocab_parallel_lm_head_forward(tr->dlogits, tr->lnf, m->wte, T, E, m->v_local);
    rc = vocab_parallel_cross_entropy(comm, tr->dlogits, T, m->v0, m->v_local, c->vocab_size,
                                      targets, loss, tr->dlogits, tr->scratch, "loss");
    if (rc) return rc;
    size_t nl = (size_t)T * (size_t)m->v_local;
    if (tr->grad_scale != 1.0f)
        for (size_t i = 0; i < nl; i++) tr->dlogits[i] *= tr->grad_scale;

    /* ---- backward ---- */
    float *d_wte = gpt2_trainer_grad(tr, m, m->wte);
    /* LM head, tied to wte: logits = h · wte_local^T. d_wte_local += d_logits^T · h; d_h is a
     * partial sum over the vocabulary shards: one AllReduce. */
    if (m->v_local > 0) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m->v_local, E, T, 1.0f, tr->dlogits,
                    m->v_local, tr->lnf, E, 1.0f, d_wte, E);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, E, m->v_local, 1.0f, tr->dlogits,
                    m->v_local, m->wte, E, 0.0f, tr->dtmp, E);
    } else {
        memset(tr->dtmp, 0, n * sizeof(float));
    }
    if ((rc = comm_allreduce_sum(comm, tr->dtmp, n, "lm_head.backward"))) return rc;
    layernorm_backward(tr->dx, gpt2_trainer_grad(tr, m, m->lnf_w),
                       gpt2_trainer_grad(tr, m, m->lnf_b), x_final, m->lnf_w, tr->dtmp, T, E, eps);

    for (int l = nL - 1; l >= 0 && !rc; l--) {
        const gpt2_layer *L = &m->layers[l];
        gpt2_layer G = layer_grads(tr, m, l);
        attention_weights aw = {L->qkv_w, L->qkv_b, L->proj_w, L->proj_b, E, D, m->h_local};
        mlp_weights mw = {L->fc_w, L->fc_b, L->fcp_w, L->fcp_b, E, m->f_local, c->activation};
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
        layernorm_backward(tr->dtmp, G.ln2_w, G.ln2_b, x_mid, L->ln2_w, tr->dtmp, T, E, eps);
        add_inplace(tr->dx, tr->dtmp, n);

        /* x_mid = x_in + attn(ln1(x_in)). */
        snprintf(tag, sizeof(tag), "layer%d.attn.backward", l);
        rc = parallel_attention_backward(comm, tr->dtmp, &ag, ln1, &aw, tr->dx, T, &as, tr->scratch,
                                         tag);
        if (rc) break;
        layernorm_backward(tr->dtmp, G.ln1_w, G.ln1_b, x_in, L->ln1_w, tr->dtmp, T, E, eps);
        add_inplace(tr->dx, tr->dtmp, n);
    }
    if (rc) return rc;

    /* Embedding: x0[t] = wte[tokens[t]] + wpe[t]. dx is replicated, so d_wpe is the same bits on
     * every rank; a wte row gets its gradient only on the rank that owns it. No communication. */
    float *d_wpe = gpt2_trainer_grad(tr, m, m->wpe);
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

int gpt2_grad_norm(comm_t *comm, const gpt2_shard *m, const gpt2_trainer *tr, double *norm) {
    if (tr->n_params != m->n_params)
        return comm_fail(comm, "grad_norm: the trainer was made for another shard");
    double sharded = 0, replicated = 0;
    for (int i = 0; i < tr->n_segs; i++) {
        const gpt2_param_segment *s = &tr->segs[i];
        double ss = sum_squares(tr->grads + s->offset, s->count);
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

void gpt2_adamw_step(gpt2_shard *m, gpt2_trainer *tr, float lr, float beta1, float beta2, float eps,
                     float weight_decay, float clip_scale) {
    tr->step++;
    double bc1 = 1.0 - pow((double)beta1, (double)tr->step);
    double bc2 = 1.0 - pow((double)beta2, (double)tr->step);
    float c1 = (float)(1.0 / bc1), c2 = (float)(1.0 / bc2);
    for (int i = 0; i < tr->n_segs; i++) {
        const gpt2_param_segment *s = &tr->segs[i];
        float *p = m->params + s->offset, *g = tr->grads + s->offset;
        float *mm = tr->m + s->offset, *vv = tr->v + s->offset;
        float wd = s->decay ? weight_decay : 0.0f;
        for (size_t j = 0; j < s->count; j++) {
            float gj = g[j] * clip_scale;
            mm[j] = beta1 * mm[j] + (1.0f - beta1) * gj;
            vv[j] = beta2 * vv[j] + (1.0f - beta2) * gj * gj;
            float mhat = mm[j] * c1, vhat = vv[j] * c2;
            p[j] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[j]);
        }
    }
}
