#!/usr/bin/env python3
"""Writes small random Llama-family checkpoints in the Hugging Face layout, for cross-checking the
C oracle tests/llama_reference.c against bench/torch_llama_forward.py --double. A development
tool: CI does not run it (it needs numpy, nothing else).

    make_llama_checkpoint.py OUT_DIR --variant NAME [--dtype F32|BF16] [--shards 1|2] [--seed S]
    make_llama_checkpoint.py --all OUT_ROOT     # every variant, as OUT_ROOT/<variant>
    make_llama_checkpoint.py --list

Each variant is config.json plus model.safetensors, or with --shards 2 two files
model-0000{1,2}-of-00002.safetensors and model.safetensors.index.json. The safetensors files are
written by hand (struct + numpy). Weights are random with scales that keep every part of the
computation visible: linear weights N(0, 1/in) so attention scores are O(1) and not uniform,
norm weights 1 + N(0, 0.2^2) (never exactly 1), biases N(0, 0.3^2), embeddings N(0, 1).
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

BASE = dict(layers=2, hidden=48, heads=6, kv=2, inter=80, vocab=101, ctx=64)

# name: (architecture, overrides of BASE, extra config.json keys, dtype, shards)
VARIANTS = {
    "llama": ("LlamaForCausalLM", {}, {}, "F32", 1),
    "llama_tied": ("LlamaForCausalLM", {}, {"tie_word_embeddings": True}, "F32", 1),
    "llama_mqa": ("LlamaForCausalLM", {"kv": 1}, {}, "F32", 1),
    "llama_mha": ("LlamaForCausalLM", {"kv": 6}, {}, "F32", 1),
    "llama_bias": ("LlamaForCausalLM", {}, {"attention_bias": True, "mlp_bias": True}, "F32", 1),
    "llama3_rope": ("LlamaForCausalLM", {}, {
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        "tie_word_embeddings": True}, "F32", 1),
    "llama_bf16_sharded": ("LlamaForCausalLM", {}, {}, "BF16", 2),
    "mistral": ("MistralForCausalLM", {}, {"sliding_window": 4096}, "F32", 1),
    "qwen2": ("Qwen2ForCausalLM", {}, {"tie_word_embeddings": True, "rope_theta": 1000000.0},
              "F32", 1),
    "qwen2_untied": ("Qwen2ForCausalLM", {"kv": 1}, {}, "F32", 2),
    "qwen3": ("Qwen3ForCausalLM", {}, {"head_dim": 12, "rope_theta": 1000000.0}, "F32", 1),
    "qwen3_tied_bias": ("Qwen3ForCausalLM", {"kv": 3}, {
        "head_dim": 12, "tie_word_embeddings": True, "attention_bias": True}, "BF16", 1),
}

MODEL_TYPES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral",
               "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3"}


def make_config(arch, dims, extra):
    config = {
        "architectures": [arch], "model_type": MODEL_TYPES[arch],
        "hidden_size": dims["hidden"], "intermediate_size": dims["inter"],
        "num_hidden_layers": dims["layers"], "num_attention_heads": dims["heads"],
        "num_key_value_heads": dims["kv"], "vocab_size": dims["vocab"],
        "max_position_embeddings": dims["ctx"], "rms_norm_eps": 1e-5, "hidden_act": "silu",
        "rope_theta": 10000.0, "rope_scaling": None, "tie_word_embeddings": False,
        "torch_dtype": "float32",
    }
    config.update(extra)
    return config


def make_weights(config, rng):
    """{name: float32 array} in Hugging Face names and layouts, as transformers' modules hold."""
    arch = config["model_type"]
    E, F, V = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    H, KV = config["num_attention_heads"], config["num_key_value_heads"]
    D = config.get("head_dim") or E // H
    attention_bias = bool(config.get("attention_bias"))
    qkv_bias = {"llama": attention_bias, "mistral": False, "qwen2": True,
                "qwen3": attention_bias}[arch]
    o_bias = attention_bias and arch in ("llama", "qwen3")
    mlp_bias = bool(config.get("mlp_bias")) and arch == "llama"

    def linear(n_out, n_in):
        return rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in))

    def norm(n):
        return 1 + rng.normal(0, 0.2, n)

    def bias(n):
        return rng.normal(0, 0.3, n)

    w = {"model.embed_tokens.weight": rng.normal(0, 1, (V, E))}
    for i in range(config["num_hidden_layers"]):
        p = "model.layers.%d." % i
        w[p + "input_layernorm.weight"] = norm(E)
        for name, n_out in (("q_proj", H * D), ("k_proj", KV * D), ("v_proj", KV * D)):
            w[p + "self_attn.%s.weight" % name] = linear(n_out, E)
            if qkv_bias:
                w[p + "self_attn.%s.bias" % name] = bias(n_out)
        w[p + "self_attn.o_proj.weight"] = linear(E, H * D)
        if o_bias:
            w[p + "self_attn.o_proj.bias"] = bias(E)
        if arch == "qwen3":
            w[p + "self_attn.q_norm.weight"] = norm(D)
            w[p + "self_attn.k_norm.weight"] = norm(D)
        w[p + "post_attention_layernorm.weight"] = norm(E)
        for name, shape in (("gate_proj", (F, E)), ("up_proj", (F, E)), ("down_proj", (E, F))):
            w[p + "mlp.%s.weight" % name] = linear(*shape)
            if mlp_bias:
                w[p + "mlp.%s.bias" % name] = bias(shape[0])
    w["model.norm.weight"] = norm(E)
    if not config["tie_word_embeddings"]:
        w["lm_head.weight"] = linear(V, E)
    return {name: a.astype(np.float32) for name, a in w.items()}


