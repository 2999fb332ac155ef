#!/usr/bin/env python3
"""read_with_gguf_py.py — prints every metadata value and the first values of every tensor of a
GGUF file as llama.cpp's gguf-py reads them (quantised tensors dequantised by gguf-py). Used
outside CI to check that files written by linshard's GGUF writer read back in the reference
implementation (fuzz/corpus/gguf/linshard_writer.gguf is one):
    PYTHONPATH=/tmp/llama/gguf-py python3 tests/data/gguf/read_with_gguf_py.py FILE.gguf
"""
import sys, numpy as np, gguf
r = gguf.GGUFReader(sys.argv[1])
for name, f in r.fields.items():
    t = f.types
    if t and t[0] == gguf.GGUFValueType.ARRAY:
        if t[-1] == gguf.GGUFValueType.STRING:
            val = [bytes(f.parts[i]).decode('utf-8') for i in f.data]
        else:
            val = [f.parts[i].tolist()[0] for i in f.data]
    elif t and t[0] == gguf.GGUFValueType.STRING:
        val = bytes(f.parts[f.data[0]]).decode('utf-8')
    else:
        val = f.parts[f.data[0]].tolist()[0] if f.data else None
    print(name, [x.name for x in t], repr(val))
for t in r.tensors:
    d = t.data
    if t.tensor_type in (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0):
        d = gguf.quants.dequantize(np.asarray(d), t.tensor_type)
    elif t.tensor_type == gguf.GGMLQuantizationType.BF16:
        d = gguf.quants.dequantize(np.asarray(d), t.tensor_type)
    print(t.name, t.tensor_type.name, list(t.shape), t.data_offset, np.asarray(d).reshape(-1)[:8].tolist())
