/* normalize.c — Unicode NFC for the tokenizer.json files that ask for it (Qwen2, Qwen3), with
 * utf8proc.
 *
 * utf8proc refuses text that is not UTF-8, and the tokenizer takes any bytes: so the text is
 * normalised run by run, each maximal run of well-formed characters on its own, and every byte
 * that does not start a well-formed character is copied as it is between them (the reference, a
 * JavaScript string, cannot hold such bytes at all). */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "tokenizer_internal.h"

/* Appends n bytes to the growing buffer *buf (*len used, *cap allocated). */
static int append(char **buf, size_t *len, size_t *cap, const void *s, size_t n) {
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *len + n) c *= 2;
        char *b = realloc(*buf, c);
        if (!b) return -1;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    return 0;
}

int normalize_nfc(const char *s, size_t len, char **out, size_t *out_len) {
    const unsigned char *p = (const unsigned char *)s;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (size_t pos = 0; pos < len;) {
        size_t end = pos, k;
        while (end < len && (k = utf8_char_len(p, len, end))) end += k;
        if (end > pos) {
            /* ASCII is its own NFC: skip utf8proc for runs of it */
            size_t i = pos;
            while (i < end && p[i] < 0x80) i++;
            if (i == end) {
                if (append(&buf, &n, &cap, p + pos, end - pos)) goto oom;
            } else {
                utf8proc_uint8_t *norm = NULL;
                utf8proc_ssize_t m = utf8proc_map(p + pos, (utf8proc_ssize_t)(end - pos), &norm,
                                                  UTF8PROC_STABLE | UTF8PROC_COMPOSE);
                int bad = m < 0 || append(&buf, &n, &cap, norm, (size_t)m);
                free(norm);
                if (bad) goto oom;
            }
            pos = end;
        } else {
            if (append(&buf, &n, &cap, p + pos, 1)) goto oom;
            pos++;
        }
    }
    *out = buf;
    *out_len = n;
    return 0;
oom:
    free(buf);
    return -1;
}
