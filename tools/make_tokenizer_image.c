/* make_tokenizer_image.c — a build-time program: GPT-2's tokenizer files to a tokenizer image.
 *
 *   make_tokenizer_image ENCODER_JSON VOCAB_BPE OUT
 *
 * Loads encoder.json and vocab.bpe with tokenizer_load_gpt2_buffers (the code that reads them
 * at run time from a directory), then writes the finished tables with tokenizer_image_write
 * (src/tokenizer/image.c). CMake runs it once per build, writing ${build}/gpt2-tokenizer.img,
 * which builtin.c embeds in the library. It lives in tools/, not src/, because it is no part of
 * the library: it links the tokenizer sources as the static library linshard_tokenizer_core
 * (everything but builtin.c, which needs its output). The image is written to OUT.tmp and
 * renamed, so a failed run leaves no half-written image for the build to embed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

/* A whole file in a malloc'd buffer; NULL with a message on stderr. */
static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "make_tokenizer_image: %s: cannot open\n", path);
        return NULL;
    }
    char *buf = NULL;
    long n = -1;
    if (!fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET))
        buf = malloc(n ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "make_tokenizer_image: %s: cannot read\n", path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: make_tokenizer_image ENCODER_JSON VOCAB_BPE OUT\n");
        return 2;
    }
    size_t enc_len = 0, bpe_len = 0;
    char *enc = read_all(argv[1], &enc_len), *bpe = enc ? read_all(argv[2], &bpe_len) : NULL;
    char err[512];
    tokenizer *t = NULL;
    void *image = NULL;
    size_t image_len = 0;
    int rc = 1;
    if (!enc || !bpe) goto done;
    if (tokenizer_load_gpt2_buffers(&t, enc, enc_len, bpe, bpe_len, argv[1], argv[2], err,
                                    sizeof(err))) {
        fprintf(stderr, "make_tokenizer_image: %s\n", err);
        goto done;
    }
    image_len = tokenizer_image_size(t);
    if (!(image = malloc(image_len)) ||
        tokenizer_image_write(t, image, image_len, err, sizeof(err))) {
        fprintf(stderr, "make_tokenizer_image: %s\n", image ? err : "out of memory");
        goto done;
    }
    /* Check what was written opens, before the build embeds it. */
    tokenizer *check = NULL;
    if (tokenizer_image_open(image, image_len, &check, err, sizeof(err))) {
        fprintf(stderr, "make_tokenizer_image: the image written does not open: %s\n", err);
        goto done;
    }
    tokenizer_free(check);
    size_t tl = strlen(argv[3]) + 5;
    char *tmp = malloc(tl);
    if (!tmp) goto done;
    snprintf(tmp, tl, "%s.tmp", argv[3]);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(image, 1, image_len, f) == image_len;
    if (f && fclose(f)) ok = 0;
    if (ok && rename(tmp, argv[3])) ok = 0;
    if (!ok) {
        fprintf(stderr, "make_tokenizer_image: %s: cannot write\n", argv[3]);
        remove(tmp);
    }
    free(tmp);
    rc = !ok;
done:
    free(image);
    tokenizer_free(t);
    free(enc);
    free(bpe);
    return rc;
}
