"""PyTorch peer for `linshard bench forward` and `bench generate` on the Llama family, in torch.

The same command line and JSON output as torch_gpt2_forward.py (see its docstring), for
LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM and Qwen3ForCausalLM checkpoints;
torch_gpt2_forward.py hands such a directory to this script, so `linshard bench ...` needs no
change:

    torch_llama_forward.py MODEL_DIR --tokens-count 128,512 --threads N [--repeats R]
    torch_llama_forward.py MODEL_DIR --decode N --prompt-count T --threads K [--repeats R]
    torch_llama_forward.py MODEL_DIR --dump-logits FILE --tokens ID,ID,... [--double]

Forward and decode modes time and print exactly as the GPT-2 peer does (decode keeps, per layer,
K and V [kv_heads, T + N, head_dim], allocated once up front). --dump-logits writes the logits
[T, vocab] row-major little-endian, float32, or float64 with --double. --double computes
everything in float64 (weights, RoPE angles, norms, softmax): the cross-check of the C oracle
tests/llama_reference.c, which agrees with it to ~1e-15 relative. Train mode (--train-steps) is
GPT-2 only and is refused here.

The forward pass is written in plain torch ops after transformers' modeling_llama, modeling_qwen2
and modeling_qwen3 (eager attention): RMSNorm computed in float32 (float64 with --double) and
scaled by its weight, q/k/v projections (biases: always on Qwen2's q/k/v; Llama's and Qwen3's
q/k/v/o when "attention_bias"), Qwen3's per-head RMSNorm of q and k before RoPE, "rotate half"
RoPE (dimension i pairs with i + head_dim/2; inv_freq in float32 as transformers computes it,
rope_scaling "llama3" as _compute_llama3_parameters), causal grouped-query attention with scale
1/sqrt(head_dim) and softmax in float32, o_proj, then down(silu(gate(x)) * up(x)) (biases with
Llama's "mlp_bias"), the final norm and the LM head (embed_tokens when tie_word_embeddings).
GQA: query head h reads kv head h // (heads / kv_heads), as transformers' repeat_kv arranges it,
but by viewing the queries as [kv_heads, group * T, head_dim] instead of copying the keys and
values once per group: the same products, without a copy of the cache on every decode step.

MODEL_DIR is a Hugging Face directory: config.json, and model.safetensors or
model.safetensors.index.json with the shards its "weight_map" names (F32, F16 or BF16). Only
torch and numpy are needed. Errors: one line "torch_llama_forward: error: ..." on stderr, exit
status 1 (2: bad usage).
"""

import argparse
import json
import math
import os
import sys

import torch_gpt2_forward as gpt2  # the shared protocol: timing loops, threads, safetensors

PROG = "torch_llama_forward"

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:
    sys.exit("%s: error: %s (for %s)" % (PROG, e, sys.executable))

ModelError = gpt2.ModelError

ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral",
                 "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3"}


def is_llama_family(model_dir):
    """True when model_dir/config.json names one of ARCHITECTURES (or, without "architectures",
    its model_type); False for anything else, unreadable files included."""
    try:
        with open(os.path.join(model_dir, "config.json")) as f:
            config = json.load(f)
        return architecture(config) is not None
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def architecture(config):
    archs = config.get("architectures")
    if isinstance(archs, list) and archs:
        return ARCHITECTURES.get(archs[0])
    if config.get("model_type") in ARCHITECTURES.values():
        return config["model_type"]
    return None


