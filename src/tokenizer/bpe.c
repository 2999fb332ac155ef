/* bpe.c — BPE: the vocabulary and merge tables, the merges themselves, encoding and decoding.
 *
 * Byte-level files (GPT-2, Llama 3, Qwen) spell tokens in GPT-2's byte alphabet
 * (bytes_to_unicode: each byte is one printable code point, "Ġ" for the space). Loading maps
 * every token back to its raw bytes, so the tables here are in bytes: the vocabulary (id →
 * bytes, and a hash map bytes → id) and the merges (a hash map (left id, right id) → rank and
 * merged id). SentencePiece files (Llama 2, Mistral) keep their own spelling ("▁the"); see
 * sentencepiece.c. Encoding first splits the text at added tokens ("<|endoftext|>",
 * "<|eot_id|>", ...), which become their ids; each stretch between them is normalised (NFC when
 * the file asks), split into pieces (pretokenize.c) and the merges run on each piece exactly as
 * OpenAI's encoder.py does: repeatedly take the adjacent pair of lowest rank and merge all its
 * occurrences left to right, until no pair has a rank.
 *
 * Long pieces use a heap of pairs instead of rescanning the piece after every merge, which
 * turns O(n^2) into O(n log n) and gives the same tokens whenever every pair that contains a
 * merged token ranks after every merge that makes that token (true of any merge list learned by
 * BPE, GPT-2's included). Loading checks that property; when a merge list lacks it, every piece
 * takes the rescanning path, except for Hugging Face files: their reference (tokenizers, and
 * transformers.js) always merges with a heap ordered by rank then position, so those take the
 * heap path. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "tokenizer_internal.h"

#define EOT_TEXT "<|endoftext|>"
#define EOT_LEN (sizeof(EOT_TEXT) - 1)
/* Pieces longer than this (in bytes) use the heap when the merges allow it. */
#ifndef HEAP_MIN_BYTES
#define HEAP_MIN_BYTES 32
#endif

/* ---- GPT-2's byte alphabet (bytes_to_unicode) ------------------------------------------------ */

#define ALPHABET_SIZE 324 /* code points 0 .. 256 + 67 */

/* unicode_to_byte[cp]: the byte that code point cp stands for, or -1. */
static void byte_alphabet(int unicode_to_byte[ALPHABET_SIZE]) {
    for (int i = 0; i < ALPHABET_SIZE; i++) unicode_to_byte[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        unicode_to_byte[printable ? b : 256 + n++] = b;
    }
}

/* Maps a token spelled in the byte alphabet (UTF-8, len bytes) to its raw bytes in out (room
 * for len bytes: each byte's code point takes at least one). Returns the byte count, or -1 when
 * a character is outside the alphabet or the UTF-8 is malformed. */
static int token_to_bytes(const int *u2b, const char *s, size_t len, char *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    int n = 0;
    while (i < len) {
        int cp;
        if (p[i] < 0x80) {
            cp = p[i++];
        } else if ((p[i] & 0xE0) == 0xC0 && i + 1 < len && (p[i + 1] & 0xC0) == 0x80) {
            cp = (p[i] & 0x1F) << 6 | (p[i + 1] & 0x3F);
            i += 2;
        } else {
            return -1; /* the alphabet ends at U+0143: two bytes at most */
        }
        if (cp >= ALPHABET_SIZE || u2b[cp] < 0) return -1;
        out[n++] = (char)u2b[cp];
    }
    return n;
}

/* ---- hash maps ------------------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* The vocabulary's hash map is vocab_cap pairs of int32 in vocab_slot: id + 1 (0: empty) and the
 * top 32 bits of the key's hash, so a probe compares the tag before touching the token's bytes
 * (a miss -- every insert -- then reads nothing else, and a hit reads the bytes once). */
static inline int32_t hash_tag(uint64_t h) {
    return (int32_t)(uint32_t)(h >> 32);
}

/* Whether n bytes are equal: keys are a few bytes long, and a call to memcmp costs more than
 * comparing them (the hash tag has already matched, so they almost always are). */
