/* tokenizer_internal.h — what the tokenizer's source files share (not installed). */
#ifndef LINSHARD_TOKENIZER_INTERNAL_H
#define LINSHARD_TOKENIZER_INTERNAL_H

#include <stddef.h>

#include "linshard/tokenizer.h"

/* GPT-2's pre-tokenisation: the end offset of the piece that starts at s[pos] (pos < len), as
 * the pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * matches it. Always > pos. */
size_t pretokenize_next(const unsigned char *s, size_t len, size_t pos);

/* Loads from an encoder.json text (token → id) and a vocab.bpe text (merges); the names are
 * used in error messages. */
int tokenizer_load_gpt2_buffers(tokenizer **out, const char *encoder_json, size_t encoder_len,
                                const char *vocab_bpe, size_t vocab_len, const char *encoder_name,
                                const char *vocab_name, char *err, size_t errlen);

#endif
