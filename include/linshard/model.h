/* model.h — one decoder-only transformer, described by data, split across P ranks with the
 * Megatron pattern.
 *
 * A model_config says what the transformer is made of (the norm, the MLP, the biases, the
 * positions, the attention's heads, the LM head); a family (GPT-2, Llama, Mistral, Qwen2, Qwen3)
 * is only a way of filling it from a Hugging Face config.json and of naming its tensors
 * (architecture.c). One parameter table (params.c) lists every tensor of a rank's shard, with
 * its shape, how it splits and where it comes from in a checkpoint; it drives the views into
 * the rank's buffer, loading, checking a checkpoint against the config, random init, the
 * training segments and the checkpoint layout. Nothing else lists the parameters.
 *
 * The split, per rank (balanced: sizes differ by at most one unit, split.h):
 *   - attention: query heads [h0, h0 + h_local) — their Q columns and output-projection rows —
 *     and every K/V head those query heads read, [kv0, kv0 + kv_local). With grouped-query
 *     attention (n_kv_head < n_head) a K/V head is read by n_head / n_kv_head query heads; when
 *     those fall on several ranks, each of them holds a copy of the K/V head (replicated K/V).
 *   - MLP: columns [f0, f0 + f_local) of the first projection (of gate and of up, on the same
 *     slice, for SwiGLU) and the same rows of the second;
 *   - vocabulary: rows [v0, v0 + v_local) of the embedding and of the LM head (its own, or
 *     the embedding when tied);
 *   - replicated: the norms, learned positions, per-head q/k norms, and the biases added after
 *     an AllReduce.
 *
 * model_forward communicates exactly: 1 AllReduce for the embedding, then 2 per layer
 * ("layer{i}.attn", "layer{i}.mlp"), each of T * n_embd floats — whatever the family and P,
 * replicated K/V included. The LM head needs none: its logits stay split by vocabulary until a
 * caller gathers them. Internally every weight is stored [in, out] (y = x · W), whatever the
 * checkpoint's layout. */
#ifndef LINSHARD_MODEL_H
#define LINSHARD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "linshard/comm.h"
#include "linshard/kernels.h"
#include "linshard/layers.h"
#include "linshard/safetensors_set.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the transformer, described by data --------------------------------------------------- */

typedef enum {
    FAMILY_GPT2 = 0,
    FAMILY_LLAMA,
    FAMILY_MISTRAL,
    FAMILY_QWEN2,
    FAMILY_QWEN3
} model_family;
typedef enum { NORM_LAYERNORM = 0, NORM_RMSNORM } norm_kind;
typedef enum { MLP_GELU = 0, MLP_SWIGLU } mlp_kind;
/* rope_scaling_params.kind */
enum { ROPE_SCALING_NONE = 0, ROPE_SCALING_LLAMA3 = 1, ROPE_SCALING_FACTORS = 2 };

typedef struct {
    model_family family;
    int n_layer, n_embd, vocab_size, n_positions;
    int n_head, n_kv_head, head_dim; /* head_dim may differ from n_embd / n_head (Qwen3) */
    int n_ff;                        /* MLP hidden width (GPT-2: 4 * n_embd) */
    norm_kind norm;                  /* LayerNorm with bias, or RMSNorm */
    float norm_eps;
    mlp_kind mlp;      /* GELU(fc), or SiLU(gate) * up */
    gelu_kind gelu;    /* which GELU, for MLP_GELU */
    int qkv_bias;      /* Q, K, V projections have biases (GPT-2, Qwen2) */
    int out_bias;      /* the attention output projection has a bias (GPT-2) */
    int mlp_bias;      /* both MLP projections have biases (GPT-2) */
    int qk_norm;       /* RMSNorm of each head's q and k before RoPE (Qwen3) */
    int learned_pos;   /* a learned position table (GPT-2's wpe); otherwise RoPE */
    double rope_theta; /* RoPE base */
    rope_scaling_params rope_scaling;
    int tied; /* the LM head is the embedding */
} model_config;

