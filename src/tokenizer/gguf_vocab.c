/* gguf_vocab.c — the tokenizer a GGUF file stores (llama.cpp's tokenizer.ggml.* keys), read into
 * the tables hf_json.c builds from a tokenizer.json, and written from a loaded tokenizer.
 *
 * llama.cpp's conventions (src/llama-vocab.cpp, convert_hf_to_gguf.py):
 *   "gpt2" tokens are spelled in GPT-2's byte alphabet ("Ġthe"), except control and
 *   user-defined ones (the added tokens), which are their raw text; merges are "left right" in
 *   that spelling, split at the first space after the first byte.
 *   "llama" tokens are SentencePiece's own spelling ("▁the", "<0x0A>"); the unknown token (type
 *   2) and control tokens are matched in the text like added tokens, as llama.cpp does.
 * What the keys cannot say is fixed by the family (see tokenizer.h): Llama 3's ignore_merges,
 * Qwen2's NFC, SentencePiece's fused unknowns and byte fallback. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define TOKENIZER_MAX_IDS (1 << 24)
#define K_MODEL "tokenizer.ggml.model"
#define K_PRE "tokenizer.ggml.pre"
#define K_TOKENS "tokenizer.ggml.tokens"
#define K_TYPES "tokenizer.ggml.token_type"
#define K_MERGES "tokenizer.ggml.merges"
#define K_SCORES "tokenizer.ggml.scores"
#define K_BOS "tokenizer.ggml.bos_token_id"
#define K_EOS "tokenizer.ggml.eos_token_id"
#define K_UNK "tokenizer.ggml.unknown_token_id"
#define K_ADD_BOS "tokenizer.ggml.add_bos_token"
#define K_SPACE "tokenizer.ggml.add_space_prefix"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* llama.cpp's pre-tokenizer names for the patterns linshard implements; the first of each
 * pattern is the one written. */
static const struct {
    const char *name;
    int pattern, nfc, ignore_merges;
} pre_names[] = {
    {"gpt-2", PATTERN_GPT2, 0, 0},       {"default", PATTERN_GPT2, 0, 0},
    {"llama-bpe", PATTERN_LLAMA3, 0, 1}, {"llama3", PATTERN_LLAMA3, 0, 1},
    {"llama-v3", PATTERN_LLAMA3, 0, 1},  {"qwen2", PATTERN_QWEN2, 1, 0},
};

/* ---- reading -------------------------------------------------------------------------------- */

typedef struct {
    const gguf_file *g;
    const char *name; /* the file, for messages */
    char *err;
    size_t errlen;
} reader;

static int fail(const reader *r, const char *key, const char *what) {
    snprintf(r->err, r->errlen, "%s: %s %s", r->name, key, what);
    return -1;
}

/* An optional string key: 0 (*s NULL when absent), or -1. */
static int opt_str(const reader *r, const char *key, const char **s, size_t *len) {
    *s = NULL;
    *len = 0;
    if (gguf_find_key(r->g, key) < 0) return 0;
    if (gguf_get_str(r->g, key, s, len, NULL, 0)) return fail(r, key, "is not a string");
    return 0;
}

/* An optional token id key: 0 (*id -1 when absent), or -1 when it is not a token of t. */
static int opt_id(const reader *r, const tokenizer *t, const char *key, int *id) {
    *id = -1;
    if (gguf_find_key(r->g, key) < 0) return 0;
    int32_t v;
    if (gguf_get_i32(r->g, key, &v, NULL, 0) || v < 0 || v >= t->n_vocab || t->tok_len[v] < 0) {
        snprintf(r->err, r->errlen, "%s: %s is not the id of a token (0..%d)", r->name, key,
                 t->n_vocab - 1);
        return -1;
    }
    *id = v;
    return 0;
}

/* A merge list derived from the scores, as transformers' SentencePieceExtractor does: every
 * split of every token into two tokens, ordered by the token's score (highest first), then
 * its id, then the left and right ids. */
typedef struct {
    float score;
    int merged, a, b;
} scored_merge;

static int by_score(const void *x, const void *y) {
    const scored_merge *p = x, *q = y;
    if (p->score != q->score) return p->score < q->score ? 1 : -1;
    if (p->merged != q->merged) return p->merged < q->merged ? -1 : 1;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return (p->b > q->b) - (p->b < q->b);
}

