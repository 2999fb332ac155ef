/* vocab.c — the vocabulary-parallel embedding and the LM head tied to it (see layers.h). */
#include <stdlib.h>
#include <string.h>

#include "linshard/kernels.h"
#include "linshard/layers.h"
#include "linshard/split.h"

int vocab_parallel_embedding_forward(comm_t *comm, float *out, const int *tokens, int T,
                                     const kernel_weight *wte_local, int v0, const float *wpe,
                                     const char *tag) {
    int E = wte_local->K, v_local = wte_local->N;
    const kernel_type_traits *type = kernel_type_info(wte_local->type);
    size_t row_bytes = kernel_row_bytes(wte_local->type, (size_t)E);
    for (int t = 0; t < T; t++) {
        int local = tokens[t] - v0;
        float *dst = out + (size_t)t * (size_t)E;
        if (local >= 0 && local < v_local) /* this rank's row, widened to F32 */
            type->to_f32((const unsigned char *)wte_local->data + (size_t)local * row_bytes, dst,
                         (size_t)E);
        else
            memset(dst, 0, (size_t)E * sizeof(float));
    }
    int rc = comm_allreduce_sum(comm, out, (size_t)T * (size_t)E, tag);
    if (rc) return rc;
    if (wpe)
        for (size_t i = 0; i < (size_t)T * (size_t)E; i++) out[i] += wpe[i];
    return COMM_OK;
}

void vocab_parallel_lm_head_forward(float *logits_local, const float *h, const kernel_weight *head,
                                    int T) {
    kernel_matmul(logits_local, h, head, T, 0);
}

int vocab_parallel_gather_logits(comm_t *comm, float *logits, float *scratch,
                                 const float *logits_local, int T, int V, const char *tag) {
    int P = comm_size(comm), r = comm_rank(comm);
    size_t *counts = malloc((size_t)P * sizeof(size_t));
    if (!counts) return comm_fail(comm, "gather_logits: out of memory on rank %d", r);
    for (int j = 0; j < P; j++) counts[j] = (size_t)T * split_count((size_t)V, P, j);
    int rc = comm_allgather(comm, logits_local, counts[r], scratch, counts, tag);
    free(counts);
    if (rc) return rc;
    /* scratch is rank-major [P][T][v_j]; rows of the result are [v_0 | v_1 | ...]. */
    size_t done = 0;
    for (int j = 0; j < P; j++) {
        size_t vj = split_count((size_t)V, P, j), c0 = split_offset((size_t)V, P, j);
        for (int t = 0; t < T; t++)
            memcpy(logits + (size_t)t * (size_t)V + c0, scratch + done + (size_t)t * vj,
                   vj * sizeof(float));
        done += (size_t)T * vj;
    }
    return COMM_OK;
}

/* Is (va, ia) ranked before (vb, ib)? Larger value first; ties: lower id first. */
static int ranks_before(float va, int ia, float vb, int ib) {
    return va > vb || (va == vb && ia < ib);
}

/* Inserts (v, id) into the sorted top-k list of length *n (capacity k). */
static void topk_insert(float *vals, int *ids, int *n, int k, float v, int id) {
    if (*n == k && !ranks_before(v, id, vals[k - 1], ids[k - 1])) return;
    int i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && ranks_before(v, id, vals[i - 1], ids[i - 1])) {
        vals[i] = vals[i - 1];
        ids[i] = ids[i - 1];
        i--;
    }
    vals[i] = v;
    ids[i] = id;
}

int vocab_parallel_topk(comm_t *comm, const float *row_local, int v0, int v_local, int V, int k,
                        int *ids, float *values, const char *tag) {
    int P = comm_size(comm), r = comm_rank(comm);
    if (k < 1 || k > V) return comm_fail(comm, "topk: k = %d must be in 1..%d", k, V);
    if (V > (1 << 24)) return comm_fail(comm, "topk: vocabulary %d too large for float ids", V);
    float *pairs = malloc((size_t)(P + 1) * 2 * (size_t)k * sizeof(float));
    float *lv = malloc((size_t)k * sizeof(float));
    int *li = malloc((size_t)k * sizeof(int));
    if (!pairs || !lv || !li) {
        free(pairs);
        free(lv);
        free(li);
        return comm_fail(comm, "topk: out of memory on rank %d", r);
    }
    int n = 0;
    for (int j = 0; j < v_local; j++) topk_insert(lv, li, &n, k, row_local[j], v0 + j);
    /* Pad with (-inf, V): ranks with fewer than k tokens still send k pairs. */
    float *mine = pairs + (size_t)P * 2 * (size_t)k;
    for (int i = 0; i < k; i++) {
        mine[2 * i] = i < n ? lv[i] : -__builtin_inff();
        mine[2 * i + 1] = (float)(i < n ? li[i] : V);
    }
    int rc = comm_allgather(comm, mine, 2 * (size_t)k, pairs, NULL, tag);
    if (!rc) {
        n = 0;
        for (int i = 0; i < P * k; i++)
            topk_insert(values, ids, &n, k, pairs[2 * i], (int)pairs[2 * i + 1]);
    }
    free(pairs);
    free(lv);
    free(li);
    return rc;
}