/* The family's name as config.json's "architectures" spells it ("LlamaForCausalLM"...). */
const char *model_family_architecture(model_family f);

/* GPT-2 of the given shape: LayerNorm, GELU MLP of 4 * n_embd, biases everywhere, learned
 * positions, a tied LM head (what GPT2LMHeadModel is). */
model_config model_config_gpt2(int n_layer, int n_embd, int n_head, int vocab_size, int n_positions,
                               gelu_kind gelu);
/* A Llama-family model of the given shape, with the family's defaults: RMSNorm (eps 1e-5,
 * 1e-6 for Qwen), SwiGLU, RoPE theta 10000 (Qwen: 1e6), no biases but Qwen2's q/k/v biases,
 * Qwen3's q/k norms, untied. head_dim 0 means n_embd / n_head. */
model_config model_config_llama(model_family family, int n_layer, int n_embd, int n_head,
                                int n_kv_head, int head_dim, int n_ff, int vocab_size,
                                int n_positions);

/* Reads dir/config.json: GPT2LMHeadModel, LlamaForCausalLM, MistralForCausalLM,
 * Qwen2ForCausalLM, Qwen3ForCausalLM. Anything linshard does not implement (an unknown
 * architecture or rope type, sliding windows shorter than the context, mixtures of experts,
 * partial rotary, ...) is refused naming the field. Returns 0, or -1 with a one-line message. */
int model_config_load(const char *dir, model_config *cfg, char *err, size_t errlen);
/* model_config_load on the text of a config.json already in memory (len bytes; name is for
 * messages). */
int model_config_parse(const char *text, size_t len, const char *name, model_config *cfg, char *err,
                       size_t errlen);
/* Writes dir/config.json atomically, in the family's own Hugging Face layout. */
int model_config_save(const char *dir, const model_config *cfg, char *err, size_t errlen);
/* The same JSON, to any path (atomically). */
int model_config_write(const char *path, const model_config *cfg, char *err, size_t errlen);
/* Checks the numbers are usable (positive; n_embd = n_head * head_dim for GPT-2; n_head a
 * multiple of n_kv_head; even head_dim for RoPE; at most 1024 layers and 2^40 parameters, so
 * that sizing the model from it cannot overflow; ...). */
int model_config_check(const model_config *cfg, char *err, size_t errlen);
/* Checks P ranks can split this model: 1 <= P <= n_head (every rank needs a query head). */
int model_config_check_tp(const model_config *cfg, int P, char *err, size_t errlen);

/* ---- how the heads fall on the ranks ------------------------------------------------------- */

typedef struct {
    int h0, h_local;   /* query heads */
    int kv0, kv_local; /* the K/V heads those query heads read */
} head_split;

/* Rank r of P's heads: balanced query heads, and every K/V head they read. */
head_split model_head_split(const model_config *cfg, int P, int r);

/* ---- one rank's shard --------------------------------------------------------------------- */

typedef struct {
    float *norm1_w, *norm1_b;   /* [E] replicated (b: LayerNorm only) */
    float *qkv_w, *qkv_b;       /* [E, (h_local + 2 kv_local) D], laid out [Q | K | V] */
    float *q_norm_w, *k_norm_w; /* [D] replicated (Qwen3), else NULL */
    float *proj_w, *proj_b;     /* [h_local D, E] rows of this rank's heads; [E] replicated */
    float *norm2_w, *norm2_b;   /* [E] replicated */
    float *fc_w, *fc_b;         /* [E, f_local] (GELU), or [E, 2 f_local] = [gate | up] */
    float *fcp_w, *fcp_b;       /* [f_local, E] row slice; [E] replicated */
    /* The four matrices as the kernels read them: views of the F32 fields above, or (weights
     * held as another type) the typed storage, the F32 fields then NULL. */
    kernel_weight qkv, proj, fc, fcp;
} model_layer;

typedef struct model_param model_param;

