#!/usr/bin/env python3
"""Writes the two tokenizer seeds of fuzz_gguf into fuzz/corpus/gguf: tokenizer_gpt2.gguf (a
byte-level BPE: the 256 byte tokens in GPT-2's alphabet, three merges, an added control token)
and tokenizer_llama.gguf (SentencePiece-style: <unk> <s> </s>, a few pieces, two merges, scores).
GGUF v3 metadata only, no tensors. Run from the repository root."""
import struct

def s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b

def kv(key, vtype, payload):
    return s(key) + struct.pack("<I", vtype) + payload

def arr(etype, items):
    return struct.pack("<IQ", etype, len(items)) + b"".join(items)

STR, I32, U32, F32, BOOL, ARR = 8, 5, 4, 6, 7, 9

def write(path, kvs):
    with open(path, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs))

def bytes_to_unicode():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}

b2u = bytes_to_unicode()
tokens = [b2u[b] for b in range(256)] + ["He", "ll", "Hell", "<|endoftext|>"]
types = [1] * 259 + [3]
merges = ["H e", "l l", "He ll"]
write("fuzz/corpus/gguf/tokenizer_gpt2.gguf", [
    kv("tokenizer.ggml.model", STR, s("gpt2")),
    kv("tokenizer.ggml.pre", STR, s("gpt-2")),
    kv("tokenizer.ggml.tokens", ARR, arr(STR, [s(t) for t in tokens])),
    kv("tokenizer.ggml.token_type", ARR, arr(I32, [struct.pack("<i", t) for t in types])),
    kv("tokenizer.ggml.merges", ARR, arr(STR, [s(m) for m in merges])),
    kv("tokenizer.ggml.eos_token_id", U32, struct.pack("<I", 259)),
])
M = "\u2581"
tokens = ["<unk>", "<s>", "</s>", M, "a", "b", M + "a", "ab", "<0x0A>"]
types = [2, 3, 3, 1, 1, 1, 1, 1, 6]
scores = [0, 0, 0, -1, -2, -3, -4, -5, 0]
write("fuzz/corpus/gguf/tokenizer_llama.gguf", [
    kv("tokenizer.ggml.model", STR, s("llama")),
    kv("tokenizer.ggml.tokens", ARR, arr(STR, [s(t) for t in tokens])),
    kv("tokenizer.ggml.token_type", ARR, arr(I32, [struct.pack("<i", t) for t in types])),
    kv("tokenizer.ggml.scores", ARR, arr(F32, [struct.pack("<f", x) for x in scores])),
    kv("tokenizer.ggml.merges", ARR, arr(STR, [s(M + " a"), s("a b")])),
    kv("tokenizer.ggml.bos_token_id", U32, struct.pack("<I", 1)),
    kv("tokenizer.ggml.eos_token_id", U32, struct.pack("<I", 2)),
    kv("tokenizer.ggml.add_bos_token", BOOL, b"\x01"),
])
