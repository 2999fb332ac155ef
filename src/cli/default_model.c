/* default_model.c — the model `linshard generate` uses without --model: data/default-model,
 * embedded in the program at build time with the assembler's .incbin (as the tokenizer is), so
 * the program needs no files, and read where it lies in the program's memory.
 * data/default-model/README.md says how it was trained. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_model.h"

#ifndef LINSHARD_DEFAULT_MODEL_DIR
#error "LINSHARD_DEFAULT_MODEL_DIR (the directory of the default model) must be defined"
#endif

#define EMBED(sym, file)                                                                           \
    ".globl " #sym "\n.hidden " #sym "\n.balign 16\n" #sym                                         \
    ":\n.incbin \"" LINSHARD_DEFAULT_MODEL_DIR "/" file "\"\n.globl " #sym "_end\n.hidden " #sym   \
    "_end\n" #sym "_end:\n.byte 0\n"

__asm__(".pushsection .rodata\n" EMBED(linshard_default_config_json, "config.json")
            EMBED(linshard_default_model_safetensors, "model.safetensors") ".popsection\n");

extern const char linshard_default_config_json[], linshard_default_config_json_end[];
extern const char linshard_default_model_safetensors[], linshard_default_model_safetensors_end[];

/* The symbols' addresses, subtracted as integers: they are distinct objects to C. */
static size_t span(const char *begin, const char *end) {
    return (size_t)((uintptr_t)end - (uintptr_t)begin);
}

int cli_default_model_open(model_source *src, char *err, size_t errlen) {
    /* Read in place: no copy to a temporary file at every start. */
    return model_source_open_memory(
        src, linshard_default_config_json,
        span(linshard_default_config_json, linshard_default_config_json_end),
        linshard_default_model_safetensors,
        span(linshard_default_model_safetensors, linshard_default_model_safetensors_end),
        "the built-in default model's", err, errlen);
}
