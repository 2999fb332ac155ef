"""PyTorch peer for `linshard bench forward`, `bench generate` and `bench train`: GPT-2 in float32 torch.

Forward mode: `linshard bench forward` runs this script in the same benchmark run as the C
forward pass and reads one JSON line per token count from stdout:

    torch_gpt2_forward.py MODEL_DIR --tokens-count 128,512 --threads N [--repeats R]

prints {"backend": "pytorch", "torch_version": ..., "threads": N, "T": T, "seconds": best,
"tokens_per_s": T / best} for each T, where best is the fastest of R timed forwards (after one
warm-up) over the tokens (t * 7919 + 13) % vocab, t = 0..T-1. Every forward computes the full
[T, vocab] logits, as the C program does. Loading is not timed. N threads means N for torch's
intra-op pool and N for OpenBLAS's (Debian's torch does its matmuls there), one inter-op thread.

Decode mode: `linshard bench generate` times greedy decoding with a KV cache:

    torch_gpt2_forward.py MODEL_DIR --decode N --prompt-count T --threads K [--repeats R]

prefills the T prompt tokens (t * 7919 + 13) % vocab into a KV cache (per layer, K and V
[heads, T + N, head_dim], allocated once up front), takes the argmax of the last logits, then
runs N decode steps: each feeds the newest token alone through the layers, attending to the
cache, and takes the argmax of its logits. Only the N steps are timed (not the prefill); the
fastest of R timed runs (after one warm-up) is reported as one JSON line:
{"backend": "pytorch", "mode": "decode", "torch_version": ..., "threads": K, "T": T,
"new_tokens": N, "seconds": best, "tokens_per_s": N / best, "tokens": [...]}, where tokens
are the N + 1 greedy ids of the last run: the prefill's argmax, then one per decode step
(the last one is never fed back, so the run fills exactly T + N positions).

Train mode: `linshard bench train` times training steps:

    torch_gpt2_forward.py MODEL_DIR --train-steps N --batch B --seq T --threads K [--repeats R]

makes every weight a trainable float32 leaf tensor (the LM head is wte itself, so wte's
gradient gathers both uses) and builds B sequences of T + 1 ids, ids[b][t] =
((b * 131 + t) * 7919 + 13) % vocab. One step: the forward of ids[:, :T] as one [B, T] batch
(causal attention), the mean cross-entropy of the [B*T, vocab] logits against ids[:, 1:],
backward, torch.nn.utils.clip_grad_norm_(params, 1.0), an AdamW step (lr 1e-3, betas
(0.9, 0.95), weight_decay 0.1) and zero_grad. After one warm-up step, R runs of N steps are
timed (default R = 2; the weights keep training across them) and the fastest run is reported
as one JSON line: {"backend": "pytorch", "mode": "train", "torch_version": ..., "threads": K,
"batch": B, "seq": T, "steps": N, "seconds_per_step": best / N, "tokens_per_s":
B * T * N / best, "first_loss": the loss of the first timed step}.

    torch_gpt2_forward.py MODEL_DIR --dump-logits FILE --tokens ID,ID,...

writes the float32 logits [T, vocab] (row-major, little-endian, nothing else) to FILE instead,
for cross-checking the C implementation.

MODEL_DIR is a Hugging Face GPT-2 directory (config.json + model.safetensors); the safetensors
file is parsed here, so only torch and numpy are needed. A Llama-family directory (config.json
naming LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM or Qwen3ForCausalLM) is handed,
with the same arguments, to torch_llama_forward.py beside this script: the same protocol, no
train mode. Progress and errors go to stderr;
an error is one line starting "torch_gpt2_forward: error: " and exit status 1 (2: bad usage).
"""

import argparse
import contextlib
import ctypes
import json
import math
import os
import struct
import sys
import time

PROG = "torch_gpt2_forward"

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    sys.exit("%s: error: %s (for %s)" % (PROG, e, sys.executable))


class ModelError(Exception):
    """A missing or malformed checkpoint."""