def parse_args(argv):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n", 1)[0])
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--tokens-count", type=gpt2.int_list, help="token counts to time, e.g. 128,512")
    p.add_argument("--decode", type=int, metavar="N", help="time N greedy decode steps")
    p.add_argument("--prompt-count", type=int, metavar="T", help="prompt tokens for --decode")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op and OpenBLAS threads (default 1)")
    p.add_argument("--train-steps", type=int, metavar="N", help="(GPT-2 only)")
    p.add_argument("--batch", type=int, metavar="B", help="(GPT-2 only)")
    p.add_argument("--seq", type=int, metavar="T", help="(GPT-2 only)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed forwards per T, or timed decode runs (default 3)")
    p.add_argument("--dump-logits", metavar="FILE", help="write the logits of --tokens to FILE")
    p.add_argument("--tokens", type=gpt2.int_list, help="token ids for --dump-logits")
    p.add_argument("--double", action="store_true",
                   help="compute in float64 (and dump float64 logits)")
    args = p.parse_args(argv)
    if args.train_steps is not None:
        p.error("--train-steps: train mode is GPT-2 only (this is a Llama-family checkpoint)")
    if args.threads < 1 or args.repeats < 1:
        p.error("--threads and --repeats must be at least 1")
    modes = [args.tokens_count is not None, args.decode is not None,
             args.dump_logits is not None]
    if sum(modes) != 1:
        p.error("give exactly one of --tokens-count, --decode, --dump-logits")
    if args.dump_logits is not None:
        if not args.tokens:
            p.error("--dump-logits needs --tokens")
    elif args.decode is not None:
        if args.decode < 1 or args.prompt_count is None or args.prompt_count < 1:
            p.error("--decode needs a positive N and a positive --prompt-count")
    elif not args.tokens_count or min(args.tokens_count) < 1:
        p.error("--tokens-count needs positive counts")
    return args


def positive_int(config, key, default=None):
    value = config.get(key)
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError("config.json: %s missing or not a positive integer" % key)
    return value


def positive_number(config, key, default=None):
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ModelError("config.json: %s must be a positive number" % key)
    return float(value)


