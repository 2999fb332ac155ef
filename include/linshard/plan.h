/* plan.h — the communication of tensor parallelism, derived rather than hard-coded.
 *
 * The model of a model_config (GPT-2 or the Llama family) is written down as a small graph of
 * operations (vocab-parallel embedding, LayerNorm or RMSNorm, linear maps, bias adds where the
 * config has them, GELU or SwiGLU, per-head q/k norm and RoPE where present, the per-head
 * attention core, residual adds, the LM head, tied or its own). The weights get placements
 * from the options; every activation's placement then follows from per-operation rules:
 *   Replicate     every rank holds the whole tensor;
 *   Shard(dim)    each rank holds a block of features, heads or vocabulary rows;
 *   Partial       each rank holds a summand: the tensor is the sum over ranks, not yet reduced.
 * Where an operation's rule does not accept the placement it is given, the cheapest conversion
 * is inserted before it: AllReduce (Partial -> Replicate), all-gather (Shard -> Replicate),
 * reduce-scatter (Partial -> Shard), or a free local slice (Replicate -> Shard). Counting those
 * conversions gives the communication of a pass; the gradient pass is derived the same way,
 * from each operation's transpose (see plan.c).
 *
 * Ops carry the ledger tag the runtime uses for the same part of the model ("embed",
 * "layer{i}.attn", "layer{i}.mlp"; "head" for the final norm and LM head), so a plan can be
 * compared call for call with what comm_ledger records.
 *
 * With grouped-query attention split by heads, a rank holds every K/V head its query heads
 * read (model_head_split), so K/V heads shared by query heads on several ranks are replicated:
 * plan_kv_replication says what that costs. */
#ifndef LINSHARD_PLAN_H
#define LINSHARD_PLAN_H

#include <stddef.h>

#include "linshard/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { PLAN_REPLICATE = 0, PLAN_SHARD, PLAN_PARTIAL } plan_kind;
typedef enum { PLAN_DIM_NONE = 0, PLAN_DIM_FEATURES, PLAN_DIM_HEADS, PLAN_DIM_VOCAB } plan_dim;

typedef struct {
    plan_kind kind;
    plan_dim dim; /* PLAN_DIM_NONE unless kind is PLAN_SHARD */
} plan_placement;

/* How a weight is split. A linear map's weight is [in, out] (y = x W): column-parallel shards
 * the output features, row-parallel the input features. The embedding is the linear map
 * one_hot(ids) · wte with wte [V, E] split by vocabulary rows: PLAN_SPLIT_ROW, dim VOCAB; the
 * LM head, tied to it (h · wte^T) or its own [V, E] weight, is PLAN_SPLIT_COLUMN, dim VOCAB. A
 * bias, norm or q/k norm parameter is PLAN_SPLIT_REPLICATE or, for the bias of a
 * column-parallel linear, PLAN_SPLIT_COLUMN (sliced like its columns). */
typedef enum { PLAN_SPLIT_REPLICATE = 0, PLAN_SPLIT_COLUMN, PLAN_SPLIT_ROW } plan_split;

typedef struct {
    plan_split split;
    plan_dim dim;
} plan_weight;

typedef enum {
    PLAN_COMM_NONE = 0,
    PLAN_COMM_SLICE,          /* local and free: Replicate -> Shard (each rank keeps its block),
                                 Replicate/Shard -> Partial (zeros outside what a rank keeps) */
    PLAN_COMM_ALLREDUCE,      /* Partial -> Replicate */
    PLAN_COMM_ALLGATHER,      /* Shard -> Replicate (then a free slice, for Shard -> Shard') */
    PLAN_COMM_REDUCE_SCATTER, /* Partial -> Shard */
    PLAN_COMM_KINDS
} plan_comm;

typedef enum {
    PLAN_OP_EMBEDDING = 0, /* one_hot(token ids) · wte: a linear map on the vocabulary */
    PLAN_OP_LAYERNORM,     /* LayerNorm or RMSNorm: statistics of the whole feature vector */
    PLAN_OP_LINEAR,
    PLAN_OP_BIAS_ADD,  /* also wpe, the position table added to the embedding */
    PLAN_OP_GELU,      /* also SiLU(gate) * up, on the same feature slice of gate and up */
    PLAN_OP_HEADWISE,  /* acts on each head of q and k alone: RoPE, Qwen3's q/k RMSNorm */
    PLAN_OP_ATTENTION, /* the attention core: softmax(q k^T) v per head */
    PLAN_OP_RESIDUAL,
    PLAN_OP_STREAM, /* the embedding becomes the residual stream (models without wpe) */
    PLAN_OP_LM_HEAD
} plan_op_kind;

/* What to do with a replicated bias whose input is Partial (a bias add on a partial sum is only
 * correct if it happens once). */
typedef enum {
    PLAN_BIAS_AFTER_REDUCE = 0, /* Megatron: AllReduce first, then every rank adds it */
    PLAN_BIAS_ONE_RANK,         /* one rank adds it to its summand; the sum stays Partial */
    PLAN_BIAS_EVERY_RANK        /* every rank adds it to its summand: counted P times, invalid */
} plan_bias_policy;

typedef struct {
    plan_split attn_qkv, attn_proj; /* heads: COLUMN, ROW (by heads); or both REPLICATE */
    plan_split mlp_fc, mlp_proj;    /* default COLUMN, ROW (by features) */
    plan_bias_policy bias;
} plan_options;

/* One operation with its placements. `in` is the operand a conversion may be inserted on (for
 * a residual add, the branch); `in2` the residual stream (or -1). */
