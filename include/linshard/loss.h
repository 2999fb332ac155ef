/* loss.h — the training loss over logits split by vocabulary, without ever gathering them.
 *
 * The LM head leaves logits split by vocabulary (layers.h: rank r holds the columns
 * [v0, v0 + v_local) of every row). Cross-entropy needs three numbers per row that span the
 * whole vocabulary: the row max (for a stable log-sum-exp), the sum of exp(l - max), and the
 * target's logit, which lives on exactly one rank. Each rank computes its local version of all
 * three for every row; one small all-gather gives every rank every rank's triple, and each rank
 * combines them identically. The [T, V] logits never travel. */
#ifndef LINSHARD_LOSS_H
#define LINSHARD_LOSS_H

#include <stddef.h>

#include "linshard/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Floats of scratch vocab_parallel_cross_entropy needs for T rows on P ranks: 3 * T * (P + 1)
 * (this rank's triples, then every rank's). */
size_t vocab_parallel_cross_entropy_scratch_floats(int T, int P);

/* Mean cross-entropy over T rows of logits split by vocabulary:
 *   loss = (1/T) * sum_t [ log sum_j exp(l[t, j]) - l[t, targets[t]] ].
 * Rank r holds logits_local[T, v_local] = the columns [v0, v0 + v_local) of each row; the
 * ranks' slices must tile [0, V) (v_local may be 0). targets[t] is a global id in [0, V), the
 * same array on every rank.
 *
 * *loss: the same bits on every rank (each rank combines the identical gathered values in the
 * same order, in double precision). If grad_local != NULL it receives
 * d(loss)/d(logits_local) = (softmax(l[t]) - onehot(targets[t])) / T on this rank's slice,
 * [T, v_local]; grad_local may be logits_local itself (computed in place).
 * scratch: vocab_parallel_cross_entropy_scratch_floats(T, P) floats.
 *
 * Numerics: per row, each rank takes its local max m_r and s_r = sum over its slice of
 * exp(l - m_r) (accumulated in double); the global max is M = max_r m_r and the global sum
 * S = sum_r s_r * exp(m_r - M) (double, ranks in order), so no exp ever overflows; the row's
 * loss M + log S - l_target and the mean over rows are accumulated in double.
 *
 * Communication: exactly one allgather of 3 * T floats per rank (P * 3 * T floats received in
 * all), tagged `tag`: per row this rank's max m_r, its sum s_r, and the target's logit if this
 * rank owns the target (0 otherwise; summed over ranks, so exact). This replaces the textbook
 * allreduce-max + allreduce-sum(exp) + allreduce-sum(target logit): one collective instead of
 * three, and the communicator has no max reduction anyway.
 *
 * Errors (every rank checks the same arguments before communicating, so all ranks fail the
 * same way, with one message, via comm_fail): T < 1, a slice outside [0, V), NULL buffers, or
 * a target outside [0, V). Returns 0 or a comm_status. */
int vocab_parallel_cross_entropy(comm_t *comm, const float *logits_local, int T, int v0,
                                 int v_local, int V, const int *targets, float *loss,
                                 float *grad_local, float *scratch, const char *tag);

#ifdef __cplusplus
}
#endif
#endif
