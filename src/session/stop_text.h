/* stop_text.h — stop strings over streamed text (internal to the session library).
 *
 * A sequence's text arrives in pieces (whole UTF-8 characters, one token's worth at a time). A
 * stop string may span pieces, so text that could be the beginning of a stop string is held
 * back until the next pieces show whether it is one: when it is, the text is cut before it and
 * the stop string is never released; when it cannot be, it is released. What is released is
 * always the text as it will stay. */
#ifndef LINSHARD_STOP_TEXT_H
#define LINSHARD_STOP_TEXT_H

#include <stddef.h>

#define STOP_TEXT_MAX 4 /* = SESSION_MAX_STOPS */

typedef struct {
    char *stop[STOP_TEXT_MAX]; /* owned copies */
    size_t stop_len[STOP_TEXT_MAX];
    int n_stop;
    char *held; /* text not yet released: [0, n_held) */
    size_t n_held, cap;
} stop_text;

/* Copies the n_stop stop strings (each 1..max bytes, checked by the caller) and makes room for
 * pieces of up to piece_room bytes. Returns 0, or -1 when out of memory (then nothing is held:
 * stop_text_free is still safe). */
int stop_text_init(stop_text *st, const char *const *stops, int n_stop, size_t piece_room);
void stop_text_free(stop_text *st);

/* Appends a piece of n bytes (n <= piece_room). Returns how many bytes at the start of st->held
 * may be released now; *stopped is set to 1 when a stop string appeared (the returned bytes are
 * then the text before it, and the rest is to be dropped). final: no more text will come, so
 * nothing is held back any more (a stop string is still cut). The caller copies the released
 * bytes out, then calls stop_text_drop with the count. */
size_t stop_text_take(stop_text *st, const char *piece, size_t n, int final, int *stopped);
/* Removes the first n held bytes (after the caller has copied them out). */
void stop_text_drop(stop_text *st, size_t n);

/* 1 when the n bytes are valid UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF), else 0. */
int stop_text_valid_utf8(const char *s, size_t n);

#endif
