/* layers.h — the Megatron tensor-parallel layers. Each runs on one rank, on that rank's shard
 * of the weights, and says in its comment exactly where it communicates.
 *
 * Shapes are row-major; T is the number of tokens (rows). "Replicated" activations are the
 * same on every rank; "split by features" means each rank holds its own block of columns.
 * A matrix weight is a kernel_weight (kernels.h): its type (F32, F16, BF16, Q8_0, Q4_0), its
 * layout ([in, out] as GPT-2's Conv1D, or [out, in] rows) and its shape K = in, N = out, so
 * y = x · W + b whatever the storage; the kernel layer computes every product. */
#ifndef LINSHARD_LAYERS_H
#define LINSHARD_LAYERS_H

#include <stddef.h>

#include "linshard/comm.h"
#include "linshard/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- linear layers ------------------------------------------------------------------------ */

/* Column-parallel linear. Rank i holds W_i = the output features [c0, c0 + n_local) of W
 * (w_local: K = in_dim, N = n_local) and the matching bias slice b_i (n_local; NULL for none).
 * out[T, n_local] = in[T, in_dim] · W_i + b_i. Input replicated, output split by features.
 * Communication: none. */
void column_parallel_forward(float *out, const float *in, const kernel_weight *w_local,
                             const float *b_local, int T);

/* Column-parallel linear whose output every rank needs whole: the forward above, then one
 * all-gather (uneven column counts allowed). out_full[T, n_total] is replicated; scratch holds
 * T * n_total floats. Communication: one allgather of T * n_total floats, tagged `tag`. */
int column_parallel_forward_gather(comm_t *comm, float *out_full, float *scratch, const float *in,
                                   const kernel_weight *w_local, const float *b_local, int T,
                                   int n_total, const char *tag);

/* Row-parallel linear. Rank i holds the input features [k0, k0 + k_local) of W (w_local: K =
 * k_local, N = out_dim) and sees the matching feature block of the input, in_local[T, k_local].
 * Each rank's product is a partial sum; out[T, out_dim] = AllReduce(in_local · W_i) + b. The bias
 * (replicated, NULL for none) is added once, after the sum — adding it before would count it P
 * times. Communication: one allreduce_sum of T * out_dim floats, tagged `tag`. */
int row_parallel_forward(comm_t *comm, float *out, const float *in_local,
                         const kernel_weight *w_local, const float *b, int T, const char *tag);

/* Row-exact twins of the two layers above, for batched decoding: the products are
 * kernel_matmul_rows, so row t of out depends only on row t of the input (and the other ranks'
 * row t, through the AllReduce, whose sums are per element in rank order: comm.h), never on T or
 * on the other rows. Same shapes and communication as the forms above; slower than them for
 * a prefill (no GEMM). */
void column_parallel_forward_rows(float *out, const float *in, const kernel_weight *w_local,
                                  const float *b_local, int T);
int row_parallel_forward_rows(comm_t *comm, float *out, const float *in_local,
                              const kernel_weight *w_local, const float *b, int T, const char *tag);

/* ---- activations and normalisation -------------------------------------------------------- */

typedef enum { GELU_TANH = 0, GELU_ERF = 1 } gelu_kind;

/* In place, elementwise. Safe on a feature shard (it is elementwise), never on a partial sum:
 * GELU(a + b) != GELU(a) + GELU(b). Communication: none. */
void gelu_forward(float *x, size_t n, gelu_kind kind);

/* LayerNorm over the last dimension: needs the whole feature vector, so it runs on replicated
 * activations. out[T, E] = (in - mean) / sqrt(var + eps) * w + b. Communication: none. */
void layernorm_forward(float *out, const float *in, const float *w, const float *b, int T, int E,
                       float eps);

/* RMSNorm over the last dimension (Llama): out[T, E] = in / sqrt(mean(in^2) + eps) * w. Like
 * LayerNorm it needs the whole vector: replicated activations. out may alias in.
 * Communication: none. */
void rmsnorm_forward(float *out, const float *in, const float *w, int T, int E, float eps);

/* SwiGLU's activation on a rank's slice: for each of T rows of x[T, 2n] = [gate | up],
 * out[t, j] = SiLU(gate[t, j]) * up[t, j], out[T, n]. Gate and up are the same column slice,
 * so this is local. out may alias x (rows are compacted in order). Communication: none. */
void swiglu_forward(float *out, const float *x, int T, int n);