static int merges_from_scores(tokenizer *t, const reader *r, const int8_t *is_vocab,
                              const int *u2b) {
    gguf_array sc;
    if (gguf_find_key(r->g, K_SCORES) < 0)
        return fail(r, K_MERGES, "is absent, and so is " K_SCORES " to derive the merges from");
    if (gguf_get_arr(r->g, K_SCORES, &sc, NULL, 0) || sc.n != (uint64_t)t->n_vocab ||
        !gguf_arr_data(&sc))
        return fail(r, K_SCORES, "is not an array of one number per token");
    size_t cap = 1024, n = 0;
    scored_merge *m = malloc(cap * sizeof(*m));
    int rc = m ? 0 : fail(r, K_SCORES, "cannot be used: out of memory");
    for (int id = 0; id < t->n_vocab && !rc; id++) {
        if (!is_vocab[id]) continue;
        double score;
        if (gguf_arr_f64(&sc, (uint64_t)id, &score) || isnan(score)) {
            rc = fail(r, K_SCORES, "holds a value that is not a number");
            break;
        }
        const unsigned char *s = (const unsigned char *)t->pool + t->tok_off[id];
        size_t len = (size_t)t->tok_len[id];
        for (size_t i = utf8_char_len(s, len, 0); i > 0 && i < len;) {
            int a = vocab_find(t, (const char *)s, i),
                b = vocab_find(t, (const char *)s + i, len - i);
            if (a >= 0 && b >= 0 && is_vocab[a] && is_vocab[b]) {
                if (n == cap) {
                    scored_merge *nm = realloc(m, 2 * cap * sizeof(*m));
                    if (!nm) {
                        rc = fail(r, K_SCORES, "cannot be used: out of memory");
                        break;
                    }
                    m = nm;
                    cap *= 2;
                }
                m[n++] = (scored_merge){(float)score, id, a, b};
            }
            size_t step = utf8_char_len(s, len, i);
            i += step ? step : 1;
        }
    }
    if (!rc) {
        qsort(m, n, sizeof(*m), by_score);
        rc = tokenizer_alloc_merges(t, n, r->name, r->err, r->errlen);
    }
    for (size_t k = 0; k < n && !rc; k++) {
        const char *a = t->pool + t->tok_off[m[k].a], *b = t->pool + t->tok_off[m[k].b];
        rc = tokenizer_add_merge(t, SPELL_UTF8, u2b, a, (size_t)t->tok_len[m[k].a], b,
                                 (size_t)t->tok_len[m[k].b], (int)k, r->name, K_SCORES, r->err,
                                 r->errlen);
    }
    t->n_merges = (int)n;
    free(m);
    return rc;
}

static int read_merges(tokenizer *t, const reader *r, int spell, const int *u2b) {
    gguf_array a;
    if (gguf_get_arr(r->g, K_MERGES, &a, NULL, 0) || a.type != GGUF_TYPE_STRING)
        return fail(r, K_MERGES, "is not an array of strings");
    if (a.n > (uint64_t)INT_MAX / 4) return fail(r, K_MERGES, "has too many entries");
    if (tokenizer_alloc_merges(t, (size_t)a.n, r->name, r->err, r->errlen)) return -1;
    for (uint64_t i = 0; i < a.n; i++) {
        size_t len;
        const char *s = gguf_arr_str(&a, i, &len);
        /* llama.cpp splits at the first space after the first byte */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        char where[64];
        snprintf(where, sizeof(where), K_MERGES "[%llu]", (unsigned long long)i);
        if (!sp) {
            snprintf(r->err, r->errlen, "%s: %s: \"%.*s\" is not \"left right\"", r->name, where,
                     (int)(len < 40 ? len : 40), s);
            return -1;
        }
        size_t la = (size_t)(sp - s);
        if (tokenizer_add_merge(t, spell, u2b, s, la, sp + 1, len - la - 1, (int)i, r->name, where,
                                r->err, r->errlen))
            return -1;
    }
    t->n_merges = (int)a.n;
    return 0;
}

