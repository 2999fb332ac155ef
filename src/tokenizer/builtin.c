/* builtin.c — GPT-2's tokenizer files (data/gpt2-tokenizer), embedded in the library at build
 * time with the assembler's .incbin, so tokenizer_load_builtin needs no files at run time.
 * CMake passes the directory as LINSHARD_TOKENIZER_DIR (and rebuilds this file when the data
 * changes). GNU as and clang's integrated assembler both take .incbin; ELF targets. */
#include <stddef.h>
#include <stdint.h>

#include "tokenizer_internal.h"

#ifndef LINSHARD_TOKENIZER_DIR
#error "LINSHARD_TOKENIZER_DIR (the directory of encoder.json and vocab.bpe) must be defined"
#endif

#define EMBED(sym, file)                                                                           \
    ".globl " #sym "\n.hidden " #sym "\n.balign 16\n" #sym ":\n.incbin \"" LINSHARD_TOKENIZER_DIR  \
    "/" file "\"\n.globl " #sym "_end\n.hidden " #sym "_end\n" #sym "_end:\n.byte 0\n"

__asm__(".pushsection .rodata\n" EMBED(linshard_gpt2_encoder_json, "encoder.json")
            EMBED(linshard_gpt2_vocab_bpe, "vocab.bpe") ".popsection\n");

extern const char linshard_gpt2_encoder_json[], linshard_gpt2_encoder_json_end[];
extern const char linshard_gpt2_vocab_bpe[], linshard_gpt2_vocab_bpe_end[];

/* The symbols' addresses, subtracted as integers: they are distinct objects to C. */
static size_t span(const char *begin, const char *end) {
    return (size_t)((uintptr_t)end - (uintptr_t)begin);
}

int tokenizer_load_builtin(tokenizer **out, char *err, size_t errlen) {
    return tokenizer_load_gpt2_buffers(
        out, linshard_gpt2_encoder_json,
        span(linshard_gpt2_encoder_json, linshard_gpt2_encoder_json_end), linshard_gpt2_vocab_bpe,
        span(linshard_gpt2_vocab_bpe, linshard_gpt2_vocab_bpe_end), "builtin encoder.json",
        "builtin vocab.bpe", err, errlen);
}