def parse_args(argv):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n", 1)[0])
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--tokens-count", type=int_list, help="token counts to time, e.g. 128,512")
    p.add_argument("--decode", type=int, metavar="N", help="time N greedy decode steps")
    p.add_argument("--prompt-count", type=int, metavar="T", help="prompt tokens for --decode")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op and OpenBLAS threads (default 1)")
    p.add_argument("--train-steps", type=int, metavar="N", help="time N training steps")
    p.add_argument("--batch", type=int, metavar="B", help="sequences per step for --train-steps")
    p.add_argument("--seq", type=int, metavar="T", help="tokens per sequence for --train-steps")
    p.add_argument("--repeats", type=int,
                   help="timed forwards per T, or timed decode runs (default 3), "
                        "or timed runs of N training steps (default 2)")
    p.add_argument("--dump-logits", metavar="FILE", help="write the logits of --tokens to FILE")
    p.add_argument("--tokens", type=int_list, help="token ids for --dump-logits")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.train_steps is not None else 3
    if args.threads < 1 or args.repeats < 1:
        p.error("--threads and --repeats must be at least 1")
    modes = [args.tokens_count is not None, args.decode is not None,
             args.dump_logits is not None, args.train_steps is not None]
    if sum(modes) != 1:
        p.error("give exactly one of --tokens-count, --decode, --dump-logits, --train-steps")
    if args.train_steps is not None:
        if args.train_steps < 1 or not args.batch or args.batch < 1 or not args.seq or args.seq < 1:
            p.error("--train-steps needs a positive N, --batch and --seq")
    elif args.dump_logits is not None:
        if not args.tokens:
            p.error("--dump-logits needs --tokens")
    elif args.decode is not None:
        if args.decode < 1 or args.prompt_count is None or args.prompt_count < 1:
            p.error("--decode needs a positive N and a positive --prompt-count")
    elif not args.tokens_count or min(args.tokens_count) < 1:
        p.error("--tokens-count needs positive counts")
    return args


def int_list(text):
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated integers: %r" % text)


def set_threads(n):
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set, or parallel work has started; harmless for this benchmark
    set_openblas_threads(n)


def set_openblas_threads(n):
    """Sizes OpenBLAS's own thread pool, which torch.set_num_threads does not reach.

    Debian's torch does its matmuls in OpenBLAS (pthreads build), whose pool defaults to one
    thread per core; left alone, --threads 1 would run every matmul on all cores. torch has
    already loaded the library, so dlopen by soname returns that copy. Other BLASes: no-op.
    """
    try:
        ctypes.CDLL("libopenblas.so.0").openblas_set_num_threads(n)
    except (OSError, AttributeError):
        pass


