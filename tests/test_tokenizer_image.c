/* test_tokenizer_image.c — the tokenizer image (src/tokenizer/image.c): the builtin GPT-2
 * tokenizer, read in place from the image the build embeds, tokenizes exactly as one built from
 * data/gpt2-tokenizer's files at run time; an image written from any tokenizer opens to the same
 * tables; and a wrong image (bad magic, another version, truncated, a section past the end,
 * misaligned) is refused in one line naming the problem.
 *
 * Families: GPT-2 (byte-level, from files) and Mistral (SentencePiece: the decoded view, dpool,
 * is a section only it has), Llama 3 (stop tokens besides eos) from the Hugging Face files that
 * tests/CMakeLists.txt unpacks into the build tree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "linshard/tokenizer.h"
#include "tokenizer_internal.h"

#ifndef TOKENIZER_VECTORS
#error "TOKENIZER_VECTORS (tests/data/tokenizer_vectors.json) must be defined"
#endif

/* Where image.c's header keeps these (its layout: magic[8], then uint32 version, size_t bytes,
 * byte order, header bytes, then uint64 total bytes, pool_used, vocab_cap, merge_cap, then
 * uint64 sec_off[10]); the header is IMAGE_HEADER_BYTES long. */
#define OFF_VERSION 8
#define OFF_SIZE_T 12
#define OFF_SEC_OFF 56
#define SEC_MERGES_INDEX                                                                           \
    7 /* sections: pool, tok_off, tok_len, dpool, dec_off, dec_len, vocab_slot,                    \
         merges, added, stop */
