/* sampling.c — next-token choice from vocabulary-parallel logits (see sampling.h). */
#include "linshard/sampling.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "linshard/layers.h"

void sampler_seed(sampler_rng *rng, uint64_t seed) {
    rng->state = seed ^ 0x6A09E667F3BCC909ull;
}

double sampler_uniform(sampler_rng *rng) {
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

int sampling_opts_check(const sampling_opts *o, int vocab, char *err, size_t errlen) {
    if (!(o->temperature >= 0) || !isfinite(o->temperature)) {
        snprintf(err, errlen, "temperature must be a finite number >= 0");
        return -1;
    }
    if (o->top_k < 0 || o->top_k > vocab) {
        snprintf(err, errlen, "top-k must be in 0..%d (0: no limit)", vocab);
        return -1;
    }
    if (!(o->top_p > 0 && o->top_p <= 1)) {
        snprintf(err, errlen, "top-p must be in (0, 1] (1: no limit)");
        return -1;
    }
    return 0;
}

/* Samples index i of n candidates (logits sorted largest first when `sorted`) with temperature
 * and top-p. probs holds n doubles' worth of floats... computed in double for the sums. */
static int draw(const float *logits, int n, int sorted, const sampling_opts *o, sampler_rng *rng) {
    double max = -INFINITY, total = 0;
    for (int i = 0; i < n; i++) max = fmax(max, logits[i]);
    for (int i = 0; i < n; i++) total += exp((logits[i] - max) / o->temperature);
    /* Top-p: the shortest prefix of the (sorted) candidates whose mass reaches top_p. */
    int keep = n;
    if (sorted && o->top_p < 1) {
        double mass = 0;
        for (keep = 0; keep < n;) {
            mass += exp((logits[keep++] - max) / o->temperature) / total;
            if (mass >= o->top_p) break;
        }
        total = 0;
        for (int i = 0; i < keep; i++) total += exp((logits[i] - max) / o->temperature);
    }
    double u = sampler_uniform(rng) * total, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += exp((logits[i] - max) / o->temperature);
        if (u < acc) return i;
    }
    return keep - 1; /* u landed in the rounding slack at the end */
}

typedef struct {
    float logit;
    int id;
} candidate;

static int by_logit_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id - y->id;
}

int sample_next_token(comm_t *comm, const float *row_local, int v0, int v_local, int V,
                      const sampling_opts *opts, sampler_rng *rng, float *scratch, int *token) {
    int rc;
    if (opts->temperature == 0 || opts->top_k == 1) {
        float value;
        return vocab_parallel_topk(comm, row_local, v0, v_local, V, 1, token, &value,
                                   "sample.argmax");
    }
    if (opts->top_k > 0) {
        int k = opts->top_k, *ids = malloc((size_t)k * sizeof(int));
        float *vals = malloc((size_t)k * sizeof(float));
        rc = (!ids || !vals) ? comm_fail(comm, "sampling: out of memory") : 0;
        if (!rc)
            rc = vocab_parallel_topk(comm, row_local, v0, v_local, V, k, ids, vals, "sample.topk");
        if (!rc) *token = ids[draw(vals, k, 1, opts, rng)];
        free(ids);
        free(vals);
        return rc;
    }
    /* The whole row: gathered once, identical on every rank. */
    float *row = scratch, *gather = scratch + V;
    if ((rc = vocab_parallel_gather_logits(comm, row, gather, row_local, 1, V, "sample.gather")))
        return rc;
    if (opts->top_p >= 1) {
        *token = draw(row, V, 0, opts, rng);
        return COMM_OK;
    }
    candidate *c = malloc((size_t)V * sizeof(candidate));
    float *sorted = malloc((size_t)V * sizeof(float));
    if (!c || !sorted) {
        free(c);
        free(sorted);
        return comm_fail(comm, "sampling: out of memory");
    }
    for (int i = 0; i < V; i++) c[i] = (candidate){row[i], i};
    qsort(c, (size_t)V, sizeof(candidate), by_logit_desc);
    for (int i = 0; i < V; i++) sorted[i] = c[i].logit;
    *token = c[draw(sorted, V, 1, opts, rng)].id;
    free(c);
    free(sorted);
    return COMM_OK;
}
