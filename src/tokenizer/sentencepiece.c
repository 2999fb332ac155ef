/* sentencepiece.c — SentencePiece-style BPE as Llama 2's and Mistral's tokenizer.json describe
 * it: normalizer Prepend("▁") + Replace(" " → "▁") (or, in newer files, a Metaspace
 * pre-tokenizer), BPE over characters, byte fallback, and the decoder Replace("▁" → " "),
 * ByteFallback, Fuse, Strip(one leading space).
 *
 * The vocabulary keeps the file's spelling ("▁the", "<0x0A>"). Encoding a stretch of text
 * (between added tokens): "▁" in front (see enum sp_prepend), every space becomes "▁", then each
 * character is its token; a character with no token becomes the <0xNN> tokens of its UTF-8
 * bytes (byte_fallback), or else the unknown token (consecutive unknowns fused into one when
 * fuse_unk). A byte that is not UTF-8 takes the same way as a character with no token, so any
 * bytes encode and, with byte fallback, decode back. Then the merges run by rank over the whole
 * stretch (there is no pre-tokenizer to cut it into words), or over each "▁"-led word when
 * Metaspace says split. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define META "\xe2\x96\x81" /* ▁ U+2581 */
#define META_LEN 3

int sp_encode_segment(const tokenizer *t, bpe_scratch *s, const unsigned char *p, size_t n,
                      int at_start) {
    unsigned char *norm = malloc(3 * n + META_LEN);
    if (!norm) return -1;
    size_t m = 0;
    int starts_meta = p[0] == ' ' || (n >= META_LEN && !memcmp(p, META, META_LEN));
    if (t->sp_prepend == SP_PREPEND_ALWAYS ||
        (!starts_meta && (t->sp_prepend == SP_PREPEND_UNLESS_THERE ||
                          (t->sp_prepend == SP_PREPEND_FIRST && at_start)))) {
        memcpy(norm, META, META_LEN);
        m = META_LEN;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] == ' ') {
            memcpy(norm + m, META, META_LEN);
            m += META_LEN;
        } else {
            norm[m++] = p[i];
        }
    }
    int rc = bpe_reserve(s, m);
    size_t k = 0; /* symbols of the current piece, in s->sym */
    for (size_t pos = 0; pos < m && !rc;) {
        size_t len = utf8_char_len(norm, m, pos);
        if (t->sp_split && k > 0 && len == META_LEN && !memcmp(norm + pos, META, META_LEN)) {
            rc = bpe_merge_emit(t, s, k);
            k = 0;
            if (rc) break;
        }
        int id = len ? vocab_find(t, (const char *)norm + pos, len) : -1;
        size_t nb = len ? len : 1;
        if (id >= 0) {
            s->sym[k++] = id;
        } else {
            int all = 1;
            for (size_t b = 0; b < nb; b++) all &= t->byte_id[norm[pos + b]] >= 0;
            if (all) {
                for (size_t b = 0; b < nb; b++) s->sym[k++] = t->byte_id[norm[pos + b]];
            } else if (!(t->fuse_unk && k > 0 && s->sym[k - 1] == t->unk)) {
                s->sym[k++] = t->unk;
            }
        }
        pos += nb;
    }
    if (!rc && k) rc = bpe_merge_emit(t, s, k);
    free(norm);
    return rc;
}

/* The byte of a "<0xNN>" token, or -1. */
static int fallback_byte(const char *s, int len) {
    if (len != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

int sp_build_decoded(tokenizer *t, const char *name, char *err, size_t errlen) {
    t->dpool = malloc(t->pool_used ? t->pool_used : 1);
    t->dec_off = calloc((size_t)t->n_vocab, sizeof(*t->dec_off));
    t->dec_len = calloc((size_t)t->n_vocab, sizeof(*t->dec_len));
    if (!t->dpool || !t->dec_off || !t->dec_len) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    size_t used = 0;
    for (int id = 0; id < t->n_vocab; id++) {
        if (t->tok_len[id] < 0) continue;
        const char *k = t->pool + t->tok_off[id];
        int len = t->tok_len[id], b = fallback_byte(k, len);
        t->dec_off[id] = used;
        if (b >= 0) {
            t->dpool[used++] = (char)b;
        } else {
            for (int i = 0; i < len;) {
                if (i + META_LEN <= len && !memcmp(k + i, META, META_LEN)) {
                    t->dpool[used++] = ' ';
                    i += META_LEN;
                } else {
                    t->dpool[used++] = k[i++];
                }
            }
        }
        t->dec_len[id] = (int)(used - t->dec_off[id]);
    }
    return 0;
}