/* Memory a shard's weights may point into instead of holding a copy: a mapped checkpoint, or a
 * model image in memory. Reference counted, so that lifetime is explicit: the model_source holds
 * one reference, and every shard that uses bytes of it in place (model_shard.keep) holds another;
 * release(arg) (e.g. munmap) runs when the last one lets go, so closing the source before freeing
 * its shards is safe. A keep made with release NULL marks memory the caller owns (the program's
 * built-in model): that memory must outlive every shard loaded from it. Retain and release are
 * atomic: ranks (threads) load from one source at once. */
typedef struct model_keep model_keep;
/* A keep holding one reference; NULL when out of memory (then release has not run). */
model_keep *model_keep_new(void (*release)(void *arg), void *arg);
void model_keep_retain(model_keep *k);
/* Drops one reference (NULL: nothing). */
void model_keep_release(model_keep *k);

typedef struct {
    model_config cfg;
    int rank, P;
    head_split heads;
    int h0, h_local; /* = heads.h0, heads.h_local */
    int f0, f_local; /* MLP hidden columns (of n_ff) */
    int v0, v_local; /* vocabulary rows */
    float *params;   /* every F32 weight of this rank, one allocation */
    size_t n_params;
    /* The type the matrices are held as (model_shard_load_as): F32 keeps them in params (and
     * the shard can train); any other type keeps them in `typed`, [N][K] rows of blocks. */
    kernel_type wtype;
    int gguf_names;  /* the parameter table names tensors as a GGUF file does */
    int split_block; /* the MLP's features are split in whole blocks of this many */
    unsigned char *typed;
    size_t typed_bytes;
    /* Matrices used in place: a matrix whose stored type is the type it is held as, and whose
     * rank slice is contiguous rows of the stored [out, in] tensor (a GGUF tensor, an
     * nn.Linear weight, the vocabulary rows of an embedding), points into the source's memory
     * (read-only: such a shard cannot train, and only non-F32 shards use memory in place). keep
     * is then a reference on that memory (released by model_shard_free); mapped_bytes counts
     * those weights (not in typed_bytes). */
    model_keep *keep;
    size_t mapped_bytes;
    model_param *table; /* the parameter table of this rank (params.c), n_table entries */
    int n_table;
    float *wte;                /* [v_local, E] */
    float *wpe;                /* [n_positions, E] (learned positions), else NULL */
    float *lm_head;            /* [v_local, E]: wte when tied */
    kernel_weight embed, head; /* wte and the LM head as the kernels read them (K = E) */
    model_layer *layers;
    float *normf_w, *normf_b;
    /* KV cache (model_shard_enable_cache / _slots): this rank's K/V heads, every layer, of
     * n_slots independent sequences, one allocation. */
    float *kv;
    kv_cache *caches; /* [n_slots * n_layer] views into kv: slot s, layer l at s * n_layer + l */
    int n_slots;
    int *slot_len; /* [n_slots] positions each slot holds */
    int cache_len; /* slot 0's positions (what model_forward / model_extend use) */
    int context;   /* positions attention may span: max_T, or the cache capacity */
    /* Activations for up to max_T tokens, one allocation. */
    int max_T;
    float *acts;
    float *x, *ln, *tmp, *scratch; /* residual [T,E], normed [T,E], layer out [T,E], scratch */
    float *rope;                   /* [max_T, D]: cos | sin of each new position (RoPE) */
    float *logits;                 /* [T, v_local] */
} model_shard;

/* Loads rank `rank` of P's shard from a checked checkpoint and allocates activations for up to
 * max_T tokens. Reads only this rank's slices of the files. The weights are held as F32. */
int model_shard_load(model_shard *m, const model_config *cfg, const st_set *weights, int rank,
                     int P, int max_T, char *err, size_t errlen);

/* model_shard_load, the matrices held as wtype (converted or quantised as they are read;
 * norms, biases and learned positions stay F32). Only an F32 shard can train. The shard copies
 * everything it holds (weights may then go away); model_source_load may use them in place. */
int model_shard_load_as(model_shard *m, const model_config *cfg, const st_set *weights, int rank,
                        int P, int max_T, kernel_type wtype, char *err, size_t errlen);

