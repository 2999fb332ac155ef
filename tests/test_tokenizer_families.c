/* test_tokenizer_families.c — Hugging Face tokenizer.json files of the Llama family against
 * reference encoders: Llama 3 and Qwen3 (byte-level BPE with their own split patterns, Qwen with
 * NFC) and Mistral (SentencePiece-style BPE, the Llama 2 format), from tests/data/hf/NAME.tar.xz
 * (unpacked by CMake) and the vectors in tests/data/tokenizer_family_vectors.json (from
 * tests/data/make_family_vectors.js: transformers.js, checked against llama3-tokenizer-js and
 * mistral-tokenizer-js). Also: round trips, the streaming decoder, bos/eos/add_bos from
 * tokenizer_config.json, bytes that are not UTF-8, and files that must be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "linshard/tokenizer.h"

#ifndef FAMILY_VECTORS
#error "FAMILY_VECTORS (path of tokenizer_family_vectors.json) must be defined"
#endif
#ifndef HF_TOKENIZERS
#error "HF_TOKENIZERS (the unpacked tests/data/hf) must be defined"
#endif

enum { LLAMA3, QWEN3, MISTRAL, N_FAMILIES };
static const char *const family_names[N_FAMILIES] = {"llama3", "qwen3", "mistral"};

typedef struct {
    char *text, *decoded;
    int *ids;
    size_t n_ids;
} vector;

typedef struct {
    tokenizer *tok[N_FAMILIES];
    vector *v[N_FAMILIES];
    size_t n[N_FAMILIES];
    double load_s[N_FAMILIES];
} fixture;

/* ---- helpers ------------------------------------------------------------------------------ */

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(buf, 2 * cap + 1);
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

static void write_str(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(s, 1, strlen(s), f), strlen(s));
    assert_int_equal(fclose(f), 0);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void family_dir(char *out, size_t cap, int f) {
    snprintf(out, cap, "%s/%s", HF_TOKENIZERS, family_names[f]);
}

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof(*fx));
    char *json = read_all(FAMILY_VECTORS);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    free(json);
    if (!fx || !root) {
        fprintf(stderr, "cannot read %s\n", FAMILY_VECTORS);
        return -1;
    }
    for (int f = 0; f < N_FAMILIES; f++) {
        char dir[4096], err[512] = "";
        family_dir(dir, sizeof(dir), f);
        double t0 = now_s();
        if (tokenizer_load_dir(&fx->tok[f], dir, err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
        fx->load_s[f] = now_s() - t0;
        const cJSON *vs = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "families"),
                                             family_names[f]),
            "vectors");
        fx->n[f] = (size_t)cJSON_GetArraySize(vs);
        fx->v[f] = calloc(fx->n[f] ? fx->n[f] : 1, sizeof(vector));
        size_t i = 0;
        for (const cJSON *e = vs ? vs->child : NULL; e; e = e->next, i++) {
            vector *v = &fx->v[f][i];
            v->text = strdup(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "text")));
            v->decoded =
                strdup(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "decoded")));
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(e, "ids");
            v->n_ids = (size_t)cJSON_GetArraySize(ids);
            v->ids = malloc((v->n_ids ? v->n_ids : 1) * sizeof(int));
            size_t k = 0;
            for (const cJSON *x = ids->child; x; x = x->next)
                v->ids[k++] = (int)cJSON_GetNumberValue(x);
        }
    }
    cJSON_Delete(root);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    for (int f = 0; f < N_FAMILIES; f++) {
        for (size_t i = 0; i < fx->n[f]; i++) {
            free(fx->v[f][i].text);
            free(fx->v[f][i].decoded);
            free(fx->v[f][i].ids);
        }
        free(fx->v[f]);
        tokenizer_free(fx->tok[f]);
    }
    free(fx);
    return 0;
}

static void print_ids(const char *what, const int *ids, size_t n) {
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, "%s%d", i ? "," : " ", ids[i]);
    fprintf(stderr, "\n");
}

static char *decode_ok(const tokenizer *t, const int *ids, size_t n, size_t *len) {
    char *out = NULL, err[256] = "";
    int rc = tokenizer_decode(t, ids, n, &out, len, err, sizeof(err));
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    return out;
}