static inline int same_key(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* The id of the model-vocabulary token with these key bytes, or -1. */
int vocab_find(const tokenizer *t, const char *s, size_t n) {
    size_t mask = t->vocab_cap - 1;
    uint64_t h = hash_bytes(s, n);
    int32_t tag = hash_tag(h);
    /* At most one lap: a table always has empty slots, but one read in place from an image
     * (image.c) is not scanned when opened, and a wrong one must not loop forever. */
    for (size_t i = h & mask, lap = 0; lap <= mask; i = (i + 1) & mask, lap++) {
        int32_t v = t->vocab_slot[2 * i];
        if (!v) return -1;
        if (t->vocab_slot[2 * i + 1] != tag) continue;
        int id = v - 1;
        if ((size_t)t->tok_len[id] == n && same_key(t->pool + t->tok_off[id], s, n)) return id;
    }
    return -1;
}

/* Enters token id (its key already at tok_off/tok_len) in the map: 0, or -1 when another token
 * has the same key (then id's entry is undone). One probe sequence finds and inserts. */
static int vocab_add(tokenizer *t, int id, size_t off, int len) {
    t->tok_off[id] = off;
    t->tok_len[id] = len;
    const char *key = t->pool + off;
    size_t mask = t->vocab_cap - 1;
    uint64_t h = hash_bytes(key, (size_t)len);
    int32_t tag = hash_tag(h);
    size_t i = h & mask;
    for (int32_t v; (v = t->vocab_slot[2 * i]) != 0; i = (i + 1) & mask)
        if (t->vocab_slot[2 * i + 1] == tag && t->tok_len[v - 1] == len &&
            same_key(t->pool + t->tok_off[v - 1], key, (size_t)len)) {
            t->tok_len[id] = -1;
            return -1;
        }
    t->vocab_slot[2 * i] = id + 1;
    t->vocab_slot[2 * i + 1] = tag;
    return 0;
}

int tokenizer_find(const tokenizer *t, const char *s, size_t n) {
    for (int i = 0; i < t->n_added; i++)
        if ((size_t)t->added[i].len == n && !memcmp(t->pool + t->tok_off[t->added[i].id], s, n))
            return t->added[i].id;
    return vocab_find(t, s, n);
}

static inline uint64_t pair_key(int a, int b) {
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

static inline const merge_slot *merge_find(const tokenizer *t, int a, int b) {
    uint64_t key = pair_key(a, b);
    size_t mask = t->merge_cap - 1;
    for (size_t i = hash_u64(key) & mask, lap = 0; lap <= mask; i = (i + 1) & mask, lap++) {
        const merge_slot *m = &t->merges[i];
        if (m->key == key) return m;
        if (m->key == UINT64_MAX) return NULL;
    }
    return NULL; /* a full table (see vocab_find) */
}

/* A later duplicate of a pair takes its rank, as dict(zip(merges, range(...))) does. */
static void merge_insert(tokenizer *t, int a, int b, int rank, int merged) {
    uint64_t key = pair_key(a, b);
    size_t mask = t->merge_cap - 1;
    size_t i = hash_u64(key) & mask;
    while (t->merges[i].key != UINT64_MAX && t->merges[i].key != key) i = (i + 1) & mask;
    t->merges[i] = (merge_slot){key, rank, merged};
}

/* ---- loading -------------------------------------------------------------------------------- */

tokenizer *tokenizer_new(void) {
    tokenizer *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->bos = t->eos = t->unk = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    return t;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    if (t->borrowed) { /* the arrays belong to an image (image.c) */
        free(t);
        return;
    }
    free(t->pool);
    free(t->tok_off);
    free(t->tok_len);
    free(t->dpool);
    free(t->dec_off);
    free(t->dec_len);
    free(t->vocab_slot);
    free(t->merges);
    free(t->added);
    free(t->stop);
    free(t);
}

int tokenizer_alloc(tokenizer *t, int n_slots, size_t pool_bytes, const char *name, char *err,
                    size_t errlen) {
    t->n_vocab = n_slots;
    t->pool = malloc(pool_bytes ? pool_bytes : 1);
    t->tok_off = calloc((size_t)n_slots, sizeof(*t->tok_off));
    t->tok_len = malloc((size_t)n_slots * sizeof(*t->tok_len));
    /* at most 3/4 full: with the tags beside the ids, probing stays in one cache line or two,
     * and the table (512 KiB for GPT-2) stays in cache */
    t->vocab_cap = pow2_at_least((size_t)n_slots + (size_t)n_slots / 3 + 1);
    t->vocab_slot = calloc(2 * t->vocab_cap, sizeof(*t->vocab_slot)); /* (id + 1, tag) pairs */
    if (!t->pool || !t->tok_off || !t->tok_len || !t->vocab_slot) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    for (int i = 0; i < n_slots; i++) t->tok_len[i] = -1;
    return 0;
}

/* Copies a token's spelling to out (room for len bytes): the byte alphabet undone, or as is.
 * Returns the byte count, or -1 for a character outside the byte alphabet. */
static int spell_token(int spell, const int *u2b, const char *s, size_t len, char *out) {
    if (spell == SPELL_BYTE_ALPHABET) return token_to_bytes(u2b, s, len, out);
    memcpy(out, s, len);
    return (int)len;
}

int tokenizer_load_vocab(tokenizer *t, const void *cjson_obj, int spell, const char *name,
                         char *err, size_t errlen) {
    const cJSON *obj = cjson_obj;
    int u2b[ALPHABET_SIZE];
    byte_alphabet(u2b);
    int n = t->n_vocab;
    for (const cJSON *e = obj->child; e; e = e->next) {
        double v = cJSON_GetNumberValue(e);
        if (!cJSON_IsNumber(e) || v < 0 || v >= n || v != (double)(int)v) {
            snprintf(err, errlen, "%s: token \"%.40s\": its id is not an integer in 0..%d", name,
                     e->string, n - 1);
            return -1;
        }
        int id = (int)v;
        if (t->tok_len[id] >= 0) {
            snprintf(err, errlen, "%s: id %d is given to two tokens (\"%.40s\" is one)", name, id,
                     e->string);
            return -1;
        }
        char *dst = t->pool + t->pool_used;
        int len = spell_token(spell, u2b, e->string, strlen(e->string), dst);
        if (len < 0) {
            snprintf(err, errlen,
                     "%s: token \"%.40s\" has a character outside GPT-2's byte alphabet", name,
                     e->string);
            return -1;
        }
        if (len == 0) {
            snprintf(err, errlen, "%s: the empty string is a token (id %d)", name, id);
            return -1;
        }
        if (vocab_add(t, id, t->pool_used, len)) {
            snprintf(err, errlen, "%s: token \"%.40s\" appears twice", name, e->string);
            return -1;
        }
        t->pool_used += (size_t)len;
    }
    return 0;
}

int tokenizer_find_bytes(tokenizer *t, const char *name, char *err, size_t errlen) {
    for (int b = 0; b < 256; b++) {
        if (t->family == FAMILY_SENTENCEPIECE) {
            char hex[8];
            snprintf(hex, sizeof(hex), "<0x%02X>", b);
            t->byte_id[b] = t->byte_fallback ? vocab_find(t, hex, 6) : -1;
            continue;
        }
        char c = (char)b;
        if ((t->byte_id[b] = vocab_find(t, &c, 1)) < 0) {
            snprintf(err, errlen,
                     "%s: no token for the byte 0x%02x (a byte-level BPE needs all 256)", name, b);
            return -1;
        }
    }
    return 0;
}

int tokenizer_add_token(tokenizer *t, int id, const char *content, size_t len, int special,
                        int lstrip, int rstrip, const char *name, char *err, size_t errlen) {
    if (len == 0 || len > INT_MAX) {
        snprintf(err, errlen, "%s: added token %d is empty", name, id);
        return -1;
    }
    if (t->tok_len[id] >= 0) {
        if ((size_t)t->tok_len[id] != len || memcmp(t->pool + t->tok_off[id], content, len)) {
            snprintf(err, errlen, "%s: added token %d \"%.40s\" is not the vocabulary's token %d",
                     name, id, content, id);
            return -1;
        }
    } else {
        memcpy(t->pool + t->pool_used, content, len);
        t->tok_off[id] = t->pool_used;
        t->tok_len[id] = (int)len;
        t->pool_used += len;
    }
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) {
            snprintf(err, errlen, "%s: added token %d appears twice", name, id);
            return -1;
        }
    added_token *a = realloc(t->added, (size_t)(t->n_added + 1) * sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    t->added = a;
    a[t->n_added++] = (added_token){id, (int)len, (unsigned char)!!special, (unsigned char)!!lstrip,
                                    (unsigned char)!!rstrip};
    return 0;
}

static int longer_first(const void *x, const void *y) {
    const added_token *a = x, *b = y;
    return a->len != b->len ? (a->len < b->len ? 1 : -1) : (a->id > b->id) - (a->id < b->id);
}

void tokenizer_finish_added(tokenizer *t) {
    if (t->n_added) qsort(t->added, (size_t)t->n_added, sizeof(*t->added), longer_first);
    memset(t->added_first, 0, sizeof(t->added_first));
    for (int i = 0; i < t->n_added; i++)
        t->added_first[(unsigned char)t->pool[t->tok_off[t->added[i].id]]] = 1;
}

/* A merge's operand (key bytes): a single byte of a byte-level vocabulary is byte_id's. */
static int find_operand(const tokenizer *t, const char *s, int n) {
    if (n == 1 && t->family == FAMILY_BYTE_LEVEL && t->byte_id[(unsigned char)s[0]] >= 0)
        return t->byte_id[(unsigned char)s[0]];
    return vocab_find(t, s, (size_t)n);
}

/* Where a merge is in its file, for messages only (a snprintf per merge was 5% of loading
 * GPT-2's tokenizer): line `index` of a merges text, or model.merges[index] of a tokenizer.json. */
typedef struct {
    int is_line;
    size_t index;
    const char *text; /* when set, the place as the caller words it (gguf_vocab.c) */
} merge_where;

static void format_where(merge_where w, char *out, size_t len) {
    if (w.text)
        snprintf(out, len, "%s", w.text);
    else
        snprintf(out, len, w.is_line ? "line %zu" : "model.merges[%zu]", w.index);
}

/* Adds merge number `rank`: the two tokens as spelled in the file. *last is the id the previous
 * merge made (-1 at first). */
static int add_merge(tokenizer *t, int spell, const int *u2b, const char *a, size_t alen,
                     const char *b, size_t blen, int rank, const char *name, merge_where w,
                     int *last, char *err, size_t errlen) {
    char buf[1024], where[48];
    int la = alen < sizeof(buf) / 2 ? spell_token(spell, u2b, a, alen, buf) : -1;
    int lb = blen < sizeof(buf) / 2 && la >= 0 ? spell_token(spell, u2b, b, blen, buf + la) : -1;
    if (la <= 0 || lb <= 0) {
        format_where(w, where, sizeof(where));
        snprintf(err, errlen, "%s: %s: \"%.*s %.*s\" is not two tokens%s", name, where,
                 (int)(alen < 40 ? alen : 40), a, (int)(blen < 40 ? blen : 40), b,
                 spell == SPELL_BYTE_ALPHABET ? " of GPT-2's byte alphabet" : "");
        return -1;
    }
    int ia = find_operand(t, buf, la), ib = find_operand(t, buf + la, lb);
    /* Merges usually make tokens in id order (GPT-2's merge r makes token 256 + r): try the id
     * after the last merge's before hashing. Without added tokens every key is a vocabulary
     * token, so an equal key is the one vocab_find would return. */
    int im = *last + 1, lm = la + lb;
    if (!(t->n_added == 0 && im > 0 && im < t->n_vocab && t->tok_len[im] == lm &&
          same_key(t->pool + t->tok_off[im], buf, (size_t)lm)))
        im = vocab_find(t, buf, (size_t)lm);
    if (im >= 0) *last = im;
    if (ia < 0 || ib < 0 || im < 0) {
        format_where(w, where, sizeof(where));
        snprintf(err, errlen, "%s: %s: \"%.*s\" merged with \"%.*s\": %s is not in the vocabulary",
                 name, where, (int)(alen < 40 ? alen : 40), a, (int)(blen < 40 ? blen : 40), b,
                 ia < 0   ? "the first"
                 : ib < 0 ? "the second"
                          : "the result");
        return -1;
    }
    merge_insert(t, ia, ib, rank, im);
    return 0;
}

static int alloc_merges(tokenizer *t, size_t n, const char *name, char *err, size_t errlen) {
    /* at most 3/4 full (linear probing on 16-byte slots: a probe reads the next slot in the same
     * cache line); GPT-2's 50,000 merges take 1 MiB, whose first touch is most of the cost */
    t->merge_cap = pow2_at_least(n + n / 3 + 1);
    t->merges = malloc(t->merge_cap * sizeof(*t->merges));
    if (!t->merges) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    for (size_t i = 0; i < t->merge_cap; i++) t->merges[i] = (merge_slot){UINT64_MAX, 0, 0};
    return 0;
}

/* ---- hooks for other loaders (gguf_vocab.c) ---------------------------------------------- */

void tokenizer_alphabet(int u2b[TOKENIZER_ALPHABET_SIZE]) {
    byte_alphabet(u2b);
}

int tokenizer_spell(int spell, const int *u2b, const char *s, size_t len, char *out) {
    return spell_token(spell, u2b, s, len, out);
}

int tokenizer_set_token(tokenizer *t, int id, const char *key, size_t len, const char *name,
                        const char *where, char *err, size_t errlen) {
    if (len == 0 || len > INT_MAX) {
        snprintf(err, errlen, "%s: %s: the empty string is a token", name, where);
        return -1;
    }
    if (key != t->pool + t->pool_used) memmove(t->pool + t->pool_used, key, len);
    if (t->tok_len[id] >= 0 || vocab_add(t, id, t->pool_used, (int)len)) {
        snprintf(err, errlen, "%s: %s: token \"%.*s\" appears twice", name, where,
                 (int)(len < 40 ? len : 40), t->pool + t->pool_used);
        return -1;
    }
    t->pool_used += len;
    return 0;
}

int tokenizer_alloc_merges(tokenizer *t, size_t n, const char *name, char *err, size_t errlen) {
    return alloc_merges(t, n, name, err, errlen);
}

int tokenizer_add_merge(tokenizer *t, int spell, const int *u2b, const char *a, size_t alen,
                        const char *b, size_t blen, int rank, const char *name, const char *where,
                        char *err, size_t errlen) {
    int last = -1; /* no hint: the result is looked up by its bytes */
    return add_merge(t, spell, u2b, a, alen, b, blen, rank, name, (merge_where){0, 0, where}, &last,
                     err, errlen);
}

static int by_rank(const void *x, const void *y) {
    const int *a = x, *b = y;
    return (a[0] > b[0]) - (a[0] < b[0]);
}

int tokenizer_merge_list(const tokenizer *t, int **pairs) {
    int n = 0;
    for (size_t i = 0; i < t->merge_cap; i++) n += t->merges[i].key != UINT64_MAX;
    int *r = malloc((size_t)(n ? n : 1) * 3 * sizeof(int));
    *pairs = malloc((size_t)(n ? n : 1) * 2 * sizeof(int));
    if (!r || !*pairs) {
        free(r);
        free(*pairs);
        *pairs = NULL;
        return -1;
    }
    int k = 0;
    for (size_t i = 0; i < t->merge_cap; i++) {
        const merge_slot *m = &t->merges[i];
        if (m->key == UINT64_MAX) continue;
        r[3 * k] = m->rank;
        r[3 * k + 1] = (int)(m->key >> 32);
        r[3 * k + 2] = (int)(uint32_t)m->key;
        k++;
    }
    /* ranks are distinct: a later duplicate of a pair replaced the earlier one */
    qsort(r, (size_t)n, 3 * sizeof(int), by_rank);
    for (int i = 0; i < n; i++) {
        (*pairs)[2 * i] = r[3 * i + 1];
        (*pairs)[2 * i + 1] = r[3 * i + 2];
    }
    free(r);
    return n;
}

/* Merges from a vocab.bpe / merges.txt text: an optional "#version" first line, then one
 * "left right" pair per line in rank order. Blank lines are skipped. */
static int load_merges_text(tokenizer *t, const int *u2b, const char *text, size_t len,
                            const char *name, char *err, size_t errlen) {
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (alloc_merges(t, lines, name, err, errlen)) return -1;
    size_t pos = 0;
    int rank = 0, last = -1;
    for (size_t line = 1; pos < len; line++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, next = nl ? end + 1 : len;
        if (end > pos && text[end - 1] == '\r') end--;
        const char *s = text + pos;
        size_t n = end - pos;
        pos = next;
        if (line == 1 && n >= 8 && !memcmp(s, "#version", 8)) continue;
        /* split on spaces and tabs */
        const char *f[3];
        size_t fl[3];
        int nf = 0;
        for (size_t i = 0; i < n;) {
            while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
            if (i == n) break;
            size_t j = i;
            while (j < n && s[j] != ' ' && s[j] != '\t') j++;
            if (nf < 3) {
                f[nf] = s + i;
                fl[nf] = j - i;
            }
            nf++;
            i = j;
        }
        if (nf == 0) continue;
        if (nf != 2) {
            char where[32];
            snprintf(where, sizeof(where), "line %zu", line);
            snprintf(err, errlen, "%s: %s: expected two tokens separated by a space, got %d", name,
                     where, nf);
            return -1;
        }
        if (add_merge(t, SPELL_BYTE_ALPHABET, u2b, f[0], fl[0], f[1], fl[1], rank++, name,
                      (merge_where){1, line, NULL}, &last, err, errlen))
            return -1;
    }
    t->n_merges = rank;
    return 0;
}

int tokenizer_load_merges_json(tokenizer *t, const void *cjson_arr, int spell, const char *name,
                               char *err, size_t errlen) {
    const cJSON *arr = cjson_arr;
    int u2b[ALPHABET_SIZE];
    byte_alphabet(u2b);
    if (!cJSON_IsArray(arr)) {
        snprintf(err, errlen, "%s: model.merges is missing or not an array", name);
        return -1;
    }
    if (alloc_merges(t, (size_t)cJSON_GetArraySize(arr), name, err, errlen)) return -1;
    int rank = 0, last = -1;
    for (const cJSON *e = arr->child; e; e = e->next, rank++) {
        const char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        if (cJSON_IsString(e)) {
            const char *s = e->valuestring, *sp = strchr(s, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                a = s;
                alen = (size_t)(sp - s);
                b = sp + 1;
                blen = strlen(b);
            }
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            a = e->child->valuestring;
            alen = strlen(a);
            b = e->child->next->valuestring;
            blen = strlen(b);
        }
        if (!a) {
            snprintf(err, errlen,
                     "%s: model.merges[%d]: expected \"left right\" or [\"left\", \"right\"]", name,
                     rank);
            return -1;
        }
        if (add_merge(t, spell, u2b, a, alen, b, blen, rank, name,
                      (merge_where){0, (size_t)rank, NULL}, &last, err, errlen))
            return -1;
    }
    t->n_merges = rank;
    return 0;
}

/* Whether the heap gives the same tokens as rescanning (see the top of the file): every merge
 * that uses a token ranks after every merge that makes it. */
static int check_heap_ok(tokenizer *t) {
    int n = t->n_vocab, ok = 1;
    int *made_max = malloc((size_t)n * sizeof(int)), *used_min = malloc((size_t)n * sizeof(int));
    if (!made_max || !used_min) {
        ok = 0;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        made_max[i] = -1;
        used_min[i] = INT_MAX;
    }
    for (size_t i = 0; i < t->merge_cap; i++) {
        const merge_slot *m = &t->merges[i];
        if (m->key == UINT64_MAX) continue;
        int a = (int)(m->key >> 32), b = (int)(uint32_t)m->key;
        if (m->rank > made_max[m->merged]) made_max[m->merged] = m->rank;
        if (m->rank < used_min[a]) used_min[a] = m->rank;
        if (m->rank < used_min[b]) used_min[b] = m->rank;
    }
    for (int i = 0; i < n && ok; i++) ok = made_max[i] < used_min[i];
done:
    free(made_max);
    free(used_min);
    return ok;
}

void tokenizer_finish(tokenizer *t) {
    t->heap_ok = check_heap_ok(t);
    t->max_token_bytes = 0;
    for (int id = 0; id < t->n_vocab; id++)
        if (t->tok_len[id] >= 0 && tok_dec_len(t, id) > t->max_token_bytes)
            t->max_token_bytes = tok_dec_len(t, id);
}

/* ---- encoder.json without a DOM -------------------------------------------------------------- */

/* GPT-2's encoder.json is one flat object {"token": id, ...} of 50257 entries. Parsing it with
 * cJSON costs two mallocs per entry and most of the loading time; this reads the common form
 * straight into the tables: keys with the usual escapes (\uXXXX of the BMP, \", \\, \/, \b, \f,
 * \n, \r, \t), ids plain decimal integers. Anything else (other syntax, a surrogate or NUL
 * escape, a raw control character, an id like 1e3, text after the object) returns 1 and the
 * caller takes the cJSON path, which accepts what it accepts and words its errors -- so this
 * path changes no result and no message. */

static size_t skip_ws(const char *s, size_t len, size_t i) {
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

static int hex4(const char *s, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        *v = *v << 4 | (unsigned)d;
    }
    return 0;
}

/* The JSON string at s[*i] (the opening quote) as UTF-8 into out (room for the string's raw
 * length: an escape never grows); *i moves past the closing quote. Returns the length, or -1. */
static long json_string(const char *s, size_t len, size_t *i, char *out) {
    size_t p = *i + 1;
    long n = 0;
    while (p < len && s[p] != '"') {
        unsigned char c = (unsigned char)s[p];
        if (c < 0x20) return -1;
        if (c != '\\') {
            out[n++] = (char)c;
            p++;
            continue;
        }
        if (p + 1 >= len) return -1;
        char e = s[p + 1];
        p += 2;
        switch (e) {
        case '"':
            out[n++] = '"';
            break;
        case '\\':
            out[n++] = '\\';
            break;
        case '/':
            out[n++] = '/';
            break;
        case 'b':
            out[n++] = '\b';
            break;
        case 'f':
            out[n++] = '\f';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 'r':
            out[n++] = '\r';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case 'u': {
            unsigned v;
            if (p + 4 > len || hex4(s + p, &v) || v == 0 || (v >= 0xD800 && v <= 0xDFFF)) return -1;
            p += 4;
            if (v < 0x80) {
                out[n++] = (char)v;
            } else if (v < 0x800) {
                out[n++] = (char)(0xC0 | v >> 6);
                out[n++] = (char)(0x80 | (v & 0x3F));
            } else {
                out[n++] = (char)(0xE0 | v >> 12);
                out[n++] = (char)(0x80 | (v >> 6 & 0x3F));
                out[n++] = (char)(0x80 | (v & 0x3F));
            }
            break;
        }
        default:
            return -1;
        }
    }
    if (p >= len) return -1;
    *i = p + 1;
    return n;
}

/* Loads the vocabulary of encoder_json into t, as tokenizer_load_vocab would from cJSON's
 * object (file order, the same checks). Returns 0, or 1: not the common form, or any problem
 * at all (take the cJSON path; t is then half-filled and must be freed). */
static int load_encoder_fast(tokenizer *t, const char *s, size_t len) {
    size_t i = skip_ws(s, len, 0);
    if (i >= len || s[i] != '{') return 1;
    /* One pass. The tables are sized for an upper bound of the entries -- every entry but the
     * last is followed by a comma -- and n_vocab set to the count at the end, once every id is
     * known to be below it (distinct ids below the count are then exactly 0 .. count-1). */
    size_t bound = 1;
    for (const char *c = s; (c = memchr(c, ',', len - (size_t)(c - s))) != NULL; c++) bound++;
    char *key = malloc(len ? len : 1);
    if (!key || bound > INT_MAX || tokenizer_alloc(t, (int)bound, len, "", key, 1)) {
        free(key);
        return 1;
    }
    int u2b[ALPHABET_SIZE];
    byte_alphabet(u2b);
    size_t p = skip_ws(s, len, i + 1), count = 0;
    long long max_id = -1;
    int ok = !(p < len && s[p] == '}'); /* empty: the cJSON path words the error */
    while (ok) {
        if (p >= len || s[p] != '"') {
            ok = 0;
            break;
        }
        long kl = json_string(s, len, &p, key);
        p = skip_ws(s, len, p);
        if (kl <= 0 || p >= len || s[p] != ':') {
            ok = 0;
            break;
        }
        p = skip_ws(s, len, p + 1);
        size_t d = p;
        long long id = 0;
        while (p < len && s[p] >= '0' && s[p] <= '9' && p - d < 10) id = id * 10 + (s[p++] - '0');
        if (p == d || (p - d > 1 && s[d] == '0') ||
            (p < len &&
             (s[p] == '.' || s[p] == 'e' || s[p] == 'E' || (s[p] >= '0' && s[p] <= '9')))) {
            ok = 0;
            break;
        }
        /* tokenizer_load_vocab's checks */
        char *dst = t->pool + t->pool_used;
        int n =
            id < t->n_vocab && t->tok_len[id] < 0 ? token_to_bytes(u2b, key, (size_t)kl, dst) : -1;
        if (n <= 0 || vocab_add(t, (int)id, t->pool_used, n)) {
            ok = 0;
            break;
        }
        t->pool_used += (size_t)n;
        if (id > max_id) max_id = id;
        count++;
        p = skip_ws(s, len, p);
        if (p < len && s[p] == ',') {
            p = skip_ws(s, len, p + 1);
            continue;
        }
        if (!(p < len && s[p] == '}' && skip_ws(s, len, p + 1) == len)) ok = 0;
        break;
    }
    free(key);
    if (!ok || max_id >= (long long)count) return 1;
    t->n_vocab = (int)count;
    return 0;
}

/* Vocabulary from a JSON text, merges from a merges text. "<|endoftext|>", when in the
 * vocabulary, is the one added token and the end of sequence. */
int tokenizer_load_gpt2_buffers(tokenizer **out, const char *encoder_json, size_t encoder_len,
                                const char *vocab_bpe, size_t vocab_len, const char *encoder_name,
                                const char *vocab_name, char *err, size_t errlen) {
    *out = NULL;
    int u2b[ALPHABET_SIZE];
    byte_alphabet(u2b);
    tokenizer *t = tokenizer_new();
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    if (!load_encoder_fast(t, encoder_json, encoder_len)) {
        rc = tokenizer_find_bytes(t, encoder_name, err, errlen);
        goto merges;
    }
    tokenizer_free(t); /* the common form failed somewhere: start again, the careful way */
    if (!(t = tokenizer_new())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cJSON *root = cJSON_ParseWithLength(encoder_json, encoder_len);
    if (!root) {
        snprintf(err, errlen, "%s: not valid JSON", encoder_name);
    } else if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s: the vocabulary is not a JSON object", encoder_name);
    } else if (cJSON_GetArraySize(root) <= 0) {
        snprintf(err, errlen, "%s: the vocabulary is empty", encoder_name);
    } else {
        size_t pool_bytes = 0;
        for (const cJSON *e = root->child; e; e = e->next) pool_bytes += strlen(e->string);
        rc = tokenizer_alloc(t, cJSON_GetArraySize(root), pool_bytes, encoder_name, err, errlen) ||
             tokenizer_load_vocab(t, root, SPELL_BYTE_ALPHABET, encoder_name, err, errlen) ||
             tokenizer_find_bytes(t, encoder_name, err, errlen);
    }
    cJSON_Delete(root);
merges:
    if (!rc) rc = load_merges_text(t, u2b, vocab_bpe, vocab_len, vocab_name, err, errlen);
    if (!rc && (t->eos = vocab_find(t, EOT_TEXT, EOT_LEN)) >= 0)
        rc = tokenizer_add_token(t, t->eos, EOT_TEXT, EOT_LEN, 1, 0, 0, encoder_name, err, errlen);
    if (rc) {
        tokenizer_free(t);
        return -1;
    }
    tokenizer_finish_added(t);
    tokenizer_finish(t);
    *out = t;
    return 0;
}

/* Reads a whole file. Returns 0, 1 when it does not exist, or -1 with err. */
static int read_file(const char *path, char **data, size_t *len, char *err, size_t errlen) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return 1;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            snprintf(err, errlen, "%s: out of memory", path);
            fclose(f);
            return -1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: read error", path);
        free(buf);
        return -1;
    }
    *data = buf;
    *len = n;
    return 0;
}