/* Checks the model's matrices can be held as wtype: for the block types (Q8_0, Q4_0) every
 * reduction dimension a rank sees (n_embd, head_dim, n_ff) must be a whole number of blocks. */
int model_check_weight_type(const model_config *cfg, kernel_type wtype, char *err, size_t errlen);

/* The MLP's hidden features [f0, f0 + f_local) of rank r of P: a balanced split, in whole blocks
 * of block values (a quantised type's block, so a row-parallel slice of a quantised c_proj is
 * whole blocks; ranks' shares then differ by at most one block; 1 for F32/F16/BF16). */
void model_ff_split(const model_config *cfg, int P, int r, int block, int *f0, int *f_local);
void model_shard_free(model_shard *m);
/* Bytes of weights this rank holds: its copies and the bytes it uses in place. */
size_t model_shard_weight_bytes(const model_shard *m);

/* Gives the shard a KV cache for up to `positions` tokens (<= n_positions), for incremental
 * decoding with model_extend. Returns 0, or -1 with a message. */
int model_shard_enable_cache(model_shard *m, int positions, char *err, size_t errlen);

/* Runs tokens[0..T) at positions 0..T-1 (T <= max_T, ids checked by the caller). With a cache,
 * it restarts it and leaves the T positions in it. On return m->logits holds this rank's
 * vocabulary slice of the logits, [T, v_local]. */
int model_forward(comm_t *comm, model_shard *m, const int *tokens, int T);

/* Runs T more tokens after the m->cache_len cached ones (needs the cache; T <= max_T), each
 * attending to everything before it; m->logits as above for the T new positions. A decode step
 * (T = 1) communicates exactly what a full pass does: 1 + 2 * n_layer AllReduce, of one
 * token's activations. */
int model_extend(comm_t *comm, model_shard *m, const int *tokens, int T);

/* ---- many sequences at once: slots and batched decoding ----------------------------------- */
/* A serving engine keeps several sequences in one shard, each in a slot of the KV cache with its
 * own length; a decoding step runs one new token of every active sequence as one batch, so the
 * matrices are read once per step and the step's AllReduces carry B rows instead of 1: their
 * latency is paid once per step, not once per sequence. */

/* Gives the shard a KV cache of n_slots independent sequences of up to `positions` each
 * (model_shard_enable_cache is one slot). Every slot starts empty. Returns 0, or -1 with a
 * message (then the shard is as it was). */
int model_shard_enable_slots(model_shard *m, int n_slots, int positions, char *err, size_t errlen);
/* Empties slot s: its next token goes to position 0. */
void model_slot_reset(model_shard *m, int slot);
/* Positions slot s holds. */
int model_slot_len(const model_shard *m, int slot);

/* Runs T more tokens of the sequence in slot s (a prefill, or a part of one): model_extend on
 * that slot. m->logits [T, v_local] for the T new positions. Communication: 1 + 2 * n_layer
 * AllReduce of T * n_embd floats. T = 1 is a decoding step: it IS model_decode_batch of that
 * one row (row-exact products, kernel_matmul_rows); T > 1 runs the prefill products
 * (kernel_matmul: GEMMs), which round differently (logits within ~1e-6 of the largest). */
int model_extend_slot(comm_t *comm, model_shard *m, int slot, const int *tokens, int T);