typedef struct {
    plan_op_kind kind;
    char name[32];      /* "attn.c_attn", "gelu", ... */
    char tag[24];       /* ledger tag of this part of the model */
    int layer;          /* -1 for the embedding and the head */
    plan_weight weight; /* PLAN_SPLIT_REPLICATE with dim NONE for ops without a weight */
    int has_weight;     /* the op has a parameter (linear, bias, norm, embedding, head) */
    int in, in2, out;   /* value ids */
    int width;          /* floats per token of `in` (what a conversion on it moves) */
    int kv;             /* `in` holds the K/V heads (the QKV projection's output) */
    /* forward, filled by plan_build */
    plan_placement in_pl;  /* what arrives */
    plan_placement need;   /* what the op's rule needs (after the inserted conversion) */
    plan_placement out_pl; /* what it produces */
    plan_comm comm;        /* conversion inserted before the op, on `in` */
    /* backward: the gradient of the output arrives as dy_pl; the op's transpose produces
     * dx_pl for its input; bwd_comm converts it to what the input's producer needs. */
    plan_placement dy_pl, dx_pl, dx_need;
    plan_comm bwd_comm;
    int weight_grad_reduce; /* the weight gradient is Partial: needs an AllReduce */
} plan_op;

/* Totals of one pass (forward or backward): counts of each collective per part of the model. */
typedef struct {
    int embed[PLAN_COMM_KINDS];     /* tag "embed" */
    int per_layer[PLAN_COMM_KINDS]; /* layer 0's (every layer is checked to be the same) */
    int head[PLAN_COMM_KINDS];      /* tag "head" */
    int total[PLAN_COMM_KINDS];     /* the whole model */
    double bytes_per_token;         /* payload of every collective, float32, whole model */
    double layer_bytes_per_token;   /* the same, one layer */
    double rank_bytes_per_token;    /* bandwidth-optimal bytes each rank sends, whole model */
    int weight_grad_reduce;         /* backward only: weight gradients needing an AllReduce */
} plan_totals;

/* What grouped-query attention's replicated K/V heads cost, for the config and P with the
 * attention split by heads (all zero but n_kv_head and kv_heads_held when nothing is
 * replicated). "Extra" is over holding each K/V head once; every figure is summed over the P
 * ranks and the n_layer layers, float32. */
typedef struct {
    int split;          /* the attention is split by heads (else: nothing below applies) */
    int n_kv_head;      /* K/V heads of the model (one layer) */
    int kv_heads_held;  /* K/V heads held summed over the ranks (one layer) */
    int kv_heads_extra; /* kv_heads_held - n_kv_head */
    int max_kv_local;   /* most K/V heads one rank holds */
    long long extra_weight_floats;   /* the copies' K and V projection columns (and biases) */
    long long extra_weight_bytes;    /* 4 * extra_weight_floats */
    long long extra_flops_per_token; /* 2 per multiply-add of the copies' K and V projections */
    long long extra_kv_cache_floats_per_position; /* the copies' cached K and V */
    double comm_bytes_per_token; /* collectives on anything holding K/V, forward + backward:
                                    derived from the placements, 0 */
} plan_kv_replication;

typedef struct {
    model_config cfg;
    int P;
    plan_options opt;
    plan_op *ops;
    int n_ops, cap_ops;
    int n_values;
    int cap_values;
    plan_placement *values; /* forward placement of each value */
    int *widths;            /* floats per token of each value */
    int layers_identical;   /* every layer got layer 0's placements and communication */
    plan_totals fwd, bwd;
    plan_kv_replication kv;
} plan_t;

void plan_options_default(plan_options *opt);
/* "column,row" | "row,column" | "replicate" | any pair of column/row/replicate. 0 or -1. */
int plan_parse_mlp(const char *s, plan_options *opt);
/* "heads" | "replicate". 0 or -1. */
int plan_parse_attention(const char *s, plan_options *opt);
/* "after-reduce" | "one-rank" | "every-rank". 0 or -1. */
int plan_parse_bias(const char *s, plan_options *opt);

/* Builds the graph of cfg's model and propagates placements forward and backward for P ranks.
 * Returns 0, or -1 with a one-line message in err: the model cannot be split P ways, or the
 * options have no valid plan (the message names the rule that is violated). */
int plan_build(plan_t *plan, const model_config *cfg, int P, const plan_options *opt, char *err,
               size_t errlen);
void plan_free(plan_t *plan);

/* Payload bytes per token of one conversion on `width` floats (float32), and the bytes each
 * rank sends with the bandwidth-optimal algorithm (AllReduce 2(P-1)/P, all-gather and
 * reduce-scatter (P-1)/P of the payload; a slice is free). */
double plan_comm_bytes(plan_comm c, int width);
double plan_comm_rank_bytes(plan_comm c, int width, int P);

/* Count of collective c inserted in ops tagged `tag` (backward: the gradient pass), and the
 * sum of their widths (floats per token). */
int plan_tag_count(const plan_t *plan, int backward, const char *tag, plan_comm c);
long plan_tag_floats(const plan_t *plan, int backward, const char *tag, plan_comm c);

const char *plan_comm_name(plan_comm c);
const char *plan_split_name(plan_split s);
/* "Replicate", "Shard(heads)", "Partial" into buf. */
const char *plan_placement_str(plan_placement p, char *buf, size_t len);
/* "Replicate", "col Shard(heads)", "row Shard(features)", "Shard(vocab)" into buf. */
const char *plan_weight_str(const plan_op *op, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