/* Messages quote the file's own strings (a token, a name), which may hold any character: keep
 * the message on one line whatever they hold. */
static void keep_one_line(char *err, size_t errlen) {
    for (size_t i = 0; i < errlen && err[i]; i++)
        if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f) err[i] = '?';
}

int tokenizer_load_dir(tokenizer **out, const char *dir, char *err, size_t errlen) {
    static const char *const pairs[2][2] = {{"encoder.json", "vocab.bpe"},
                                            {"vocab.json", "merges.txt"}};
    *out = NULL;
    size_t dl = strlen(dir);
    char *p1 = malloc(dl + 32), *p2 = malloc(dl + 32);
    char *d1 = NULL, *d2 = NULL;
    size_t l1 = 0, l2 = 0;
    int rc = -1;
    struct stat st;
    if (!p1 || !p2) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (stat(dir, &st)) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        goto done;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a directory", dir);
        goto done;
    }
    for (int k = 0; k < 2; k++) {
        snprintf(p1, dl + 32, "%s/%s", dir, pairs[k][0]);
        snprintf(p2, dl + 32, "%s/%s", dir, pairs[k][1]);
        int r1 = read_file(p1, &d1, &l1, err, errlen);
        if (r1 < 0) goto done;
        if (r1 == 1) continue;
        int r2 = read_file(p2, &d2, &l2, err, errlen);
        if (r2 < 0) goto done;
        if (r2 == 1) {
            snprintf(err, errlen, "%s: missing (%s is there, and needs it)", p2, pairs[k][0]);
            goto done;
        }
        rc = tokenizer_load_gpt2_buffers(out, d1, l1, d2, l2, p1, p2, err, errlen);
        goto done;
    }
    snprintf(p1, dl + 32, "%s/tokenizer.json", dir);
    snprintf(p2, dl + 32, "%s/tokenizer_config.json", dir);
    int r = read_file(p1, &d1, &l1, err, errlen);
    if (r == 1)
        snprintf(err, errlen,
                 "%s: no tokenizer files (expected encoder.json + vocab.bpe, vocab.json + "
                 "merges.txt, or tokenizer.json)",
                 dir);
    if (r) goto done;
    r = read_file(p2, &d2, &l2, err, errlen);
    if (r >= 0) rc = tokenizer_load_hf(out, d1, l1, p1, r ? NULL : d2, l2, p2, err, errlen);