/* ---- rotary positions (RoPE) --------------------------------------------------------------- */

#define ROPE_MAX_FACTORS 256 /* head_dim / 2 of any model linshard reads: head_dim <= 512 */

typedef struct {
    /* 0: none; 1: Llama 3's frequency-dependent scaling (factor, low/high_freq_factor,
     * original_max_positions); 2: a divisor per frequency, freq_factors[0 .. D/2) (llama.cpp's
     * rope_freqs tensor: how a GGUF file stores Llama 3's scaling) */
    int kind;
    double factor, low_freq_factor, high_freq_factor;
    int original_max_positions;
    float freq_factors[ROPE_MAX_FACTORS];
} rope_scaling_params;

/* cos_sin[T, D] = [cos | sin] of the D/2 angles pos * inv_freq[i] of each position pos0 + t,
 * inv_freq[i] = theta^(-2i/D), adjusted by the scaling (NULL: none). Angles in double. */
void rope_table(float *cos_sin, int pos0, int T, int D, double theta,
                const rope_scaling_params *scaling);

/* Llama 3's scaling (kind 1) as D/2 divisors of the frequencies, as llama.cpp's converter writes
 * them into rope_freqs: 1 for short wavelengths, factor for long ones, 1 / ((1 - smooth) /
 * factor + smooth) between. */
void rope_llama3_factors(const rope_scaling_params *s, double theta, int D, float *factors);

/* Rotates one head vector x[D] in place, Hugging Face's "rotate half" convention: dimension i
 * pairs with i + D/2 (not with i + 1). cos_sin is one row of rope_table. */
void rope_apply(float *x, const float *cos_sin, int D);

/* ---- the Megatron MLP --------------------------------------------------------------------- */

typedef struct {
    kernel_weight fc;    /* K = E, N = f_local: column-parallel slice of c_fc */
    const float *fc_b;   /* [f_local]     */
    kernel_weight proj;  /* K = f_local, N = E: row-parallel slice of c_proj */
    const float *proj_b; /* [E]           replicated, added after the AllReduce */
    int E, f_local;
    gelu_kind gelu;
    int gated; /* SwiGLU: fc has N = 2 f_local outputs, [gate | up] of the same slice (fc_b too) */
} mlp_weights;

/* out[T, E] = c_proj(GELU(c_fc(in))) with in replicated: column-parallel -> GELU on the local
 * feature shard -> row-parallel; gated: c_proj(SiLU(gate(in)) * up(in)), gate and up on the
 * same local slice. scratch holds T * f_local floats (twice that when gated).
 * Communication: exactly one allreduce_sum of T * E floats, tagged `tag`. */
int parallel_mlp_forward(comm_t *comm, float *out, const float *in, const mlp_weights *w, int T,
                         float *scratch, const char *tag);

/* parallel_mlp_forward with the row-exact products (column/row_parallel_forward_rows): row t
 * of out depends on row t of in only. Same scratch and communication. */
int parallel_mlp_forward_rows(comm_t *comm, float *out, const float *in, const mlp_weights *w,
                              int T, float *scratch, const char *tag);

/* ---- attention ---------------------------------------------------------------------------- */

typedef struct {
    kernel_weight qkv;   /* K = E, N = (h_local + 2 kv) * D: this rank's heads, [Q | K | V] */
    const float *qkv_b;  /* [(h_local + 2 kv) * D], or NULL */
    kernel_weight proj;  /* K = h_local * D, N = E: the inputs of c_proj for this rank's heads */
    const float *proj_b; /* [E] replicated, added after the AllReduce, or NULL */
    int E, D, h_local;   /* model width, head size, query heads on this rank */
    /* Grouped-query attention. kv_local = 0 means plain multi-head attention (kv = h_local,
     * query head h reads K/V head h); otherwise kv = kv_local K/V heads, global query head g
     * reads global K/V head g / group, and this rank's first query and K/V heads are h0, kv0. */
    int kv_local, group, h0, kv0;
    const float *q_norm, *k_norm; /* [D] RMSNorm of each head's q and k (Qwen3), or NULL */
    float norm_eps;
    const float *rope; /* [T, D] rope_table rows of the T new positions, or NULL (no RoPE) */
} attention_weights;

/* This rank's slice of the key/value cache for one layer: K and V of the K/V heads its query
 * heads read, for positions [0, capacity). Sharded by heads like the attention itself, so a
 * cached decode step communicates exactly what a full pass does: one AllReduce. */
