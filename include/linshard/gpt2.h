/* gpt2.h — GPT-2 split across P ranks with the Megatron pattern.
 *
 * Each rank holds one gpt2_shard: its slice of every weight in one contiguous buffer with named
 * views (as llm.c does), read straight from a Hugging Face checkpoint (config.json +
 * model.safetensors). Per rank:
 *   - attention: heads [h0, h0 + h_local) — Q, K, V columns and c_proj rows of those heads;
 *   - MLP: columns [f0, f0 + f_local) of c_fc and the same rows of c_proj;
 *   - vocabulary: rows [v0, v0 + v_local) of wte (the embedding and the tied LM head);
 *   - replicated: wpe, every LayerNorm, and the biases added after an AllReduce.
 * Splits are balanced (split.h): sizes differ by at most one head / column / row.
 *
 * gpt2_forward communicates exactly: 1 AllReduce for the embedding, then 2 per layer
 * ("layer{i}.attn", "layer{i}.mlp"), each of T * n_embd floats. The LM head needs none: its
 * logits stay split by vocabulary until a caller gathers them. */
#ifndef LINSHARD_GPT2_H
#define LINSHARD_GPT2_H

#include <stddef.h>
#include <stdint.h>

#include "linshard/comm.h"
#include "linshard/layers.h"
#include "linshard/safetensors.h"

typedef struct {
    int n_layer, n_embd, n_head, vocab_size, n_positions;
    float layer_norm_epsilon;
    gelu_kind activation; /* "gelu_new" (tanh) or "gelu" (erf) */
} gpt2_config;

/* Reads dir/config.json. Returns 0, or -1 with a one-line message in err. */
int gpt2_config_load(const char *dir, gpt2_config *cfg, char *err, size_t errlen);
/* Writes dir/config.json atomically (temp file + fsync + rename). */
int gpt2_config_save(const char *dir, const gpt2_config *cfg, char *err, size_t errlen);
/* The same JSON, to any path (atomically). */
int gpt2_config_write(const char *path, const gpt2_config *cfg, char *err, size_t errlen);
/* Checks the numbers are usable (positive, n_embd divisible by n_head). */
int gpt2_config_check(const gpt2_config *cfg, char *err, size_t errlen);
/* Checks P ranks can split this model: 1 <= P <= n_head (every rank needs a head). */
int gpt2_config_check_tp(const gpt2_config *cfg, int P, char *err, size_t errlen);

/* Checks that every tensor GPT-2 needs is in the file (with or without the "transformer."
 * prefix) with the shape the config implies. Extra tensors (attn.bias buffers, a tied
 * lm_head.weight) are ignored. Returns 0, or -1 with a message naming the tensor. */
int gpt2_check_weights(const gpt2_config *cfg, const st_file *file, char *err, size_t errlen);

typedef struct {
    float *ln1_w, *ln1_b;   /* [E]                          replicated */
    float *qkv_w, *qkv_b;   /* [E, 3*h_local*D], [3*h_local*D]  this rank's heads, [Q|K|V] */
    float *proj_w, *proj_b; /* [h_local*D, E], [E]          rows of this rank's heads; bias repl. */
    float *ln2_w, *ln2_b;   /* [E]                          replicated */
    float *fc_w, *fc_b;     /* [E, f_local], [f_local]      column slice */
    float *fcp_w, *fcp_b;   /* [f_local, E], [E]            row slice; bias replicated */
} gpt2_layer;

typedef struct {
    gpt2_config cfg;
    int rank, P;
    int h0, h_local; /* heads */
    int f0, f_local; /* MLP hidden columns (of 4 * n_embd) */
    int v0, v_local; /* vocabulary rows */
    float *params;   /* every weight of this rank, one allocation */
    size_t n_params;
    float *wte; /* [v_local, E] */
    float *wpe; /* [n_positions, E] */
    gpt2_layer *layers;
    float *lnf_w, *lnf_b;
    /* KV cache (gpt2_shard_enable_cache): this rank's heads, every layer, one allocation. */
    float *kv;
    kv_cache *caches; /* [n_layer] views into kv */
    int cache_len;    /* positions held */
    int context;      /* positions attention may span: max_T, or the cache capacity */
    /* Activations for up to max_T tokens, one allocation. */
    int max_T;
    float *acts;
    float *x, *ln, *tmp, *scratch; /* residual [T,E], normed [T,E], layer out [T,E], scratch */
    float *logits;                 /* [T, v_local] */
} gpt2_shard;

/* Loads rank `rank` of P's shard from an opened, checked checkpoint and allocates activations
 * for up to max_T tokens. Reads only this rank's slices of the file. */
int gpt2_shard_load(gpt2_shard *m, const gpt2_config *cfg, const st_file *file, int rank, int P,
                    int max_T, char *err, size_t errlen);
void gpt2_shard_free(gpt2_shard *m);
/* Bytes of weights this rank holds. */
size_t gpt2_shard_weight_bytes(const gpt2_shard *m);

/* Gives the shard a KV cache for up to `positions` tokens (<= n_positions), for incremental
 * decoding with gpt2_extend. Returns 0, or -1 with a message. */
int gpt2_shard_enable_cache(gpt2_shard *m, int positions, char *err, size_t errlen);

/* Runs tokens[0..T) at positions 0..T-1 (T <= max_T, ids checked by the caller). With a cache,
 * it restarts it and leaves the T positions in it. On return m->logits holds this rank's
 * vocabulary slice of the logits, [T, v_local]. */
int gpt2_forward(comm_t *comm, gpt2_shard *m, const int *tokens, int T);

/* Runs T more tokens after the m->cache_len cached ones (needs the cache; T <= max_T), each
 * attending to everything before it; m->logits as above for the T new positions. A decode step
 * (T = 1) communicates exactly what a full pass does: 1 + 2 * n_layer AllReduce, of one
 * token's activations. */
int gpt2_extend(comm_t *comm, gpt2_shard *m, const int *tokens, int T);

/* Checks token ids and length against the config; returns 0 or -1 with a message. */
int gpt2_check_tokens(const gpt2_config *cfg, const int *tokens, int T, char *err, size_t errlen);

/* ---- seeded random models ---------------------------------------------------------------- */

typedef struct {
    uint64_t seed;
    st_dtype dtype; /* storage type of model.safetensors */
    int prefix;     /* name tensors "transformer.*" (as GPT2LMHeadModel.save_pretrained does) */
    int hf_extras;  /* also write what real checkpoints carry and linshard ignores:
                       h.{i}.attn.bias / attn.masked_bias buffers and a tied lm_head.weight */
} gpt2_init_opts;

/* Writes a seeded random GPT-2 into dir (created if missing): config.json and
 * model.safetensors, both atomically. Weights ~ N(0, 0.02) (the residual projections scaled by
 * 1/sqrt(2 n_layer), as GPT-2 does); biases and LayerNorm parameters are random too (not 0/1),
 * so a bias added twice or a LayerNorm on the wrong slice shows in the logits. */
int gpt2_init_random(const char *dir, const gpt2_config *cfg, const gpt2_init_opts *opts, char *err,
                     size_t errlen);

#endif