done:
    if (rc) keep_one_line(err, errlen);
    free(d1);
    free(d2);
    free(p1);
    free(p2);
    return rc;
}

int tokenizer_vocab_size(const tokenizer *t) {
    return t->n_vocab;
}
int tokenizer_eot(const tokenizer *t) {
    return t->eos;
}
int tokenizer_eos(const tokenizer *t) {
    return t->eos;
}
int tokenizer_bos(const tokenizer *t) {
    return t->bos;
}
int tokenizer_adds_bos(const tokenizer *t) {
    return t->adds_bos;
}
int tokenizer_is_stop(const tokenizer *t, int id) {
    if (id < 0) return 0;
    if (id == t->eos) return 1;
    for (int i = 0; i < t->n_stop; i++)
        if (t->stop[i] == id) return 1;
    return 0;
}
int tokenizer_max_token_bytes(const tokenizer *t) {
    return t->max_token_bytes;
}

/* ---- encoding ------------------------------------------------------------------------------- */

/* BPE by rescanning: sym[0..n) are the piece's first tokens on entry; returns the final count. */
static size_t bpe_rescan(const tokenizer *t, int *sym, size_t n) {
    while (n > 1) {
        int best_rank = INT_MAX, a = -1, b = -1, merged = -1;
        for (size_t i = 0; i + 1 < n; i++) {
            const merge_slot *m = merge_find(t, sym[i], sym[i + 1]);
            if (m && m->rank < best_rank) {
                best_rank = m->rank;
                a = sym[i];
                b = sym[i + 1];
                merged = m->merged;
            }
        }
        if (merged < 0) break;
        size_t w = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && sym[i] == a && sym[i + 1] == b) {
                sym[w++] = merged;
                i += 2;
            } else {
                sym[w++] = sym[i++];
            }
        }
        n = w;
    }
    return n;
}

