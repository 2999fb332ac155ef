/* architecture.h — how each family names its tensors in a Hugging Face checkpoint (a row of a
 * small table per family, architecture.c). The parameter table (params.c) builds every
 * checkpoint name from these pieces; nothing else spells a family's tensor names. */
#ifndef LINSHARD_ARCHITECTURE_H
#define LINSHARD_ARCHITECTURE_H

#include "linshard/model.h"

typedef struct {
    model_family family;
    const char *architecture;  /* config.json "architectures"[0] */
    const char *model_type;    /* config.json "model_type" */
    const char *accept_prefix; /* an optional prefix readers accept ("transformer."), or "" */
    const char *save_prefix;   /* the prefix linshard writes */
    int linear_transposed;     /* projections stored [out, in] (nn.Linear) rather than [in, out] */
    /* Global tensors (full names) and per-layer ones (after layer_fmt, without .weight/.bias). */
    const char *embed, *positions, *norm_f, *lm_head;
    const char *layer_fmt; /* printf format of a layer's prefix, with one %d */
    const char *norm1, *norm2;
    const char *qkv; /* one fused [E, 3E] projection (GPT-2), or NULL */
    const char *q, *k, *v, *o;
    const char *q_norm, *k_norm;
    const char *fc; /* the GELU MLP's first projection, or NULL */
    const char *gate, *up, *down;
    /* GGUF rows only: llama.cpp stores Q and K rows permuted within each head (adjacent RoPE
     * pairs instead of Hugging Face's halves); reading undoes it. */
    int qk_permuted;
} architecture;

/* The family's row. */
const architecture *architecture_of(model_family family);
/* The family's names in a GGUF file (llama.cpp's: token_embd, blk.N.attn_q, ...; every
 * projection stored [out, in]); architecture is general.architecture's value. */
const architecture *architecture_gguf(model_family family);
/* The family a GGUF general.architecture names, or -1 ("mistral" files say "llama"). */
int architecture_gguf_family(const char *general_architecture);
/* The row whose architecture (or, when arch is NULL, model_type) matches; NULL if none. */
const architecture *architecture_find(const char *arch, const char *model_type);

#endif