def to_bf16(a):
    """float32 -> bfloat16 bits (uint16), round to nearest even (no NaNs here)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path, tensors, dtype):
    """tensors: [(name, float32 array)], written in that order as dtype (F32 or BF16)."""
    header, blobs, offset = {}, [], 0
    for name, a in tensors:
        raw = (to_bf16(a) if dtype == "BF16" else a.astype("<f4")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data section starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def write_checkpoint(out_dir, variant, dtype=None, shards=None, seed=1):
    arch, dims_over, extra, v_dtype, v_shards = VARIANTS[variant]
    dtype, shards = dtype or v_dtype, shards or v_shards
    dims = dict(BASE, **dims_over)
    config = make_config(arch, dims, extra)
    if dtype == "BF16":
        config["torch_dtype"] = "bfloat16"
    rng = np.random.default_rng(seed)
    weights = make_weights(config, rng)
    os.makedirs(out_dir, exist_ok=True)
    for stale in os.listdir(out_dir):
        if stale.endswith(".safetensors") or stale == "model.safetensors.index.json":
            os.remove(os.path.join(out_dir, stale))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    items = list(weights.items())
    if shards == 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), items, dtype)
        return
    # Two shards, split in the middle of the list (so one layer's tensors straddle the files).
    half = len(items) // 2
    weight_map = {}
    for k, part in enumerate((items[:half], items[half:])):
        name = "model-%05d-of-%05d.safetensors" % (k + 1, 2)
        write_safetensors(os.path.join(out_dir, name), part, dtype)
        weight_map.update({n: name for n, _ in part})
    total = sum(a.size * (2 if dtype == "BF16" else 4) for _, a in items)
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("out", nargs="?", metavar="OUT_DIR")
    p.add_argument("--variant", choices=sorted(VARIANTS))
    p.add_argument("--dtype", choices=("F32", "BF16"))
    p.add_argument("--shards", type=int, choices=(1, 2))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--all", action="store_true", help="every variant under OUT_DIR/<variant>")
    p.add_argument("--list", action="store_true")
    args = p.parse_args(argv)
    if args.list:
        for name, (arch, dims, extra, dtype, shards) in VARIANTS.items():
            print("%-20s %s %s %s %s shard(s) %s" % (name, arch, dict(BASE, **dims), dtype, shards,
                                                     json.dumps(extra)))
        return 0
    if not args.out or (args.all == bool(args.variant)):
        p.error("give OUT_DIR and exactly one of --variant NAME, --all")
    for i, name in enumerate(sorted(VARIANTS) if args.all else [args.variant]):
        out = os.path.join(args.out, name) if args.all else args.out
        write_checkpoint(out, name, args.dtype, args.shards, args.seed + i)
        print("wrote %s (%s)" % (out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
