/* fuzz_tokenizer_text.c — libFuzzer harness for encoding and decoding arbitrary bytes with the
 * real tokenizers: the built-in GPT-2 one and the Llama 3, Qwen3 and Mistral tokenizer.json files
 * (tests/data/hf, unpacked into the build tree; the directory is $LINSHARD_HF_TOKENIZERS, or the
 * HF_TOKENIZERS the build compiled in), each loaded once per process. Every input is encoded
 * with each (tokenizer_encode, _ordinary, _prompt), decoded, and decoded again through the
 * streaming decoder, whose pieces must join to tokenizer_decode's bytes. What decoding must give
 * back (tokenizer.h):
 *   byte-level (GPT-2, Llama 3)  the input, byte for byte, whatever it is;
 *   Qwen3 (byte-level after NFC) NFC of the input, when the input is UTF-8 (utf8proc's, not the
 *                                tokenizer's normalize_nfc); otherwise nothing is checked;
 *   SentencePiece (Mistral)      the input, when it holds no "▁" and encodes to no added token
 *                                (one leading space is dropped, the one "▁" that encoding put
 *                                in front).
 * Build and run: see fuzz/CMakeLists.txt. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "linshard/tokenizer.h"
#include "tokenizer_internal.h"

#ifndef HF_TOKENIZERS
#define HF_TOKENIZERS "tests/hf"
#endif

enum { N_TOK = 4 };
static const char *const names[N_TOK] = {"gpt2", "llama3", "qwen3", "mistral"};
static tokenizer *toks[N_TOK];
static unsigned char *is_added[N_TOK]; /* per id: an added token's id */

static void free_all(void) {
    for (int i = 0; i < N_TOK; i++) {
        tokenizer_free(toks[i]);
        free(is_added[i]);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *hf = getenv("LINSHARD_HF_TOKENIZERS");
    if (!hf || !hf[0]) hf = HF_TOKENIZERS;
    char err[1024], path[4096];
    for (int i = 0; i < N_TOK; i++) {
        int rc;
        if (i == 0) {
            rc = tokenizer_load_builtin(&toks[i], err, sizeof(err));
        } else {
            snprintf(path, sizeof(path), "%s/%s", hf, names[i]);
            rc = tokenizer_load_dir(&toks[i], path, err, sizeof(err));
        }
        if (rc) {
            fprintf(stderr,
                    "fuzz_tokenizer_text: %s (set LINSHARD_HF_TOKENIZERS to the unpacked "
                    "tests/data/hf)\n",
                    err);
            abort();
        }
        const tokenizer *t = toks[i];
        is_added[i] = calloc((size_t)tokenizer_vocab_size(t), 1);
        if (!is_added[i]) abort();
        for (int k = 0; k < t->n_added; k++) is_added[i][t->added[k].id] = 1;
    }
    if (toks[0]->family != FAMILY_BYTE_LEVEL || toks[1]->family != FAMILY_BYTE_LEVEL ||
        toks[2]->family != FAMILY_BYTE_LEVEL || !toks[2]->nfc ||
        toks[3]->family != FAMILY_SENTENCEPIECE)
        abort();
    atexit(free_all);
    return 0;
}

/* Whether decode(encode(x)) == x must hold for a byte-level tokenizer: no added token that
 * swallows the whitespace around it. */
static int strips(const tokenizer *t) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].lstrip || t->added[i].rstrip) return 1;
    return 0;
}

static int contains(const char *s, size_t len, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= len; i++)
        if (!memcmp(s + i, needle, m)) return 1;
    return 0;
}

static void fail(const char *name, const char *what) {
    fprintf(stderr, "fuzz_tokenizer_text: %s: %s\n", name, what);
    abort();
}

static void check(int which, const char *text, size_t len) {
    const tokenizer *t = toks[which];
    const char *name = names[which];
    int *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(t, text, len, &ids, &n) != 0) fail(name, "encode failed");
    if (len && !n) fail(name, "no ids for non-empty text");
    int V = tokenizer_vocab_size(t), any_added = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) fail(name, "id out of range");
        any_added |= is_added[which][ids[i]];
    }
    char *dec = NULL, err[512];
    size_t dec_len = 0;
    if (tokenizer_decode(t, ids, n, &dec, &dec_len, err, sizeof(err)) != 0) fail(name, err);

    if (t->family == FAMILY_BYTE_LEVEL && !t->nfc && !strips(t)) {
        if (dec_len != len || memcmp(dec, text, len)) fail(name, "decode(encode(x)) != x");
    } else if (t->family == FAMILY_BYTE_LEVEL && t->nfc && !strips(t)) {
        utf8proc_uint8_t *nfc = NULL;
        utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len,
                                          &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (m >= 0 && ((size_t)m != dec_len || memcmp(dec, nfc, dec_len)))
            fail(name, "decode(encode(x)) != NFC(x)");
        free(nfc);
    } else if (t->family == FAMILY_SENTENCEPIECE && !any_added &&
               !contains(text, len, "\xe2\x96\x81")) {
        if (dec_len != len || memcmp(dec, text, len)) fail(name, "decode(encode(x)) != x");
    }

    /* The streaming decoder's pieces join to the same bytes. */
    size_t room = TOKENIZER_STREAM_ROOM(t), pos = 0;
    char *buf = malloc(room);
    char *streamed = malloc(dec_len + room + 1);
    if (!buf || !streamed) abort();
    tokenizer_stream s;
    tokenizer_stream_init(&s, t);
    for (size_t i = 0; i < n; i++) {
        int k = tokenizer_stream_push(&s, ids[i], buf, room);
        if (k < 0 || pos + (size_t)k > dec_len) fail(name, "stream push");
        memcpy(streamed + pos, buf, (size_t)k);
        pos += (size_t)k;
    }
    int k = tokenizer_stream_flush(&s, buf, room);
    if (k < 0 || pos + (size_t)k != dec_len) fail(name, "stream length != decode's");
    memcpy(streamed + pos, buf, (size_t)k);
    if (memcmp(streamed, dec, dec_len)) fail(name, "stream bytes != decode's");
    free(streamed);
    free(buf);
    free(dec);
    free(ids);

    if (tokenizer_encode_ordinary(t, text, len, &ids, &n) != 0) fail(name, "encode_ordinary");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) fail(name, "encode_ordinary: id out of range");
    free(ids);
    if (tokenizer_encode_prompt(t, text, len, &ids, &n) != 0) fail(name, "encode_prompt");
    if (tokenizer_adds_bos(t) && (n < 1 || ids[0] != tokenizer_bos(t)))
        fail(name, "encode_prompt: no bos");
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int i = 0; i < N_TOK; i++) check(i, (const char *)data, size);
    return 0;
}
