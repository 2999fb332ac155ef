/* tokenizer.h — GPT-2's byte-level BPE tokenizer, exact against the reference encoder.
 *
 * Text is bytes in, token ids out: pre-tokenisation with GPT-2's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (Unicode classes as JavaScript's /u regexes define them), then BPE merges by rank on the bytes
 * of each piece. Decoding concatenates the tokens' bytes, so decode(encode(x)) == x for any
 * bytes x, invalid UTF-8 included. A loaded tokenizer is read-only: share it between threads. */
#ifndef LINSHARD_TOKENIZER_H
#define LINSHARD_TOKENIZER_H

#include <stddef.h>

typedef struct tokenizer tokenizer;

/* Loads from a directory holding encoder.json + vocab.bpe (OpenAI's names), or vocab.json +
 * merges.txt (Hugging Face's names, same content), or tokenizer.json (a Hugging Face
 * fast-tokenizer file: model.vocab and model.merges), tried in that order. Returns 0, or -1 with
 * a one-line message naming the file and the problem in err. */
int tokenizer_load_dir(tokenizer **out, const char *dir, char *err, size_t errlen);
/* The GPT-2 tokenizer built into the library (data/gpt2-tokenizer, embedded at build time). */
int tokenizer_load_builtin(tokenizer **out, char *err, size_t errlen);
void tokenizer_free(tokenizer *t);

int tokenizer_vocab_size(const tokenizer *t); /* 50257 for GPT-2 */
int tokenizer_eot(const tokenizer *t);        /* id of <|endoftext|> (50256), or -1 */

/* Encodes len bytes of text (any bytes). Each "<|endoftext|>" in the text becomes the single EOT
 * id, as in Hugging Face's GPT-2 tokenizer: the text is split there and each piece encoded on
 * its own. *ids is malloc'd (NULL when *n is 0). Returns 0, or -1 when out of memory. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int **ids, size_t *n);
/* The same with no special tokens: "<|endoftext|>" is ordinary text, as in OpenAI's encoder.py
 * and the npm package gpt-3-encoder. */
int tokenizer_encode_ordinary(const tokenizer *t, const char *text, size_t len, int **ids,
                              size_t *n);

/* Appends the raw bytes of token id to buf (room for cap bytes). Returns the byte count, or -1
 * for an id outside the vocabulary or a token longer than cap. */
int tokenizer_token_bytes(const tokenizer *t, int id, char *buf, size_t cap);
/* The longest token in bytes: a buffer this big always suffices for tokenizer_token_bytes. */
int tokenizer_max_token_bytes(const tokenizer *t);
/* Decodes ids into a malloc'd NUL-terminated byte string of *len bytes (not counting the NUL;
 * it may hold invalid UTF-8 when the ids split a character). Returns 0, or -1 with err for an id
 * outside the vocabulary (or out of memory). */
int tokenizer_decode(const tokenizer *t, const int *ids, size_t n, char **text, size_t *len,
                     char *err, size_t errlen);

#endif