/* The tokens, types and merges into t (allocated here). */
static int read_vocab(tokenizer *t, const reader *r, const int *u2b) {
    gguf_array tok, ty;
    int has_types = gguf_find_key(r->g, K_TYPES) >= 0;
    if (gguf_find_key(r->g, K_TOKENS) < 0) return fail(r, K_TOKENS, "is missing");
    if (gguf_get_arr(r->g, K_TOKENS, &tok, NULL, 0) || tok.type != GGUF_TYPE_STRING)
        return fail(r, K_TOKENS, "is not an array of strings");
    if (tok.n == 0 || tok.n >= TOKENIZER_MAX_IDS)
        return fail(r, K_TOKENS, "must hold 1 to 2^24 - 1 tokens");
    if (has_types &&
        (gguf_get_arr(r->g, K_TYPES, &ty, NULL, 0) || ty.n != tok.n || !gguf_arr_data(&ty)))
        return fail(r, K_TYPES, "is not an array of one integer per token");
    int n = (int)tok.n, byte_level = t->family == FAMILY_BYTE_LEVEL, rc = 0;
    int8_t *type = malloc((size_t)n), *is_vocab = calloc((size_t)n, 1);
    if (!type || !is_vocab) rc = fail(r, K_TOKENS, "cannot be read: out of memory");
    size_t pool = 0;
    int n_slots = 0;
    for (int i = 0; i < n && !rc; i++) {
        int64_t v = TT_NORMAL;
        if (has_types && (gguf_arr_i64(&ty, (uint64_t)i, &v) || v < TT_NORMAL || v > TT_BYTE)) {
            rc = fail(r, K_TYPES, "holds a value outside 1..6");
            break;
        }
        type[i] = (int8_t)v;
        size_t len;
        gguf_arr_str(&tok, (uint64_t)i, &len);
        pool += len;
        if (v != TT_UNUSED) n_slots = i + 1; /* trailing unused entries are padding */
    }
    if (!rc && !n_slots) rc = fail(r, K_TYPES, "marks every token unused");
    if (!rc) rc = tokenizer_alloc(t, n_slots, pool, r->name, r->err, r->errlen);
    /* The vocabulary: every token but the unused and, for byte-level BPE, the added ones. */
    for (int i = 0; i < n_slots && !rc; i++) {
        int ti = type[i];
        if (ti == TT_UNUSED || (byte_level && (ti == TT_CONTROL || ti == TT_USER))) continue;
        size_t len;
        const char *s = gguf_arr_str(&tok, (uint64_t)i, &len);
        char where[64];
        snprintf(where, sizeof(where), K_TOKENS "[%d]", i);
        char *dst = t->pool + t->pool_used;
        int kl = tokenizer_spell(byte_level ? SPELL_BYTE_ALPHABET : SPELL_UTF8, u2b, s, len, dst);
        if (kl < 0) {
            snprintf(r->err, r->errlen,
                     "%s: %s \"%.*s\" has a character outside GPT-2's byte "
                     "alphabet",
                     r->name, where, (int)(len < 40 ? len : 40), s);
            rc = -1;
        } else {
            rc = tokenizer_set_token(t, i, dst, (size_t)kl, r->name, where, r->err, r->errlen);
            is_vocab[i] = 1;
        }
    }
    if (!rc) rc = tokenizer_find_bytes(t, r->name, r->err, r->errlen);
    if (!rc && gguf_find_key(r->g, K_MERGES) >= 0)
        rc = read_merges(t, r, byte_level ? SPELL_BYTE_ALPHABET : SPELL_UTF8, u2b);
    else if (!rc && byte_level)
        rc = fail(r, K_MERGES, "is missing (byte-level BPE needs its merges)");
    else if (!rc)
        rc = merges_from_scores(t, r, is_vocab, u2b);
    /* The added tokens: control and user-defined (and SentencePiece's unknown), raw text. */
    for (int i = 0; i < n_slots && !rc; i++) {
        int ti = type[i];
        if (ti != TT_CONTROL && ti != TT_USER && !(ti == TT_UNKNOWN && !byte_level)) continue;
        size_t len;
        const char *s = gguf_arr_str(&tok, (uint64_t)i, &len);
        rc = tokenizer_add_token(t, i, s, len, ti != TT_USER, 0, 0, r->name, r->err, r->errlen);
        if (ti == TT_UNKNOWN && t->unk < 0) t->unk = i;
    }
    free(type);
    free(is_vocab);
    return rc;
}

