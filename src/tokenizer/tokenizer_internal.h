/* tokenizer_internal.h — what the tokenizer's source files share (not installed).
 *
 * One struct serves every family. Token ids index three views of a token:
 *   key      the bytes the model's tables are keyed by: raw bytes for byte-level BPE (the file's
 *            byte alphabet undone), the file's own UTF-8 spelling for SentencePiece ("▁the",
 *            "<0x0A>"), the content for added tokens; in pool at tok_off/tok_len (-1: no token);
 *   decoded  what decoding gives: the key itself for byte-level BPE (dpool NULL), and for
 *            SentencePiece "▁" → space and "<0xNN>" → that byte, in dpool at dec_off/dec_len;
 *   added    the added_tokens entry, if any: matched in the text before anything else. */
#ifndef LINSHARD_TOKENIZER_INTERNAL_H
#define LINSHARD_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "linshard/tokenizer.h"

enum tok_family { FAMILY_BYTE_LEVEL, FAMILY_SENTENCEPIECE };
/* The pre-tokenisation patterns known by hand (pretokenize.c). */
enum tok_pattern { PATTERN_GPT2, PATTERN_LLAMA3, PATTERN_QWEN2 };
/* When SentencePiece puts "▁" before a segment of text (sentencepiece.c). */
enum sp_prepend {
    SP_PREPEND_NEVER,
    SP_PREPEND_ALWAYS,       /* the Prepend normalizer: every segment, unconditionally */
    SP_PREPEND_UNLESS_THERE, /* Metaspace "always": every segment not starting with "▁" */
    SP_PREPEND_FIRST         /* Metaspace "first": only a segment at the start of the text */
};

typedef struct {
    uint64_t key; /* left id << 32 | right id; UINT64_MAX for an empty slot */
    int32_t rank;
    int32_t merged;
} merge_slot;

typedef struct {
    int id;
    int len;               /* content bytes (at pool + tok_off[id]) */
    unsigned char special; /* 0: matched even by tokenizer_encode_ordinary */
    unsigned char lstrip, rstrip;
} added_token;

struct tokenizer {
    int n_vocab; /* max id + 1 */
    int bos, eos, adds_bos;
    int family, pattern, nfc, ignore_merges;
    /* SentencePiece */
    int sp_prepend, sp_split, sp_strip, byte_fallback, unk, fuse_unk;
    int max_token_bytes;
    int heap_ok;
    int heap_always; /* a Hugging Face file whose merges need the heap's order (see bpe.c) */
    char *pool;
    size_t pool_used;
    size_t *tok_off;
    int *tok_len;
    char *dpool;
    size_t *dec_off;
    int *dec_len;
    int32_t *vocab_slot; /* hash map key bytes → id (model vocabulary only): id + 1, 0 empty */
    size_t vocab_cap;
    merge_slot *merges;
    size_t merge_cap;
    int n_merges;
    int byte_id[256];   /* byte-level: each byte's token; SentencePiece: <0xNN> or -1 */
    added_token *added; /* longest first */
    int n_added;
    unsigned char added_first[256]; /* whether some added token starts with this byte */
    int *stop;                      /* ids that end generation besides eos */
    int n_stop;
    /* 1: every array above points into a tokenizer image (image.c) that the caller owns, and
     * tokenizer_free frees only the struct. Nothing writes to a loaded tokenizer. */
    int borrowed;
};

/* The bytes that decoding token id gives (id a token). */
static inline int tok_dec_len(const tokenizer *t, int id) {
    return t->dpool ? t->dec_len[id] : t->tok_len[id];
}
static inline const char *tok_dec(const tokenizer *t, int id) {
    return t->dpool ? t->dpool + t->dec_off[id] : t->pool + t->tok_off[id];
}

/* ---- bpe.c ---------------------------------------------------------------------------------- */

tokenizer *tokenizer_new(void);
/* How a file spells tokens: GPT-2's byte alphabet (undone on loading), or plain UTF-8. */
enum { SPELL_BYTE_ALPHABET, SPELL_UTF8 };
/* Allocates the tables for ids 0 .. n_slots-1 and pool_bytes of token bytes. */
int tokenizer_alloc(tokenizer *t, int n_slots, size_t pool_bytes, const char *name, char *err,
                    size_t errlen);
/* The model vocabulary {token: id}; ids in 0 .. n_slots-1, each once. */
int tokenizer_load_vocab(tokenizer *t, const void *cjson_obj, int spell, const char *name,
                         char *err, size_t errlen);
/* Merges from tokenizer.json's model.merges: ["a b", ...] or [["a", "b"], ...]. */
int tokenizer_load_merges_json(tokenizer *t, const void *cjson_arr, int spell, const char *name,
                               char *err, size_t errlen);
/* Registers an added token (content bytes) with this id; its slot may already hold the same
 * token from the vocabulary. Call tokenizer_finish_added afterwards. */
int tokenizer_add_token(tokenizer *t, int id, const char *content, size_t len, int special,
                        int lstrip, int rstrip, const char *name, char *err, size_t errlen);
void tokenizer_finish_added(tokenizer *t);
/* Every byte's token (byte-level BPE needs all 256). */
int tokenizer_find_bytes(tokenizer *t, const char *name, char *err, size_t errlen);
/* The id whose key is these bytes, an added token's content included, or -1. */
int tokenizer_find(const tokenizer *t, const char *s, size_t n);
/* Whether the merges can run on a heap (see bpe.c), and the longest decoded token. */
void tokenizer_finish(tokenizer *t);
/* The id of the model-vocabulary token with these key bytes, or -1. */
int vocab_find(const tokenizer *t, const char *s, size_t n);

