#!/usr/bin/env python3
"""Cross-checks the C oracle (tests/llama_reference.c, through the check_llama_reference tool)
against the PyTorch peer bench/torch_llama_forward.py in float64, on every variant of
make_llama_checkpoint.py, and shows that the check can fail: deliberately wrong torch variants
(adjacent-pair RoPE, the wrong GQA head mapping, llama3 scaling ignored, Qwen3 q/k norms skipped,
Qwen2 biases dropped) must differ by far more than the agreement. A development tool, not run by
CI (it needs torch and numpy):

    crosscheck_llama_reference.py BUILD/tests/check_llama_reference [--work DIR] [--T N]

Prints one line per comparison: max |torch - reference| / max |reference| over all [T, vocab]
logits. Exit status 1 when an honest comparison is above 1e-12 or a wrong variant below 1e-3.
"""

import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import make_llama_checkpoint as mk  # noqa: E402
import torch_llama_forward as tl  # noqa: E402

AGREE, DISAGREE = 1e-12, 1e-3


def tokens_for(T, vocab):
    return [(t * 7919 + 13) % vocab for t in range(T)]


def reference(tool, model_dir, tokens, out):
    ids = ",".join(map(str, tokens))
    subprocess.run([tool, model_dir, ids, "--dump", out], check=True)
    return np.fromfile(out, dtype="<f8")


def torch_logits(model_dir, tokens, dtype=torch.float64, patch=None):
    with torch.inference_mode():
        model = tl.Llama(*tl.load_model(model_dir, dtype), dtype)
        if patch:
            patch(model)
        return model(torch.tensor(tokens, dtype=torch.int64)).double().numpy().ravel()


def rel(a, ref):
    return float(np.max(np.abs(a - ref)) / np.max(np.abs(ref)))


# ---- deliberately wrong variants -------------------------------------------------------------

def adjacent_rope(model):
    """RoPE on adjacent pairs (2i, 2i+1) at angle pos * inv_freq[i]: the GPT-J / Meta-original
    layout, wrong for Hugging Face checkpoints."""
    inv_freq = tl.rope_inv_freq(model.c, model.compute)
    pos = torch.arange(model.n_positions, dtype=model.compute)
    freqs = torch.outer(pos, inv_freq).repeat_interleave(2, dim=-1)
    model.cos, model.sin = freqs.cos().to(model.dtype), freqs.sin().to(model.dtype)

    def rotate_pairs(x):
        return torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)

    model_rotate = tl.rotate_half
    tl.rotate_half = rotate_pairs
    model.restore = lambda: setattr(tl, "rotate_half", model_rotate)


def wrong_gqa(model):
    """Query head h reads kv head h % kv_heads instead of h // (heads / kv_heads): permute the
    query heads (and o_proj's columns to match) so the grouped view pairs them that way."""
    H, KV, D = model.H, model.KV, model.D
    group = H // KV
    # Position p = g * group + j in the grouped order gets the original head j * KV + g.
    order = [j * KV + g for g in range(KV) for j in range(group)]
    rows = torch.cat([torch.arange(h * D, (h + 1) * D) for h in order])
    for name, w in list(model.w.items()):
        if name.endswith("q_proj.weight") or name.endswith("q_proj.bias"):
            model.w[name] = w[rows].contiguous()
        elif name.endswith("o_proj.weight"):
            model.w[name] = w[:, rows].contiguous()


def no_llama3_scaling(model):
    c = dict(model.c, rope_scaling=None)
    inv_freq = tl.rope_inv_freq(c, model.compute)
    freqs = torch.outer(torch.arange(model.n_positions, dtype=model.compute), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    model.cos, model.sin = emb.cos().to(model.dtype), emb.sin().to(model.dtype)


def no_qk_norm(model):
    model.c = dict(model.c, qk_norm=False)


def no_qkv_bias(model):
    for name in list(model.w):
        if name.endswith("_proj.bias"):
            model.w[name] = torch.zeros_like(model.w[name])


WRONG = [("llama", "adjacent-pair RoPE", adjacent_rope),
         ("qwen3", "adjacent-pair RoPE", adjacent_rope),
         ("llama", "GQA head h -> kv h % kv_heads", wrong_gqa),
         ("llama3_rope", "llama3 rope_scaling ignored", no_llama3_scaling),
         ("qwen3", "q/k norm skipped", no_qk_norm),
         ("qwen2", "q/k/v biases dropped", no_qkv_bias)]


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("tool", help="the check_llama_reference executable")
    p.add_argument("--work", help="where to write the checkpoints (default: a temporary dir)")
    p.add_argument("--T", type=int, default=64, help="tokens per check (default 64, the context)")
    args = p.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="llama-crosscheck-")
    failed = 0
    refs = {}
    print("%-20s %-38s %s" % ("variant", "comparison", "max|diff| / max|ref|"))
    for i, name in enumerate(sorted(mk.VARIANTS)):
        d = os.path.join(work, name)
        mk.write_checkpoint(d, name, seed=1 + i)
        tokens = tokens_for(args.T, mk.BASE["vocab"])
        ref = reference(args.tool, d, tokens, os.path.join(work, name + ".f8"))
        refs[name] = (d, tokens, ref)
        r64 = rel(torch_logits(d, tokens), ref)
        r32 = rel(torch_logits(d, tokens, torch.float32), ref)
        bad = r64 > AGREE
        failed += bad
        print("%-20s %-38s %.3e%s" % (name, "torch float64 vs C reference", r64,
                                      "  FAIL" if bad else ""))
        print("%-20s %-38s %.3e" % (name, "torch float32 vs C reference", r32))
    for name, what, patch in WRONG:
        d, tokens, ref = refs[name]
        holder = {}

        def apply(model, patch=patch):
            holder["model"] = model
            patch(model)

        try:
            r = rel(torch_logits(d, tokens, patch=apply), ref)
        finally:
            restore = getattr(holder.get("model"), "restore", None)
            if restore:
                restore()
        bad = r < DISAGREE
        failed += bad
        print("%-20s %-38s %.3e%s" % (name, "WRONG: " + what, r, "  FAIL (not caught)" if bad
                                      else " (caught)"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