/* One decoding step of B sequences at once: tokens[b] is appended to slot slots[b] (distinct
 * slots), at that slot's own position, and attends to that slot's cache only. m->logits is
 * [B, v_local], row b for slots[b]. B <= max_T. Row b's logits are bit for bit those of
 * model_extend_slot(comm, m, slots[b], &tokens[b], 1): a sequence gets the same tokens whatever
 * else is decoded beside it. Communication: exactly one step's worth, 1 + 2 * n_layer AllReduce
 * of B * n_embd floats, whatever B.
 *
 * One pass for the B rows: the embedding of the B tokens (row b adds its own position's row of
 * wpe, or takes RoPE's table row of its position), every matrix product (QKV, attention output,
 * MLP, LM head) once for the B rows with kernel_matmul_rows, which reads each weight once per
 * step and gives every row the bits it has alone; attention per row over its own slot
 * (parallel_attention_decode). Norms, activations and the softmax are per row or elementwise.
 *
 * Why the rows are exact across the ranks too: each AllReduce sums every element on its own.
 * The threads backend sums each element in rank order whatever the message's length (comm.h):
 * exact at every P. MPI (comm_mpi.c: MPI_Allreduce): at P = 2 any algorithm adds two values
 * once, and a + b = b + a: exact. At P > 2 Open MPI's tuned component picks the algorithm by
 * message size (recursive doubling for short messages, ring / segmented ring / Rabenseifner
 * for long ones), and the ring splits the message into P blocks each reduced starting at
 * another rank: an element's summation order depends on the message's length and on where the
 * element falls in it, i.e. on B and on the row's place. So under MPI at P > 2 a row batched
 * and alone agree to the F32 rounding of that sum (logits ~1e-6 of the largest apart), not
 * bit for bit; same seed, same text holds there only as far as sampling is insensitive to it.
 * Measured with Open MPI 4.1.4 (rows of 768 floats, one AllReduce of B rows against the row
 * alone, B = 2..16): 86 of 135 rows differed at P = 3, none at P = 2 or P = 4 (not guaranteed
 * beyond P = 2). One algorithm for every size keeps the rows exact at any P: mpirun --mca
 * coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 3 (recursive doubling;
 * or 1, linear) gave no difference at P = 3.
 * Bad input (no cache, B outside 1..max_T, a slot out of range or twice, a full slot, a token
 * outside the vocabulary) fails the group with one line (comm_fail), before any work. */
int model_decode_batch(comm_t *comm, model_shard *m, const int *slots, const int *tokens, int B);

/* Layer l's weights as the parallel layers take them (layers.h): this rank's heads and K/V
 * heads, q/k norms, the RoPE rows of the current pass (m->rope); the MLP's kind. */
attention_weights model_layer_attention(const model_shard *m, int l);
mlp_weights model_layer_mlp(const model_shard *m, int l);

/* Checks token ids and length against the config; returns 0 or -1 with a message. */
int model_check_tokens(const model_config *cfg, const int *tokens, int T, char *err, size_t errlen);

/* Checks that every tensor the config implies is in the checkpoint with the right shape (the
 * family's names; GPT-2's with or without "transformer."). Extra tensors are ignored. Returns
 * 0, or -1 with a message naming the tensor. */
int model_check_weights(const model_config *cfg, const st_set *weights, char *err, size_t errlen);

/* ---- what the parameter table tells others ------------------------------------------------- */

/* Floats of weights rank r of P holds, and of the whole model (each tensor once). */
size_t model_rank_param_floats(const model_config *cfg, int P, int r);
size_t model_total_param_floats(const model_config *cfg);

/* ---- seeded random models ---------------------------------------------------------------- */

typedef struct {
    uint64_t seed;
    st_dtype dtype;     /* storage type of the weights */
    int prefix;         /* GPT-2: name tensors "transformer.*" (as save_pretrained does) */
    int hf_extras;      /* GPT-2: also write what real checkpoints carry and linshard
                           ignores: attn.bias / attn.masked_bias buffers and a tied
                           lm_head.weight */
    size_t shard_bytes; /* > 0: a sharded checkpoint (model.safetensors.index.json and
                           files of at most this many bytes), else one model.safetensors */
} model_init_opts;

/* Writes a seeded random model into dir (created if missing): config.json and the weights,
 * atomically, in the family's Hugging Face layout. Weights ~ N(0, 0.02) (residual projections
 * scaled by 1/sqrt(2 n_layer)); biases and norm weights are random too (not 0/1), so a bias
 * added twice or a norm on the wrong slice shows in the logits. */
int model_init_random(const char *dir, const model_config *cfg, const model_init_opts *opts,
                      char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
