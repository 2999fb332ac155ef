#!/usr/bin/env python3
"""make_fixtures.py — writes the GGUF test fixtures in this directory with llama.cpp's gguf-py,
an implementation independent of linshard's reader (tests/test_gguf.c reads them and checks every
value against the same formulas, written again in C).

Run outside CI (needs numpy and gguf-py; the .gguf files are committed):
    git --git-dir=<llama.cpp clone>/.git archive HEAD gguf-py | tar x -C /tmp/llama
    PYTHONPATH=/tmp/llama/gguf-py python3 tests/data/gguf/make_fixtures.py tests/data/gguf

Fixtures (every tensor value is a formula of its flat index or block number):
  f32.gguf   'a' ne [5, 3] and 'b' ne [2, 3, 4]: v(i) = ((i * 37) % 101 - 50) / 8
  f16.gguf   'a' ne [7, 3]: v(i) as F16 (exact: multiples of 1/8 below 8)
  bf16.gguf  'a' ne [9, 2]: v(i) as BF16 (exact)
  q8_0.gguf  'a' ne [64, 3]: block b: d = F16((b + 1) / 4), q[j] = (b * 32 + j) * 13 % 255 - 127
  q4_0.gguf  'a' ne [32, 5]: block b: d = F16((b + 1) / 2), byte j (0..15) = lo | hi << 4,
             lo = (b * 7 + j) % 16, hi = (b * 3 + j * 5) % 16
  meta.gguf  every metadata value type (see META below), arrays of each, strings arrays shaped
             like a tokenizer's, nested arrays, general.alignment = 64, and one F32 tensor 'w'
             ne [3, 2] with v(i).
Each quantised fixture is also dequantised with gguf-py and compared with d * (q) / d * (nibble -
8), so the block layout the C test checks is the one gguf-py implements.
"""
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V


def v(n):
    i = np.arange(n)
    return (((i * 37) % 101) - 50) / 8.0


def f32_bits_to_bf16(x):
    return (np.asarray(x, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def writer(path, arch="llama"):
    return gguf.GGUFWriter(path, arch)


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def q8_0(ne0, rows):
    nb = ne0 // 32 * rows
    blocks, ref = bytearray(), []
    for b in range(nb):
        d = np.float16((b + 1) / 4)
        q = [((b * 32 + j) * 13) % 255 - 127 for j in range(32)]
        blocks += d.tobytes() + np.array(q, dtype=np.int8).tobytes()
        ref += [float(d) * x for x in q]
    return np.frombuffer(bytes(blocks), dtype=np.uint8).reshape(rows, -1), np.array(ref)


def q4_0(ne0, rows):
    nb = ne0 // 32 * rows
    blocks, ref = bytearray(), []
    for b in range(nb):
        d = np.float16((b + 1) / 2)
        lo = [(b * 7 + j) % 16 for j in range(16)]
        hi = [(b * 3 + j * 5) % 16 for j in range(16)]
        blocks += d.tobytes() + bytes(l | (h << 4) for l, h in zip(lo, hi))
        ref += [float(d) * (x - 8) for x in lo] + [float(d) * (x - 8) for x in hi]
    return np.frombuffer(bytes(blocks), dtype=np.uint8).reshape(rows, -1), np.array(ref)


META = [
    ("test.u8", 200, V.UINT8), ("test.i8", -100, V.INT8), ("test.u16", 60000, V.UINT16),
    ("test.i16", -30000, V.INT16), ("test.u32", 4000000000, V.UINT32),
    ("test.i32", -2000000000, V.INT32), ("test.u64", 2**63 + 5, V.UINT64),
    ("test.i64", -(2**62) - 3, V.INT64), ("test.f32", 1.5, V.FLOAT32),
    ("test.f64", -2.25, V.FLOAT64), ("test.bool_t", True, V.BOOL), ("test.bool_f", False, V.BOOL),
    ("test.str", "héllo wörld", V.STRING), ("test.empty_str", "", V.STRING),
]
ARRAYS = [
    ("test.arr_u8", [1, 2, 255], V.UINT8), ("test.arr_i8", [-128, 0, 127], V.INT8),
    ("test.arr_u16", [0, 65535], V.UINT16), ("test.arr_i16", [-32768, 32767], V.INT16),
    ("test.arr_u32", [7, 4294967295], V.UINT32), ("test.arr_i32", [-5, 2147483647], V.INT32),
    ("test.arr_u64", [1, 2**64 - 1], V.UINT64), ("test.arr_i64", [-(2**63), 9], V.INT64),
    ("test.arr_f32", [0.5, -1.25, 3.0], V.FLOAT32), ("test.arr_f64", [1e-300, -0.125], V.FLOAT64),
    ("test.arr_bool", [True, False, True], V.BOOL),
    ("tokenizer.ggml.tokens", ["<s>", "", "\u0120the", "日本", "a\nb"], V.STRING),
    ("tokenizer.ggml.scores", [0.0, -1.5, -2.5, -3.0, -4.75], V.FLOAT32),
    ("tokenizer.ggml.token_type", [3, 1, 1, 1, 6], V.INT32),
    ("tokenizer.ggml.merges", ["\u0120 t", "h e", "\u0120t he"], V.STRING),
]


def main(out):
    w = writer(os.path.join(out, "f32.gguf"))
    w.add_tensor("a", v(15).astype(np.float32).reshape(3, 5))
    w.add_tensor("b", v(24).astype(np.float32).reshape(4, 3, 2))
    finish(w)

    w = writer(os.path.join(out, "f16.gguf"))
    w.add_tensor("a", v(21).astype(np.float16).reshape(3, 7))
    finish(w)

    w = writer(os.path.join(out, "bf16.gguf"))
    raw = f32_bits_to_bf16(v(18)).view(np.uint8).reshape(2, 18)
    w.add_tensor("a", raw, raw_dtype=Q.BF16)
    finish(w)

    for name, fn, qt, ne0, rows in (("q8_0", q8_0, Q.Q8_0, 64, 3), ("q4_0", q4_0, Q.Q4_0, 32, 5)):
        raw, ref = fn(ne0, rows)
        deq = gguf.quants.dequantize(raw, qt).reshape(-1)
        assert np.array_equal(deq.astype(np.float64), ref), name  # gguf-py agrees on the layout
        w = writer(os.path.join(out, name + ".gguf"))
        w.add_tensor("a", raw, raw_dtype=qt)
        finish(w)

    w = writer(os.path.join(out, "meta.gguf"))
    w.add_custom_alignment(64)
    for key, val, t in META:
        w.add_key_value(key, val, t)
    for key, val, t in ARRAYS:
        w.add_key_value(key, val, V.ARRAY, sub_type=t)
    w.add_key_value("test.nested", [[1, 2], [3]], V.ARRAY)
    w.add_key_value("test.nested_str", [["a"], ["b", "c"]], V.ARRAY)
    w.add_tensor("w", v(6).astype(np.float32).reshape(2, 3))
    finish(w)

    # Read everything back with gguf-py's reader (a check of this script).
    for f in sorted(os.listdir(out)):
        if f.endswith(".gguf"):
            r = gguf.GGUFReader(os.path.join(out, f))
            print(f, os.path.getsize(os.path.join(out, f)), "bytes,", len(r.fields), "keys,",
                  [(t.name, t.tensor_type.name, list(t.shape)) for t in r.tensors])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