struct heap_entry {
    int rank, left, right, a, b;
};

typedef struct {
    heap_entry *e;
    size_t n;
} pair_heap;

static inline int heap_less(const heap_entry *x, const heap_entry *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->left < y->left);
}

static void heap_push(pair_heap *h, heap_entry v) {
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&v, &h->e[p])) break;
        h->e[i] = h->e[p];
        i = p;
    }
    h->e[i] = v;
}

static heap_entry heap_pop(pair_heap *h) {
    heap_entry top = h->e[0], v = h->e[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && heap_less(&h->e[c + 1], &h->e[c])) c++;
        if (!heap_less(&h->e[c], &v)) break;
        h->e[i] = h->e[c];
        i = c;
    }
    if (h->n) h->e[i] = v;
    return top;
}

static void heap_push_pair(const tokenizer *t, pair_heap *h, const int *sym, int left, int right) {
    const merge_slot *m = merge_find(t, sym[left], sym[right]);
    if (m) heap_push(h, (heap_entry){m->rank, left, right, sym[left], sym[right]});
}

/* BPE with a heap of pairs, for long pieces (same result as bpe_rescan when t->heap_ok). */
static size_t bpe_heap(const tokenizer *t, bpe_scratch *s, size_t n) {
    int *sym = s->sym, *next = s->next, *prev = s->prev;
    pair_heap h = {s->heap, 0};
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int)i + 1 : -1;
        prev[i] = (int)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) heap_push_pair(t, &h, sym, (int)i, (int)i + 1);
    while (h.n) {
        heap_entry e = heap_pop(&h);
        /* stale: either side already merged into something else */
        if (sym[e.left] != e.a || next[e.left] != e.right || sym[e.right] != e.b) continue;
        sym[e.left] = merge_find(t, e.a, e.b)->merged;
        sym[e.right] = -1;
        int nr = next[e.right];
        next[e.left] = nr;
        if (nr >= 0) prev[nr] = e.left;
        if (prev[e.left] >= 0) heap_push_pair(t, &h, sym, prev[e.left], e.left);
        if (nr >= 0) heap_push_pair(t, &h, sym, e.left, nr);
    }
    size_t w = 0;
    for (int i = 0; i >= 0; i = next[i]) sym[w++] = sym[i];
    return w;
}

