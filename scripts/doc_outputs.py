#!/usr/bin/env python3
"""doc_outputs.py LINSHARD DOC.md [--update]

Reruns every command pasted in DOC.md and checks that its output still matches the page.

A pasted command is a fenced block whose first line is `$ linshard ARGS...`; the rest of the
block is the output (stdout and stderr together, as a terminal shows them). Placeholders in
ARGS (MODEL) stand for files this script makes first, exactly as the page's "Placeholders"
paragraph says; the page must contain that paragraph word for word, so the two cannot drift.

What depends on the machine is masked before comparing, so the check is about what the code
says rather than how fast or in which rounding it said it: durations and rates (ms, s, µs,
tokens/s, GB/s, %), numbers in scientific notation (errors at the level of float32 rounding,
which change with the BLAS kernels), and the ledger's seconds column. Everything else —
counts, bytes, verdicts, messages, table shapes, sampled text — must match.

--update rewrites each block with the fresh output (run it after a change that alters what a
command prints, and read the diff). Exit status: 0 all match, 1 a mismatch (a unified diff of
each one is printed), 2 bad usage.
"""
import difflib
import os
import pty
import re
import shlex
import subprocess
import sys
import tempfile

# MODEL: a small random GPT-2 (6 heads, so P = 4 and 5 split unevenly; vocabulary 101).
PLACEHOLDERS = {
    "MODEL": ["init", "--out", "{dir}", "--layers", "2", "--embd", "48", "--heads", "6",
              "--vocab", "101", "--ctx", "32", "--seed", "5"],
}
DEFINITION = ("`MODEL` stands for a small random GPT-2 made with "
              "`linshard init --out MODEL --layers 2 --embd 48 --heads 6 --vocab 101 --ctx 32 "
              "--seed 5`")

BLOCK = re.compile(r"```\n(\$ linshard [^\n]*)\n(.*?)```\n", re.S)
MASKS = [
    (re.compile(r"[-+]?\d+(\.\d+)?[eE][-+]?\d+"), "<float>"),
    (re.compile(r"\d+(\.\d+)?\s*(ms|µs|us|s|tokens/s|GB/s|MB/s|GFLOP/s|%)(?![\w/])"), "<measured>"),
    (re.compile(r"(allreduce|allgather|broadcast|barrier|reduce_scatter)(\s+\d+\s+\d+\s+\d+\s+\d+\s+)\d+\.\d+"),
     r"\1\2<seconds>"),
]


def mask(text):
    for pattern, repl in MASKS:
        text = pattern.sub(repl, text)
    return [line.rstrip() for line in text.rstrip("\n").split("\n")]


def run(linshard, args, env):
    """stdout and stderr of linshard ARGS, interleaved as a terminal shows them: both go to a
    pseudo-terminal, so stdout is line-buffered as it would be for a person (a pipe would hold
    it back until exit)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([linshard] + args, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                         env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    p.wait(timeout=300)
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def main(argv):
    args = [a for a in argv[1:] if a != "--update"]
    update = "--update" in argv[1:]
    if len(args) != 2:
        print(__doc__.strip().split("\n")[0], file=sys.stderr)
        return 2
    linshard, doc = args
    text = open(doc, encoding="utf-8").read()
    if "MODEL" in text and DEFINITION not in text:
        print("doc_outputs: %s uses MODEL but does not define it; it must say:\n  %s"
              % (doc, DEFINITION), file=sys.stderr)
        return 1
    env = dict(os.environ)
    failed, pieces, last = 0, [], 0
    with tempfile.TemporaryDirectory(prefix="linshard-docs-") as tmp:
        paths = {}
        for name, make in PLACEHOLDERS.items():
            paths[name] = os.path.join(tmp, name.lower())
            run(linshard, [a.format(dir=paths[name]) for a in make], env)
        blocks = list(BLOCK.finditer(text))
        for m in blocks:
            command, expected = m.group(1), m.group(2)
            words = shlex.split(command[2:])[1:]
            words = [paths.get(w, w) for w in words]
            got = run(linshard, words, env)
            for name, path in paths.items():
                got = got.replace(path, name)
            if update:
                pieces.append(text[last:m.start()])
                pieces.append("```\n%s\n%s```\n" % (command, got if got.endswith("\n") else got + "\n"))
                last = m.end()
            elif mask(got) != mask(expected):
                failed += 1
                print("doc_outputs: %s: the output of `%s` no longer matches the page:" % (doc, command[2:]))
                sys.stdout.writelines(difflib.unified_diff(
                    [l + "\n" for l in mask(expected)], [l + "\n" for l in mask(got)],
                    "pasted (masked)", "now (masked)"))
    if update:
        pieces.append(text[last:])
        with open(doc, "w", encoding="utf-8") as f:
            f.write("".join(pieces))
        print("doc_outputs: rewrote %d blocks of %s" % (len(blocks), doc))
        return 0
    print("doc_outputs: %d of %d pasted commands match %s" % (len(blocks) - failed, len(blocks), doc))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
