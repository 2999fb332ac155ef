/* attention_backward.c — the training forward and the backward of causal self-attention split
 * by heads (see layers_backward.h).
 *
 * Heads are independent, so everything between the two GEMMs of the block is local: the only
 * communication is the forward's AllReduce after c_proj (g) and, in the backward, the
 * AllReduce of d_in after the fused QKV GEMM (f's conjugate). */
#include <math.h>
#include <string.h>

#include "linshard/kernels.h"
#include "linshard/layers_backward.h"

size_t attention_saved_floats(const attention_weights *w, int T) {
    size_t hd = (size_t)w->h_local * (size_t)w->D, t = (size_t)T;
    return t * 3 * hd + (size_t)w->h_local * t * t + t * hd;
}

void attention_saved_view(attention_saved *saved, float *buf, const attention_weights *w, int T) {
    size_t hd = (size_t)w->h_local * (size_t)w->D, t = (size_t)T;
    saved->qkv = buf;
    saved->probs = saved->qkv + t * 3 * hd;
    saved->att = saved->probs + (size_t)w->h_local * t * t;
}

size_t attention_backward_scratch_floats(const attention_weights *w, int T) {
    size_t hd = (size_t)w->h_local * (size_t)w->D, t = (size_t)T;
    return t * 3 * hd + t * hd + t * t;
}

int parallel_attention_forward_train(comm_t *comm, float *out, const float *in,
                                     const attention_weights *w, int T,
                                     const attention_saved *saved, const char *tag) {
    int D = w->D, hd = w->h_local * D, ld = 3 * hd;
    float *qkv = saved->qkv, *att = saved->att;
    column_parallel_forward(qkv, in, &w->qkv, w->qkv_b, T);
    const float scale = 1.0f / sqrtf((float)D);
    for (int h = 0; h < w->h_local && T > 0; h++) {
        const float *q = qkv + h * D, *k = qkv + hd + h * D, *v = qkv + 2 * hd + h * D;
        float *p = saved->probs + (size_t)h * (size_t)T * (size_t)T;
        kernel_sgemm(0, 1, T, T, D, scale, q, ld, k, ld, 0.0f, p, T);
        kernel_softmax_causal(p, T, T, 0);
        kernel_sgemm(0, 0, T, D, T, 1.0f, p, T, v, ld, 0.0f, att + h * D, hd);
    }
    return row_parallel_forward(comm, out, att, &w->proj, w->proj_b, T, tag);
}

int parallel_attention_backward(comm_t *comm, float *dx, const attention_grads *g, const float *in,
                                const attention_weights *w, const float *dy, int T,
                                const attention_saved *saved, float *scratch, const char *tag) {
    int D = w->D, hd = w->h_local * D, ld = 3 * hd;
    float *dqkv = scratch;                       /* [T, 3hd] */
    float *datt = dqkv + (size_t)T * (size_t)ld; /* [T, hd] */
    float *ds = datt + (size_t)T * (size_t)hd;   /* [T, T], one head at a time */
    const float *qkv = saved->qkv;
    /* c_proj, row-parallel: dy replicated (g's conjugate is the identity), datt local. */
    row_parallel_backward(datt, g->proj_w, g->proj_b, dy, saved->att, w->proj.data, T, hd, w->E);
    const float scale = 1.0f / sqrtf((float)D);
    for (int h = 0; h < w->h_local && T > 0; h++) {
        const float *q = qkv + h * D, *k = qkv + hd + h * D, *v = qkv + 2 * hd + h * D;
        const float *p = saved->probs + (size_t)h * (size_t)T * (size_t)T;
        const float *da = datt + h * D;
        float *dq = dqkv + h * D, *dk = dqkv + hd + h * D, *dv = dqkv + 2 * hd + h * D;
        /* att = P · V: dP = datt · V^T, dV = P^T · datt. */
        kernel_sgemm(0, 1, T, T, D, 1.0f, da, hd, v, ld, 0.0f, ds, T);
        kernel_sgemm(1, 0, T, D, T, 1.0f, p, T, da, hd, 0.0f, dv, ld);
        /* Softmax, row by row: dS = P ⊙ (dP - <P, dP>). Masked entries have P = 0: dS = 0. */
        kernel_softmax_causal_backward(ds, p, T, T, 0);
        /* S = scale · Q · K^T: dQ = scale · dS · K, dK = scale · dS^T · Q. */
        kernel_sgemm(0, 0, T, D, T, scale, ds, T, k, ld, 0.0f, dq, ld);
        kernel_sgemm(1, 0, T, D, T, scale, ds, T, q, ld, 0.0f, dk, ld);
    }
    /* The fused QKV GEMM, column-parallel over this rank's heads: dx is a partial sum over ranks
     * until the AllReduce (f's conjugate) — the block's one communication. */
    return column_parallel_backward_reduce(comm, dx, g->qkv_w, g->qkv_b, dqkv, in, w->qkv.data, T,
                                           w->E, ld, tag);
}