int bpe_reserve(bpe_scratch *s, size_t n) {
    if (n <= s->cap) return 0;
    size_t cap = n > 2 * s->cap ? n : 2 * s->cap;
    int *sym = realloc(s->sym, cap * sizeof(int));
    if (sym) s->sym = sym;
    int *next = realloc(s->next, cap * sizeof(int));
    if (next) s->next = next;
    int *prev = realloc(s->prev, cap * sizeof(int));
    if (prev) s->prev = prev;
    /* each merge pushes at most two pairs: n - 1 + 2 (n - 1) entries at most */
    heap_entry *heap = realloc(s->heap, 3 * cap * sizeof(heap_entry));
    if (heap) s->heap = heap;
    if (!sym || !next || !prev || !heap) return -1;
    s->cap = cap;
    return 0;
}

int bpe_emit(bpe_scratch *s, int id) {
    if (s->n_out == s->out_cap) {
        size_t cap = s->out_cap ? 2 * s->out_cap : 256;
        int *out = realloc(s->out, cap * sizeof(int));
        if (!out) return -1;
        s->out = out;
        s->out_cap = cap;
    }
    s->out[s->n_out++] = id;
    return 0;
}

int bpe_merge_emit(const tokenizer *t, bpe_scratch *s, size_t n) {
    size_t m = n;
    if (n > 1)
        m = (n >= HEAP_MIN_BYTES && t->heap_ok) || t->heap_always ? bpe_heap(t, s, n)
                                                                  : bpe_rescan(t, s->sym, n);
    for (size_t i = 0; i < m; i++)
        if (bpe_emit(s, s->sym[i])) return -1;
    return 0;
}