/* Whether s[0..n) is valid UTF-8 (utf8proc's reading of it). */
static int valid_utf8(const char *s, size_t n) {
    utf8proc_int32_t cp;
    for (size_t i = 0; i < n;) {
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* Streams ids through tokenizer_stream: the pieces joined must be decode(ids); when decode(ids)
 * is valid UTF-8, every piece must be too. */
static void assert_stream_matches(const tokenizer *t, const int *ids, size_t n) {
    size_t len;
    char *want = decode_ok(t, ids, n, &len);
    int valid = valid_utf8(want, len);
    size_t room = TOKENIZER_STREAM_ROOM(t);
    char *piece = malloc(room), *got = malloc(len + room + 1);
    assert_non_null(piece);
    assert_non_null(got);
    tokenizer_stream s;
    tokenizer_stream_init(&s, t);
    size_t pos = 0;
    for (size_t i = 0; i <= n; i++) {
        int k = i < n ? tokenizer_stream_push(&s, ids[i], piece, room)
                      : tokenizer_stream_flush(&s, piece, room);
        assert_true(k >= 0);
        if (valid && !valid_utf8(piece, (size_t)k)) {
            fprintf(stderr, "stream piece %zu of \"%s\" is not whole UTF-8\n", i, want);
            fail();
        }
        assert_true(pos + (size_t)k <= len);
        memcpy(got + pos, piece, (size_t)k);
        pos += (size_t)k;
    }
    assert_int_equal(pos, len);
    assert_memory_equal(got, want, len);
    free(piece);
    free(got);
    free(want);
}

/* ---- the references' ids ------------------------------------------------------------------ */

static void test_vectors(void **state) {
    fixture *fx = *state;
    int bad = 0;
    for (int f = 0; f < N_FAMILIES; f++) {
        assert_true(fx->n[f] >= 100);
        for (size_t i = 0; i < fx->n[f]; i++) {
            const vector *v = &fx->v[f][i];
            int *ids = NULL;
            size_t n = 0;
            assert_int_equal(tokenizer_encode(fx->tok[f], v->text, strlen(v->text), &ids, &n), 0);
            if (n != v->n_ids || (n && memcmp(ids, v->ids, n * sizeof(int)))) {
                fprintf(stderr, "%s: mismatch on \"%s\"\n", family_names[f], v->text);
                print_ids("got ", ids, n);
                print_ids("want", v->ids, v->n_ids);
                bad++;
            }
            free(ids);
        }
    }
    assert_int_equal(bad, 0);
}

/* decode gives what the reference's decode gives (no clean-up of spaces), and that is the text
 * itself (Llama 3), its NFC (Qwen3), or the text with SentencePiece's spaces (Mistral: a space
 * after each added token, "▁" as a space). */
static void test_decode_round_trip(void **state) {
    fixture *fx = *state;
    for (int f = 0; f < N_FAMILIES; f++)
        for (size_t i = 0; i < fx->n[f]; i++) {
            const vector *v = &fx->v[f][i];
            size_t len;
            char *got = decode_ok(fx->tok[f], v->ids, v->n_ids, &len);
            if (strcmp(got, v->decoded))
                fprintf(stderr, "%s: decode of \"%s\" gave \"%s\", not \"%s\"\n", family_names[f],
                        v->text, got, v->decoded);
            assert_string_equal(got, v->decoded);
            free(got);
            if (f == LLAMA3) {
                assert_string_equal(v->decoded, v->text);
            } else if (f == QWEN3) {
                utf8proc_uint8_t *nfc = utf8proc_NFC((const utf8proc_uint8_t *)v->text);
                assert_string_equal(v->decoded, (const char *)nfc);
                free(nfc);
            } else if (!strstr(v->text, "<s>") && !strstr(v->text, "</s>") &&
                       !strstr(v->text, "\xe2\x96\x81")) {
                assert_string_equal(v->decoded, v->text);
            }
        }
}

static void test_stream_vectors(void **state) {
    fixture *fx = *state;
    for (int f = 0; f < N_FAMILIES; f++)
        for (size_t i = 0; i < fx->n[f]; i++)
            assert_stream_matches(fx->tok[f], fx->v[f][i].ids, fx->v[f][i].n_ids);
}

/* ---- bytes that are not UTF-8 ------------------------------------------------------------- */

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint32_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Random bytes, broken and whole characters: encoding never fails, every id is a token, the
 * stream agrees with decode, and decode gives the bytes back (Mistral: all of them, having no
 * leading space or added token to differ by; Qwen3: when NFC leaves them alone). */
static void test_invalid_utf8(void **state) {
    fixture *fx = *state;
    static const char *const pieces[] = {"\xc3",
                                         "\xa9",
                                         "\xe6\x97\xa5",
                                         "\xe6\x97",
                                         "\xf0\x9f",
                                         "\xf0\x9f\x98\x80",
                                         "\xed\xa0\x80",
                                         "\xc0\xaf",
                                         "\xff",
                                         "\x80",
                                         "x",
                                         "12345",
                                         "\n",
                                         "\r\n",
                                         "'S",
                                         "!",
                                         "\xe2\x96",
                                         "<|eot",
                                         "\t"};
    char buf[256];
    for (int f = 0; f < N_FAMILIES; f++) {
        const tokenizer *t = fx->tok[f];
        for (int iter = 0; iter < 400; iter++) {
            size_t len = 0, target = 1 + rng() % 120;
            while (len < target) {
                if (iter % 2) {
                    buf[len++] = (char)(rng() & 0xFF);
                } else {
                    const char *p = pieces[rng() % (sizeof(pieces) / sizeof(pieces[0]))];
                    size_t pl = strlen(p);
                    if (len + pl > sizeof(buf)) break;
                    memcpy(buf + len, p, pl);
                    len += pl;
                }
            }
            if (f == MISTRAL && buf[0] == ' ') buf[0] = 'x'; /* the stripped leading space */
            int *ids = NULL;
            size_t n = 0;
            assert_int_equal(tokenizer_encode(t, buf, len, &ids, &n), 0);
            for (size_t i = 0; i < n; i++)
                assert_true(ids[i] >= 0 && ids[i] < tokenizer_vocab_size(t));
            size_t out_len;
            char *out = decode_ok(t, ids, n, &out_len);
            int nfc_same = 1;
            if (f == QWEN3) { /* only bytes NFC cannot touch: ASCII and broken sequences */
                for (size_t i = 0; i < len; i++) {
                    utf8proc_int32_t cp;
                    if ((unsigned char)buf[i] >= 0x80 &&
                        utf8proc_iterate((const utf8proc_uint8_t *)buf + i,
                                         (utf8proc_ssize_t)(len - i), &cp) > 1)
                        nfc_same = 0;
                }
            }
            if (nfc_same) {
                assert_int_equal(out_len, len);
                assert_memory_equal(out, buf, len);
            }
            assert_stream_matches(t, ids, n);
            free(out);
            free(ids);
        }
    }
}

/* ---- configuration: bos, eos, add_bos, stops, sizes --------------------------------------- */

static void test_config(void **state) {
    fixture *fx = *state;
    const tokenizer *l3 = fx->tok[LLAMA3], *q3 = fx->tok[QWEN3], *mi = fx->tok[MISTRAL];
    assert_int_equal(tokenizer_vocab_size(l3), 128256);
    assert_int_equal(tokenizer_bos(l3), 128000); /* <|begin_of_text|> */
    assert_int_equal(tokenizer_eos(l3), 128001); /* <|end_of_text|> */
    assert_int_equal(tokenizer_eot(l3), 128001);
    assert_int_equal(tokenizer_adds_bos(l3), 1);
    assert_true(tokenizer_is_stop(l3, 128001));
    assert_true(tokenizer_is_stop(l3, 128009)); /* <|eot_id|> */
    assert_false(tokenizer_is_stop(l3, 128000));
    assert_false(tokenizer_is_stop(l3, 9906));

    assert_int_equal(tokenizer_vocab_size(q3), 151669);
    assert_int_equal(tokenizer_bos(q3), -1);
    assert_int_equal(tokenizer_eos(q3), 151645); /* <|im_end|> */
    assert_int_equal(tokenizer_adds_bos(q3), 0);
    assert_true(tokenizer_is_stop(q3, 151645));
    assert_true(tokenizer_is_stop(q3, 151643));  /* <|endoftext|> */
    assert_false(tokenizer_is_stop(q3, 151644)); /* <|im_start|> */

    assert_int_equal(tokenizer_vocab_size(mi), 32000);
    assert_int_equal(tokenizer_bos(mi), 1); /* <s> */
    assert_int_equal(tokenizer_eos(mi), 2); /* </s> */
    assert_int_equal(tokenizer_adds_bos(mi), 1);
    assert_true(tokenizer_is_stop(mi, 2));
    assert_false(tokenizer_is_stop(mi, 1));
    assert_false(tokenizer_is_stop(mi, -1));

    /* encode never adds bos; encode_prompt does when the config says so */
    for (int f = 0; f < N_FAMILIES; f++) {
        const tokenizer *t = fx->tok[f];
        int *a = NULL, *b = NULL;
        size_t na, nb;
        assert_int_equal(tokenizer_encode(t, "Hello world", 11, &a, &na), 0);
        assert_int_equal(tokenizer_encode_prompt(t, "Hello world", 11, &b, &nb), 0);
        size_t extra = tokenizer_adds_bos(t) ? 1 : 0;
        assert_int_equal(nb, na + extra);
        if (extra) assert_int_equal(b[0], tokenizer_bos(t));
        assert_memory_equal(b + extra, a, na * sizeof(int));
        free(a);
        free(b);
    }

    /* GPT-2 (no tokenizer_config.json): eos is <|endoftext|>, no bos */
    tokenizer *g = NULL;
    char err[256];
    assert_int_equal(tokenizer_load_builtin(&g, err, sizeof(err)), 0);
    assert_int_equal(tokenizer_eos(g), 50256);
    assert_int_equal(tokenizer_bos(g), -1);
    assert_int_equal(tokenizer_adds_bos(g), 0);
    assert_true(tokenizer_is_stop(g, 50256));
    int *ids = NULL;
    size_t n;
    assert_int_equal(tokenizer_encode_prompt(g, "Hi", 2, &ids, &n), 0);
    assert_int_equal(n, 1);
    free(ids);
    tokenizer_free(g);
}

static void test_token_bytes(void **state) {
    fixture *fx = *state;
    char buf[256];
    /* SentencePiece: "▁" is a space, <0xNN> a byte; no space is stripped per token */
    assert_int_equal(tokenizer_token_bytes(fx->tok[MISTRAL], 22557, buf, sizeof(buf)), 6);
    assert_memory_equal(buf, " Hello", 6);
    assert_int_equal(tokenizer_token_bytes(fx->tok[MISTRAL], 3 + 0x0A, buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], '\n');
    assert_int_equal(tokenizer_token_bytes(fx->tok[MISTRAL], 3 + 0xE6, buf, sizeof(buf)), 1);
    assert_int_equal((unsigned char)buf[0], 0xE6);
    assert_int_equal(tokenizer_token_bytes(fx->tok[MISTRAL], 1, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "<s>", 3);
    /* byte-level: the raw bytes; added tokens: their text */
    assert_int_equal(tokenizer_token_bytes(fx->tok[LLAMA3], 128000, buf, sizeof(buf)), 17);
    assert_memory_equal(buf, "<|begin_of_text|>", 17);
    assert_int_equal(tokenizer_token_bytes(fx->tok[LLAMA3], 128256, buf, sizeof(buf)), -1);
    for (int f = 0; f < N_FAMILIES; f++)
        for (int id = 0; id < tokenizer_vocab_size(fx->tok[f]); id += 97)
            assert_true(tokenizer_token_bytes(fx->tok[f], id, buf, sizeof(buf)) > 0);
    /* a stream refuses an id that is no token, and too little room, without consuming it */
    tokenizer_stream s;
    tokenizer_stream_init(&s, fx->tok[LLAMA3]);
    assert_int_equal(tokenizer_stream_push(&s, -1, buf, sizeof(buf)), -1);
    assert_int_equal(tokenizer_stream_push(&s, 9906, buf, 2), -1); /* "Hello" */
    assert_int_equal(tokenizer_stream_push(&s, 9906, buf, sizeof(buf)), 5);
    assert_int_equal(tokenizer_stream_flush(&s, buf, sizeof(buf)), 0);
}

/* Emoji split over byte tokens come out whole, or not at all, push by push. */
static void test_stream_holds_partial(void **state) {
    fixture *fx = *state;
    for (int f = 0; f < N_FAMILIES; f++) {
        const tokenizer *t = fx->tok[f];
        const char *text = "a😀日\xc3"; /* ends in a broken character */
        int *ids = NULL;
        size_t n;
        assert_int_equal(tokenizer_encode(t, text, strlen(text), &ids, &n), 0);
        assert_true(n >= 4);
        char buf[64];
        tokenizer_stream s;
        tokenizer_stream_init(&s, t);
        size_t pos = 0;
        char got[64];
        for (size_t i = 0; i < n; i++) {
            int k = tokenizer_stream_push(&s, ids[i], buf, sizeof(buf));
            assert_true(k >= 0);
            /* only whole characters: the output so far is a prefix of "a😀日" */
            memcpy(got + pos, buf, (size_t)k);
            pos += (size_t)k;
            assert_true(pos == 0 || pos == 1 || pos == 5 || pos == 8);
        }
        assert_int_equal(pos, 8);
        assert_int_equal(tokenizer_stream_flush(&s, buf, sizeof(buf)), 1);
        assert_int_equal((unsigned char)buf[0], 0xC3);
        free(ids);
    }
}

/* ---- files that must be refused ----------------------------------------------------------- */

static void assert_refused(const char *dir, const char *json, const char *config, ...) {
    char path[4096], err[512] = "";
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    write_str(path, json);
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    if (config)
        write_str(path, config);
    else
        unlink(path);
    tokenizer *t = (tokenizer *)1;
    assert_int_equal(tokenizer_load_dir(&t, dir, err, sizeof(err)), -1);
    assert_null(t);
    assert_null(strchr(err, '\n'));
    va_list ap;
    va_start(ap, config);
    for (const char *s; (s = va_arg(ap, const char *));) {
        if (!strstr(err, s)) fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err, s);
        assert_non_null(strstr(err, s));
    }
    va_end(ap);
}

static void test_bad_files(void **state) {
    (void)state;
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/linshard-hf-XXXXXX");
    assert_non_null(mkdtemp(dir));
    /* a SentencePiece file small enough to write here: a, b, ab, <unk> */
    static const char sp_head[] =
        "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", "
        "\"prepend\": \"\xe2\x96\x81\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, "
        "\"content\": \"\xe2\x96\x81\"}]}, \"pre_tokenizer\": null,";
    char json[2048];
    snprintf(
        json, sizeof(json),
        "%s \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"<unk>\": 0, "
        "\"a\": 1, \"b\": 2, \"ab\": 3, \"\xe2\x96\x81\": 4}, \"merges\": [\"a b\"]}}",
        sp_head);
    /* first, that it loads: the refusals below are each one change away from it */
    char path[4096], err[512];
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    write_str(path, json);
    tokenizer *t = NULL;
    assert_int_equal(tokenizer_load_dir(&t, dir, err, sizeof(err)), 0);
    int *ids = NULL;
    size_t n;
    assert_int_equal(tokenizer_encode(t, "ab ba", 5, &ids, &n), 0);
    int want[] = {4, 3, 4, 2, 1};
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want, sizeof(want));
    free(ids);
    /* no byte fallback: an invalid byte and a character with no token are each <unk> */
    assert_int_equal(tokenizer_encode(t,
                                      "\xff"
                                      "c",
                                      2, &ids, &n),
                     0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 0);
    free(ids);
    tokenizer_free(t);

    assert_refused(dir, "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", NULL, "Unigram",
                   "not BPE", NULL);
    assert_refused(dir, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, ", NULL,
                   "tokenizer.json", "not valid JSON", NULL);
    assert_refused(dir,
                   "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": "
                   "\"Split\", \"pattern\": {\"Regex\": \"\\\\w+|\\\\s+\"}, \"behavior\": "
                   "\"Isolated\"}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}, \"model\": "
                   "{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
                   NULL, "Split pattern", "\\w+|\\s+", "not one linshard knows", NULL);
    assert_refused(dir,
                   "{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"type\": \"BPE\", "
                   "\"vocab\": {\"a\": 0}, \"merges\": []}}",
                   NULL, "pre_tokenizer Whitespace", NULL);
    assert_refused(dir,
                   "{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"type\": \"BPE\", "
                   "\"vocab\": {\"a\": 0}, \"merges\": []}}",
                   NULL, "normalizer NFKC", NULL);
    /* Found by fuzz_tokenizer: one id of 1e9 made the loader allocate a slot for every id below
     * it (8 GB); ids are bounded now. */
    assert_refused(dir,
                   "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1000000000}, "
                   "\"merges\": []}}",
                   NULL, "token id 1000000000 is too large (ids must be below 16777216)", NULL);
    assert_refused(dir,
                   "{\"added_tokens\": [{\"id\": 16777216, \"content\": \"<x>\"}], \"model\": "
                   "{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
                   NULL, "token id 16777216 is too large", NULL);
    /* fuzz_tokenizer's one-line check: a token quoted from the file broke the line. */
    assert_refused(dir, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\\nb\": 0.5}}}", NULL,
                   "token \"a?b\": its id is not a non-negative integer", NULL);
    snprintf(
        json, sizeof(json),
        "%s \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"<unk>\": 0, "
        "\"a\": 1, \"b\": 2, \"ab\": 3}, \"merges\": [\"a b\", \"a zz\"]}}",
        sp_head);
    assert_refused(dir, json, NULL, "model.merges[1]", "the second is not in the vocabulary", NULL);
    snprintf(json, sizeof(json),
             "%s \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": []}}",
             sp_head);
    assert_refused(dir, json, NULL, "neither byte_fallback nor an unk_token", NULL);
    /* Found by fuzz_tokenizer: byte_fallback with some <0xNN> tokens missing and no unk_token
     * loaded, and a character needing a missing byte token was encoded as id -1. */
    snprintf(json, sizeof(json),
             "%s \"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0, "
             "\"<0x00>\": 1}, \"merges\": []}}",
             sp_head);
    assert_refused(dir, json, NULL, "byte_fallback without an unk_token", "<0x01>", NULL);
    snprintf(
        json, sizeof(json),
        "%s \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"<unk>\": 0, "
        "\"a\": 1}, \"merges\": []}}",
        sp_head);
    assert_refused(dir, json, "{\"bos_token\": {\"content\": \"<s>\"}}", "tokenizer_config.json",
                   "bos_token \"<s>\" is not a token", NULL);
    assert_refused(dir, json, "{\"bos_token\": ", "tokenizer_config.json", "not valid JSON", NULL);
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