/* The family and its settings from model, pre and add_space_prefix. */
static int read_model(tokenizer *t, const reader *r) {
    const char *model, *pre;
    size_t ml, pl;
    if (gguf_get_str(r->g, K_MODEL, &model, &ml, NULL, 0))
        return fail(r, K_MODEL, "is not a string");
    if (opt_str(r, K_PRE, &pre, &pl)) return -1;
    if (ml == 4 && !memcmp(model, "gpt2", 4)) {
        t->family = FAMILY_BYTE_LEVEL;
        if (!pre) pre = "default", pl = 7; /* older files: GPT-2's */
        for (size_t i = 0; i < sizeof(pre_names) / sizeof(pre_names[0]); i++)
            if (strlen(pre_names[i].name) == pl && !memcmp(pre_names[i].name, pre, pl)) {
                t->pattern = pre_names[i].pattern;
                t->nfc = pre_names[i].nfc;
                t->ignore_merges = pre_names[i].ignore_merges;
                return 0;
            }
        snprintf(r->err, r->errlen,
                 "%s: %s \"%.*s\" is not a pre-tokenizer linshard knows "
                 "(gpt-2, default, llama-bpe, qwen2)",
                 r->name, K_PRE, (int)(pl < 40 ? pl : 40), pre);
        return -1;
    }
    if (ml == 5 && !memcmp(model, "llama", 5)) {
        t->family = FAMILY_SENTENCEPIECE;
        int space = 1;
        if (gguf_find_key(r->g, K_SPACE) >= 0 && gguf_get_bool(r->g, K_SPACE, &space, NULL, 0))
            return fail(r, K_SPACE, "is not a bool");
        t->sp_prepend = space ? SP_PREPEND_ALWAYS : SP_PREPEND_NEVER;
        t->sp_strip = space;
        t->byte_fallback = t->fuse_unk = 1;
        return 0;
    }
    snprintf(r->err, r->errlen, "%s: %s \"%.*s\" is not supported (gpt2 or llama)", r->name,
             K_MODEL, (int)(ml < 40 ? ml : 40), model);
    return -1;
}

