#!/usr/bin/env python3
"""Writes the seeds of fuzz_tokenizer (fuzz/corpus/tokenizer/): small tokenizer.json files of each
kind linshard loads, each followed by a 0 byte and a tokenizer_config.json when the kind has one.
Byte-level BPE needs a token for each of the 256 bytes, so those files hold the byte alphabet and
a few dozen merges; the SentencePiece ones a few dozen pieces and the <0xNN> byte fallbacks.
Run from the repository root: python3 fuzz/make_tokenizer_seeds.py"""
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "tokenizer")

GPT2_RE = ("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+")
LLAMA3_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
             "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN2_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
            "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def byte_alphabet():
    """GPT-2's bytes_to_unicode."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = byte_alphabet()


def spell(text):
    return "".join(B2U[b] for b in text.encode("utf-8"))


# (left, right) in text; spelled in the byte alphabet when written.
BYTE_MERGES = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), (" ", "t"), (" t", "h"),
               (" th", "e"), ("i", "n"), (" ", "a"), (" a", "n"), (" an", "d"), ("e", "r"),
               ("o", "n"), (" ", "w"), ("o", "r"), (" w", "or"), ("l", "d"), (" wor", "ld"),
               (" ", " "), ("\n", "\n"), (" ", "i"), (" i", "s"), (" ", "hello"), ("0", "0"),
               ("!", "!"), ("\xe6\x97", "\xa5"), ("<", "|"), ("|", ">")]


def byte_level(pre_tokenizer, normalizer, added, merges_as_pairs, extra=None):
    vocab = {}
    for b in range(256):
        vocab[B2U[b]] = len(vocab)
    merges = []
    for left, right in BYTE_MERGES:
        left = "".join(B2U[b] for b in left.encode("latin-1")) if "\xe6" in left else spell(left)
        right = "".join(B2U[b] for b in right.encode("latin-1")) if "\xa5" in right else spell(right)
        for piece in (left, right):
            vocab.setdefault(piece, len(vocab))
        vocab.setdefault(left + right, len(vocab))
        merges.append([left, right] if merges_as_pairs else left + " " + right)
    added_tokens = []
    for content, special, extra_flags in added:
        i = len(vocab) + len(added_tokens)
        added_tokens.append(dict({"id": i, "content": content, "single_word": False,
                                  "lstrip": False, "rstrip": False, "normalized": False,
                                  "special": special}, **extra_flags))
    doc = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
           "normalizer": normalizer, "pre_tokenizer": pre_tokenizer,
           "post_processor": {"type": "ByteLevel", "add_prefix_space": True,
                              "trim_offsets": False, "use_regex": True},
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                       "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None,
                     "continuing_subword_prefix": None, "end_of_word_suffix": None,
                     "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": vocab, "merges": merges}}
    if extra:
        doc.update(extra)
    return doc


def split_seq(regex):
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
         "use_regex": False}]}


def sentencepiece(metaspace):
    pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    pieces += ["\u2581", "a", "b", "d", "e", "h", "i", "l", "n", "o", "r", "s", "t", "w",
               "\u2581t", "\u2581th", "\u2581the", "he", "ll", "hell", "hello", "\u2581hello",
               "\u2581w", "or", "\u2581wor", "ld", "\u2581world", "in", "\u2581in", "日", "本"]
    vocab = {p: i for i, p in enumerate(pieces)}
    merges = ["\u2581 t", "\u2581t h", "\u2581th e", "h e", "l l", "he ll", "hell o",
              "\u2581 hello", "\u2581 w", "o r", "\u2581w or", "l d", "\u2581wor ld", "i n",
              "\u2581 in"]
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    doc = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
           "post_processor": {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                         {"Sequence": {"id": "A", "type_id": 0}}],
                              "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1],
                                                                     "tokens": ["<s>"]}}},
           "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                     "continuing_subword_prefix": None, "end_of_word_suffix": None,
                     "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                     "vocab": vocab, "merges": merges}}
    if metaspace:  # Mistral v0.3
        doc["normalizer"] = None
        doc["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581",
                                "prepend_scheme": "first", "split": False}
        doc["decoder"] = {"type": "Metaspace", "replacement": "\u2581",
                          "prepend_scheme": "first", "split": False}
    else:  # Llama 2
        doc["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
        doc["pre_tokenizer"] = None
        doc["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    return doc


def write(name, doc, config=None):
    data = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    if config is not None:
        data += b"\0" + json.dumps(config, ensure_ascii=False).encode("utf-8")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    no_flags = {}
    write("llama3", byte_level(split_seq(LLAMA3_RE), None,
                               [("<|begin_of_text|>", True, no_flags),
                                ("<|end_of_text|>", True, no_flags),
                                ("<|eot_id|>", True, no_flags)], False),
          {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
           "clean_up_tokenization_spaces": True, "model_max_length": 131072})
    write("qwen", byte_level(split_seq(QWEN2_RE), {"type": "NFC"},
                             [("<|endoftext|>", True, no_flags), ("<|im_start|>", True, no_flags),
                              ("<|im_end|>", True, no_flags), ("<think>", False, no_flags)],
                             True, {"post_processor": None, "decoder": {"type": "ByteLevel"}}),
          {"add_bos_token": False, "bos_token": None, "eos_token": "<|im_end|>",
           "pad_token": "<|endoftext|>", "errors": "replace"})
    write("gpt2", byte_level({"type": "ByteLevel", "add_prefix_space": False,
                              "trim_offsets": True, "use_regex": True}, None,
                             [("<|endoftext|>", True, no_flags)], False))
    write("gpt2-lstrip", byte_level({"type": "ByteLevel", "add_prefix_space": False},
                                    None, [("<|endoftext|>", True, no_flags),
                                           ("<mask>", True, {"lstrip": True, "rstrip": True})],
                                    False),
          {"eos_token": {"content": "<|endoftext|>", "__type": "AddedToken"}})
    write("llama2-sp", sentencepiece(False),
          {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>"})
    write("mistral-metaspace", sentencepiece(True),
          {"add_bos_token": True, "bos_token": "<s>", "eos_token": "</s>"})


if __name__ == "__main__":
    main()