#define IMAGE_HEADER_BYTES 1576

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(*len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static tokenizer *load_dir(const char *dir) {
    tokenizer *t = NULL;
    char err[512];
    if (tokenizer_load_dir(&t, dir, err, sizeof(err))) fail_msg("%s", err);
    return t;
}

/* t's image in a 64-byte aligned buffer of *len bytes (rounded up to 64: aligned_alloc). */
static unsigned char *image_of(const tokenizer *t, size_t *len) {
    char err[256];
    *len = tokenizer_image_size(t);
    assert_true(*len > IMAGE_HEADER_BYTES);
    unsigned char *buf = aligned_alloc(64, (*len + 63) / 64 * 64);
    assert_non_null(buf);
    assert_int_equal(tokenizer_image_write(t, buf, *len - 1, err, sizeof(err)), -1); /* too small */
    if (tokenizer_image_write(t, buf, *len, err, sizeof(err))) fail_msg("%s", err);
    return buf;
}

/* Every table of a and b holds the same values (b possibly in an image). */
static void assert_same_tables(const tokenizer *a, const tokenizer *b) {
    assert_int_equal(a->n_vocab, b->n_vocab);
    assert_int_equal(a->bos, b->bos);
    assert_int_equal(a->eos, b->eos);
    assert_int_equal(a->adds_bos, b->adds_bos);
    assert_int_equal(a->family, b->family);
    assert_int_equal(a->pattern, b->pattern);
    assert_int_equal(a->nfc, b->nfc);
    assert_int_equal(a->ignore_merges, b->ignore_merges);
    assert_int_equal(a->sp_prepend, b->sp_prepend);
    assert_int_equal(a->sp_split, b->sp_split);
    assert_int_equal(a->sp_strip, b->sp_strip);
    assert_int_equal(a->byte_fallback, b->byte_fallback);
    assert_int_equal(a->unk, b->unk);
    assert_int_equal(a->fuse_unk, b->fuse_unk);
    assert_int_equal(a->max_token_bytes, b->max_token_bytes);
    assert_int_equal(a->heap_ok, b->heap_ok);
    assert_int_equal(a->heap_always, b->heap_always);
    assert_int_equal(a->pool_used, b->pool_used);
    assert_int_equal(a->vocab_cap, b->vocab_cap);
    assert_int_equal(a->merge_cap, b->merge_cap);
    assert_int_equal(a->n_merges, b->n_merges);
    assert_int_equal(a->n_added, b->n_added);
    assert_int_equal(a->n_stop, b->n_stop);
    assert_memory_equal(a->byte_id, b->byte_id, sizeof(a->byte_id));
    assert_memory_equal(a->added_first, b->added_first, sizeof(a->added_first));
    for (int id = 0; id < a->n_vocab; id++) {
        assert_int_equal(a->tok_len[id], b->tok_len[id]);
        if (a->tok_len[id] < 0) continue;
        assert_memory_equal(a->pool + a->tok_off[id], b->pool + b->tok_off[id],
                            (size_t)a->tok_len[id]);
        assert_int_equal(tok_dec_len(a, id), tok_dec_len(b, id));
        assert_memory_equal(tok_dec(a, id), tok_dec(b, id), (size_t)tok_dec_len(a, id));
    }
    assert_true(!a->dpool == !b->dpool);
    assert_memory_equal(a->vocab_slot, b->vocab_slot, 2 * a->vocab_cap * sizeof(int32_t));
    if (a->merge_cap) assert_memory_equal(a->merges, b->merges, a->merge_cap * sizeof(merge_slot));
    for (int i = 0; i < a->n_added; i++) {
        assert_int_equal(a->added[i].id, b->added[i].id);
        assert_int_equal(a->added[i].len, b->added[i].len);
        assert_int_equal(a->added[i].special, b->added[i].special);
        assert_int_equal(a->added[i].lstrip, b->added[i].lstrip);
        assert_int_equal(a->added[i].rstrip, b->added[i].rstrip);
    }
    if (a->n_stop) assert_memory_equal(a->stop, b->stop, (size_t)a->n_stop * sizeof(int));
}

/* The builtin tokenizer (the embedded image) against GPT-2's files loaded at run time: the
 * reference vectors' ids and round trips, every token's bytes, eos, bos, stop tokens, the
 * longest token, whether the merges may use the heap; and every table. */
static void test_builtin_is_the_files(void **state) {
    (void)state;
    tokenizer *files = load_dir(TOKENIZER_DIR), *img = NULL;
    char err[256];
    if (tokenizer_load_builtin(&img, err, sizeof(err))) fail_msg("%s", err);
    assert_int_equal(img->borrowed, 1); /* in place, not a copy */
    assert_int_equal(tokenizer_vocab_size(img), 50257);
    assert_int_equal(tokenizer_eos(img), tokenizer_eos(files));
    assert_int_equal(tokenizer_eos(img), 50256);
    assert_int_equal(tokenizer_bos(img), tokenizer_bos(files));
    assert_int_equal(tokenizer_max_token_bytes(img), tokenizer_max_token_bytes(files));
    assert_int_equal(img->heap_ok, files->heap_ok);
    assert_true(img->heap_ok); /* GPT-2's merges allow the heap: long pieces take it */
    for (int id = 0; id < 50257; id++) {
        char a[256], b[256];
        int la = tokenizer_token_bytes(files, id, a, sizeof(a));
        int lb = tokenizer_token_bytes(img, id, b, sizeof(b));
        assert_int_equal(la, lb);
        assert_true(la > 0);
        assert_memory_equal(a, b, (size_t)la);
        assert_int_equal(tokenizer_is_stop(img, id), tokenizer_is_stop(files, id));
    }
    assert_same_tables(files, img);

    size_t len;
    char *json = read_all(TOKENIZER_VECTORS, &len);
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    const cJSON *vectors = cJSON_GetObjectItem(root, "vectors");
    int n_vectors = 0;
    for (const cJSON *v = vectors ? vectors->child : NULL; v; v = v->next, n_vectors++) {
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(v, "text"));
        const cJSON *want = cJSON_GetObjectItem(v, "ids");
        assert_non_null(text);
        int *ids = NULL, *ref = NULL;
        size_t n = 0, n_ref = 0;
        assert_int_equal(tokenizer_encode(img, text, strlen(text), &ids, &n), 0);
        assert_int_equal(tokenizer_encode(files, text, strlen(text), &ref, &n_ref), 0);
        assert_int_equal(n, (size_t)cJSON_GetArraySize(want));
        assert_int_equal(n, n_ref);
        size_t i = 0;
        for (const cJSON *w = want->child; w; w = w->next, i++) {
            assert_int_equal(ids[i], (int)w->valuedouble);
            assert_int_equal(ids[i], ref[i]);
        }
        char *back = NULL;
        size_t back_len = 0;
        assert_int_equal(tokenizer_decode(img, ids, n, &back, &back_len, err, sizeof(err)), 0);
        assert_int_equal(back_len, strlen(text));
        assert_memory_equal(back, text, back_len);
        free(back);
        free(ids);
        free(ref);
    }
    assert_true(n_vectors > 50);
    cJSON_Delete(root);
    free(json);
    tokenizer_free(img); /* frees the struct alone: the image is the program's */
    tokenizer_free(files);
}

