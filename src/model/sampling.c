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
 * and top-p, in double: each weight exp((logit - max) / T) is computed once (libm's exp, so
 * every rank, on any machine with the same libm, draws the same index) into e[n], then summed
 * and walked. Returns the index, or -1 when out of memory. */
static int draw(const float *logits, int n, int sorted, const sampling_opts *o, sampler_rng *rng) {
    double *e = malloc((size_t)n * sizeof(double));
    if (!e) return -1;
    float max = -INFINITY;
    for (int i = 0; i < n; i++)
        if (logits[i] > max) max = logits[i];
    double total = 0;
    for (int i = 0; i < n; i++) total += e[i] = exp(((double)logits[i] - max) / o->temperature);
    /* Top-p: the shortest prefix of the (sorted) candidates whose mass reaches top_p. */
    int keep = n;
    if (sorted && o->top_p < 1) {
        double mass = 0;
        for (keep = 0; keep < n;) {
            mass += e[keep++] / total;
            if (mass >= o->top_p) break;
        }
        total = 0;
        for (int i = 0; i < keep; i++) total += e[i];
    }
    double u = sampler_uniform(rng) * total, acc = 0;
    int pick = keep - 1; /* unless found below: u landed in the rounding slack at the end */
    for (int i = 0; i < keep; i++) {
        acc += e[i];
        if (u < acc) {
            pick = i;
            break;
        }
    }
    free(e);
    return pick;
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
        int i = rc ? 0 : draw(vals, k, 1, opts, rng);
        if (!rc && i < 0) rc = comm_fail(comm, "sampling: out of memory");
        if (!rc) *token = ids[i];
        free(ids);
        free(vals);
        return rc;
    }
    /* The whole row: gathered once, identical on every rank. */
    float *row = scratch, *gather = scratch + V;
    if ((rc = vocab_parallel_gather_logits(comm, row, gather, row_local, 1, V, "sample.gather")))
        return rc;
    if (opts->top_p >= 1) {
        int i = draw(row, V, 0, opts, rng);
        if (i < 0) return comm_fail(comm, "sampling: out of memory");
        *token = i;
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
    int i = draw(sorted, V, 1, opts, rng);
    if (i >= 0) *token = c[i].id;
    free(c);
    free(sorted);
    return i >= 0 ? COMM_OK : comm_fail(comm, "sampling: out of memory");
}