/* ---- speed (reported, not asserted: sanitizer builds are slower) -------------------------- */

static void test_speed(void **state) {
    fixture *fx = *state;
    size_t total = 0;
    for (size_t i = 0; i < fx->n[LLAMA3]; i++) total += strlen(fx->v[LLAMA3][i].text);
    size_t cap = 100 * total + 1, len = 0;
    char *big = malloc(cap);
    assert_non_null(big);
    for (int r = 0; r < 100; r++)
        for (size_t i = 0; i < fx->n[LLAMA3]; i++) {
            size_t l = strlen(fx->v[LLAMA3][i].text);
            memcpy(big + len, fx->v[LLAMA3][i].text, l);
            len += l;
        }
    for (int f = 0; f < N_FAMILIES; f++) {
        int *ids = NULL;
        size_t n;
        double t0 = now_s();
        assert_int_equal(tokenizer_encode(fx->tok[f], big, len, &ids, &n), 0);
        double dt = now_s() - t0;
        printf("%s: load %.3f s; encode %.2f MB in %.3f s (%.1f MB/s, %zu tokens)\n",
               family_names[f], fx->load_s[f], (double)len / 1e6, dt, (double)len / 1e6 / dt, n);
        size_t out_len;
        char *out = decode_ok(fx->tok[f], ids, n, &out_len);
        if (f == LLAMA3) {
            assert_int_equal(out_len, len);
            assert_memory_equal(out, big, len);
        }
        free(out);
        free(ids);
    }
    free(big);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_decode_round_trip),
        cmocka_unit_test(test_stream_vectors),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_token_bytes),
        cmocka_unit_test(test_stream_holds_partial),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
