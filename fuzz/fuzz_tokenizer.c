/* fuzz_tokenizer.c — libFuzzer harness for tokenizer_load_dir on Hugging Face files: the input up
 * to its first 0 byte becomes tokenizer.json, the rest (when there is a 0 byte)
 * tokenizer_config.json, in a temporary directory made once per process. A refusal must be one
 * non-empty line with no tokenizer; a loaded tokenizer encodes a few fixed texts (ASCII, CJK,
 * emoji, an added token, invalid UTF-8), and their ids must decode, byte for byte the same, with
 * tokenizer_decode and through the streaming decoder; byte-level files without NFC or stripping
 * added tokens must give the text back exactly.
 * Build and run: see fuzz/CMakeLists.txt. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/tokenizer.h"
#include "tokenizer_internal.h"

static char dir[64];
static char json_path[128], config_path[128];
static int verbose; /* FUZZ_VERBOSE set: say why each input is refused (for checking seeds) */

static void remove_dir(void) {
    unlink(json_path);
    unlink(config_path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof(dir), "/tmp/fuzz-tokenizer-XXXXXX");
    if (!mkdtemp(dir)) abort();
    snprintf(json_path, sizeof(json_path), "%s/tokenizer.json", dir);
    snprintf(config_path, sizeof(config_path), "%s/tokenizer_config.json", dir);
    atexit(remove_dir);
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    return 0;
}

static void write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *fp = fopen(path, "wb");
    if (!fp) abort();
    if (size && fwrite(data, 1, size, fp) != size) abort();
    if (fclose(fp) != 0) abort();
}

/* Whether decode(encode(x)) == x must hold: byte-level BPE, no NFC, no added token that
 * swallows the whitespace around it. */
static int round_trips(const tokenizer *t) {
    if (t->family != FAMILY_BYTE_LEVEL || t->nfc) return 0;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].lstrip || t->added[i].rstrip) return 0;
    return 1;
}

static void check_text(const tokenizer *t, const char *text, size_t len) {
    int *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(t, text, len, &ids, &n) != 0) abort();
    if (len && !n) abort();
    char *dec = NULL, err[512];
    size_t dec_len = 0;
    if (tokenizer_decode(t, ids, n, &dec, &dec_len, err, sizeof(err)) != 0) {
        fprintf(stderr, "the ids of \"%s\" do not decode: %s\n", text, err);
        abort();
    }
    if (round_trips(t) && (dec_len != len || memcmp(dec, text, len))) abort();

    /* The streaming decoder gives the same bytes. */
    size_t room = TOKENIZER_STREAM_ROOM(t), pos = 0;
    char *buf = malloc(room);
    char *streamed = malloc(dec_len + room + 1);
    if (!buf || !streamed) abort();
    tokenizer_stream s;
    tokenizer_stream_init(&s, t);
    for (size_t i = 0; i < n; i++) {
        if (tokenizer_token_bytes(t, ids[i], buf, room) < 0) abort();
        int k = tokenizer_stream_push(&s, ids[i], buf, room);
        if (k < 0 || pos + (size_t)k > dec_len) abort();
        memcpy(streamed + pos, buf, (size_t)k);
        pos += (size_t)k;
    }
    int k = tokenizer_stream_flush(&s, buf, room);
    if (k < 0 || pos + (size_t)k != dec_len) abort();
    memcpy(streamed + pos, buf, (size_t)k);
    if (memcmp(streamed, dec, dec_len)) abort();
    free(streamed);
    free(buf);
    free(dec);
    free(ids);

    if (tokenizer_encode_ordinary(t, text, len, &ids, &n) != 0) abort();
    free(ids);
    if (tokenizer_encode_prompt(t, text, len, &ids, &n) != 0) abort();
    if (tokenizer_adds_bos(t) && (n < 1 || ids[0] != tokenizer_bos(t))) abort();
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *zero = memchr(data, 0, size);
    size_t json_size = zero ? (size_t)(zero - data) : size;
    write_file(json_path, data, json_size);
    if (zero)
        write_file(config_path, zero + 1, size - json_size - 1);
    else
        unlink(config_path);

    tokenizer *t = (tokenizer *)1;
    char err[1024];
    err[0] = '\0';
    if (tokenizer_load_dir(&t, dir, err, sizeof(err)) != 0) {
        if (t || !err[0] || strchr(err, '\n') || strchr(err, '\r')) abort();
        if (verbose) fprintf(stderr, "refused: %s\n", err);
        return 0;
    }
    int V = tokenizer_vocab_size(t);
    if (verbose) fprintf(stderr, "loaded: %d ids\n", V);
    if (V < 1 || tokenizer_max_token_bytes(t) < 1) abort();
    if (tokenizer_bos(t) >= V || tokenizer_eos(t) >= V) abort();
    static const char *const texts[] = {
        "Hello world, the answer is 42!\n\n  and  tabs\t\there.",
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe6\x96\x87\xe7\xab\xa0\xe3\x80\x82",
        "emoji \xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd ok",
        "<|begin_of_text|>hi<|eot_id|><|im_start|>user<|im_end|><s> </s><|endoftext|>",
        "bad \xff\xfe \xc3 \xe6\x97 \xf0\x9f\x98 \xed\xa0\x80 \xc0\xaf end",
        "e\xcc\x81 caf\xc3\xa9 \xe2\x96\x81 ''s I'LL 12345",
        " ",
        ""};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        check_text(t, texts[i], strlen(texts[i]));
    /* Every id's bytes fit the advertised maximum (the first ids: vocabularies may be large). */
    int cap = tokenizer_max_token_bytes(t);
    char *buf = malloc((size_t)cap);
    if (!buf) abort();
    for (int id = 0; id < V && id < 4096; id++) {
        int k = tokenizer_token_bytes(t, id, buf, (size_t)cap);
        if (k > cap) abort();
    }
    free(buf);
    tokenizer_free(t);
    return 0;
}