/* One stretch of text between added tokens; at_start: it begins the text. */
static int encode_segment(const tokenizer *t, bpe_scratch *s, const unsigned char *p, size_t len,
                          int at_start) {
    if (len == 0) return 0;
    char *nfc = NULL;
    if (t->nfc) {
        size_t nlen;
        if (normalize_nfc((const char *)p, len, &nfc, &nlen)) return -1;
        p = (const unsigned char *)nfc;
        len = nlen;
    }
    int rc = 0;
    if (t->family == FAMILY_SENTENCEPIECE) {
        rc = sp_encode_segment(t, s, p, len, at_start);
    } else {
        for (size_t pos = 0, end; pos < len && !rc; pos = end) {
            end = pretokenize_next_pattern(t->pattern, p, len, pos);
            size_t n = end - pos;
            int whole;
            /* ignore_merges (Llama 3): a piece that is a token is that token, merges or not */
            if (n > 1 && t->ignore_merges &&
                (whole = vocab_find(t, (const char *)p + pos, n)) >= 0) {
                rc = bpe_emit(s, whole);
                continue;
            }
            if ((rc = bpe_reserve(s, n))) break;
            for (size_t i = 0; i < n; i++) s->sym[i] = t->byte_id[p[pos + i]];
            rc = bpe_merge_emit(t, s, n);
        }
    }
    free(nfc);
    return rc;
}

