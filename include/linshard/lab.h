/* lab.h — the investigation, executable: real tensors through each correct tensor-parallel layer
 * and through the naive alternatives a newcomer would write, on P ranks of the threads backend.
 *
 * Every experiment is measured against the same computation done whole, serially, in double
 * precision, and its communication is read from the comm ledger of the measured region only.
 * A correct row must match within LAB_TOL_REL of the reference's largest magnitude (and use
 * exactly the communication its explanation states); a naive row must miss by more than
 * LAB_WRONG_FACTOR times that tolerance. `linshard lab` prints these rows. */
#ifndef LINSHARD_LAB_H
#define LINSHARD_LAB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The shapes every experiment uses. 8 heads allow P up to 8; 96 and 384 are not divisible by
 * 5 or 7, the 8 heads not by 3, 5, 6 or 7, the vocabulary (103, a prime) by none: the balanced
 * split of split.h makes those uneven, as in the real model. The grouped-query attention rows
 * use 22 query heads and 11 K/V heads of 8 (lab.c): 11 is prime, so K/V heads are replicated
 * and a contiguous K/V split is wrong at every P in 2..8. */
enum {
    LAB_T = 5,                 /* tokens */
    LAB_E = 96,                /* model width */
    LAB_HEADS = 8,             /* attention heads ... */
    LAB_D = LAB_E / LAB_HEADS, /* ... of 12 */
    LAB_F = 4 * LAB_E,         /* MLP width */
    LAB_V = 103,               /* vocabulary */
    LAB_MIN_P = 2,             /* nothing is split at P = 1 */
    LAB_MAX_P = LAB_HEADS,     /* attention needs a head per rank */
    LAB_ROWS = 20              /* rows lab_run produces */
};

/* "Correct" means max |sharded - unsharded| <= LAB_TOL_REL * max |unsharded| (see lab.c for
 * why); "visibly wrong" means more than LAB_WRONG_FACTOR times that. */
#define LAB_TOL_REL 1e-5
#define LAB_WRONG_FACTOR 100.0

typedef struct {
    char name[40];          /* the layer: "row-parallel linear" */
    char variant[64];       /* how it was split: "bias added once, after the AllReduce" */
    char explanation[256];  /* one line of plain language: why it is right or wrong */
    int correct_expected;   /* 1: must match the unsharded result; 0: a naive variant */
    double max_error;       /* max |sharded - unsharded| over every element on every rank */
    double tolerance;       /* LAB_TOL_REL * max |unsharded| */
    double predicted_error; /* what theory predicts the error is, or -1 where nothing is predicted
                             * (the bias added before the AllReduce: (P-1) * max|b|) */
    /* Communication of the measured region, from rank 0's ledger (every rank makes the same
     * calls). floats_communicated is the payload of every call: N for an allreduce of N floats,
     * the gathered total for an all-gather. */
    uint64_t allreduce_calls, allgather_calls, other_calls;
    uint64_t floats_communicated;
    /* Correct rows: within tolerance and with exactly the expected communication (below).
     * Naive rows: error > LAB_WRONG_FACTOR * tolerance (and, where predicted, equal to the
     * prediction within tolerance). */
    int as_expected;
    uint64_t expected_allreduce_calls, expected_allgather_calls, expected_floats;
} lab_row;

/* Runs every experiment on P ranks (LAB_MIN_P..LAB_MAX_P) of the threads backend with inputs and
 * weights drawn from `seed`, and fills rows[0..LAB_ROWS). Returns the number of rows, or -1 with
 * a one-line message in err (bad P, max_rows < LAB_ROWS, out of memory, a rank failed). */
int lab_run(int P, uint64_t seed, lab_row *rows, int max_rows, char *err, size_t errlen);

/* The row's communication in words: "none", "1 allreduce, 480 floats",
 * "1 allreduce + 1 allgather, 960 floats". */
void lab_format_comm(const lab_row *row, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
