/* tokenizer.h — BPE tokenizers of GPT-2 and the Llama family, exact against reference encoders.
 *
 * Byte-level BPE (GPT-2, Llama 3, Qwen2/Qwen3): text is bytes in, token ids out: added tokens
 * ("<|endoftext|>", "<|eot_id|>", "<|im_start|>", ...) are cut out first and become their ids;
 * the text between them is normalised (NFC, when the file says so), split into pieces by the
 * model's pattern, e.g. GPT-2's
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (Unicode classes as JavaScript's /u regexes define them), then BPE merges by rank on the bytes
 * of each piece. Decoding concatenates the tokens' bytes, so decode(encode(x)) == x for any
 * bytes x, invalid UTF-8 included (Qwen: for any x already in NFC).
 *
 * SentencePiece-style BPE (Llama 2, Mistral tokenizer.json): each stretch of text between added
 * tokens gets "▁" in front and its spaces become "▁"; merges run over characters, and a
 * character (or invalid byte) with no token becomes its UTF-8 bytes' <0xNN> tokens. Decoding
 * turns "▁" back into spaces and <0xNN> into bytes, and drops one leading space of the whole
 * text. So decode(encode(x)) == x when x has no "▁" and no added token; after an added token the
 * next stretch decodes with one extra leading space, as in Hugging Face's tokenizers.
 *
 * A loaded tokenizer is read-only: share it between threads. */
#ifndef LINSHARD_TOKENIZER_H
#define LINSHARD_TOKENIZER_H

#include <stddef.h>

#include "linshard/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tokenizer tokenizer;

/* Loads from a directory holding encoder.json + vocab.bpe (OpenAI's names), or vocab.json +
 * merges.txt (Hugging Face's names, same content), or tokenizer.json (a Hugging Face
 * fast-tokenizer file, with tokenizer_config.json beside it when there is one), tried in that
 * order. tokenizer.json must be a BPE model whose normalizer, pre-tokenizer and split pattern
 * are ones linshard knows (GPT-2's, Llama 3's, Qwen2's; SentencePiece's Prepend + Replace or
 * Metaspace); anything else is refused rather than tokenized differently. Returns 0, or -1 with
 * a one-line message naming the file and the problem in err. */
int tokenizer_load_dir(tokenizer **out, const char *dir, char *err, size_t errlen);
/* The GPT-2 tokenizer built into the library (data/gpt2-tokenizer): its tables, made at build
 * time, are embedded and read in place, so loading takes microseconds and copies nothing. */
int tokenizer_load_builtin(tokenizer **out, char *err, size_t errlen);
void tokenizer_free(tokenizer *t);
/* The tokenizer stored in a GGUF file, under llama.cpp's keys: tokenizer.ggml.model "gpt2"
 * (byte-level BPE; tokenizer.ggml.pre names the split pattern: "gpt-2"/"default" GPT-2's,
 * "llama-bpe" Llama 3's (merges ignored for whole-word tokens, as its tokenizer.json says),
 * "qwen2" Qwen2's with NFC, as Qwen's tokenizer.json has) or "llama" (SentencePiece-style, the
 * Llama 2 / Mistral kind: tokenizer.ggml.add_space_prefix, default true, puts "▁" before each
 * stretch of text between added tokens and decoding drops one leading space); tokens
 * (strings), token_type (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused: no token,
 * 6 byte; control and user-defined are the added tokens, control ones special), merges
 * ("left right", rank order; for "llama" without merges, derived from tokenizer.ggml.scores as
 * Hugging Face's converter derives them), bos_token_id, eos_token_id, add_bos_token (default:
 * whether there is a bos). Stop tokens as tokenizer_is_stop says. An unknown model or pre is
 * refused by name, never tokenized differently. Returns 0; 1 when g holds no tokenizer
 * (no tokenizer.ggml.model: err says so, the caller may look elsewhere); -1 with a one-line
 * message naming the file and the key. */
int tokenizer_load_gguf(tokenizer **out, const gguf_file *g, char *err, size_t errlen);
/* Writes t under those keys into w, the token list padded with unused "[PADn]" entries to
 * n_tokens ids when that is more than tokenizer_vocab_size(t) (llama.cpp wants one token per
 * embedding row). A SentencePiece tokenizer gets both scores (minus the rank of the merge that
 * makes each token, what llama.cpp ranks by) and merges (what linshard reads back). Refused in
 * one line when GGUF's keys cannot say how t tokenizes (a pattern and normalizer that no
 * llama.cpp pre-tokenizer name means, an added token that strips spaces, ...). */
int tokenizer_write_gguf(const tokenizer *t, gguf_writer *w, int n_tokens, char *err,
                         size_t errlen);

