/* attention.c — causal self-attention split by heads (see layers.h).
 *
 * Heads are independent: head h needs only its own columns of Q, K and V. So the fused QKV
 * projection is column-parallel over this rank's heads, each head attends locally, and the
 * output projection is row-parallel over the same heads' rows — one AllReduce in all. */
#include <cblas.h>
#include <math.h>

#include "fast_exp.h"
#include "linshard/layers.h"

size_t attention_scratch_floats(const attention_weights *w, int T) {
    size_t hd = (size_t)w->h_local * (size_t)w->D;
    return (size_t)T * 3 * hd + (size_t)T * (size_t)T + (size_t)T * hd;
}

/* Row t keeps positions 0..t: a numerically safe softmax (max subtracted), zeros after t. */
static void causal_softmax(float *s, int T) {
    for (int t = 0; t < T; t++) {
        float *row = s + (size_t)t * (size_t)T;
        float max = row[0];
        for (int j = 1; j <= t; j++) max = row[j] > max ? row[j] : max;
        float sum = 0;
        for (int j = 0; j <= t; j++) row[j] = fast_expf(row[j] - max);
        for (int j = 0; j <= t; j++) sum += row[j];
        float inv = 1.0f / sum;
        for (int j = 0; j <= t; j++) row[j] *= inv;
        for (int j = t + 1; j < T; j++) row[j] = 0.0f;
    }
}

int parallel_attention_forward(comm_t *comm, float *out, const float *in,
                               const attention_weights *w, int T, float *scratch, const char *tag) {
    int D = w->D, hd = w->h_local * D, ld = 3 * hd;
    float *qkv = scratch;                         /* [T, 3 * hd] */
    float *scores = qkv + (size_t)T * (size_t)ld; /* [T, T], one head at a time */
    float *att = scores + (size_t)T * (size_t)T;  /* [T, hd] */
    column_parallel_forward(qkv, in, w->qkv_w, w->qkv_b, T, w->E, ld);
    const float scale = 1.0f / sqrtf((float)D);
    for (int h = 0; h < w->h_local && T > 0; h++) {
        const float *q = qkv + h * D, *k = qkv + hd + h * D, *v = qkv + 2 * hd + h * D;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, scale, q, ld, k, ld, 0.0f,
                    scores, T);
        causal_softmax(scores, T);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, scores, T, v, ld,
                    0.0f, att + h * D, hd);
    }
    return row_parallel_forward(comm, out, att, w->proj_w, w->proj_b, T, hd, w->E, tag);
}
