/* fuzz_gguf.c — libFuzzer harness for gguf_open: each input is written as one GGUF file. A
 * failure must be a one-line error with the gguf_file left zeroed; a success must have every
 * tensor inside the file and inside the data section, findable by name, and readable in full when
 * its type is one linshard reads (refused otherwise), and every metadata value readable through
 * the getters and every array element through the element accessors (so ASan sees any bad
 * offset). Then the model layer on top: the config from the metadata (refused in one line, or
 * accepted), and for an accepted config whose tensors check out, rank 0 of 2's shard loaded from
 * the file as F32 and as Q8_0. And the tokenizer stored in the file (tokenizer_load_gguf):
 * refused in one line, absent, or loaded and then used to encode, decode and stream a text.
 * Seeds: the gguf-py fixtures (tests/data/gguf), two tiny models linshard wrote (a GPT-2 in F16,
 * a Llama in Q4_0) and two tiny tokenizers (fuzz/make_gguf_tokenizer_seeds.py: a byte-level BPE
 * and a SentencePiece one). Build and run: see fuzz/CMakeLists.txt. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/gguf.h"
#include "linshard/model_gguf.h"
#include "linshard/tokenizer.h"

static char path[64];

static void remove_file(void) {
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(path, sizeof(path), "/tmp/fuzz-gguf-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) abort();
    close(fd);
    atexit(remove_file);
    return 0;
}

/* Every getter on entry i, and every element of an array. */
static void check_kv(const gguf_file *f, int64_t i) {
    size_t len;
    const char *k = gguf_kv_key(f, i, &len);
    if (!k || len == 0) abort();
    char key[256];
    if (len >= sizeof(key) || memchr(k, '\0', len)) return; /* not reachable as a C string */
    memcpy(key, k, len);
    key[len] = '\0';
    int64_t j = gguf_find_key(f, key);
    if (j < 0) abort(); /* keys are unique, so j == i */
    if (j != i) abort();
    gguf_type t = gguf_kv_type(f, i);
    char err[512];
    uint32_t u32;
    uint64_t u64;
    int32_t i32;
    float x;
    int b;
    const char *s;
    (void)gguf_get_u32(f, key, &u32, err, sizeof(err));
    (void)gguf_get_u64(f, key, &u64, err, sizeof(err));
    (void)gguf_get_i32(f, key, &i32, err, sizeof(err));
    (void)gguf_get_f32(f, key, &x, err, sizeof(err));
    (void)gguf_get_bool(f, key, &b, err, sizeof(err));
    if ((gguf_get_str(f, key, &s, &len, err, sizeof(err)) == 0) != (t == GGUF_TYPE_STRING)) abort();
    volatile uint8_t sink = 0;
    if (t == GGUF_TYPE_STRING && len) sink ^= (uint8_t)s[len - 1];
    gguf_array a;
    if ((gguf_get_arr(f, key, &a, err, sizeof(err)) == 0) != (t == GGUF_TYPE_ARRAY)) abort();
    if (t != GGUF_TYPE_ARRAY) return;
    for (uint64_t e = 0; e < a.n; e++) {
        int64_t iv;
        double dv;
        const char *es = gguf_arr_str(&a, e, &len);
        if ((es != NULL) != (a.type == GGUF_TYPE_STRING)) abort();
        if (es && len) sink ^= (uint8_t)es[len - 1];
        (void)gguf_arr_i64(&a, e, &iv);
        if ((gguf_arr_f64(&a, e, &dv) == 0) !=
            (a.type != GGUF_TYPE_STRING && a.type != GGUF_TYPE_ARRAY))
            abort();
    }
    (void)sink;
}

