/* model_gguf.h — a transformer stored as one GGUF file (llama.cpp's format).
 *
 * Reading: the config comes from the file's metadata (general.architecture "gpt2", "llama",
 * "qwen2", "qwen3" and the architecture's keys), the tensors from llama.cpp's names
 * (token_embd, blk.N.attn_q, ...), every projection stored [out, in] as nn.Linear stores it.
 * Each rank reads only its slices (whole blocks of the quantised types). llama.cpp stores a
 * Llama's Q and K rows permuted within each head (its RoPE rotates adjacent pairs, Hugging Face's
 * rotates halves); reading undoes the permutation, writing applies it, so a file linshard writes
 * is the file llama.cpp's converter would write, and one llama.cpp wrote reads correctly.
 *
 * Llama 3's RoPE scaling is stored as llama.cpp stores it: a rope_freqs tensor of one divisor
 * per frequency. Not read yet, refused by name: other RoPE scaling types, mixtures of experts.  The
 * tokenizer stored in the file is read by tokenizer_load_gguf (tokenizer.h) and written by
 * model_write_gguf_tokenizer. */
#ifndef LINSHARD_MODEL_GGUF_H
#define LINSHARD_MODEL_GGUF_H

#include "linshard/gguf.h"
#include "linshard/model.h"
#include "linshard/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if path names a GGUF file (ends in .gguf, or starts with the magic "GGUF"), else 0. */
int model_path_is_gguf(const char *path);

/* The config the metadata and tensors of g describe. Returns 0, or -1 with a one-line message
 * naming the key or tensor. */
int model_config_from_gguf(const gguf_file *g, model_config *cfg, char *err, size_t errlen);

/* The type g stores the model's matrices as (that of the first layer's attention output). */
kernel_type model_gguf_matrix_type(const model_config *cfg, const gguf_file *g);

/* Checks that every tensor cfg implies is in g with the right shape and a type linshard reads.
 * Returns 0, or -1 with a message naming the tensor. */
int model_check_weights_gguf(const model_config *cfg, const gguf_file *g, char *err, size_t errlen);

/* model_shard_load_as for a GGUF file: rank `rank` of P's slices, matrices held as wtype. */
int model_shard_load_gguf(model_shard *m, const model_config *cfg, const gguf_file *g, int rank,
                          int P, int max_T, kernel_type wtype, char *err, size_t errlen);

/* Writes the model whose config is cfg and whose tensors are weights (a Hugging Face
 * checkpoint) to path as one GGUF v3 file, atomically: the matrices as wtype (quantised in blocks
 * of 32 along their inputs for Q8_0/Q4_0), norms and biases as F32, the metadata llama.cpp reads.
 * Returns 0, or -1 with a one-line message. */
int model_write_gguf(const char *path, const model_config *cfg, const st_set *weights,
                     kernel_type wtype, char *err, size_t errlen);
/* The same with a tokenizer (tokenizer_write_gguf; tok may be NULL: none written; its size must
 * not exceed cfg's vocab_size, the token list is padded to it) and tokenizer.chat_template (a
 * NUL-terminated Jinja text, or NULL). */
int model_write_gguf_tokenizer(const char *path, const model_config *cfg, const st_set *weights,
                               kernel_type wtype, const tokenizer *tok, const char *chat_template,
                               char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
