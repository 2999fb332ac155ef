/* layers_backward.h — the backward pass of the tensor-parallel layers (layers.h), with
 * Megatron's conjugate operators.
 *
 * Megatron names two operators in a parallel block. f: identity in the forward (the replicated
 * input enters every rank's column-parallel GEMM), AllReduce in the backward (each rank's
 * d_input is a partial sum over its own columns). g: AllReduce in the forward (the row-parallel
 * GEMM's partial sums), identity in the backward (d_output is replicated, so every rank already
 * has what it needs). A block (MLP, attention) therefore costs one AllReduce forward and one
 * backward — 4 per transformer layer, forward + backward.
 *
 * Conventions, as in layers.h: row-major, T tokens, weights [in, out] (y = x · W + b). Training
 * runs on F32 weights in that layout only (kernel_weight_f32): the backward reads their data as
 * floats; the trainer refuses any other weight type.
 *  - Parameter gradients ACCUMULATE (+=): zero them before the first micro-batch.
 *  - Input gradients (dx) are WRITTEN (=); add the residual branch yourself.
 *  - A gradient pointer for a bias may be NULL: that gradient is skipped.
 *  - Replicated parameters (LayerNorm w/b, the row-parallel bias added after the AllReduce)
 *    get bitwise-identical gradients on every rank without any communication: they are
 *    computed from replicated tensors (d_out, the replicated activations) by the same code.
 *    Sharded parameters get the gradient of this rank's shard only. */
#ifndef LINSHARD_LAYERS_BACKWARD_H
#define LINSHARD_LAYERS_BACKWARD_H

#include <stddef.h>

#include "linshard/comm.h"
#include "linshard/layers.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- activations and normalisation -------------------------------------------------------- */

/* dx[i] = GELU'(x[i]) * dy[i] for the tanh ("gelu_new") or the erf form; x is the input of the
 * forward (the pre-activation). dx may alias dy. Communication: none. */
void gelu_backward(float *dx, const float *x, const float *dy, size_t n, gelu_kind kind);

/* Backward of layernorm_forward(out, x, w, b, T, E, eps). Writes dx[T, E] (dx may alias dy),
 * accumulates dw[E] += sum_t dy * xhat, db[E] += sum_t dy (dw, db may be NULL). Mean and
 * variance are recomputed from x, in double as in the forward. The parameters are replicated
 * and so are x and dy, so dw, db are the same bits on every rank. Communication: none. */
void layernorm_backward(float *dx, float *dw, float *db, const float *x, const float *w,
                        const float *dy, int T, int E, float eps);

/* ---- linear layers ------------------------------------------------------------------------ */

/* Backward of column_parallel_forward: x[T, in_dim] replicated, w_local[in_dim, n_local],
 * d_out_local[T, n_local] = this rank's columns of d_out.
 *   dw_local[in_dim, n_local] += x^T · d_out_local
 *   db_local[n_local]         += column sums of d_out_local      (NULL: skipped)
 *   dx_partial[T, in_dim]      = d_out_local · w_local^T         (NULL: skipped)
 * dx_partial is this rank's PARTIAL sum: the true d_x is its sum over ranks (the conjugate of
 * the forward's identity, Megatron's f, is an AllReduce). Communication: none — the caller
 * reduces, once per block input: parallel_mlp_backward and parallel_attention_backward do, or
 * use column_parallel_backward_reduce for a lone layer. */
void column_parallel_backward(float *dx_partial, float *dw_local, float *db_local,
                              const float *d_out_local, const float *x, const float *w_local, int T,
                              int in_dim, int n_local);

/* column_parallel_backward, then the AllReduce that completes dx (replicated on return).
 * Communication: exactly one allreduce_sum of T * in_dim floats, tagged `tag`. */
int column_parallel_backward_reduce(comm_t *comm, float *dx, float *dw_local, float *db_local,
                                    const float *d_out_local, const float *x, const float *w_local,
                                    int T, int in_dim, int n_local, const char *tag);

/* Backward of row_parallel_forward: d_out[T, out_dim] replicated (the conjugate of the
 * forward's AllReduce, Megatron's g, is the identity), x_local[T, k_local] this rank's feature
 * block of the input, w_local[k_local, out_dim].
 *   dw_local[k_local, out_dim] += x_local^T · d_out
 *   db[out_dim]                += column sums of d_out   (replicated bias; NULL: skipped)
 *   dx_local[T, k_local]        = d_out · w_local^T      (exact, not partial; NULL: skipped)
 * Communication: none. */
void row_parallel_backward(float *dx_local, float *dw_local, float *db, const float *d_out,
                           const float *x_local, const float *w_local, int T, int k_local,
                           int out_dim);