/* Max id + 1 over the vocabulary and the added tokens: 50257 for GPT-2, 128256 for Llama 3. */
int tokenizer_vocab_size(const tokenizer *t);
/* Beginning and end of sequence: tokenizer_config.json's bos_token and eos_token (a string or
 * {"content": ...}), or -1. Without a tokenizer_config.json, eos is "<|endoftext|>" when that is
 * a token (GPT-2: 50256) and bos is -1. */
int tokenizer_bos(const tokenizer *t);
int tokenizer_eos(const tokenizer *t);
int tokenizer_eot(const tokenizer *t); /* the same as tokenizer_eos (the older name) */
/* Whether a prompt starts with bos: tokenizer_config.json's add_bos_token when it has one (Llama
 * 2: true; Qwen: false); else whether tokenizer.json's post-processor is a template that starts
 * with a special token; else whether bos_token is set (Llama 3's first tokenizer.json has a
 * ByteLevel post-processor, yet its models expect <|begin_of_text|>). */
int tokenizer_adds_bos(const tokenizer *t);
/* Whether generating id ends the text: eos, and any added special token named <|eot_id|>,
 * <|eom_id|>, <|end_of_text|>, <|im_end|>, <|endoftext|> or </s> (the end-of-turn tokens of
 * instruct models, which their tokenizer_config.json may not name as eos). */
int tokenizer_is_stop(const tokenizer *t, int id);

/* Encodes len bytes of text (any bytes). Added tokens in the text ("<|endoftext|>",
 * "<|begin_of_text|>", "<|im_start|>", "<s>", ...; the longest match first) become their ids, as
 * in Hugging Face's tokenizers: the text is split there and each piece encoded on its own. No
 * BOS is added. *ids is malloc'd (NULL when *n is 0). Returns 0, or -1 when out of memory. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int **ids, size_t *n);
/* The same with no special tokens: "<|endoftext|>" is ordinary text, as in OpenAI's encoder.py
 * and the npm package gpt-3-encoder. Added tokens that are not special (Qwen's "<think>") are
 * still matched, as in Hugging Face's split_special_tokens. */
int tokenizer_encode_ordinary(const tokenizer *t, const char *text, size_t len, int **ids,
                              size_t *n);
/* tokenizer_encode, then bos in front when tokenizer_adds_bos: what a model's prompt is. */
int tokenizer_encode_prompt(const tokenizer *t, const char *text, size_t len, int **ids, size_t *n);

/* Appends the decoded bytes of token id to buf (room for cap bytes): byte-level BPE's raw bytes;
 * SentencePiece's with "▁" as a space and <0xNN> as that byte (no leading space is dropped here:
 * see tokenizer_decode). Returns the byte count, or -1 for an id that is no token or a token
 * longer than cap. */
int tokenizer_token_bytes(const tokenizer *t, int id, char *buf, size_t cap);
/* The longest token in bytes: a buffer this big always suffices for tokenizer_token_bytes. */
int tokenizer_max_token_bytes(const tokenizer *t);
/* Decodes ids into a malloc'd NUL-terminated byte string of *len bytes (not counting the NUL;
 * it may hold invalid UTF-8 when the ids split a character: the bytes are kept as they are, not
 * replaced by U+FFFD). SentencePiece drops one leading space of the whole text. Returns 0, or -1
 * with err for an id that is no token (or out of memory). */
int tokenizer_decode(const tokenizer *t, const int *ids, size_t n, char **text, size_t *len,
                     char *err, size_t errlen);

/* Streaming decoding, one id at a time, for printing as tokens are generated: each push gives
 * the bytes that are now complete, holding back the start of a UTF-8 character whose other bytes
 * may come with the next tokens (a byte-level token or an <0xNN> piece can end mid-character).
 * Bytes that cannot become a valid character are given as they are as soon as that is known. The
 * pushes' bytes, then flush's, are exactly tokenizer_decode of the same ids; for valid UTF-8
 * text every push gives whole characters only. SentencePiece drops the first space of the text.
 * The struct is the caller's (no allocation); one per stream. */
typedef struct tokenizer_stream {
    const tokenizer *t;
    unsigned char held[4]; /* the start of an incomplete character */
    int n_held;
    int started; /* some byte has been seen (SentencePiece's leading space is settled) */
} tokenizer_stream;
/* Room that always suffices in out for one push or flush. */
#define TOKENIZER_STREAM_ROOM(t) ((size_t)tokenizer_max_token_bytes(t) + 4)
void tokenizer_stream_init(tokenizer_stream *s, const tokenizer *t);
/* Writes the bytes now complete to out (room for cap bytes). Returns their count (0 or more), or
 * -1 for an id that is no token or too little room (nothing is consumed then). */
int tokenizer_stream_push(tokenizer_stream *s, int id, char *out, size_t cap);
/* Writes what is held back (an incomplete character at the end of the text, as it is) and
 * resets the stream for a new text. Returns the count, or -1 when cap is too small. */
int tokenizer_stream_flush(tokenizer_stream *s, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
