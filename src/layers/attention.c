/* attention.c — causal self-attention split by heads (see layers.h).
 *
 * Heads are independent: head h needs only its own columns of Q, K and V. So the fused QKV
 * projection is column-parallel over this rank's heads, each head attends locally, and the
 * output projection is row-parallel over the same heads' rows — one AllReduce in all. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "causal_softmax.h"
#include "linshard/layers.h"

size_t attention_scratch_floats(const attention_weights *w, int T, int context) {
    size_t hd = (size_t)w->h_local * (size_t)w->D;
    return (size_t)T * 3 * hd + (size_t)T * (size_t)context + (size_t)T * hd;
}

int parallel_attention_forward(comm_t *comm, float *out, const float *in,
                               const attention_weights *w, int T, int pos0, kv_cache *cache,
                               float *scratch, const char *tag) {
    int D = w->D, hd = w->h_local * D, ld = 3 * hd, n = pos0 + T;
    if (!cache && pos0 != 0)
        return comm_fail(comm, "attention: position %d needs a KV cache", pos0);
    if (cache && n > cache->capacity)
        return comm_fail(comm, "attention: %d positions exceed the KV cache of %d", n,
                         cache->capacity);
    float *qkv = scratch;                         /* [T, 3 * hd] */
    float *scores = qkv + (size_t)T * (size_t)ld; /* [T, n], one head at a time */
    float *att = scores + (size_t)T * (size_t)n;  /* [T, hd] */
    column_parallel_forward(qkv, in, w->qkv_w, w->qkv_b, T, w->E, ld);
    /* Keys and values: straight from the QKV rows, or appended to the cache and read from it. */
    const float *keys = qkv + hd, *values = qkv + 2 * hd;
    int kv_ld = ld;
    if (cache) {
        for (int t = 0; t < T; t++) {
            const float *row = qkv + (size_t)t * (size_t)ld;
            memcpy(cache->k + (size_t)(pos0 + t) * hd, row + hd, (size_t)hd * sizeof(float));
            memcpy(cache->v + (size_t)(pos0 + t) * hd, row + 2 * hd, (size_t)hd * sizeof(float));
        }
        keys = cache->k;
        values = cache->v;
        kv_ld = hd;
    }
    const float scale = 1.0f / sqrtf((float)D);
    for (int h = 0; h < w->h_local && T > 0; h++) {
        const float *q = qkv + h * D, *k = keys + h * D, *v = values + h * D;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, n, D, scale, q, ld, k, kv_ld, 0.0f,
                    scores, n);
        causal_softmax(scores, T, n, pos0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, n, 1.0f, scores, n, v, kv_ld,
                    0.0f, att + h * D, hd);
    }
    return row_parallel_forward(comm, out, att, w->proj_w, w->proj_b, T, hd, w->E, tag);
}