/* Built from files, written to an image, opened: the same tables, encoding in place. */
static void round_trip(const char *dir, int has_dpool, int has_stop) {
    tokenizer *t = load_dir(dir), *back = NULL;
    assert_int_equal(!!t->dpool, has_dpool); /* the sections this family exercises */
    assert_int_equal(t->n_stop > 0, has_stop);
    size_t len;
    unsigned char *img = image_of(t, &len);
    char err[256];
    if (tokenizer_image_open(img, len, &back, err, sizeof(err))) fail_msg("%s: %s", dir, err);
    assert_int_equal(back->borrowed, 1);
    assert_true((const unsigned char *)back->vocab_slot > img &&
                (const unsigned char *)back->vocab_slot < img + len);
    assert_same_tables(t, back);
    static const char text[] = "Hello, world! <|endoftext|> It's 2024 -- über    spaces\n\tend";
    int *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    assert_int_equal(tokenizer_encode(t, text, sizeof(text) - 1, &a, &na), 0);
    assert_int_equal(tokenizer_encode(back, text, sizeof(text) - 1, &b, &nb), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof(int));
    /* The same tables give the same bytes: an image is reproducible. */
    size_t len2;
    unsigned char *img2 = image_of(back, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(img, img2, len);
    free(a);
    free(b);
    free(img2);
    tokenizer_free(back);
    free(img);
    tokenizer_free(t);
}

static void test_round_trip_gpt2(void **state) {
    (void)state;
    round_trip(TOKENIZER_DIR, 0, 0);
}

static void test_round_trip_families(void **state) {
    (void)state;
    round_trip(HF_TOKENIZERS "/mistral", 1,
               1); /* SentencePiece: dpool, dec_off, dec_len; a stop token */
    round_trip(HF_TOKENIZERS "/llama3", 0, 1); /* stop tokens, many added tokens */
}

/* tokenizer_image_open on len bytes of img (at img + shift) fails with one line holding want. */
static void assert_refused(const unsigned char *img, size_t len, const char *want) {
    tokenizer *t = (tokenizer *)(uintptr_t)1;
    char err[256] = "";
    assert_int_equal(tokenizer_image_open(img, len, &t, err, sizeof(err)), -1);
    assert_null(t);
    if (!strstr(err, want)) fail_msg("expected \"%s\" in: %s", want, err);
    assert_null(strchr(err, '\n'));
}

static void test_refused(void **state) {
    (void)state;
    tokenizer *t = load_dir(TOKENIZER_DIR);
    size_t len;
    unsigned char *img = image_of(t, &len);
    unsigned char *bad = aligned_alloc(64, (len + 64 + 63) / 64 * 64);
    assert_non_null(bad);

    memcpy(bad, img, len);
    bad[0] = 'X';
    assert_refused(bad, len, "bad magic");

    memcpy(bad, img, len);
    uint32_t version = 2;
    memcpy(bad + OFF_VERSION, &version, sizeof(version));
    assert_refused(bad, len, "format version 2");

    memcpy(bad, img, len);
    uint32_t size_t_bytes = 4;
    memcpy(bad + OFF_SIZE_T, &size_t_bytes, sizeof(size_t_bytes));
    assert_refused(bad, len, "another build");

    /* Truncated: every length short of the header, and cut anywhere after it. */
    for (size_t n = 0; n < IMAGE_HEADER_BYTES; n++) assert_refused(img, n, "truncated");
    for (size_t n = IMAGE_HEADER_BYTES; n < len; n += 4093) assert_refused(img, n, "truncated");
    assert_refused(img, len - 1, "truncated");
    assert_refused(NULL, 0, "truncated");

    /* A section past the end: the merges (2 MiB) moved to 16 bytes before the image's end. */
    memcpy(bad, img, len);
    uint64_t off = (uint64_t)len - 16;
    memcpy(bad + OFF_SEC_OFF + 8 * SEC_MERGES_INDEX, &off, sizeof(off));
    assert_refused(bad, len, "section merges");
    assert_refused(bad, len, "runs past the end");
    /* ... or where it cannot be aligned. */
    off = (uint64_t)len - 24;
    memcpy(bad + OFF_SEC_OFF + 8 * SEC_MERGES_INDEX, &off, sizeof(off));
    assert_refused(bad, len, "not after the header on a multiple of 16");

    /* Misaligned data: the same bytes one past an aligned address. */
    memcpy(bad + 1, img, len);
    assert_refused(bad + 1, len, "not 16-byte aligned");

    /* The image itself still opens. */
    tokenizer *back = NULL;
    char err[256];
    if (tokenizer_image_open(img, len, &back, err, sizeof(err))) fail_msg("%s", err);
    tokenizer_free(back);
    free(bad);
    free(img);
    tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_is_the_files),
        cmocka_unit_test(test_round_trip_gpt2),
        cmocka_unit_test(test_round_trip_families),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