/* ---- the Megatron MLP --------------------------------------------------------------------- */

/* Gradients of this rank's MLP shard, shapes as mlp_weights (fc_b, proj_b may be NULL). */
typedef struct {
    float *fc_w;   /* [E, f_local] */
    float *fc_b;   /* [f_local] */
    float *proj_w; /* [f_local, E] */
    float *proj_b; /* [E] replicated: the same bits on every rank */
} mlp_grads;

/* What the forward keeps for the backward: this rank's pre-activation (c_fc output) and its
 * GELU, [T, f_local] each. The block input itself is the caller's (it is needed too). */
typedef struct {
    float *pre; /* [T, f_local] */
    float *act; /* [T, f_local] */
} mlp_saved;

/* parallel_mlp_forward that also fills `saved`; out is the same bits.
 * Communication: exactly one allreduce_sum of T * E floats, tagged `tag`. */
int parallel_mlp_forward_train(comm_t *comm, float *out, const float *in, const mlp_weights *w,
                               int T, const mlp_saved *saved, const char *tag);

/* Backward of the MLP block. in[T, E] the block input (replicated), dy[T, E] the gradient of
 * its output (replicated), saved from parallel_mlp_forward_train on the same input; scratch
 * holds T * f_local floats. Accumulates into g, writes dx[T, E] (replicated on return).
 * Steps: row-parallel backward (g: identity) -> GELU backward on the local shard ->
 * column-parallel backward -> AllReduce of dx (f's conjugate).
 * Communication: exactly one allreduce_sum of T * E floats (dx), tagged `tag`. */
int parallel_mlp_backward(comm_t *comm, float *dx, const mlp_grads *g, const float *in,
                          const mlp_weights *w, const float *dy, int T, const mlp_saved *saved,
                          float *scratch, const char *tag);

/* ---- attention ---------------------------------------------------------------------------- */

/* Gradients of this rank's attention shard, shapes as attention_weights (layout [Q | K | V]
 * of this rank's heads for qkv). qkv_b, proj_b may be NULL. */
typedef struct {
    float *qkv_w;  /* [E, 3 * h_local * D] */
    float *qkv_b;  /* [3 * h_local * D] */
    float *proj_w; /* [h_local * D, E] */
    float *proj_b; /* [E] replicated: the same bits on every rank */
} attention_grads;

/* What the attention forward keeps for the backward (no KV cache: a training pass sees the
 * whole sequence, positions [0, T)). The softmax probabilities are saved rather than
 * recomputed: T * T per head is small next to the GEMMs at training lengths here. */
typedef struct {
    float *qkv;   /* [T, 3 * h_local * D]: Q, K, V of this rank's heads */
    float *probs; /* [h_local, T, T]: causal softmax of each head (zeros above the diagonal) */
    float *att;   /* [T, h_local * D]: the heads' outputs, input of the row-parallel c_proj */
} attention_saved;

/* Floats for one attention_saved at T tokens, and a view carving it out of buf. */
size_t attention_saved_floats(const attention_weights *w, int T);
void attention_saved_view(attention_saved *saved, float *buf, const attention_weights *w, int T);

/* parallel_attention_forward with no cache (pos0 = 0) that also fills `saved`; out is the same
 * bits. Communication: exactly one allreduce_sum of T * E floats, tagged `tag`. */
int parallel_attention_forward_train(comm_t *comm, float *out, const float *in,
                                     const attention_weights *w, int T,
                                     const attention_saved *saved, const char *tag);

/* Scratch for parallel_attention_backward, in floats: T * 3hd + T * hd + T * T. */
size_t attention_backward_scratch_floats(const attention_weights *w, int T);

/* Backward of the attention block. in[T, E] the block input (replicated), dy[T, E] the
 * gradient of its output (replicated), saved from parallel_attention_forward_train on the same
 * input. Accumulates into g, writes dx[T, E] (replicated on return). Steps: row-parallel
 * backward of c_proj (g: identity) -> per head, through P·V, the causal softmax and the
 * 1/sqrt(D)-scaled Q·K^T (heads are independent: local) -> column-parallel backward of the
 * fused QKV GEMM -> AllReduce of dx (f's conjugate).
 * Communication: exactly one allreduce_sum of T * E floats (dx), tagged `tag`. */
int parallel_attention_backward(comm_t *comm, float *dx, const attention_grads *g, const float *in,
                                const attention_weights *w, const float *dy, int T,
                                const attention_saved *saved, float *scratch, const char *tag);

#ifdef __cplusplus
}
#endif
#endif
