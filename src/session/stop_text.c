/* stop_text.c — stop strings over streamed text, with held-back text (see stop_text.h). */
#include "stop_text.h"

#include <stdlib.h>
#include <string.h>

int stop_text_init(stop_text *st, const char *const *stops, int n_stop, size_t piece_room) {
    memset(st, 0, sizeof(*st));
    size_t longest = 0;
    for (int i = 0; i < n_stop && i < STOP_TEXT_MAX; i++) {
        size_t len = strlen(stops[i]);
        st->stop[i] = malloc(len + 1);
        if (!st->stop[i]) {
            stop_text_free(st);
            return -1;
        }
        memcpy(st->stop[i], stops[i], len + 1);
        st->stop_len[i] = len;
        st->n_stop = i + 1;
        if (len > longest) longest = len;
    }
    /* Held back: at most the longest stop string less one byte, then one more piece. */
    st->cap = longest + piece_room + 8;
    st->held = malloc(st->cap);
    if (!st->held) {
        stop_text_free(st);
        return -1;
    }
    return 0;
}

void stop_text_free(stop_text *st) {
    for (int i = 0; i < st->n_stop; i++) free(st->stop[i]);
    free(st->held);
    memset(st, 0, sizeof(*st));
}

/* The first position in text[0, n) where any stop string starts, or n when none occurs. */
static size_t first_stop(const stop_text *st, const char *text, size_t n) {
    size_t best = n;
    for (int i = 0; i < st->n_stop; i++) {
        size_t len = st->stop_len[i];
        for (size_t at = 0; at + len <= n && at < best; at++)
            if (memcmp(text + at, st->stop[i], len) == 0) {
                best = at;
                break;
            }
    }
    return best;
}

/* The first position from which text[at, n) is the beginning of some stop string (so it must
 * wait for more text), or n when there is none. Called when no whole stop string occurs. */
static size_t first_maybe_stop(const stop_text *st, const char *text, size_t n) {
    for (size_t at = 0; at < n; at++)
        for (int i = 0; i < st->n_stop; i++)
            if (n - at < st->stop_len[i] && memcmp(text + at, st->stop[i], n - at) == 0) return at;
    return n;
}

size_t stop_text_take(stop_text *st, const char *piece, size_t n, int final, int *stopped) {
    *stopped = 0;
    if (n > st->cap - st->n_held) n = st->cap - st->n_held; /* never: piece_room bounds it */
    if (n) memcpy(st->held + st->n_held, piece, n);
    st->n_held += n;
    size_t cut = first_stop(st, st->held, st->n_held);
    if (cut < st->n_held) {
        *stopped = 1;
        return cut;
    }
    return final ? st->n_held : first_maybe_stop(st, st->held, st->n_held);
}

void stop_text_drop(stop_text *st, size_t n) {
    if (n >= st->n_held) {
        st->n_held = 0;
        return;
    }
    memmove(st->held, st->held + n, st->n_held - n);
    st->n_held -= n;
}

int stop_text_valid_utf8(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((u[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (u[i + k] & 0x3F);
        }
        static const unsigned least[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}
