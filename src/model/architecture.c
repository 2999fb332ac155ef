/* architecture.c — the families' tensor names (see architecture.h). GPT-2 stores its
 * projections as Conv1D weights, [in, out]; the Llama family as nn.Linear, [out, in]. */
#include "architecture.h"

#include <string.h>

#define LLAMA_NAMES                                                                                \
    1, "model.embed_tokens.weight", NULL, "model.norm", "lm_head.weight", "model.layers.%d.",      \
        "input_layernorm", "post_attention_layernorm", NULL, "self_attn.q_proj",                   \
        "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "self_attn.q_norm",            \
        "self_attn.k_norm", NULL, "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", 0

static const architecture architectures[] = {
    {FAMILY_GPT2,
     "GPT2LMHeadModel",
     "gpt2",
     "transformer.",
     "transformer.",
     0,
     "wte.weight",
     "wpe.weight",
     "ln_f",
     "lm_head.weight",
     "h.%d.",
     "ln_1",
     "ln_2",
     "attn.c_attn",
     NULL,
     NULL,
     NULL,
     "attn.c_proj",
     NULL,
     NULL,
     "mlp.c_fc",
     NULL,
     NULL,
     "mlp.c_proj",
     0},
    {FAMILY_LLAMA, "LlamaForCausalLM", "llama", "", "", LLAMA_NAMES},
    {FAMILY_MISTRAL, "MistralForCausalLM", "mistral", "", "", LLAMA_NAMES},
    {FAMILY_QWEN2, "Qwen2ForCausalLM", "qwen2", "", "", LLAMA_NAMES},
    {FAMILY_QWEN3, "Qwen3ForCausalLM", "qwen3", "", "", LLAMA_NAMES},
};

#define N_ARCH (sizeof(architectures) / sizeof(architectures[0]))

const architecture *architecture_of(model_family family) {
    for (size_t i = 0; i < N_ARCH; i++)
        if (architectures[i].family == family) return &architectures[i];
    return &architectures[0];
}

const architecture *architecture_find(const char *arch, const char *model_type) {
    for (size_t i = 0; i < N_ARCH; i++)
        if ((arch && !strcmp(arch, architectures[i].architecture)) ||
            (!arch && model_type && !strcmp(model_type, architectures[i].model_type)))
            return &architectures[i];
    return NULL;
}

/* llama.cpp's names (its convert_hf_to_gguf.py / gguf-py tensor map). */
#define GGUF_LLAMA_NAMES(permuted)                                                                 \
    "", "", 1, "token_embd.weight", NULL, "output_norm", "output.weight", "blk.%d.", "attn_norm",  \
        "ffn_norm", NULL, "attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm",              \
        "attn_k_norm", NULL, "ffn_gate", "ffn_up", "ffn_down", permuted

static const architecture gguf_architectures[] = {
    {FAMILY_GPT2,
     "gpt2",
     "gpt2",
     "",
     "",
     1,
     "token_embd.weight",
     "position_embd.weight",
     "output_norm",
     "output.weight",
     "blk.%d.",
     "attn_norm",
     "ffn_norm",
     "attn_qkv",
     NULL,
     NULL,
     NULL,
     "attn_output",
     NULL,
     NULL,
     "ffn_up",
     NULL,
     NULL,
     "ffn_down",
     0},
    {FAMILY_LLAMA, "llama", "llama", GGUF_LLAMA_NAMES(1)},
    {FAMILY_MISTRAL, "llama", "llama", GGUF_LLAMA_NAMES(1)},
    {FAMILY_QWEN2, "qwen2", "qwen2", GGUF_LLAMA_NAMES(0)},
    {FAMILY_QWEN3, "qwen3", "qwen3", GGUF_LLAMA_NAMES(0)},
};

const architecture *architecture_gguf(model_family family) {
    for (size_t i = 0; i < sizeof(gguf_architectures) / sizeof(gguf_architectures[0]); i++)
        if (gguf_architectures[i].family == family) return &gguf_architectures[i];
    return &gguf_architectures[0];
}

int architecture_gguf_family(const char *name) {
    for (size_t i = 0; i < sizeof(gguf_architectures) / sizeof(gguf_architectures[0]); i++)
        if (!strcmp(name, gguf_architectures[i].architecture))
            return (int)gguf_architectures[i].family;
    return -1;
}

const char *model_family_architecture(model_family f) {
    return architecture_of(f)->architecture;
}
