/* gpt2_reference.h — an independent, deliberately plain double-precision GPT-2 forward pass,
 * used only by tests as the oracle that sharded runs are compared against.
 *
 * It shares nothing with the sharded implementation except the safetensors reader: every tensor
 * is loaded whole into doubles and the forward pass is written as simple loops, so that it is
 * easy to check by reading. It is slow and memory-hungry by design. */
#ifndef LINSHARD_TESTS_GPT2_REFERENCE_H
#define LINSHARD_TESTS_GPT2_REFERENCE_H

#include <stddef.h>

/* Logits of the unsharded GPT-2 in the Hugging Face directory model_dir (config.json +
 * model.safetensors) for the token ids tokens[0..T), computed in double precision.
 * logits has T * vocab_size entries, row-major. Returns 0, or -1 with a message in err. */
int gpt2_reference_logits(const char *model_dir, const int *tokens, int T, double *logits,
                          char *err, size_t errlen);

/* vocab_size from model_dir/config.json, or -1 with a message. */
int gpt2_reference_vocab(const char *model_dir, char *err, size_t errlen);

#endif
