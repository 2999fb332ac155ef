/* llama_reference.h — an independent, deliberately plain double-precision forward pass of the
 * Llama family (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM), used
 * only by tests as the oracle that sharded runs are compared against.
 *
 * Like gpt2_reference.h it shares nothing with the sharded implementation except the safetensors
 * reader (and cJSON for config.json): every weight is converted to double and the forward pass is
 * written as simple loops, so that it is easy to check by reading against Hugging Face's
 * modeling_llama / modeling_qwen2 / modeling_qwen3. It is slow by design.
 *
 * Supported exactly as transformers computes it: grouped-query attention, "rotate half" RoPE
 * (rope_theta; rope_scaling null, "default" or "llama3"), optional q/k/v(/o) biases (Qwen2
 * always has q/k/v biases; Llama and Qwen3 when "attention_bias": true), optional MLP biases
 * (Llama "mlp_bias"), Qwen3's per-head q/k RMSNorm, head_dim != hidden_size / num_heads, tied or
 * untied LM head, and weights in one model.safetensors or sharded as named by
 * model.safetensors.index.json. Anything else (another rope type, an activation other than silu,
 * a sliding window shorter than T) is refused with a one-line message rather than computed
 * wrongly. */
#ifndef LINSHARD_TESTS_LLAMA_REFERENCE_H
#define LINSHARD_TESTS_LLAMA_REFERENCE_H

#include <stddef.h>

/* Logits of the unsharded model in the Hugging Face directory model_dir (config.json, plus
 * model.safetensors or model.safetensors.index.json and the files it names) for the token ids
 * tokens[0..T) at positions 0..T-1, computed in double precision. logits has T * vocab_size
 * entries, row-major [T, vocab]. Returns 0, or -1 with a one-line message in err. */
int llama_reference_logits(const char *model_dir, const int *tokens, int T, double *logits,
                           char *err, size_t errlen);

/* vocab_size from model_dir/config.json (after checking the whole config is supported), or -1
 * with a message. */
int llama_reference_vocab(const char *model_dir, char *err, size_t errlen);

#endif