/* The longest added token at p[i] (special ones only when special is set), or NULL. */
static const added_token *added_at(const tokenizer *t, const unsigned char *p, size_t len, size_t i,
                                   int special) {
    for (int k = 0; k < t->n_added; k++) {
        const added_token *a = &t->added[k];
        if ((size_t)a->len <= len - i && (special || !a->special) &&
            !memcmp(p + i, t->pool + t->tok_off[a->id], (size_t)a->len))
            return a;
    }
    return NULL;
}

static int encode(const tokenizer *t, const char *text, size_t len, int special, int **ids,
                  size_t *n) {
    *ids = NULL;
    *n = 0;
    if (len == 0) return 0;
    bpe_scratch s = {0};
    const unsigned char *p = (const unsigned char *)text;
    size_t seg = 0;
    int rc = 0;
    for (size_t i = 0; i < len && !rc && t->n_added;) {
        const added_token *a = t->added_first[p[i]] ? added_at(t, p, len, i, special) : NULL;
        if (!a) {
            i++;
            continue;
        }
        /* lstrip / rstrip: the token swallows the whitespace before / after it */
        size_t seg_end = i;
        if (a->lstrip)
            while (seg_end > seg && isspace(p[seg_end - 1])) seg_end--;
        rc = encode_segment(t, &s, p + seg, seg_end - seg, seg == 0);
        if (!rc) rc = bpe_emit(&s, a->id);
        i += (size_t)a->len;
        if (a->rstrip)
            while (i < len && isspace(p[i])) i++;
        seg = i;
    }
    if (!rc) rc = encode_segment(t, &s, p + seg, len - seg, seg == 0);
    free(s.sym);
    free(s.next);
    free(s.prev);
    free(s.heap);
    if (rc) {
        free(s.out);
        return -1;
    }
    *ids = s.out;
    *n = s.n_out;
    return 0;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int **ids, size_t *n) {
    return encode(t, text, len, 1, ids, n);
}

int tokenizer_encode_ordinary(const tokenizer *t, const char *text, size_t len, int **ids,
                              size_t *n) {
    return encode(t, text, len, 0, ids, n);
}

int tokenizer_encode_prompt(const tokenizer *t, const char *text, size_t len, int **ids,
                            size_t *n) {
    if (encode(t, text, len, 1, ids, n)) return -1;
    if (!t->adds_bos || t->bos < 0) return 0;
    int *out = realloc(*ids, (*n + 1) * sizeof(int));
    if (!out) {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return -1;
    }
    memmove(out + 1, out, *n * sizeof(int));
    out[0] = t->bos;
    *ids = out;
    (*n)++;
    return 0;
}

/* ---- decoding ------------------------------------------------------------------------------- */

int tokenizer_token_bytes(const tokenizer *t, int id, char *buf, size_t cap) {
    if (id < 0 || id >= t->n_vocab || t->tok_len[id] < 0 || (size_t)tok_dec_len(t, id) > cap)
        return -1;
    memcpy(buf, tok_dec(t, id), (size_t)tok_dec_len(t, id));
    return tok_dec_len(t, id);
}

int tokenizer_decode(const tokenizer *t, const int *ids, size_t n, char **text, size_t *len,
                     char *err, size_t errlen) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab || t->tok_len[ids[i]] < 0) {
            if (ids[i] < 0 || ids[i] >= t->n_vocab)
                snprintf(err, errlen,
                         "token id %d (position %zu) is outside the vocabulary (0..%d)", ids[i], i,
                         t->n_vocab - 1);
            else
                snprintf(err, errlen, "token id %d (position %zu) is not a token", ids[i], i);
            return -1;
        }
        total += (size_t)tok_dec_len(t, ids[i]);
    }
    char *s = malloc(total + 1);
    if (!s) {
        snprintf(err, errlen, "out of memory decoding %zu tokens", n);
        return -1;
    }
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(s + w, tok_dec(t, ids[i]), (size_t)tok_dec_len(t, ids[i]));
        w += (size_t)tok_dec_len(t, ids[i]);
    }
    /* SentencePiece's Strip decoder: one leading space of the whole text */
    size_t skip = t->sp_strip && w > 0 && s[0] == ' ';
    memmove(s, s + skip, w - skip);
    w -= skip;
    s[w] = '\0';
    *text = s;
    *len = w;
    return 0;
}
