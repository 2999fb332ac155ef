/* cross_entropy.c — vocabulary-parallel cross-entropy, forward and backward (see loss.h). */
#include <math.h>
#include <stddef.h>

#include "../kernels/fast_exp.h"
#include "linshard/loss.h"

size_t vocab_parallel_cross_entropy_scratch_floats(int T, int P) {
    if (T < 0 || P < 1) return 0;
    return (size_t)3 * (size_t)T * ((size_t)P + 1);
}

int vocab_parallel_cross_entropy(comm_t *comm, const float *logits_local, int T, int v0,
                                 int v_local, int V, const int *targets, float *loss,
                                 float *grad_local, float *scratch, const char *tag) {
    static const char *fn = "vocab_parallel_cross_entropy";
    int P = comm_size(comm), r = comm_rank(comm);
    if (T < 1) return comm_fail(comm, "%s: T = %d rows, need at least 1", fn, T);
    if (V < 1 || v0 < 0 || v_local < 0 || v0 > V - v_local)
        return comm_fail(comm, "%s: rank %d's slice [%d, %d) is not inside the vocabulary [0, %d)",
                         fn, r, v0, v0 + v_local, V);
    if (!targets || !loss || !scratch || (v_local > 0 && !logits_local))
        return comm_fail(comm, "%s: NULL buffer on rank %d", fn, r);
    /* Every rank checks every target (the same array everywhere): all fail alike, before any
     * collective. */
    for (int t = 0; t < T; t++)
        if (targets[t] < 0 || targets[t] >= V)
            return comm_fail(comm, "%s: target %d of row %d is outside the vocabulary [0, %d)", fn,
                             targets[t], t, V);

    size_t n = (size_t)T, vl = (size_t)v_local;
    float *mine = scratch;        /* [3][T]: local max, local sum of exp(l - max), target logit */
    float *all = scratch + 3 * n; /* [P][3][T], rank-major */
    for (size_t t = 0; t < n; t++) {
        const float *row = logits_local + t * vl;
        float m = -__builtin_inff();
        for (size_t j = 0; j < vl; j++) m = row[j] > m ? row[j] : m;
        double s = 0;
        for (size_t j = 0; j < vl; j++) s += (double)fast_expf(row[j] - m);
        int local = targets[t] - v0;
        mine[t] = m;
        mine[n + t] = (float)s; /* in [1, v_local] (or 0 for an empty slice): never overflows */
        mine[2 * n + t] = local >= 0 && local < v_local ? row[local] : 0.0f;
    }
    int rc = comm_allgather(comm, mine, 3 * n, all, NULL, tag);
    if (rc) return rc;

    /* Identical inputs, identical order on every rank: identical bits. mine[] is reused for
     * the per-row global max (float) and 1 / S (float) that the gradient needs. */
    double total = 0;
    for (size_t t = 0; t < n; t++) {
        float M = -__builtin_inff();
        for (int q = 0; q < P; q++) {
            float mq = all[(size_t)q * 3 * n + t];
            M = mq > M ? mq : M;
        }
        double S = 0, target = 0;
        for (int q = 0; q < P; q++) {
            const float *blk = all + (size_t)q * 3 * n;
            /* an empty slice sends (-inf, 0): skip it (0 * exp(-inf) would be fine, but a
             * NaN in a slice's sum must reach the loss, so the test is != 0, not > 0) */
            if (blk[n + t] != 0) S += (double)blk[n + t] * exp((double)blk[t] - (double)M);
            target += (double)blk[2 * n + t]; /* one owner, the others exact zeros */
        }
        /* S >= 1 (the max's own term) whenever the slices tile [0, V); all ranks see the same
         * S, so a caller whose slices hold no column fails on every rank alike. NaN logits
         * pass this test and make the loss NaN, as they should. */
        if (S <= 0)
            return comm_fail(comm,
                             "%s: row %d has no logits on any rank (slices must tile [0, %d))", fn,
                             (int)t, V);
        total += (double)M + log(S) - target;
        mine[t] = M;
        mine[n + t] = (float)(1.0 / S);
    }
    *loss = (float)(total / (double)T);

    if (grad_local && vl > 0) {
        float inv_t = (float)(1.0 / (double)T);
        for (size_t t = 0; t < n; t++) {
            const float *row = logits_local + t * vl;
            float *g = grad_local + t * vl;
            float M = mine[t], inv_s = mine[n + t];
            for (size_t j = 0; j < vl; j++) g[j] = fast_expf(row[j] - M) * inv_s * inv_t;
            int local = targets[t] - v0;
            if (local >= 0 && local < v_local) g[local] -= inv_t;
        }
    }
    return COMM_OK;
}