typedef struct {
    float *k, *v; /* [capacity, kv * D] each */
    int capacity;
} kv_cache;

/* Scratch for parallel_attention_forward with T new tokens attending to `context` positions in
 * all (context = pos0 + T), in floats. */
size_t attention_scratch_floats(const attention_weights *w, int T, int context);

/* Causal multi-head self-attention split by heads, for T new tokens at positions
 * [pos0, pos0 + T). in[T, E] replicated; Q, K, V for this rank's heads come from one
 * column-parallel GEMM; each head attends locally (heads are independent) to positions
 * [0, pos0 + t]; the output projection is row-parallel. out[T, E] replicated.
 * cache == NULL: no history (pos0 must be 0). Otherwise the new K, V rows are stored at
 * [pos0, pos0 + T) of the cache and attention reads positions [0, pos0 + T) from it.
 * Communication: exactly one allreduce_sum of T * E floats, tagged `tag`. */
int parallel_attention_forward(comm_t *comm, float *out, const float *in,
                               const attention_weights *w, int T, int pos0, kv_cache *cache,
                               float *scratch, const char *tag);

/* Scratch for parallel_attention_decode of B rows whose positions are below `context`, in
 * floats. */
size_t attention_decode_scratch_floats(const attention_weights *w, int B, int context);

/* One decoding step of B independent sequences, split by heads: row b of in[B, E] (replicated)
 * is the next token of the sequence whose cache (this layer's) is caches[b], at position pos[b]
 * (that cache's length before the step; caches distinct). One column-parallel QKV product for
 * the B rows (row-exact: column_parallel_forward_rows); then per row, its q/k norms and RoPE
 * (w->rope row b: the table row of pos[b]), its K and V stored at pos[b] of caches[b], and each
 * head attends to positions [0, pos[b]] of that cache only (two matrix-vector products and a
 * softmax: parallel_attention_forward's T = 1 path); one row-parallel output projection of the
 * B rows. out[B, E] replicated; row b's bits depend on row b of in, pos[b] and caches[b] only,
 * never on B or on the other rows (so B = 1 is the step of that sequence alone).
 * Communication: exactly one allreduce_sum of B * E floats,
 * tagged `tag`. */
int parallel_attention_decode(comm_t *comm, float *out, const float *in, const attention_weights *w,
                              int B, const int *pos, kv_cache *const *caches, float *scratch,
                              const char *tag);

/* ---- vocabulary-parallel embedding and LM head -------------------------------------------- */

/* out[T, E] = wte[tokens[t]] + wpe[t], with wte split by vocabulary rows: rank i holds rows
 * [v0, v0 + v_local) (wte_local: an [out, in] weight of any type, N = v_local, K = E; a row is
 * widened to F32 as it is read). A token outside the slice contributes zero on this rank, so the
 * AllReduce assembles every row exactly (one rank contributes the row, the others exact zeros). wpe
 * (replicated; NULL for none, as with RoPE) is added after the sum. Token ids must be in [0,
 * vocab): the caller checks. Communication: one allreduce_sum of T * E floats, tagged `tag`. */
int vocab_parallel_embedding_forward(comm_t *comm, float *out, const int *tokens, int T,
                                     const kernel_weight *wte_local, int v0, const float *wpe,
                                     const char *tag);

/* Logits for this rank's vocabulary slice: logits_local[T, v_local] = h[T, E] · head, with
 * head (K = E, N = v_local) the rank's rows of the LM head (the embedding when tied, an [out, in]
 * weight). Communication: none. */
void vocab_parallel_lm_head_forward(float *logits_local, const float *h, const kernel_weight *head,
                                    int T);

/* Assembles full logits[T, V] on every rank from each rank's [T, v_local] slice (uneven slices
 * allowed). scratch holds T * V floats. Communication: one allgather of T * V floats. */
int vocab_parallel_gather_logits(comm_t *comm, float *logits, float *scratch,
                                 const float *logits_local, int T, int V, const char *tag);

/* The k largest logits of one row (ties: lower token id first) without gathering the row:
 * each rank takes its local top k, then one allgather of P * k (value, id) pairs.
 * ids/values get k entries, largest first, identical on every rank.
 * Communication: one allgather of 2 * k floats per rank. */
int vocab_parallel_topk(comm_t *comm, const float *row_local, int v0, int v_local, int V, int k,
                        int *ids, float *values, const char *tag);

#ifdef __cplusplus
}
#endif
#endif
