/* sampling.h — choosing the next token from vocabulary-parallel logits, identically on every
 * rank.
 *
 * Every rank calls sample_next_token with the same options and the same RNG state and gets the
 * same token: what each rank samples from is assembled by collectives that hand every rank
 * bitwise-identical data, and the RNG streams advance in lockstep. Only as much of the
 * vocabulary is moved as the method needs:
 *   - greedy (temperature 0): each rank's local argmax, then one allgather of P (value, id)
 *     pairs;
 *   - top-k: each rank's local top k, one allgather of P * k pairs, then temperature and top-p
 *     over those k candidates — exact, since the global top k are among the local ones;
 *   - otherwise (temperature and/or top-p over the whole vocabulary): one allgather of the row
 *     (V floats), since the nucleus needs the global order. */
#ifndef LINSHARD_SAMPLING_H
#define LINSHARD_SAMPLING_H

#include <stdint.h>

#include "linshard/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float temperature; /* 0: greedy */
    int top_k;         /* 0: no limit */
    float top_p;       /* 1: no limit */
} sampling_opts;

typedef struct {
    uint64_t state;
} sampler_rng;

/* Seeds the stream (same seed on every rank). */
void sampler_seed(sampler_rng *rng, uint64_t seed);
/* Uniform in [0, 1), 53 random bits. */
double sampler_uniform(sampler_rng *rng);

/* Checks options: temperature >= 0, top_k >= 0, 0 < top_p <= 1. Returns 0 or -1 with a message. */
int sampling_opts_check(const sampling_opts *o, int vocab, char *err, size_t errlen);

/* Draws the next token from this rank's slice row_local[0..v_local) (global ids v0...) of a
 * vocabulary of V. scratch holds 2 * V floats. */
int sample_next_token(comm_t *comm, const float *row_local, int v0, int v_local, int V,
                      const sampling_opts *opts, sampler_rng *rng, float *scratch, int *token);

#ifdef __cplusplus
}
#endif
#endif
