/* builtin.c — GPT-2's tokenizer (data/gpt2-tokenizer) as a prebuilt tokenizer image, embedded in
 * the library with the assembler's .incbin, so tokenizer_load_builtin reads no files and builds
 * no tables at run time: it points a struct tokenizer at the embedded bytes (image.c), and the
 * pages fault in as encoding touches them.
 *
 * The image is made at build time by tools/make_tokenizer_image from encoder.json and vocab.bpe
 * (CMake's add_custom_command; ${build}/gpt2-tokenizer.img). CMake passes its path as
 * LINSHARD_TOKENIZER_IMAGE and rebuilds this file when it changes. GNU as and clang's integrated
 * assembler both take .incbin; ELF targets. */
#include <stddef.h>
#include <stdint.h>

#include "tokenizer_internal.h"

#ifndef LINSHARD_TOKENIZER_IMAGE
#error "LINSHARD_TOKENIZER_IMAGE (the path of gpt2-tokenizer.img) must be defined"
#endif

/* 64-byte aligned (image.c needs 16): each section then starts where image.c put it. */
__asm__(".pushsection .rodata\n"
        ".globl linshard_gpt2_tokenizer_image\n.hidden linshard_gpt2_tokenizer_image\n"
        ".balign 64\nlinshard_gpt2_tokenizer_image:\n"
        ".incbin \"" LINSHARD_TOKENIZER_IMAGE "\"\n"
        ".globl linshard_gpt2_tokenizer_image_end\n.hidden linshard_gpt2_tokenizer_image_end\n"
        "linshard_gpt2_tokenizer_image_end:\n.byte 0\n"
        ".popsection\n");

extern const char linshard_gpt2_tokenizer_image[], linshard_gpt2_tokenizer_image_end[];

int tokenizer_load_builtin(tokenizer **out, char *err, size_t errlen) {
    /* The symbols' addresses, subtracted as integers: they are distinct objects to C. */
    size_t len = (size_t)((uintptr_t)linshard_gpt2_tokenizer_image_end -
                          (uintptr_t)linshard_gpt2_tokenizer_image);
    return tokenizer_image_open(linshard_gpt2_tokenizer_image, len, out, err, errlen);
}