/* Hooks for loaders that do not read JSON (gguf_vocab.c). GPT-2's byte alphabet: u2b[code point]
 * is the byte it stands for, or -1. */
#define TOKENIZER_ALPHABET_SIZE 324
void tokenizer_alphabet(int u2b[TOKENIZER_ALPHABET_SIZE]);
/* A token's spelling to its key bytes in out (room for len bytes); -1 outside the alphabet. */
int tokenizer_spell(int spell, const int *u2b, const char *s, size_t len, char *out);
/* Vocabulary token id with these key bytes (which may already lie at pool + pool_used). */
int tokenizer_set_token(tokenizer *t, int id, const char *key, size_t len, const char *name,
                        const char *where, char *err, size_t errlen);
/* Room for n merges, then merge number rank: two tokens as spelled. */
int tokenizer_alloc_merges(tokenizer *t, size_t n, const char *name, char *err, size_t errlen);
int tokenizer_add_merge(tokenizer *t, int spell, const int *u2b, const char *a, size_t alen,
                        const char *b, size_t blen, int rank, const char *name, const char *where,
                        char *err, size_t errlen);
/* The merges in rank order as a malloc'd [n][2] of (left id, right id); returns n, or -1. */
int tokenizer_merge_list(const tokenizer *t, int **pairs);

/* Scratch space for one encode call, and the ids it produces. */
typedef struct heap_entry heap_entry;
typedef struct {
    int *sym, *next, *prev;
    heap_entry *heap;
    size_t cap;
    int *out; /* the ids so far */
    size_t n_out, out_cap;
} bpe_scratch;
/* Room for n symbols. */
int bpe_reserve(bpe_scratch *s, size_t n);
/* Appends one id. */
int bpe_emit(bpe_scratch *s, int id);
/* Runs the merges on s->sym[0..n) and appends the result. */
int bpe_merge_emit(const tokenizer *t, bpe_scratch *s, size_t n);

/* ---- pretokenize.c -------------------------------------------------------------------------- */

/* The end offset of the piece that starts at s[pos] (pos < len) under the pattern. Always > pos.
 * GPT-2's pattern is
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
size_t pretokenize_next(const unsigned char *s, size_t len, size_t pos);
size_t pretokenize_next_pattern(int pattern, const unsigned char *s, size_t len, size_t pos);
/* The pattern whose regex (as tokenizer.json spells it) is re, or -1. */
int pretokenize_pattern_of(const char *re);
/* The length of the well-formed UTF-8 character at s[pos] (pos < len), or 0 when s[pos] does
 * not start one (RFC 3629: no overlong forms, surrogates or truncation). */
size_t utf8_char_len(const unsigned char *s, size_t len, size_t pos);

/* ---- normalize.c ---------------------------------------------------------------------------- */

/* NFC of len bytes into a malloc'd *out of *out_len bytes; bytes that are not UTF-8 pass through
 * as they are. Returns 0, or -1 when out of memory. */
int normalize_nfc(const char *s, size_t len, char **out, size_t *out_len);

/* ---- sentencepiece.c ------------------------------------------------------------------------ */

/* Encodes one segment of text (between added tokens) the SentencePiece way, appending to s;
 * at_start: the segment begins the text. */
int sp_encode_segment(const tokenizer *t, bpe_scratch *s, const unsigned char *p, size_t n,
                      int at_start);
/* Fills the decoded view (dpool) from the keys. */
int sp_build_decoded(tokenizer *t, const char *name, char *err, size_t errlen);

/* ---- hf_json.c ------------------------------------------------------------------------------ */

/* Loads a tokenizer.json text and, when config is not NULL, a tokenizer_config.json text. */
int tokenizer_load_hf(tokenizer **out, const char *json, size_t len, const char *name,
                      const char *config, size_t config_len, const char *config_name, char *err,
                      size_t errlen);

/* The stop tokens besides eos: the added special tokens named <|eot_id|>, <|eom_id|>, ... (see
 * tokenizer_is_stop). */
int tokenizer_find_stops(tokenizer *t, char *err, size_t errlen);

/* Loads from an encoder.json text (token → id) and a vocab.bpe text (merges); the names are
 * used in error messages. */
int tokenizer_load_gpt2_buffers(tokenizer **out, const char *encoder_json, size_t encoder_len,
                                const char *vocab_bpe, size_t vocab_len, const char *encoder_name,
                                const char *vocab_name, char *err, size_t errlen);

/* ---- image.c -------------------------------------------------------------------------------- */

/* A finished tokenizer's tables as one flat buffer (an internal build artefact: see image.c).
 * tokenizer_image_size: the bytes tokenizer_image_write needs; write fills buf (cap bytes) and
 * returns 0, or -1 with err when cap is too small. */
size_t tokenizer_image_size(const tokenizer *t);
int tokenizer_image_write(const tokenizer *t, void *buf, size_t cap, char *err, size_t errlen);
/* A tokenizer whose arrays point into data (len bytes, 16-byte aligned; it must outlive the
 * tokenizer, and is never written). Returns 0, or -1 with a one-line err naming the problem:
 * bad magic, another version or build, truncated, a section out of place. */
int tokenizer_image_open(const void *data, size_t len, tokenizer **out, char *err, size_t errlen);

#endif