/* The model read from f, when the metadata describes one linshard runs. */
static void check_model(const gguf_file *f) {
    model_config cfg;
    char err[1024];
    if (model_config_from_gguf(f, &cfg, err, sizeof(err)) != 0) {
        if (!err[0] || strchr(err, '\n')) abort();
        return;
    }
    if (model_check_weights_gguf(&cfg, f, err, sizeof(err)) != 0) {
        if (!err[0] || strchr(err, '\n')) abort();
        return;
    }
    kernel_type types[2] = {KERNEL_F32, KERNEL_Q8_0};
    for (int i = 0; i < 2; i++) {
        model_shard m;
        if (model_shard_load_gguf(&m, &cfg, f, 0, cfg.n_head >= 2 ? 2 : 1, 1, types[i], err,
                                  sizeof(err)) != 0) {
            if (!err[0] || strchr(err, '\n')) abort();
            continue;
        }
        model_shard_free(&m);
    }
}

/* The tokenizer stored in f, when there is one: a refusal is one line; a tokenizer encodes,
 * decodes and streams (any ids it gives decode). */
static void check_tokenizer(const gguf_file *f) {
    tokenizer *t = NULL;
    char err[1024] = "";
    int rc = tokenizer_load_gguf(&t, f, err, sizeof(err));
    if (rc != 0) {
        if (t || !err[0] || strchr(err, '\n')) abort();
        return;
    }
    static const char text[] = "Hello wörld <s> <|endoftext|>\n\n  12345 \xff\xfe";
    int *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode_prompt(t, text, sizeof(text) - 1, &ids, &n) != 0) abort();
    char *out = NULL;
    size_t len = 0;
    if (tokenizer_decode(t, ids, n, &out, &len, err, sizeof(err)) != 0) abort();
    size_t room = TOKENIZER_STREAM_ROOM(t);
    char *piece = malloc(room);
    if (!piece) abort();
    tokenizer_stream s;
    tokenizer_stream_init(&s, t);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int k = tokenizer_stream_push(&s, ids[i], piece, room);
        if (k < 0) abort();
        total += (size_t)k;
    }
    int k = tokenizer_stream_flush(&s, piece, room);
    if (k < 0 || total + (size_t)k != len) abort();
    for (int id = 0; id < tokenizer_vocab_size(t); id++) (void)tokenizer_is_stop(t, id);
    free(piece);
    free(out);
    free(ids);
    tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *fp = fopen(path, "wb");
    if (!fp) abort();
    if (size && fwrite(data, 1, size, fp) != size) abort();
    if (fclose(fp) != 0) abort();

    gguf_file f;
    char err[1024];
    memset(&f, 0xab, sizeof(f));
    if (gguf_open(&f, path, err, sizeof(err)) == 0) {
        if (f.file_size != size || f.data_start % f.alignment != 0) abort();
        for (int64_t i = 0; i < f.n_kv; i++) check_kv(&f, i);
        for (int64_t i = 0; i < f.n_tensors; i++) {
            const gguf_tensor *t = &f.tensors[i];
            if (t->offset < f.data_start || t->offset > size || t->n_bytes > size - t->offset)
                abort();
            if ((t->offset - f.data_start) % f.alignment != 0) abort();
            if (t->n_bytes != t->n_rows * t->row_bytes) abort();
            if (gguf_find_tensor(&f, t->name) != t) abort();
            uint8_t *out = malloc(t->n_bytes ? t->n_bytes : 1);
            if (!out) abort();
            int read = gguf_read_rows(&f, t, 0, t->n_rows, out, err, sizeof(err));
            if (gguf_ggml_to_kernel(t->type, NULL) ? read != 0 : read == 0) abort();
            if (read == 0 && t->n_bytes && memcmp(out, data + t->offset, t->n_bytes) != 0) abort();
            if (read != 0 && (!err[0] || strchr(err, '\n'))) abort();
            free(out);
        }
        check_model(&f);
        check_tokenizer(&f);
    } else {
        if (!err[0] || strchr(err, '\n')) abort();
        if (f.header || f.tensors || f.kv || f.n_tensors || f.n_kv || f.path) abort();
    }
    gguf_close(&f);
    gguf_close(&f);
    return 0;
}
