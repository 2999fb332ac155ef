/* stream.c — decoding one token at a time into whole UTF-8 characters.
 *
 * A byte-level token, or a SentencePiece <0xNN> piece, can end in the middle of a character
 * ("日" is three tokens in GPT-2). Printing such bytes as they come would show broken characters
 * (or make a terminal guess), so each push gives the bytes up to the last complete character and
 * holds back a trailing incomplete one: at most 3 bytes, the start of a well-formed sequence
 * (same lead and continuation byte ranges as pretokenize.c's RFC 3629 decoding). Bytes that can
 * no longer become a character go out as they are, exactly as tokenizer_decode gives them. */
#include <string.h>

#include "tokenizer_internal.h"

/* Whether p[0..m) is the start of a well-formed character that needs more than m bytes. */
static int incomplete_char(const unsigned char *p, size_t m) {
    unsigned b0 = p[0];
    size_t need = b0 >= 0xC2 && b0 <= 0xDF   ? 2
                  : b0 >= 0xE0 && b0 <= 0xEF ? 3
                  : b0 >= 0xF0 && b0 <= 0xF4 ? 4
                                             : 0;
    if (!need || m >= need) return 0;
    for (size_t i = 1; i < m; i++) {
        unsigned lo = 0x80, hi = 0xBF;
        if (i == 1 && b0 == 0xE0) lo = 0xA0;
        if (i == 1 && b0 == 0xED) hi = 0x9F;
        if (i == 1 && b0 == 0xF0) lo = 0x90;
        if (i == 1 && b0 == 0xF4) hi = 0x8F;
        if (p[i] < lo || p[i] > hi) return 0;
    }
    return 1;
}

/* The length of the prefix of b[0..n) that can go out now. */
static size_t complete_prefix(const unsigned char *b, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = utf8_char_len(b, n, i);
        if (k) {
            i += k;
        } else if (incomplete_char(b + i, n - i)) {
            return i;
        } else {
            i++; /* cannot start a character: out as it is */
        }
    }
    return n;
}

void tokenizer_stream_init(tokenizer_stream *s, const tokenizer *t) {
    memset(s, 0, sizeof(*s));
    s->t = t;
}

int tokenizer_stream_push(tokenizer_stream *s, int id, char *out, size_t cap) {
    const tokenizer *t = s->t;
    if (id < 0 || id >= t->n_vocab || t->tok_len[id] < 0) return -1;
    size_t k = (size_t)tok_dec_len(t, id), n = (size_t)s->n_held;
    if (cap < n + k) return -1;
    const char *bytes = tok_dec(t, id);
    /* SentencePiece's Strip decoder: the text's first byte, when a space */
    if (!s->started && k > 0) {
        s->started = 1;
        if (t->sp_strip && bytes[0] == ' ') {
            bytes++;
            k--;
        }
    }
    memcpy(out, s->held, n);
    memcpy(out + n, bytes, k);
    n += k;
    size_t done = complete_prefix((const unsigned char *)out, n);
    s->n_held = (int)(n - done);
    memcpy(s->held, out + done, n - done);
    return (int)done;
}

int tokenizer_stream_flush(tokenizer_stream *s, char *out, size_t cap) {
    size_t n = (size_t)s->n_held;
    if (cap < n) return -1;
    memcpy(out, s->held, n);
    s->n_held = 0;
    s->started = 0;
    return (int)n;
}