def read_config(path):
    """The config as a dict of what the forward pass needs, transformers' defaults filled in."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except ValueError as e:
        raise ModelError("%s: bad JSON: %s" % (path, e))
    if not isinstance(raw, dict):
        raise ModelError("%s: not a JSON object" % path)
    arch = architecture(raw)
    if arch is None:
        raise ModelError("config.json: architecture %r is not one of %s"
                         % (raw.get("architectures"), ", ".join(ARCHITECTURES)))
    c = {"arch": arch}
    for key in ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                "vocab_size", "max_position_embeddings"):
        c[key] = positive_int(raw, key)
    H = c["num_attention_heads"]
    c["num_key_value_heads"] = positive_int(raw, "num_key_value_heads", H)
    if H % c["num_key_value_heads"]:
        raise ModelError("config.json: num_attention_heads is not a multiple of "
                         "num_key_value_heads")
    if raw.get("head_dim") is None and c["hidden_size"] % H:
        raise ModelError("config.json: hidden_size is not a multiple of num_attention_heads")
    c["head_dim"] = positive_int(raw, "head_dim", c["hidden_size"] // H)
    if c["head_dim"] % 2:
        raise ModelError("config.json: head_dim must be even for RoPE")
    c["rms_norm_eps"] = positive_number(raw, "rms_norm_eps", 1e-6)
    c["tie_word_embeddings"] = bool(raw.get("tie_word_embeddings", False))
    if raw.get("hidden_act", "silu") != "silu":
        raise ModelError("config.json: hidden_act must be silu")
    if raw.get("partial_rotary_factor", 1.0) != 1.0:
        raise ModelError("config.json: partial_rotary_factor other than 1 is not supported")
    attention_bias, mlp_bias = bool(raw.get("attention_bias")), bool(raw.get("mlp_bias"))
    c["qkv_bias"] = {"llama": attention_bias, "mistral": False, "qwen2": True,
                     "qwen3": attention_bias}[arch]
    c["o_bias"] = attention_bias and arch in ("llama", "qwen3")
    c["mlp_bias"] = mlp_bias and arch == "llama"
    c["qk_norm"] = arch == "qwen3"
    window = raw.get("sliding_window")
    use_window = arch == "mistral" or (arch in ("qwen2", "qwen3") and raw.get("use_sliding_window"))
    c["sliding_window"] = window if use_window and window is not None else None
    c["rope_theta"] = positive_number(raw, "rope_theta", 10000.0)
    scaling = raw.get("rope_scaling")
    if scaling is None and isinstance(raw.get("rope_parameters"), dict):  # transformers 5
        scaling = raw["rope_parameters"]
        c["rope_theta"] = positive_number(scaling, "rope_theta", c["rope_theta"])
    c["rope_scaling"] = None
    if scaling is not None:
        kind = scaling.get("rope_type", scaling.get("type")) if isinstance(scaling, dict) else None
        if kind not in ("default", "llama3"):
            raise ModelError("config.json: rope_scaling type %r is not supported "
                             "(only null, default, llama3)" % kind)
        if kind == "llama3":
            c["rope_scaling"] = {key: positive_number(scaling, key) for key in
                                 ("factor", "low_freq_factor", "high_freq_factor",
                                  "original_max_position_embeddings")}
    return c


def load_weights(model_dir):
    """{name: float32 tensor} from model.safetensors, or from the shards the index names."""
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index_path):
        try:
            with open(index_path) as f:
                weight_map = json.load(f)["weight_map"]
            files = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ModelError("%s: no usable weight_map (%s)" % (index_path, e))
    else:
        weight_map, files = None, ["model.safetensors"]
    weights = {}
    for name in files:
        for key, array in gpt2.read_safetensors(os.path.join(model_dir, name)).items():
            if weight_map is None or weight_map.get(key) == name:
                weights[key] = torch.from_numpy(array)
    return weights


def expected_shapes(c):
    E, F_, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    QD = c["num_attention_heads"] * c["head_dim"]
    KD = c["num_key_value_heads"] * c["head_dim"]
    shapes = {"model.embed_tokens.weight": (V, E), "model.norm.weight": (E,)}
    if not c["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (V, E)
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        for name, shape in (("input_layernorm.weight", (E,)),
                            ("post_attention_layernorm.weight", (E,)),
                            ("self_attn.q_proj.weight", (QD, E)),
                            ("self_attn.k_proj.weight", (KD, E)),
                            ("self_attn.v_proj.weight", (KD, E)),
                            ("self_attn.o_proj.weight", (E, QD)),
                            ("mlp.gate_proj.weight", (F_, E)), ("mlp.up_proj.weight", (F_, E)),
                            ("mlp.down_proj.weight", (E, F_))):
            shapes[p + name] = shape
        if c["qkv_bias"]:
            shapes[p + "self_attn.q_proj.bias"] = (QD,)
            shapes[p + "self_attn.k_proj.bias"] = shapes[p + "self_attn.v_proj.bias"] = (KD,)
        if c["o_bias"]:
            shapes[p + "self_attn.o_proj.bias"] = (E,)
        if c["qk_norm"]:
            shapes[p + "self_attn.q_norm.weight"] = (c["head_dim"],)
            shapes[p + "self_attn.k_norm.weight"] = (c["head_dim"],)
        if c["mlp_bias"]:
            shapes[p + "mlp.gate_proj.bias"] = shapes[p + "mlp.up_proj.bias"] = (F_,)
            shapes[p + "mlp.down_proj.bias"] = (E,)
    return shapes


def load_model(model_dir, dtype):
    """Returns (config, {name: contiguous tensor of dtype}) holding exactly the weights used."""
    config = read_config(os.path.join(model_dir, "config.json"))
    weights = load_weights(model_dir)
    used = {}
    for name, shape in expected_shapes(config).items():
        if name not in weights:
            raise ModelError("%s: missing tensor %s" % (model_dir, name))
        if tuple(weights[name].shape) != shape:
            raise ModelError("%s: %s has shape %s, expected %s"
                             % (model_dir, name, list(weights[name].shape), list(shape)))
        used[name] = weights[name].to(dtype).contiguous()
    return config, used


def rope_inv_freq(c, dtype):
    """inv_freq [head_dim / 2] as transformers computes it (in float32; dtype float64 for the
    cross-check), with the llama3 rope_scaling of _compute_llama3_parameters."""
    D, base = c["head_dim"], c["rope_theta"]
    inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.int64).to(dtype) / D))
    s = c["rope_scaling"]
    if s is None:
        return inv_freq
    factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old_context_len = s["original_max_position_embeddings"]
    low_freq_wavelen, high_freq_wavelen = old_context_len / low, old_context_len / high
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, inv_freq_llama)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class KVCache:
    """Each layer's keys and values, [kv_heads, capacity, head_dim], filled from position 0 on;
    allocated once at full capacity, like the GPT-2 peer's."""

    def __init__(self, n_layer, n_kv, head_dim, capacity, dtype):
        shape = (n_kv, capacity, head_dim)
        self.k = [torch.empty(shape, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.empty(shape, dtype=dtype) for _ in range(n_layer)]
        self.capacity = capacity
        self.length = 0  # positions filled in every layer

    def append(self, layer, k, v):
        end = self.length + k.shape[1]
        if end > self.capacity:
            raise RuntimeError("KV cache full: %d positions needed, capacity %d"
                               % (end, self.capacity))
        self.k[layer][:, self.length : end] = k
        self.v[layer][:, self.length : end] = v
        return self.k[layer][:, :end], self.v[layer][:, :end]


class Llama:
    """A Llama-family decoder over one sequence of token ids: a full forward pass, or extending a
    KV cache by new tokens. The same interface as torch_gpt2_forward.GPT2, for its timing loops."""

    def __init__(self, config, weights, dtype):
        self.c, self.w, self.dtype = config, weights, dtype
        self.n_layer = config["num_hidden_layers"]
        self.H, self.KV, self.D = (config["num_attention_heads"], config["num_key_value_heads"],
                                   config["head_dim"])
        self.vocab_size = config["vocab_size"]
        self.n_positions = config["max_position_embeddings"]
        if config["sliding_window"] is not None:
            self.n_positions = min(self.n_positions, config["sliding_window"])
        self.eps = config["rms_norm_eps"]
        # RMSNorm and softmax run in at least float32, as transformers does them.
        self.compute = torch.float64 if dtype == torch.float64 else torch.float32
        # RoPE tables for every position, in float32 as transformers computes them (float64 with
        # --double), then cast to the model's dtype: cos, sin [positions, head_dim].
        inv_freq = rope_inv_freq(config, self.compute)
        pos = torch.arange(self.n_positions, dtype=torch.int64).to(self.compute)
        freqs = torch.outer(pos, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = emb.cos().to(dtype), emb.sin().to(dtype)
        P = self.n_positions
        self.future = torch.ones(P, P, dtype=torch.bool).triu_(1)  # True above the diagonal
        self.head = weights["model.embed_tokens.weight" if config["tie_word_embeddings"]
                            else "lm_head.weight"]

    def __call__(self, tokens):
        """Returns the logits [T, vocab] for token ids (a 1-D int64 tensor)."""
        return self.logits(self.hidden(tokens))

    def new_cache(self, capacity):
        return KVCache(self.n_layer, self.KV, self.D, capacity, self.dtype)

    def extend(self, tokens, cache):
        """Runs tokens at positions cache.length.. through the model, adding their keys and values
        to cache; returns the logits [vocab] of the last of them only."""
        x = self.hidden(tokens, cache)
        cache.length += tokens.shape[0]
        return self.logits(x[-1:])[0]

    def hidden(self, tokens, cache=None):
        """The last layer's output [T, E] for tokens at positions start.. (0, or cache.length)."""
        T = tokens.shape[0]
        start = cache.length if cache is not None else 0
        x = self.w["model.embed_tokens.weight"][tokens]
        cos, sin = self.cos[start : start + T], self.sin[start : start + T]
        future = self.future[start : start + T, : start + T] if T > 1 else None
        for i in range(self.n_layer):
            p = "model.layers.%d." % i
            x = x + self.attention(self.rms_norm(x, p + "input_layernorm.weight"), p + "self_attn.",
                                   cos, sin, future, cache, i)
            x = x + self.mlp(self.rms_norm(x, p + "post_attention_layernorm.weight"), p + "mlp.")
        return x

    def logits(self, x):
        x = self.rms_norm(x, "model.norm.weight")
        if x.shape[0] == 1:  # one row: gemv, see linear
            return torch.mv(self.head, x[0]).unsqueeze(0)
        return F.linear(x, self.head)

    def rms_norm(self, x, name):
        """transformers' LlamaRMSNorm: x / sqrt(mean(x^2) + eps) in float32, cast back, * w."""
        h = x.to(self.compute)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.w[name] * h.to(x.dtype)

    def linear(self, x, name, bias):
        """x W^T (+ b), W in nn.Linear's [out, in]. A single row goes to BLAS gemv: torch 1.13
        sends a 1-row addmm to sgemm, which is 2-3 times slower (see the GPT-2 peer)."""
        w = self.w[name + ".weight"]
        b = self.w[name + ".bias"] if bias else None
        if x.shape[0] == 1:
            y = torch.mv(w, x[0]) if b is None else torch.addmv(b, w, x[0])
            return y.unsqueeze(0)
        return F.linear(x, w, b)

    def attention(self, x, prefix, cos, sin, future, cache, layer):
        """Causal grouped-query self-attention of x [T, E]; with a cache, over its keys and
        values too. future [T, S] (True: masked) or None; S = the positions attended to."""
        c = self.c
        T, H, KV, D = x.shape[0], self.H, self.KV, self.D
        q = self.linear(x, prefix + "q_proj", c["qkv_bias"]).view(T, H, D)
        k = self.linear(x, prefix + "k_proj", c["qkv_bias"]).view(T, KV, D)
        v = self.linear(x, prefix + "v_proj", c["qkv_bias"]).view(T, KV, D)
        if c["qk_norm"]:  # Qwen3: each head's q and k normalised over D, before RoPE
            q = self.rms_norm(q, prefix + "q_norm.weight")
            k = self.rms_norm(k, prefix + "k_norm.weight")
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [heads, T, D]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            k, v = cache.append(layer, k, v)  # [KV, S, D]
        S = k.shape[1]
        # Query head h = g * group + j reads kv head g (repeat_kv's order): view the queries as
        # [KV, group * T, D] and multiply each kv head's keys once.
        group = H // KV
        qg = q.reshape(KV, group * T, D)
        scores = torch.bmm(qg, k.transpose(1, 2)).mul_(1.0 / math.sqrt(D))  # [KV, group*T, S]
        scores = scores.view(KV, group, T, S)
        if future is not None:
            scores.masked_fill_(future, float("-inf"))
        probs = torch.softmax(scores, dim=-1, dtype=self.compute).to(q.dtype)
        y = torch.bmm(probs.view(KV, group * T, S), v)  # [KV, group*T, D]
        y = y.view(H, T, D).transpose(0, 1).reshape(T, H * D)
        return self.linear(y, prefix + "o_proj", c["o_bias"])

    def mlp(self, x, prefix):
        bias = self.c["mlp_bias"]
        gate = self.linear(x, prefix + "gate_proj", bias)
        up = self.linear(x, prefix + "up_proj", bias)
        return self.linear(F.silu(gate) * up, prefix + "down_proj", bias)


def dump_logits(model, token_ids, path):
    bad = [t for t in token_ids if not 0 <= t < model.vocab_size]
    if bad:
        raise ModelError("token id %d is outside the vocabulary [0, %d)"
                         % (bad[0], model.vocab_size))
    logits = model(torch.tensor(token_ids, dtype=torch.int64))
    fmt = "<f8" if model.dtype == torch.float64 else "<f4"
    logits.numpy().astype(fmt, copy=False).tofile(path)
    print("wrote %s" % path)


def main(argv):
    args = parse_args(argv)
    gpt2.set_threads(args.threads)
    dtype = torch.float64 if args.double else torch.float32
    try:
        with torch.inference_mode():
            model = Llama(*load_model(args.model_dir, dtype), dtype)
            if args.dump_logits is not None:
                positions, what = len(args.tokens), "%d tokens" % len(args.tokens)
            elif args.decode is not None:
                positions = args.prompt_count + args.decode
                what = "%d prompt + %d new tokens" % (args.prompt_count, args.decode)
            else:
                positions = max(args.tokens_count)
                what = "%d tokens" % positions
            if positions > model.n_positions:
                print("%s: error: %s is more than max_position_embeddings (or the sliding "
                      "window): %d" % (PROG, what, model.n_positions), file=sys.stderr)
                return 2
            if args.dump_logits is not None:
                dump_logits(model, args.tokens, args.dump_logits)
            elif args.decode is not None:
                gpt2.bench_decode(model, args.prompt_count, args.decode, args.threads,
                                  args.repeats)
            else:
                gpt2.bench(model, args.tokens_count, args.threads, args.repeats)
    except (ModelError, OSError, RuntimeError, MemoryError) as e:
        print("%s: error: %s" % (PROG, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