def read_safetensors(path):
    """Returns {name: float32 numpy array} for every tensor in a .safetensors file."""
    if os.path.getsize(path) < 8:
        raise ModelError("%s: too short for a safetensors header" % path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    (header_len,) = struct.unpack("<Q", data[:8].tobytes())
    if 8 + header_len > data.size:
        raise ModelError("%s: header length %d runs past the end" % (path, header_len))
    try:
        header = json.loads(data[8 : 8 + header_len].tobytes())
    except ValueError as e:
        raise ModelError("%s: bad JSON header: %s" % (path, e))
    if not isinstance(header, dict):
        raise ModelError("%s: the header is not a JSON object" % path)
    body = data[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        if name != "__metadata__":
            tensors[name] = decode_tensor(path, name, info, body)
    return tensors


def decode_tensor(path, name, info, body):
    dtypes = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}
    try:
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        begin, end, shape = int(begin), int(end), [int(n) for n in shape]
    except (KeyError, TypeError, ValueError):
        raise ModelError("%s: %s needs dtype, shape and data_offsets [begin, end]" % (path, name))
    if dtype not in dtypes:
        raise ModelError("%s: %s has unsupported dtype %s" % (path, name, dtype))
    count = math.prod(shape)
    nbytes = count * np.dtype(dtypes[dtype]).itemsize
    if not 0 <= begin <= end <= body.size or end - begin != nbytes:
        raise ModelError("%s: %s has bad data_offsets %s" % (path, name, [begin, end]))
    raw = np.frombuffer(body, dtype=dtypes[dtype], count=count, offset=begin)
    if dtype == "BF16":
        raw = (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32).reshape(shape)  # a copy: contiguous, off the memmap


def load_model(model_dir):
    """Returns (config dict, {name without "transformer.": contiguous float32 tensor})."""
    config = read_config(os.path.join(model_dir, "config.json"))
    arrays = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    weights = {}
    for name, array in arrays.items():
        short = name[len("transformer.") :] if name.startswith("transformer.") else name
        weights[short] = torch.from_numpy(array)
    check_shapes(config, weights)
    return config, weights


def read_config(path):
    try:
        with open(path) as f:
            config = json.load(f)
    except ValueError as e:
        raise ModelError("%s: bad JSON: %s" % (path, e))
    if not isinstance(config, dict):
        raise ModelError("%s: not a JSON object" % path)
    for key in ("n_layer", "n_embd", "n_head", "vocab_size", "n_positions"):
        if not isinstance(config.get(key), int) or config[key] < 1:
            raise ModelError("config.json: %s missing or not a positive integer" % key)
    eps = config.setdefault("layer_norm_epsilon", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps <= 1:
        raise ModelError("config.json: layer_norm_epsilon must be a number in (0, 1]")
    if config["n_embd"] % config["n_head"]:
        raise ModelError("config.json: n_embd is not a multiple of n_head")
    act = config.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu"):
        raise ModelError("config.json: unsupported activation_function %r" % act)
    return config


def check_shapes(config, w):
    V, E, P = config["vocab_size"], config["n_embd"], config["n_positions"]
    expected = {"wte.weight": (V, E), "wpe.weight": (P, E), "ln_f.weight": (E,), "ln_f.bias": (E,)}
    for i in range(config["n_layer"]):
        h = "h.%d." % i
        for ln in ("ln_1", "ln_2"):
            expected[h + ln + ".weight"] = expected[h + ln + ".bias"] = (E,)
        for layer, n_in, n_out in (("attn.c_attn", E, 3 * E), ("attn.c_proj", E, E),
                                   ("mlp.c_fc", E, 4 * E), ("mlp.c_proj", 4 * E, E)):
            expected[h + layer + ".weight"] = (n_in, n_out)
            expected[h + layer + ".bias"] = (n_out,)
    for name, shape in expected.items():
        if name not in w:
            raise ModelError("model.safetensors: missing tensor %s" % name)
        if tuple(w[name].shape) != shape:
            raise ModelError("model.safetensors: %s has shape %s, expected %s"
                             % (name, list(w[name].shape), list(shape)))


class KVCache:
    """Each layer's keys and values, [heads, capacity, head_dim], filled from position 0 on.

    Allocated once at full capacity: appending writes into it in place, where growing the
    tensors with torch.cat would copy the whole cache on every step of every layer.
    """

    def __init__(self, n_layer, n_head, head_dim, capacity):
        shape = (n_head, capacity, head_dim)
        self.k = [torch.empty(shape) for _ in range(n_layer)]
        self.v = [torch.empty(shape) for _ in range(n_layer)]
        self.capacity = capacity
        self.length = 0  # positions filled in every layer

    def append(self, layer, k, v):
        """Stores k, v [H, T, D] at positions length.. of layer (the caller advances length
        once every layer has its T new positions); returns the layer's keys and values so far."""
        end = self.length + k.shape[1]
        if end > self.capacity:
            raise RuntimeError("KV cache full: %d positions needed, capacity %d"
                               % (end, self.capacity))
        self.k[layer][:, self.length : end] = k
        self.v[layer][:, self.length : end] = v
        return self.k[layer][:, :end], self.v[layer][:, :end]


class GPT2:
    """GPT-2 over one sequence of token ids, in float32: a full forward pass, or extending a
    KV cache by new tokens (prefill, then one token per decode step)."""

    def __init__(self, config, weights):
        self.w = weights
        self.n_layer, self.n_head = config["n_layer"], config["n_head"]
        self.vocab_size, self.n_positions = config["vocab_size"], config["n_positions"]
        self.eps = float(config["layer_norm_epsilon"])
        erf = config.get("activation_function", "gelu_new") == "gelu"
        approximate = "none" if erf else "tanh"
        self.gelu = lambda x: F.gelu(x, approximate=approximate)
        P = self.n_positions
        self.future = torch.ones(P, P, dtype=torch.bool).triu_(1)  # True above the diagonal

    def __call__(self, tokens):
        """Returns the logits [T, vocab] for token ids (a 1-D int64 tensor)."""
        return self.logits(self.hidden(tokens))

    def new_cache(self, capacity):
        E = self.w["wte.weight"].shape[1]
        return KVCache(self.n_layer, self.n_head, E // self.n_head, capacity)

    def extend(self, tokens, cache):
        """Runs tokens (1-D int64) at positions cache.length.. through the model, adding their
        keys and values to cache; returns the logits [vocab] of the last of them only."""
        x = self.hidden(tokens, cache)
        cache.length += tokens.shape[0]
        return self.logits(x[-1:])[0]

    def hidden(self, tokens, cache=None):
        """The last layer's output [T, E] for tokens at positions start.., start = 0 without a
        cache, else cache.length: each attends to the cache and to the tokens up to itself."""
        T = tokens.shape[0]
        start = cache.length if cache is not None else 0
        w = self.w
        x = w["wte.weight"][tokens] + w["wpe.weight"][start : start + T]
        # A single new token may attend to every key there is, so needs no mask.
        future = self.future[start : start + T, : start + T] if T > 1 else None
        for i in range(self.n_layer):
            h = "h.%d." % i
            x = x + self.attention(self.layer_norm(x, h + "ln_1"), h + "attn.", future, cache, i)
            x = x + self.mlp(self.layer_norm(x, h + "ln_2"), h + "mlp.")
        return x

    def batch_logits(self, tokens):
        """Returns the logits [B, T, vocab] of a batch of sequences (int64 [B, T]), each at
        positions 0..T-1 with causal attention; out-of-place throughout, for autograd."""
        B, T = tokens.shape
        w = self.w
        x = (w["wte.weight"][tokens] + w["wpe.weight"][:T]).reshape(B * T, -1)  # [B*T, E]
        future = self.future[:T, :T]
        for i in range(self.n_layer):
            h = "h.%d." % i
            x = x + self.batch_attention(self.layer_norm(x, h + "ln_1"), h + "attn.", B, future)
            x = x + self.mlp(self.layer_norm(x, h + "ln_2"), h + "mlp.")
        x = self.layer_norm(x, "ln_f")
        return F.linear(x, w["wte.weight"]).view(B, T, -1)  # the tied head: wte again

    def batch_attention(self, x, prefix, B, future):
        """Causal self-attention of x [B*T, E], B sequences of T rows each."""
        BT, E = x.shape
        T, H = BT // B, self.n_head
        D = E // H
        qkv = self.conv1d(x, prefix + "c_attn")  # [B*T, 3E]
        q, k, v = (t.reshape(B, T, H, D).transpose(1, 2).reshape(B * H, T, D)
                   for t in qkv.split(E, dim=1))
        scores = torch.bmm(q, k.transpose(1, 2)) * (1.0 / math.sqrt(D))  # [B*H, T, T]
        scores = scores.masked_fill(future, float("-inf"))
        y = torch.bmm(torch.softmax(scores, dim=-1), v)  # [B*H, T, D]
        y = y.view(B, H, T, D).transpose(1, 2).reshape(BT, E)
        return self.conv1d(y, prefix + "c_proj")

    def parameter_names(self):
        """The names of the weights the forward pass uses (as check_shapes lists them)."""
        names = ["wte.weight", "wpe.weight"]
        for i in range(self.n_layer):
            h = "h.%d." % i
            for layer in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"):
                names += [h + layer + ".weight", h + layer + ".bias"]
        return names + ["ln_f.weight", "ln_f.bias"]

    def logits(self, x):
        x, wte = self.layer_norm(x, "ln_f"), self.w["wte.weight"]
        if x.shape[0] == 1:  # one row: gemv, see conv1d
            return torch.mv(wte, x[0]).unsqueeze(0)
        return F.linear(x, wte)

    def layer_norm(self, x, name):
        w, b = self.w[name + ".weight"], self.w[name + ".bias"]
        return F.layer_norm(x, x.shape[-1:], w, b, self.eps)

    def conv1d(self, x, name):
        """x @ W + b with W in the Conv1D layout [in, out].

        A single row (a decode step) goes to BLAS gemv: torch 1.13 sends a 1-row addmm to
        OpenBLAS sgemm, which takes 2-3 times as long for the same weights.
        """
        w, b = self.w[name + ".weight"], self.w[name + ".bias"]
        if x.shape[0] == 1:
            return torch.addmv(b, w.t(), x[0]).unsqueeze(0)
        return torch.addmm(b, x, w)

    def attention(self, x, prefix, future, cache, layer):
        """Causal self-attention of x [T, E]; with a cache, over its keys and values too.
        future [T, S] (True: masked) or None; S = the positions attended to."""
        T, E = x.shape
        H, D = self.n_head, E // self.n_head
        qkv = self.conv1d(x, prefix + "c_attn")
        q, k, v = (t.view(T, H, D).transpose(0, 1) for t in qkv.split(E, dim=1))  # [H, T, D]
        if cache is not None:
            k, v = cache.append(layer, k, v)  # [H, S, D]
        scores = torch.bmm(q, k.transpose(1, 2)).mul_(1.0 / math.sqrt(D))  # [H, T, S]
        if future is not None:
            scores.masked_fill_(future, float("-inf"))
        y = torch.bmm(torch.softmax(scores, dim=-1), v)  # [H, T, D]
        return self.conv1d(y.transpose(0, 1).reshape(T, E), prefix + "c_proj")

    def mlp(self, x, prefix):
        return self.conv1d(self.gelu(self.conv1d(x, prefix + "c_fc")), prefix + "c_proj")


def bench_tokens(T, vocab_size):
    return torch.tensor([(t * 7919 + 13) % vocab_size for t in range(T)], dtype=torch.int64)


def bench(model, counts, threads, repeats):
    for T in counts:
        tokens = bench_tokens(T, model.vocab_size)
        model(tokens)  # warm-up
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            model(tokens)
            best = min(best, time.perf_counter() - start)
        print("%s: T=%d threads=%d best of %d: %.4f s" % (PROG, T, threads, repeats, best),
              file=sys.stderr)
        print(json.dumps({"backend": "pytorch", "torch_version": torch.__version__,
                          "threads": threads, "T": T, "seconds": best, "tokens_per_s": T / best}),
              flush=True)


def greedy_decode(model, prompt, n_new):
    """Prefills prompt (1-D int64) into a fresh KV cache, then runs n_new greedy decode steps.

    Returns (seconds for the n_new steps, the n_new + 1 greedy ids, the last step's logits).
    """
    cache = model.new_cache(prompt.shape[0] + n_new)
    logits = model.extend(prompt, cache)
    ids = [int(torch.argmax(logits))]
    start = time.perf_counter()
    for _ in range(n_new):
        logits = model.extend(torch.tensor(ids[-1:], dtype=torch.int64), cache)
        ids.append(int(torch.argmax(logits)))
    return time.perf_counter() - start, ids, logits


def bench_decode(model, T, n_new, threads, repeats):
    prompt = bench_tokens(T, model.vocab_size)
    greedy_decode(model, prompt, n_new)  # warm-up
    best = math.inf
    for _ in range(repeats):
        seconds, ids, _ = greedy_decode(model, prompt, n_new)
        best = min(best, seconds)
    print("%s: decode T=%d N=%d threads=%d best of %d: %.4f s (%.1f tokens/s)"
          % (PROG, T, n_new, threads, repeats, best, n_new / best), file=sys.stderr)
    print(json.dumps({"backend": "pytorch", "mode": "decode", "torch_version": torch.__version__,
                      "threads": threads, "T": T, "new_tokens": n_new, "seconds": best,
                      "tokens_per_s": n_new / best, "tokens": ids}), flush=True)


def train_batch(B, T, vocab_size):
    """The B benchmark sequences of T + 1 ids: ((b * 131 + t) * 7919 + 13) % vocab."""
    return torch.tensor([[((b * 131 + t) * 7919 + 13) % vocab_size for t in range(T + 1)]
                         for b in range(B)], dtype=torch.int64)


def bench_train(model, n_steps, B, T, threads, repeats):
    params = [model.w[name].requires_grad_(True) for name in model.parameter_names()]
    optimizer = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    ids = train_batch(B, T, model.vocab_size)
    inputs, targets = ids[:, :T].contiguous(), ids[:, 1:].reshape(-1)

    def step():
        logits = model.batch_logits(inputs)
        loss = F.cross_entropy(logits.view(B * T, -1), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    warm_loss = step()
    best, first_loss = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n_steps):
            loss = step()
            if first_loss is None:
                first_loss = loss
        best = min(best, time.perf_counter() - start)
    print("%s: train B=%d T=%d threads=%d best of %d runs of %d steps: %.4f s/step "
          "(loss %.4f warm-up, %.4f first timed, %.4f last)"
          % (PROG, B, T, threads, repeats, n_steps, best / n_steps, warm_loss, first_loss, loss),
          file=sys.stderr)
    print(json.dumps({"backend": "pytorch", "mode": "train", "torch_version": torch.__version__,
                      "threads": threads, "batch": B, "seq": T, "steps": n_steps,
                      "seconds_per_step": best / n_steps, "tokens_per_s": B * T * n_steps / best,
                      "first_loss": first_loss}), flush=True)


def dump_logits(model, token_ids, path):
    bad = [t for t in token_ids if not 0 <= t < model.vocab_size]
    if bad:
        raise ModelError("token id %d is outside the vocabulary [0, %d)"
                         % (bad[0], model.vocab_size))
    logits = model(torch.tensor(token_ids, dtype=torch.int64))
    logits.numpy().astype("<f4", copy=False).tofile(path)
    print("wrote %s" % path)


def llama_family_dir(argv):
    """True when an argument is a directory whose config.json is a Llama-family model's."""
    for arg in argv:
        if not arg.startswith("-") and os.path.isfile(os.path.join(arg, "config.json")):
            import torch_llama_forward  # here, not at the top: it imports this module

            return torch_llama_forward.is_llama_family(arg)
    return False


def main(argv):
    if llama_family_dir(argv):
        import torch_llama_forward

        return torch_llama_forward.main(argv)
    args = parse_args(argv)
    set_threads(args.threads)
    training = args.train_steps is not None
    try:
        # Training needs autograd: inference tensors could not become trainable leaves.
        with contextlib.nullcontext() if training else torch.inference_mode():
            model = GPT2(*load_model(args.model_dir))
            if training:
                positions, what = args.seq, "--seq %d" % args.seq
            elif args.dump_logits is not None:
                positions, what = len(args.tokens), "%d tokens" % len(args.tokens)
            elif args.decode is not None:
                positions = args.prompt_count + args.decode
                what = "%d prompt + %d new tokens" % (args.prompt_count, args.decode)
            else:
                positions = max(args.tokens_count)
                what = "%d tokens" % positions
            if positions > model.n_positions:
                print("%s: error: %s is more than n_positions (%d)"
                      % (PROG, what, model.n_positions), file=sys.stderr)
                return 2
            if training:
                bench_train(model, args.train_steps, args.batch, args.seq, args.threads,
                            args.repeats)
            elif args.dump_logits is not None:
                dump_logits(model, args.tokens, args.dump_logits)
            elif args.decode is not None:
                bench_decode(model, args.prompt_count, args.decode, args.threads, args.repeats)
            else:
                bench(model, args.tokens_count, args.threads, args.repeats)
    except (ModelError, OSError, RuntimeError, MemoryError) as e:
        print("%s: error: %s" % (PROG, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
