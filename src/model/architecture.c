/* architecture.c — the families' tensor names (see architecture.h). GPT-2 stores its
 * projections as Conv1D weights, [in, out]; the Llama family as nn.Linear, [out, in]. */
#include "architecture.h"

#include <string.h>

#define LLAMA_NAMES                                                                                \
    1, "model.embed_tokens.weight", NULL, "model.norm", "lm_head.weight", "model.layers.%d.",      \
        "input_layernorm", "post_attention_layernorm", NULL, "self_attn.q_proj",                   \
        "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "self_attn.q_norm",            \
        "self_attn.k_norm", NULL, "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"

static const architecture architectures[] = {
    {FAMILY_GPT2,    "GPT2LMHeadModel",
     "gpt2",         "transformer.",
     "transformer.", 0,
     "wte.weight",   "wpe.weight",
     "ln_f",         "lm_head.weight",
     "h.%d.",        "ln_1",
     "ln_2",         "attn.c_attn",
     NULL,           NULL,
     NULL,           "attn.c_proj",
     NULL,           NULL,
     "mlp.c_fc",     NULL,
     NULL,           "mlp.c_proj"},
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

const char *model_family_architecture(model_family f) {
    return architecture_of(f)->architecture;
}
