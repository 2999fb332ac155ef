/* train.h — one training step of GPT-2 split over P ranks (Megatron tensor parallelism). The
 * Llama family's backward is not written yet: model_trainer_init refuses other families.
 *
 * Each rank keeps a model_trainer next to its model_shard: a gradient buffer with exactly the
 * layout of shard->params (every named view has a gradient twin at the same offset:
 * grads + (view - params)), AdamW's two moment buffers with the same layout (so sharded like
 * the parameters: no rank holds more than its share), the activations one sequence of up to
 * max_T tokens saves for the backward, and scratch.
 *
 * A step:
 *   model_trainer_zero_grad(tr);
 *   for each micro-batch sequence b of B:                      (gradient accumulation)
 *       model_train_forward_backward(comm, m, tr, tokens_b, targets_b, T, &loss_b);
 *   model_grad_norm(comm, m, tr, &norm);                         (optional: for clipping)
 *   model_adamw_step(m, tr, lr, beta1, beta2, eps, wd, fminf(1, max_norm / norm));
 * With tr->grad_scale = 1/B the accumulated gradient is that of the mean loss over the B
 * sequences (default 1: each call adds the gradient of its own sequence's mean loss).
 *
 * Communication of one model_train_forward_backward (the ledger's tags):
 *   forward:  1 allreduce "embed" + per layer 1 "layer{i}.attn" + 1 "layer{i}.mlp" (T*E each),
 *             1 allgather "loss" of 3*T floats per rank (vocab_parallel_cross_entropy);
 *   backward: 1 allreduce "lm_head.backward" (T*E: d_h is a partial sum over vocabulary
 *             shards), per layer 1 "layer{i}.mlp.backward" + 1 "layer{i}.attn.backward"
 *             (T*E each); the embedding backward needs none (d_wpe is replicated, and d_wte
 *             rows are only updated on the rank that owns the token's row).
 * So 2 + 4 * n_layer allreduce and 1 allgather. model_grad_norm: 1 allreduce of 1 float
 * ("grad_norm"). model_adamw_step: none. */
#ifndef LINSHARD_GPT2_TRAIN_H
#define LINSHARD_GPT2_TRAIN_H

#include <stddef.h>

#include "linshard/comm.h"
#include "linshard/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int max_T;
    size_t n_params;
    float *grads;     /* [n_params], layout of shard->params; accumulated (+=) */
    float *m, *v;     /* AdamW first and second moments, same layout */
    long step;        /* AdamW steps taken */
    float grad_scale; /* multiplies d(loss)/d(logits) of each call; default 1 */

    /* Saved activations of one sequence of up to max_T tokens, and scratch: one allocation. */
    float *acts;
    float *resid;      /* [2 * n_layer + 1][T, E]: the residual stream before each block, final */
    float *ln1, *ln2;  /* [n_layer][T, E]: each block's LayerNorm output (the block input) */
    float *attn_saved; /* [n_layer][attention_saved_floats(max_T)] */
    float *mlp_pre, *mlp_act; /* [n_layer][T, f_local] */
    float *lnf;               /* [T, E]: ln_f output, the LM head's input */
    float *dlogits;           /* [T, v_local]: logits, then their gradient */
    float *dx, *dtmp;         /* [T, E] */
    float *scratch;
    size_t attn_saved_stride;
} model_trainer;

/* 0 if the trainer implements cfg's family (GPT-2), else -1 with a one-line message. */
int model_train_supported(const model_config *cfg, char *err, size_t errlen);

/* Allocates a trainer for shard m and sequences of up to max_T tokens (<= m->cfg.n_positions).
 * Gradients and moments start at zero, step at 0. Returns 0, or -1 with a message in err. */
int model_trainer_init(model_trainer *tr, const model_shard *m, int max_T, char *err,
                       size_t errlen);
void model_trainer_free(model_trainer *tr);

/* grads <- 0 (before the first micro-batch of a step). */
void model_trainer_zero_grad(model_trainer *tr);

/* The gradient twin of a named view of m (e.g. m->layers[0].qkv_w): grads + (view - params). */
float *model_trainer_grad(const model_trainer *tr, const model_shard *m, const float *view);

/* Forward of tokens[0..T) (T <= tr->max_T, ids and targets in [0, vocab): checked) with saved
 * activations, the mean cross-entropy against targets[0..T) into *loss (the same bits on every
 * rank), then the backward, ACCUMULATING (+=) this rank's gradient shard into tr->grads.
 * Replicated parameters get bitwise-identical gradients on every rank. m->logits is not
 * touched. Returns 0 or a comm_status (errors go through comm_fail). */
int model_train_forward_backward(comm_t *comm, model_shard *m, model_trainer *tr, const int *tokens,
                                 const int *targets, int T, float *loss);

/* The global L2 norm of the gradient, every parameter counted once: the sum of squares of this
 * rank's sharded tensors, allreduced (1 float, tag "grad_norm"), plus that of the replicated
 * tensors (wpe, LayerNorms, the row-parallel biases, ln_f), added once — they are identical on
 * every rank, so adding them before the AllReduce would count them P times. *norm is the same
 * bits on every rank. Returns 0 or a comm_status. */
int model_grad_norm(comm_t *comm, const model_shard *m, const model_trainer *tr, double *norm);

/* One AdamW step on this rank's shard, no communication: g = clip_scale * grad;
 * m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; step += 1;
 * p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps) + lr * wd * p (decoupled
 * weight decay, applied only to 2-D weights: wte, wpe, c_attn, attn c_proj, c_fc, mlp c_proj,
 * as GPT-2/nanoGPT do; biases and LayerNorm parameters are not decayed).
 * Replicated parameters stay identical on every rank: same gradient bits, same moments, same
 * arithmetic. clip_scale = min(1, max_norm / model_grad_norm) clips by the global norm. */
void model_adamw_step(model_shard *m, model_trainer *tr, float lr, float beta1, float beta2,
                      float eps, float weight_decay, float clip_scale);

#ifdef __cplusplus
}
#endif
#endif