int tokenizer_load_gguf(tokenizer **out, const gguf_file *g, char *err, size_t errlen) {
    *out = NULL;
    reader r = {g, g->path ? g->path : "(gguf)", err, errlen};
    if (gguf_find_key(g, K_MODEL) < 0) {
        snprintf(err, errlen, "%s: no tokenizer (" K_MODEL " is absent)", r.name);
        return 1;
    }
    int u2b[TOKENIZER_ALPHABET_SIZE];
    tokenizer_alphabet(u2b);
    tokenizer *t = tokenizer_new();
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = read_model(t, &r) || read_vocab(t, &r, u2b);
    if (!rc && t->family == FAMILY_SENTENCEPIECE) {
        int missing = -1;
        for (int b = 0; b < 256 && missing < 0; b++)
            if (t->byte_id[b] < 0) missing = b;
        if (missing >= 0 && t->unk < 0) {
            snprintf(err, errlen,
                     "%s: %s has neither an unknown token nor all 256 byte tokens "
                     "(<0x%02X> is missing)",
                     r.name, K_TOKENS, missing);
            rc = -1;
        }
        if (!rc) rc = sp_build_decoded(t, r.name, err, errlen);
    }
    if (!rc) {
        tokenizer_finish_added(t);
        tokenizer_finish(t);
        t->heap_always = !t->heap_ok; /* llama.cpp, like Hugging Face, merges with a heap */
        int add_bos = -1;
        rc = opt_id(&r, t, K_BOS, &t->bos) || opt_id(&r, t, K_EOS, &t->eos);
        if (!rc && gguf_find_key(g, K_ADD_BOS) >= 0 &&
            gguf_get_bool(g, K_ADD_BOS, &add_bos, NULL, 0))
            rc = fail(&r, K_ADD_BOS, "is not a bool");
        t->adds_bos = add_bos >= 0 ? add_bos : t->bos >= 0;
        if (t->bos < 0) t->adds_bos = 0;
        if (!rc) rc = tokenizer_find_stops(t, err, errlen);
    }
    if (rc) {
        /* messages quote the file's strings: keep them on one line */
        for (size_t i = 0; i < errlen && err[i]; i++)
            if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f) err[i] = '?';
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

/* ---- writing -------------------------------------------------------------------------------- */

static const added_token *added_of(const tokenizer *t, int id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return &t->added[i];
    return NULL;
}

/* A key's spelling in the file: byte-level keys in GPT-2's byte alphabet (at most 2 bytes per
 * byte), others as they are. Returns the length written to out. */
static size_t spell_out(const tokenizer *t, const int *b2u, const char *key, size_t len,
                        char *out) {
    if (t->family != FAMILY_BYTE_LEVEL) {
        memcpy(out, key, len);
        return len;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int cp = b2u[(unsigned char)key[i]];
        if (cp < 0x80) {
            out[n++] = (char)cp;
        } else {
            out[n++] = (char)(0xC0 | cp >> 6);
            out[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return n;
}

/* What the keys cannot say, refused: NULL when t can be written, else why not. */
static const char *unwritable(const tokenizer *t, const char **pre) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].lstrip || t->added[i].rstrip)
            return "an added token strips the spaces around it (GGUF cannot say so)";
    if (t->family == FAMILY_BYTE_LEVEL) {
        for (size_t i = 0; i < sizeof(pre_names) / sizeof(pre_names[0]); i++)
            if (pre_names[i].pattern == t->pattern && pre_names[i].nfc == t->nfc &&
                pre_names[i].ignore_merges == t->ignore_merges) {
                *pre = pre_names[i].name;
                return NULL;
            }
        return "its split pattern, NFC and ignore_merges match no llama.cpp pre-tokenizer name";
    }
    *pre = "default";
    if (t->sp_prepend != SP_PREPEND_ALWAYS && t->sp_prepend != SP_PREPEND_NEVER)
        return "its Metaspace prepend scheme has no GGUF key (only add_space_prefix)";
    if (t->sp_split || t->nfc || t->ignore_merges)
        return "its SentencePiece options (split, NFC, ignore_merges) have no GGUF keys";
    if (t->sp_strip != (t->sp_prepend == SP_PREPEND_ALWAYS))
        return "its decoder's leading-space strip differs from its prefix space";
    if (!t->byte_fallback) return "it has no byte fallback (llama.cpp always falls back)";
    return NULL;
}

int tokenizer_write_gguf(const tokenizer *t, gguf_writer *w, int n_tokens, char *err,
                         size_t errlen) {
    const char *pre = NULL, *why = unwritable(t, &pre);
    if (why) {
        snprintf(err, errlen, "the tokenizer cannot be written to GGUF: %s", why);
        return -1;
    }
    int n = n_tokens > t->n_vocab ? n_tokens : t->n_vocab, sp = t->family == FAMILY_SENTENCEPIECE;
    int u2b[TOKENIZER_ALPHABET_SIZE], b2u[256];
    tokenizer_alphabet(u2b);
    for (int cp = 0; cp < TOKENIZER_ALPHABET_SIZE; cp++)
        if (u2b[cp] >= 0) b2u[u2b[cp]] = cp;
    int *pairs = NULL;
    int n_merges = tokenizer_merge_list(t, &pairs);
    size_t bytes = 0;
    for (int id = 0; id < t->n_vocab; id++)
        bytes += 2 * (size_t)(t->tok_len[id] > 0 ? t->tok_len[id] : 0);
    bytes += (size_t)n * 16 + 1;
    char *pool = malloc(bytes), *mpool = NULL;
    const char **strs = malloc((size_t)n * sizeof(*strs));
    size_t *lens = malloc((size_t)n * sizeof(*lens));
    int32_t *types = malloc((size_t)n * sizeof(*types));
    float *scores = sp ? malloc((size_t)n * sizeof(*scores)) : NULL;
    size_t *soff = malloc((size_t)n * sizeof(*soff));
    const char **mstrs = NULL;
    size_t *mlens = NULL;
    int rc = 0;
    if (n_merges < 0 || !pool || !strs || !lens || !types || !soff || (sp && !scores)) {
        snprintf(err, errlen, "out of memory writing the tokenizer");
        rc = -1;
    }
    size_t used = 0;
    for (int id = 0; id < n && !rc; id++) {
        const added_token *a = id < t->n_vocab ? added_of(t, id) : NULL;
        soff[id] = used;
        if (id >= t->n_vocab || t->tok_len[id] < 0) {
            used += (size_t)snprintf(pool + used, 16, "[PAD%d]", id);
            types[id] = TT_UNUSED;
        } else if (sp) {
            memcpy(pool + used, t->pool + t->tok_off[id], (size_t)t->tok_len[id]);
            used += (size_t)t->tok_len[id];
            int byte = 0;
            for (int b = 0; b < 256; b++) byte |= t->byte_id[b] == id;
            types[id] = id == t->unk ? TT_UNKNOWN
                        : a          ? (a->special ? TT_CONTROL : TT_USER)
                        : byte       ? TT_BYTE
                                     : TT_NORMAL;
        } else if (a) {
            memcpy(pool + used, t->pool + t->tok_off[id], (size_t)a->len);
            used += (size_t)a->len;
            types[id] = a->special ? TT_CONTROL : TT_USER;
        } else {
            used +=
                spell_out(t, b2u, t->pool + t->tok_off[id], (size_t)t->tok_len[id], pool + used);
            types[id] = TT_NORMAL;
        }
        lens[id] = used - soff[id];
        if (scores) scores[id] = -1e9f; /* no merge makes it */
    }
    for (int id = 0; id < n && !rc; id++) strs[id] = pool + soff[id];
    /* SentencePiece scores: minus the rank of the first merge that makes the token */
    for (int k = n_merges - 1; k >= 0 && !rc && scores; k--) {
        int a = pairs[2 * k], b = pairs[2 * k + 1];
        char buf[1024];
        size_t la = (size_t)t->tok_len[a], lb = (size_t)t->tok_len[b];
        if (la + lb <= sizeof(buf)) {
            memcpy(buf, t->pool + t->tok_off[a], la);
            memcpy(buf + la, t->pool + t->tok_off[b], lb);
            int id = vocab_find(t, buf, la + lb);
            if (id >= 0) scores[id] = -(float)(k + 1);
        }
    }
    if (!rc && n_merges > 0) {
        size_t mb = 0;
        for (int k = 0; k < n_merges; k++)
            mb += 2 * (size_t)(t->tok_len[pairs[2 * k]] + t->tok_len[pairs[2 * k + 1]]) + 1;
        mpool = malloc(mb);
        mstrs = malloc((size_t)n_merges * sizeof(*mstrs));
        mlens = malloc((size_t)n_merges * sizeof(*mlens));
        if (!mpool || !mstrs || !mlens) {
            snprintf(err, errlen, "out of memory writing the tokenizer");
            rc = -1;
        }
        size_t mu = 0;
        for (int k = 0; k < n_merges && !rc; k++) {
            int a = pairs[2 * k], b = pairs[2 * k + 1];
            mstrs[k] = mpool + mu;
            size_t m0 = mu;
            mu += spell_out(t, b2u, t->pool + t->tok_off[a], (size_t)t->tok_len[a], mpool + mu);
            mpool[mu++] = ' ';
            mu += spell_out(t, b2u, t->pool + t->tok_off[b], (size_t)t->tok_len[b], mpool + mu);
            mlens[k] = mu - m0;
        }
    }
    const char *model = sp ? "llama" : "gpt2";
    rc = rc || gguf_writer_set_str(w, K_MODEL, model, strlen(model), err, errlen) ||
         gguf_writer_set_str(w, K_PRE, pre, strlen(pre), err, errlen) ||
         gguf_writer_set_arr_str(w, K_TOKENS, strs, lens, (uint64_t)n, err, errlen) ||
         gguf_writer_set_arr(w, K_TYPES, GGUF_TYPE_INT32, types, (uint64_t)n, err, errlen) ||
         (scores &&
          gguf_writer_set_arr(w, K_SCORES, GGUF_TYPE_FLOAT32, scores, (uint64_t)n, err, errlen)) ||
         (n_merges > 0 &&
          gguf_writer_set_arr_str(w, K_MERGES, mstrs, mlens, (uint64_t)n_merges, err, errlen)) ||
         (t->bos >= 0 && gguf_writer_set_u32(w, K_BOS, (uint32_t)t->bos, err, errlen)) ||
         (t->eos >= 0 && gguf_writer_set_u32(w, K_EOS, (uint32_t)t->eos, err, errlen)) ||
         (sp && t->unk >= 0 && gguf_writer_set_u32(w, K_UNK, (uint32_t)t->unk, err, errlen));
    if (!rc) {
        uint8_t add_bos = (uint8_t) !!t->adds_bos, space = t->sp_prepend == SP_PREPEND_ALWAYS;
        rc = gguf_writer_set(w, K_ADD_BOS, GGUF_TYPE_BOOL, &add_bos, err, errlen) ||
             (sp && gguf_writer_set(w, K_SPACE, GGUF_TYPE_BOOL, &space, err, errlen));
    }
    free(pairs);
    free(pool);
    free(strs);
    free(lens);
    free(types);
    free(scores);
    free(soff);
    free(mpool);
    free(mstrs);
    free(mlens);
    return rc ? -1 : 0;
}
