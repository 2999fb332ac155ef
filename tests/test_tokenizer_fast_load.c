/* test_tokenizer_fast_load.c — GPT-2's encoder.json read without cJSON gives the tables cJSON
 * gives.
 *
 * bpe.c reads a flat {"token": id} object straight into the tables and hands anything unusual
 * to the cJSON path. Three spellings of the same vocabulary must load to the same tokenizer:
 * the file as shipped (the fast path, \uXXXX escapes), the file with text after the object
 * (which cJSON accepts and the fast path refuses: the cJSON path), and the file respelled with
 * raw UTF-8 for "\u0120" and "\/" for "/" (the fast path, other escapes). Every token's bytes
 * and the ids of a text are compared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/tokenizer.h"
#include "temp_dir.h"

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(*len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

static void write_all(const char *dir, const char *name, const char *data, size_t len) {
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Loads dir (encoder.json as given + GPT-2's vocab.bpe). */
static tokenizer *load_with(const char *dir, const char *encoder, size_t len) {
    size_t bpe_len;
    char *bpe = read_all(TOKENIZER_DIR "/vocab.bpe", &bpe_len), err[512];
    write_all(dir, "encoder.json", encoder, len);
    write_all(dir, "vocab.bpe", bpe, bpe_len);
    free(bpe);
    tokenizer *t;
    if (tokenizer_load_dir(&t, dir, err, sizeof(err))) fail_msg("%s", err);
    return t;
}

static void assert_same_tokenizer(const tokenizer *a, const tokenizer *b) {
    assert_int_equal(tokenizer_vocab_size(a), tokenizer_vocab_size(b));
    assert_int_equal(tokenizer_eos(a), tokenizer_eos(b));
    char x[256], y[256];
    for (int id = 0; id < tokenizer_vocab_size(a); id++) {
        int nx = tokenizer_token_bytes(a, id, x, sizeof(x)),
            ny = tokenizer_token_bytes(b, id, y, sizeof(y));
        assert_int_equal(nx, ny);
        assert_memory_equal(x, y, (size_t)nx);
    }
    static const char text[] =
        "The quick brown fox/jumps over 12,345 lazy dogs -- \"quoted\" \\ back\tslash\n"
        "Ünïcödé, 你好, emoji \xF0\x9F\x98\x80 and <|endoftext|> it's   spaced    out";
    int *ia, *ib;
    size_t na, nb;
    assert_int_equal(tokenizer_encode(a, text, sizeof(text) - 1, &ia, &na), 0);
    assert_int_equal(tokenizer_encode(b, text, sizeof(text) - 1, &ib, &nb), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(ia, ib, na * sizeof(int));
    free(ia);
    free(ib);
}

static void test_three_spellings(void **state) {
    (void)state;
    size_t len;
    char *enc = read_all(TOKENIZER_DIR "/encoder.json", &len);
    char *dir = temp_dir_make("tokfast");
    tokenizer *shipped = load_with(dir, enc, len);

    /* text after the object: cJSON's path */
    char *tail = malloc(len + 16);
    assert_non_null(tail);
    memcpy(tail, enc, len);
    memcpy(tail + len, "\n// after", 9);
    tokenizer *via_cjson = load_with(dir, tail, len + 9);
    assert_same_tokenizer(shipped, via_cjson);

    /* respelled: "\u0120" as raw UTF-8 (C4 A0), "/" as "\/" */
    char *re = malloc(2 * len + 1);
    assert_non_null(re);
    size_t n = 0;
    int changed = 0;
    for (size_t i = 0; i < len; i++) {
        if (i + 6 <= len && !memcmp(enc + i, "\\u0120", 6)) {
            re[n++] = (char)0xC4;
            re[n++] = (char)0xA0;
            i += 5;
            changed++;
        } else if (enc[i] == '/') {
            re[n++] = '\\';
            re[n++] = '/';
            changed++;
        } else {
            re[n++] = enc[i];
        }
    }
    assert_true(changed > 1000);
    tokenizer *respelled = load_with(dir, re, n);
    assert_same_tokenizer(shipped, respelled);

    tokenizer_free(shipped);
    tokenizer_free(via_cjson);
    tokenizer_free(respelled);
    free(enc);
    free(tail);
    free(re);
    temp_dir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_three_spellings)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
