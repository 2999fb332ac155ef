#!/usr/bin/env bash
# test_cli.sh LINSHARD MODEL_DIR CHECK_LOGITS LLAMA_DIR CHECK_LLAMA HF_DIR — the contract:
# help, version, exit codes (0 ok, 1 job failed, 2 bad usage), one-line errors, and the
# threads-backend jobs end to end. MODEL_DIR is a small random GPT-2 (6 heads, vocab 101,
# context 32); LLAMA_DIR a small random Llama (6 heads over 2 K/V heads, BF16, sharded files);
# CHECK_LOGITS and CHECK_LLAMA compare a logits dump with the double-precision references; HF_DIR
# holds real tokenizer files of three families.
set -u
bin=$1
model=$2
check_logits=$3
llama=$4
check_llama=$5
hf=$6 # the Llama 3 / Qwen3 / Mistral tokenizer files (tests/data/hf, unpacked)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# expect CODE PATTERN -- ARGS...: exit code CODE and PATTERN (grep -E) in stdout+stderr.
expect() {
  local code=$1 pattern=$2
  shift 3
  local out rc
  out=$("$bin" "$@" 2>&1)
  rc=$?
  if [ "$rc" -eq "$code" ] && grep -qE -- "$pattern" <<<"$out"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: linshard $* -> exit $rc (want $code), output:"
    echo "$out" | head -20
    echo "  (wanted /$pattern/)"
  fi
}

# expect_one_line CODE ARGS...: a usage/job error is exactly one line on stderr, nothing on stdout.
expect_one_line() {
  local code=$1
  shift
  local err out rc
  out=$("$bin" "$@" 2>/tmp/linshard_cli_err.$$)
  rc=$?
  err=$(cat /tmp/linshard_cli_err.$$)
  rm -f /tmp/linshard_cli_err.$$
  if [ "$rc" -eq "$code" ] && [ -z "$out" ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: linshard $* -> exit $rc (want $code), stdout '$out', stderr:"
    echo "$err"
  fi
}

expect 0 "^usage: linshard" -- --help
expect 0 "bench comm" -- --help
expect 0 "^linshard [0-9]+\.[0-9]+\.[0-9]+" -- --version
expect 2 "^usage: linshard" --
expect 0 "^usage: linshard check comm" -- check comm --help
expect 0 "^usage: linshard bench comm" -- bench comm --help
expect 0 "busbw" -- bench comm --help

expect_one_line 2 frobnicate
expect_one_line 2 --frobnicate
expect_one_line 2 bench nothing
expect_one_line 2 bench comm --tp 0
expect_one_line 2 bench comm --tp two
expect_one_line 2 bench comm --tp
expect_one_line 2 bench comm --sizes 4K,abc
expect_one_line 2 bench comm --sizes 6
expect_one_line 2 bench comm --backend carrier-pigeon
expect_one_line 2 bench comm --bogus
expect_one_line 2 check comm --tp 3 --fail-rank 3
expect_one_line 2 check comm extra-arg
expect 2 "unknown backend 'carrier-pigeon'" -- bench comm --backend carrier-pigeon
expect 2 "'--tp' needs a value" -- bench comm --tp

# The jobs themselves (threads backend).
expect 0 "backend threads, P=3: [0-9]+ checks, 0 failed" -- check comm --tp 3 --quick
expect 0 "backend threads, P=1: [0-9]+ checks, 0 failed" -- check comm --tp 1 --quick
expect 0 "selftest +allreduce" -- check comm --tp 2 --quick --comm-stats
# A failing rank ends the run on every rank: exit 1, one message naming it.
expect 1 "^linshard: error: injected failure on rank 2" -- check comm --tp 4 --quick --fail-rank 2
expect_one_line 1 check comm --tp 4 --quick --fail-rank 2

# bench --json: one JSON object per line with the documented fields.
json=$("$bin" bench comm --tp 2 --sizes 4K,64K --json --no-peers 2>/dev/null)
if [ "$(wc -l <<<"$json")" -eq 2 ] &&
   python3 -c 'import json,sys
for line in sys.stdin:
    o = json.loads(line)
    assert o["backend"] == "threads" and o["P"] == 2 and o["bytes"] in (4096, 65536), o
    assert o["seconds"] > 0 and o["algbw_GBps"] > 0
    assert abs(o["busbw_GBps"] - o["algbw_GBps"]) < 1e-9 * o["algbw_GBps"] + 1e-12, o  # P=2
' <<<"$json"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "FAIL: bench comm --json output:"
  echo "$json"
fi
# busbw = algbw * 2(P-1)/P at P=4.
json=$("$bin" bench comm --tp 4 --sizes 64K --json --no-peers 2>/dev/null)
if python3 -c 'import json,sys
o = json.loads(sys.stdin.readline())
assert abs(o["busbw_GBps"] - o["algbw_GBps"] * 1.5) <= 1e-9 * o["busbw_GBps"], o' <<<"$json"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "FAIL: busbw at P=4: $json"
fi

# ---- GPT-2: init, forward, verify ------------------------------------------------------------
expect 0 "^usage: linshard forward" -- forward --help
expect 0 "^usage: linshard verify" -- verify --help
expect 0 "^usage: linshard init" -- init --help
expect 0 "top-5 next tokens after position 2 \(P=1, threads, f32 weights\)" -- forward --model "$model" --tokens 1,2,3
expect 0 "top-5 next tokens after position 2 \(P=4, threads, f32 weights\)" -- forward --model "$model" --tokens 1,2,3 --tp 4
# The same top-5 at every P (ids and, to printed precision, logits).
top1=$("$bin" forward --model "$model" --tokens 5,9,100,0 --tp 1 2>/dev/null | grep -E '^  [0-9]')
for P in 2 3 5 6; do
  outP=$("$bin" forward --model "$model" --tokens 5,9,100,0 --tp $P 2>&1)
  topP=$(grep -E '^  [0-9]' <<<"$outP" | awk '{print $1, $2}')
  if [ "$(awk '{print $1, $2}' <<<"$top1")" = "$topP" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: top-5 at P=$P differs from P=1:"; echo "$top1"; echo "$outP"; fi
done
# Logits dumped at P=3 match the double-precision reference; the file is exactly T*V floats.
expect 0 "written to $tmp/logits.bin" -- forward --model "$model" --tokens 100,3,7 --tp 3 --dump-logits "$tmp/logits.bin"
if [ "$(stat -c %s "$tmp/logits.bin" 2>/dev/null)" = "$((3 * 101 * 4))" ] &&
   "$check_logits" "$model" 100,3,7 "$tmp/logits.bin" >/dev/null; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: dumped logits wrong size or off the reference"; fi
expect 0 "every P matches P=1 within tolerance, with exactly 2 AllReduce per layer" -- verify
expect 0 "ledger at P=4 \(rank 0\): embed 1 allreduce" -- verify --model "$model" --tp 1,4
expect 0 "P=2 \(rank 0\)" -- verify --model "$model" --tp 2 --comm-stats

expect_one_line 2 forward --tokens 1,2
expect_one_line 2 forward --model "$model"
expect_one_line 2 forward --model "$model" --tokens 1,x
expect_one_line 2 verify --tp 1,zero
expect_one_line 1 forward --model /nonexistent --tokens 1
expect 1 "No such file" -- forward --model /nonexistent --tokens 1
expect 1 "^linshard: error: cannot split a model with 6 attention heads over 7 ranks" -- forward --model "$model" --tokens 1 --tp 7
expect_one_line 1 forward --model "$model" --tokens 1 --tp 7
expect 1 "token id 101 \(position 1\) is outside the vocabulary \[0, 101\)" -- forward --model "$model" --tokens 1,101
expect 1 "33 tokens exceed the model's context of 32 positions" -- forward --model "$model" --tokens $(seq -s, 1 33)
# Damaged checkpoints: truncated weights, bad config JSON, a config that does not match.
mkdir -p "$tmp/trunc" "$tmp/badjson" "$tmp/mismatch"
cp "$model/config.json" "$tmp/trunc/"
head -c 100000 "$model/model.safetensors" > "$tmp/trunc/model.safetensors"
expect 1 "model.safetensors: tensor .* past the end of the data section" -- forward --model "$tmp/trunc" --tokens 1
expect_one_line 1 forward --model "$tmp/trunc" --tokens 1
echo '{"n_layer": 2, "n_embd": ' > "$tmp/badjson/config.json"
cp "$model/model.safetensors" "$tmp/badjson/"
expect 1 "config.json: not a JSON object \(malformed JSON\)" -- forward --model "$tmp/badjson" --tokens 1
sed -E 's/"vocab_size":[[:space:]]*101/"vocab_size": 100/' "$model/config.json" > "$tmp/mismatch/config.json"
cp "$model/model.safetensors" "$tmp/mismatch/"
expect 1 "tensor 'transformer.wte.weight' has shape \[101, 48\] but config.json implies \[100, 48\]" -- forward --model "$tmp/mismatch" --tokens 1

expect_one_line 2 init --layers 1 --embd 8 --heads 2 --vocab 10 --ctx 4
expect_one_line 2 init --out "$tmp/x" --layers 1 --embd 50 --heads 6 --vocab 10 --ctx 4
expect_one_line 2 init --out "$tmp/x" --layers 1 --embd 8 --heads 2 --vocab 10
expect_one_line 2 init --out "$tmp/x" --shape gpt2 --dtype f8
expect_one_line 2 init --out "$tmp/x" --shape gpt3
expect 0 "wrote $tmp/tiny/config.json and $tmp/tiny/model.safetensors \(seed 3, BF16\)" -- init --out "$tmp/tiny" --layers 1 --embd 8 --heads 2 --vocab 10 --ctx 4 --seed 3 --dtype bf16
# Files are written atomically: no temporary file is left behind.
if ls "$tmp/tiny" | grep -q tmp; then failed=$((failed + 1)); echo "FAIL: temp file left"; else passed=$((passed + 1)); fi

# ---- tokenize and generate --------------------------------------------------------------------
expect 0 "^15496,995$" -- tokenize "Hello world"
expect 0 "^Hello world$" -- tokenize --decode 15496,995
expect_one_line 1 tokenize --decode 50257
expect 0 "stopped at the requested number of tokens" -- generate -n 8
# The default model is trained (on the King James Bible): greedy text reads like its corpus.
expect 0 "(unto|LORD|the children of)" -- generate --temperature 0 -n 40 --prompt "And God said"

# The same seed gives the same text at every P (sampling is identical on every rank).
g1=$("$bin" generate --tp 1 --seed 9 -n 16 2>/dev/null)
for P in 2 4; do
  gP=$("$bin" generate --tp $P --seed 9 -n 16 2>/dev/null)
  if [ -n "$g1" ] && [ "$g1" = "$gP" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: generate at P=$P differs from P=1:"; echo "$g1"; echo "$gP"; fi
done
g1=$("$bin" generate --tp 1 --seed 9 -n 16 --top-k 0 --top-p 0.9 --temperature 1.1 2>/dev/null)
g3=$("$bin" generate --tp 3 --seed 9 -n 16 --top-k 0 --top-p 0.9 --temperature 1.1 2>/dev/null)
if [ -n "$g1" ] && [ "$g1" = "$g3" ]; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: nucleus sampling at P=3 differs from P=1"; fi
# A small-context model stops at its context length, with a message saying so.
expect 0 "wrote" -- init --out "$tmp/ctx12" --layers 1 --embd 16 --heads 2 --vocab 50257 --ctx 12 --seed 4
expect 0 "stopped at the model's context length" -- generate --model "$tmp/ctx12" --tp 2 -n 50 --prompt "a b"
expect 1 "the prompt has [0-9]+ tokens; the model's context is 12 positions" -- generate --model "$tmp/ctx12" --prompt "$(printf 'x %.0s' $(seq 13))"
expect 1 "the tokenizer has 50257 tokens but the model only 101" -- generate --model "$model"
expect 1 "cannot split a model with 4 attention heads over 5 ranks" -- generate --tp 5
expect_one_line 2 generate -n 0
expect_one_line 2 generate --temperature -1
expect_one_line 2 generate --top-p 1.5
expect_one_line 2 generate --top-k x
# Stop strings: the text is cut before the first one (never printed), at every P the same.
s1=$("$bin" generate -n 24 --stop " city" --stop "Zebra" 2>/dev/null)
s3=$("$bin" generate -n 24 --stop " city" --stop "Zebra" --tp 3 2>/dev/null)
if [ "$s1" = "And it came to pass, as they brought a certain of the" ] && [ "$s1" = "$s3" ]; then
  passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: generate --stop ' city': '$s1' (P=1), '$s3' (P=3)"; fi
expect 0 "9 tokens generated.*stopped at a stop string" -- generate -n 24 --stop " city"
expect_one_line 2 generate --stop ""
expect_one_line 2 generate --stop a --stop b --stop c --stop d --stop e
expect_one_line 2 generate --stop $'\xff'
expect_one_line 2 bench generate --shape tiny --batch 0

# ---- bench train: runs, and every P reports the same first loss (the same model is trained) ----
bt=$("$bin" bench train --model "$model" --tp 1,2,3 --batch 2 --seq 8 --steps 1 --no-peers 2>/dev/null)
if [ "$(grep -cE '^  linshard P=[123] ' <<<"$bt")" -eq 3 ] &&
   [ "$(grep -E '^  linshard P=' <<<"$bt" | awk '{print $NF}' | sort -u | wc -l)" -eq 1 ]; then
  passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: bench train:"; echo "$bt"; fi
expect_one_line 2 bench train --steps 0
expect_one_line 1 bench train --model "$model" --seq 33 --no-peers

# ---- convert: another storage type, same model -------------------------------------------------
expect 0 "wrote $tmp/f16/model.safetensors \(.* tensors, F16\)" -- convert --model "$model" --out "$tmp/f16" --dtype f16
expect 0 "top-5 next tokens" -- forward --model "$tmp/f16" --tokens 1,2,3 --tp 2
if [ "$(stat -c %s "$tmp/f16/model.safetensors")" -lt "$(stat -c %s "$model/model.safetensors")" ]; then
  passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: the F16 file is not smaller"; fi
expect_one_line 2 convert --model "$model" --out "$tmp/x" --dtype f8
expect_one_line 2 convert --model "$model" --out "$model" --dtype f16
expect_one_line 2 convert --model "$model" --dtype f16
expect_one_line 1 convert --model /nonexistent --out "$tmp/y" --dtype f16

# ---- lab: every correct split matches, every naive one is visibly wrong -------------------------
expect 0 "all 20 rows as expected" -- lab --tp 3
expect 0 "GQA attention .*WRONG as expected" -- lab --tp 4
expect 0 "WRONG as expected" -- lab --tp 2 --seed 5
expect_one_line 2 lab --tp 1
expect_one_line 2 lab --seed x

# ---- plan: the communication derived from placements --------------------------------------------
expect 0 "forward: per layer 2 AllReduce" -- plan --shape gpt2 --tp 4
expect 0 "backward: per layer 2 AllReduce" -- plan --shape tiny --tp 2 --backward
expect 0 "per layer 2 AllReduce \+ 1 all-gather" -- plan --shape tiny --tp 2 --mlp row,column
expect 0 "\"allreduce_per_layer\":[[:space:]]*2" -- plan --model "$model" --tp 3 --json
expect 1 "no valid plan: .*added once" -- plan --shape tiny --tp 2 --bias every-rank
expect_one_line 1 plan --shape tiny --tp 2 --bias every-rank
expect_one_line 1 plan --shape tiny --tp 7
expect_one_line 2 plan --shape tiny --tp 2 --mlp sideways
# every family: Llama 3.2 1B's shape, and a small Qwen3 checkpoint with 6 query / 2 K/V heads
expect 0 "forward: per layer 2 AllReduce" -- plan --shape llama-1b --tp 2
expect 0 "K/V heads: 8 over 2 ranks, each held by one rank" -- plan --shape llama-1b --tp 2
expect 0 "10 held over the 3 ranks for 8" -- plan --shape llama-1b --tp 3
expect 0 "communication: none added" -- plan --shape llama-1b --tp 3
"$bin" init --out "$tmp/qwen3" --family qwen3 --layers 2 --embd 48 --heads 6 --kv-heads 2 \
  --ff 80 --vocab 101 --ctx 16 >/dev/null 2>&1
expect 0 "q/k norm \(per head\)" -- plan --model "$tmp/qwen3" --tp 4 --backward
expect 0 "\"kv_heads_held\":[[:space:]]*5" -- plan --model "$tmp/qwen3" --tp 4 --json

# ---- the Llama family: BF16 weights in sharded files, K/V heads replicated at P = 3, 4 ----------
expect 0 "verify: LlamaForCausalLM, 2 layers x 48 wide, 6 heads \(2 kv\)" -- verify --model "$llama" --tp 1,2,3,4,5,6
expect 0 "every P matches P=1 within tolerance, with exactly 2 AllReduce per layer" -- verify --model "$llama" --tp 4,6
expect 0 "logits \[8, 101\] float32 written" -- forward --model "$llama" --tp 4 --tokens 100,3,7,64,0,9,31,2 --dump-logits "$tmp/llama.bin"
if "$check_llama" "$llama" 100,3,7,64,0,9,31,2 --compare "$tmp/llama.bin" --tol 2e-5 >/dev/null; then
  passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: Llama logits at P=4 vs the reference"; fi
expect 0 "linshard P=3" -- bench forward --model "$llama" --tp 1,3 --tokens-count 8 --no-peers
expect 0 "P=2 greedy tokens equal P=1's" -- bench generate --model "$llama" --tp 1,2 --prompt-count 4 -n 6 --no-peers
expect 0 "wrote $tmp/q3/config.json" -- init --out "$tmp/q3" --family qwen3 --layers 1 --embd 32 --heads 4 --kv-heads 2 --head-dim 12 --ff 40 --vocab 50 --ctx 16 --tied
expect 0 "every P matches P=1" -- verify --model "$tmp/q3" --tp 1,2,3,4
expect 0 "model-\\*.safetensors \\+ model.safetensors.index.json" -- init --out "$tmp/q3b" --family qwen3 --layers 1 --embd 32 --heads 4 --kv-heads 2 --ff 40 --vocab 50 --ctx 16 --shard-bytes 4K
grep -qE '"head_dim":[[:space:]]*8,' "$tmp/q3b/config.json" && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: head_dim default"; }
expect_one_line 2 init --out "$tmp/x" --family llama --layers 1 --embd 32 --heads 4 --vocab 50 --ctx 16
expect_one_line 2 init --out "$tmp/x" --family gpt2 --layers 1 --embd 32 --heads 4 --kv-heads 2 --vocab 50 --ctx 16
expect_one_line 2 init --out "$tmp/x" --family falcon --shape gpt2
expect_one_line 2 init --out "$tmp/x" --family llama --layers 1 --embd 32 --heads 4 --kv-heads 3 --ff 40 --vocab 50 --ctx 16
expect_one_line 2 init --out "$tmp/x" --family llama --layers 1 --embd 32 --heads 4 --ff 40 --vocab 50 --ctx 16 --rope-scaling yarn:4
expect_one_line 2 init --out "$tmp/x" --family mistral --layers 1 --embd 32 --heads 4 --ff 40 --vocab 50 --ctx 16 --attention-bias
# Damaged sharded checkpoints and configs linshard does not implement: one line, exit 1.
cp -r "$llama" "$tmp/noshard" && rm "$(ls "$tmp"/noshard/model-0000*-of-*.safetensors | tail -1)"
expect 1 "model.safetensors.index.json names model-0000[0-9]-of-0000[0-9].safetensors, which is missing" -- forward --model "$tmp/noshard" --tokens 1
expect_one_line 1 forward --model "$tmp/noshard" --tokens 1
cp -r "$llama" "$tmp/ghost" && sed -i 's/"model.norm.weight"/"model.ghost.weight": "model-00001-of-00002.safetensors", "model.norm.weight"/' "$tmp/ghost/model.safetensors.index.json"
expect 1 "maps tensor 'model.ghost.weight' to model-00001-of-0000[0-9].safetensors, which does not contain it" -- verify --model "$tmp/ghost" --tp 2
cp -r "$llama" "$tmp/kv4" && sed -i -E 's/"num_key_value_heads":[[:space:]]*2/"num_key_value_heads": 4/' "$tmp/kv4/config.json"
expect 1 "num_key_value_heads 4 does not divide num_attention_heads 6" -- forward --model "$tmp/kv4" --tokens 1
cp -r "$llama" "$tmp/yarn" && sed -i 's/"llama3"/"yarn"/' "$tmp/yarn/config.json"
expect 1 "unsupported \"rope_scaling\" type 'yarn'" -- forward --model "$tmp/yarn" --tokens 1
expect_one_line 1 forward --model "$tmp/yarn" --tokens 1
expect 1 "cannot split a model with 6 attention heads over 7 ranks" -- verify --model "$llama" --tp 7
expect 1 "has no tokenizer.json: a LlamaForCausalLM checkpoint needs the tokenizer it was trained with" -- generate --model "$llama"
expect 1 "training runs GPT-2 for now .*LlamaForCausalLM cannot be trained yet" -- train --model "$llama" --data "$tmp/q3/config.json" --out "$tmp/tl"
expect_one_line 1 bench train --model "$llama" --no-peers
# A model with Llama 3's vocabulary and tokenizer: BOS added, the same text at every P.
expect 0 "wrote" -- init --out "$tmp/l3" --family llama --layers 1 --embd 32 --heads 4 --kv-heads 2 --ff 64 --vocab 128256 --ctx 48 --seed 5 --dtype bf16
cp "$hf/llama3/tokenizer.json" "$hf/llama3/tokenizer_config.json" "$tmp/l3/"
expect 0 "prompt 3 tokens .*stopped at the requested number of tokens" -- generate --model "$tmp/l3" --prompt "Hello world" -n 6 --tp 2
expect 0 "^9906,1917$" -- tokenize --model "$tmp/l3" "Hello world"
g1=$("$bin" generate --model "$tmp/l3" --tp 1 --seed 4 -n 12 2>/dev/null)
g3=$("$bin" generate --model "$tmp/l3" --tp 3 --seed 4 -n 12 2>/dev/null)
if [ -n "$g1" ] && [ "$g1" = "$g3" ] && iconv -f UTF-8 -t UTF-8 <<<"$g1" >/dev/null; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: Llama 3 generation at P=3 differs from P=1 (or is not UTF-8)"; fi
# The tokenizer travels inside a converted GGUF file (issue 11): the file alone, in a directory
# without tokenizer files, tokenizes and generates as its source directory does.
mkdir -p "$tmp/alone"
expect 0 "wrote .*alone/l3.gguf" -- convert --model "$tmp/l3" --out "$tmp/alone/l3.gguf" --dtype bf16
expect 0 "^9906,1917$" -- tokenize --model "$tmp/alone/l3.gguf" "Hello world"
g2=$("$bin" generate --model "$tmp/alone/l3.gguf" --tp 2 --seed 4 -n 12 --prompt "<|begin_of_text|>Hi" 2>/dev/null)
g1=$("$bin" generate --model "$tmp/l3" --tp 2 --seed 4 -n 12 --prompt "<|begin_of_text|>Hi" 2>/dev/null)
if [ -n "$g1" ] && [ "$g1" = "$g2" ]; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: generate from the Llama 3 GGUF alone: '$g2' vs the directory's '$g1'"; fi
for f in qwen3:151936 mistral:32000; do
  v=${f#*:} f=${f%%:*}
  expect 0 "wrote" -- init --out "$tmp/$f" --family llama --layers 1 --embd 32 --heads 4 --kv-heads 2 --ff 64 --vocab "$v" --ctx 16
  cp "$hf/$f/tokenizer.json" "$hf/$f/tokenizer_config.json" "$tmp/$f/"
  expect 0 "wrote" -- convert --model "$tmp/$f" --out "$tmp/alone/$f.gguf" --dtype f16
  text=$'  H\u00e9llo <|im_start|>w\u00f6rld <s>\n\n 12345 caf\u0065\u0301'
  a=$("$bin" tokenize --model "$tmp/alone/$f.gguf" "$text" 2>&1)
  b=$("$bin" tokenize --model "$tmp/$f" "$text" 2>&1)
  if [ -n "$a" ] && [ "$a" = "$b" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: tokenize with the $f GGUF alone: '$a' vs the directory's '$b'"; fi
  a=$("$bin" tokenize --model "$tmp/alone/$f.gguf" --decode "$b" 2>&1)
  c=$("$bin" tokenize --model "$tmp/$f" --decode "$b" 2>&1)
  if [ -n "$a" ] && [ "$a" = "$c" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: decode with the $f GGUF alone: '$a' vs the directory's '$c'"; fi
done

# ---- issue 10: non-finite weights are refused at load, by every command, naming the tensor ----
# poison FILE TENSOR VALUE: writes VALUE (nan, inf) into element 0 of an F32/BF16 tensor.
poison() {
  python3 - "$@" <<'PY'
import json, struct, sys
path, name, value = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    t = json.loads(f.read(n))[name]
    f.seek(8 + n + t["data_offsets"][0])
    f.write(struct.pack("<f", value) if t["dtype"] == "F32" else struct.pack("<f", value)[2:])
PY
}
if command -v python3 >/dev/null; then
  cp -r "$model" "$tmp/nan" && poison "$tmp/nan/model.safetensors" transformer.h.0.attn.c_proj.weight nan
  expect 1 "tensor 'transformer.h.0.attn.c_proj.weight' holds a non-finite value \(nan" -- verify --model "$tmp/nan" --tp 1,2
  expect_one_line 1 forward --model "$tmp/nan" --tokens 1,2
  cp -r "$llama" "$tmp/llama_inf" && f=$(grep -l model.norm.weight "$tmp"/llama_inf/model-0000*.safetensors | head -1) &&
    poison "$f" model.norm.weight inf
  expect 1 "tensor 'model.norm.weight' holds a non-finite value \(inf" -- verify --model "$tmp/llama_inf" --tp 2
  expect 1 "tensor 'model.norm.weight' holds a non-finite value \(inf" -- forward --model "$tmp/llama_inf" --tokens 1,2
fi

# Started by an MPI launcher (its variables faked here; nothing reaches MPI_Init): a choice that
# contradicts mpirun is one line naming the fix, threads-only commands refuse to run as copies,
# and ranks other than 0 keep quiet about a usage error every rank finds.
export OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0
expect 2 "--backend threads under mpirun runs 2 separate jobs; drop --backend threads" -- forward --model "$model" --tokens 1 --backend threads
expect_one_line 2 generate --model "$model" --backend threads
expect 2 "mpirun -np 3 linshard verify|built without MPI" -- verify --model "$model" --tp 3
expect 2 "run it without mpirun: linshard bench forward" -- bench forward --shape tiny
expect_one_line 2 lab --tp 2
out=$(OMPI_COMM_WORLD_RANK=1 "$bin" check comm --backend threads 2>&1)
if [ $? -eq 2 ] && [ -z "$out" ]; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: rank 1's copy of a usage error was printed: $out"; fi
unset OMPI_COMM_WORLD_SIZE OMPI_COMM_WORLD_RANK
PMI_SIZE=2 PMI_RANK=0 "$bin" train --data "$model/config.json" --out "$tmp/pmi" --tp 3 >/dev/null 2>&1
if [ $? -eq 2 ]; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: under MPICH's PMI_SIZE=2, train --tp 3 was not refused"; fi

# Peers run without a shell: a model directory named like a command substitution stays a name.
# The PyTorch peer is a fake (LINSHARD_PYTHON=/bin/sh) that prints one valid line, so no torch.
evil="$tmp/q'\$(touch \"$tmp/PWNED\")'"
mkdir -p "$(dirname "$evil")"
expect 0 "wrote" -- init --out "$evil" --layers 1 --embd 12 --heads 2 --vocab 20 --ctx 16
printf '%s\n' 'echo "{\"T\":4,\"seconds\":0.001}"' >"$tmp/fake_torch.sh"
export LINSHARD_PYTHON=/bin/sh LINSHARD_TORCH_BENCH="$tmp/fake_torch.sh"
expect 0 "pytorch 1 thread" -- bench forward --model "$evil" --tp 1 --tokens-count 4
if [ ! -e "$tmp/PWNED" ]; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: bench forward ran a shell command hidden in the model path"; fi
# A peer that fails is reported in one line with its exit status.
printf 'exit 3\n' >"$tmp/fake_torch.sh"
expect 0 "the PyTorch peer failed \(/bin/sh .*fake_torch.sh exited with 3" -- bench forward --model "$evil" --tp 1 --tokens-count 4
unset LINSHARD_PYTHON LINSHARD_TORCH_BENCH

# Columns for runs that did not happen read "-", not a made-up 0.00x.
expect 0 "linshard P=1 .*1\.00x +-$" -- bench generate --model "$evil" --tp 1 -n 2 --prompt-count 4 --no-peers
expect 0 "linshard P=1 .*% +-$" -- bench forward --model "$evil" --tp 1 --tokens-count 4 --no-peers
# bench comm shows measurements, not the developers' targets.
if ! "$bin" bench comm --tp 2 --sizes 4K 2>&1 | grep -qi "target"; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: bench comm prints internal targets"; fi
# plan prints bytes as whole numbers (at P=5 the per-rank share used to read 4915.2 and 122880.0).
if ! "$bin" plan --shape gpt2 --tp 5 | grep -qE "[0-9]\.[0-9]+ ?(bytes|/rank)"; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: plan prints a fractional byte count"; fi
# forward on a vocabulary smaller than 5 prints its whole top-3.
expect 0 "wrote" -- init --out "$tmp/v3" --layers 1 --embd 12 --heads 2 --vocab 3 --ctx 8
expect 0 "top-3 next tokens" -- forward --model "$tmp/v3" --tokens 0,1,2 --tp 2
# tokenize --model picks the tokenizer generate does: GPT-2 without files is the built-in one,
# another family without tokenizer.json is an error.
expect 0 "^15496,995$" -- tokenize --model "$tmp/v3" "Hello world"
expect 1 "has no tokenizer.json: a LlamaForCausalLM checkpoint needs the tokenizer it was trained with" -- tokenize --model "$llama" "Hello world"

# A bad value names its option, however it was spelled.
expect 2 "bad value '0' for --tp" -- train --tp 0 --data "$model/config.json" --out "$tmp/tp0"
expect 2 "bad value 'x' for --steps" -- train --steps=x --data "$model/config.json" --out "$tmp/tp0"

# Weights held as another type (issue 11): --dtype on the commands that run a model. A Llama of
# whole 32-value blocks runs as every type, at P = 1 and an uneven P; verify compares P with P = 1
# in the same type; forward names the type it ran; a width that is not whole blocks is refused in
# one line; a bad --dtype is a usage error.
expect 0 "wrote" -- init --out "$tmp/blocks" --family llama --layers 1 --embd 64 --heads 4 --kv-heads 2 --head-dim 32 --ff 96 --vocab 50 --ctx 16
for t in f32 f16 bf16 q8_0 q4_0; do
  expect 0 "P=3, threads, $t weights" -- forward --model "$tmp/blocks" --tokens 1,2,3 --tp 3 --dtype $t
  expect 0 "every P matches P=1" -- verify --model "$tmp/blocks" --tp 1,2,3,4 --dtype $t
done
expect 0 "P=1, threads, f32 weights" -- forward --model "$tmp/blocks" --tokens 1,2,3
expect 1 "weights as q8_0 need every row to be whole blocks of 32 values: hidden size 12" -- forward --model "$tmp/v3" --tokens 0,1 --dtype q8_0
expect_one_line 1 forward --model "$tmp/v3" --tokens 0,1 --dtype q4_0
expect_one_line 2 forward --model "$tmp/blocks" --tokens 1 --dtype q5_1
expect_one_line 2 generate --dtype int8
expect_one_line 2 bench generate --shape tiny --dtype f32,
expect 0 "linshard P=1 q8_0" -- bench generate --model "$tmp/blocks" --tp 1 -n 2 --prompt-count 4 --no-peers --dtype f32,q8_0
# The built-in model is stored as F16 and held as F16 unless asked: same greedy text as F32.
a=$("$bin" generate -n 12 --temperature 0 2>/dev/null)
b=$("$bin" generate -n 12 --temperature 0 --dtype f32 2>/dev/null)
if [ -n "$a" ] && [ "$a" = "$b" ]; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: the default model's greedy text differs between f16 and f32 weights: '$a' vs '$b'"; fi

# GGUF (issue 11): convert writes one .gguf file; every command takes it as --model. A model
# read from GGUF as type T gives the same answer as the directory held as T.
for t in f32 f16 q8_0 q4_0; do
  expect 0 "wrote .*blocks-$t.gguf \(GGUF v3, matrices as $t\)" -- convert --model "$tmp/blocks" --out "$tmp/blocks-$t.gguf" --dtype $t
  a=$("$bin" forward --model "$tmp/blocks-$t.gguf" --tokens 1,2,3 --tp 3 2>&1)
  b=$("$bin" forward --model "$tmp/blocks" --tokens 1,2,3 --tp 3 --dtype $t 2>&1)
  if [ "$a" = "$b" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: forward from $t GGUF differs from the directory held as $t: $a / $b"; fi
done
expect 0 "every P matches P=1" -- verify --model "$tmp/blocks-q4_0.gguf" --tp 1,2,3,4
expect 0 "plan: Llama, 1 layers, 64 wide" -- plan --model "$tmp/blocks-q8_0.gguf" --tp 2
expect_one_line 2 convert --model "$tmp/blocks" --out "$tmp/blocks-q8" --dtype q8_0
expect_one_line 1 forward --model "$tmp/blocks/config.json" --tokens 1
expect 1 "the GGUF file holds none either" -- generate --model "$tmp/blocks-q8_0.gguf" -n 2
printf 'GGUF\003\000\000\000' >"$tmp/trunc.gguf"
expect_one_line 1 forward --model "$tmp/trunc.gguf" --tokens 1
# A GPT-2 GGUF generates with the built-in tokenizer, the same text as its directory.
expect 0 "wrote" -- init --out "$tmp/g2" --layers 1 --embd 64 --heads 2 --vocab 50257 --ctx 16
expect 0 "wrote" -- convert --model "$tmp/g2" --out "$tmp/g2.gguf" --dtype q8_0
a=$("$bin" generate --model "$tmp/g2.gguf" -n 6 --temperature 0 --tp 2 2>/dev/null)
b=$("$bin" generate --model "$tmp/g2" -n 6 --temperature 0 --tp 2 --dtype q8_0 2>/dev/null)
if [ -n "$a" ] && [ "$a" = "$b" ]; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: generate from a q8_0 GPT-2 GGUF: '$a' vs the directory's '$b'"; fi

# ---- issue 10: under an address-space limit (ulimit -v) a job ends at once, in one line ----------
# OpenBLAS retries a buffer allocation that fails forever (a rank spun in its first GEMM while the
# others waited; even --version hung at exit). linshard makes room for its buffers before the ranks
# start (src/cli/address_space.c). Sanitizer runtimes reserve terabytes of shadow memory and cannot
# start under such a limit: skipped in those builds.
# under_limit KIB SECONDS CODE PATTERN ARGS...: under ulimit -v KIB, linshard ARGS ends within
# SECONDS with exit CODE; a failure is one line on stderr matching PATTERN.
under_limit() {
  local kib=$1 secs=$2 code=$3 pattern=$4 err rc
  shift 4
  err=$( (ulimit -v "$kib" && exec timeout "$secs" "$bin" "$@") 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -eq "$code" ] && { [ "$code" -eq 0 ] ||
     { [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && grep -qE -- "$pattern" <<<"$err"; }; }; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: under ulimit -v $kib: linshard $* -> exit $rc (want $code within ${secs}s; 124 = hung):"
    echo "$err" | head -5
  fi
}
if ! grep -qaE '__(asan|tsan)_init' "$bin"; then
  too_small="^linshard: error: the address-space limit \(ulimit -v 250000 KiB\) is too small: OpenBLAS needs a 128 MiB buffer per thread running BLAS at once"
  under_limit 200000 30 0 "" --version
  under_limit 250000 30 1 "$too_small \(3 here\) and found room for [01];" forward --model "$model" --tokens 1,2,3 --tp 3
  under_limit 250000 30 1 "$too_small \(6 here\)" verify --model "$model" --tp 1,6
  under_limit 250000 30 1 "$too_small \(2 here\)" generate --model "$tmp/ctx12" --tp 2 -n 2 --prompt "a"
  under_limit 250000 30 1 "$too_small \(3 here\)" lab --tp 3
  under_limit 250000 30 1 "$too_small \(2 here\)" train --data "$model/config.json" --out "$tmp/ulimit_train" --tp 2 --steps 1
  under_limit 250000 30 1 "$too_small \(2 here\)" bench train --model "$model" --tp 2 --seq 8 --steps 1 --no-peers
  # OPENBLAS_NUM_THREADS chosen by the user: its workers no longer start when OpenBLAS loads.
  OPENBLAS_NUM_THREADS=8 under_limit 250000 30 1 "$too_small \(3 here\)" forward --model "$model" --tokens 1,2,3 --tp 3
  # A limit with room: the job runs, with the same answer.
  want=$("$bin" forward --model "$model" --tokens 5,9,100,0 --tp 3 2>/dev/null)
  got=$( (ulimit -v 2000000 && exec timeout 60 "$bin" forward --model "$model" --tokens 5,9,100,0 --tp 3) 2>/dev/null)
  if [ -n "$want" ] && [ "$want" = "$got" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: forward --tp 3 under ulimit -v 2000000 differs:"; echo "$got"; fi
fi

# ---- issue 10: a training run that diverges stops at the first non-finite value, saving nothing ----
# fill FILE TENSOR VALUE: every element of an F32/BF16 tensor set to VALUE. A layer-norm gain of
# 3e38 is finite (loading accepts it) but overflows float32 in the first forward pass: the loss is
# NaN at once, as after a learning rate far too high.
fill() {
  python3 - "$@" <<'PY'
import json, struct, sys
path, name, value = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    t = json.loads(f.read(n))[name]
    a, b = t["data_offsets"]
    one = struct.pack("<f", value) if t["dtype"] == "F32" else struct.pack("<f", value)[2:]
    f.seek(8 + n + a)
    f.write(one * ((b - a) // len(one)))
PY
}
if command -v python3 >/dev/null; then
  cp -r "$tmp/ctx12" "$tmp/huge" && fill "$tmp/huge/model.safetensors" ln_f.weight 3e38
  expect 1 "^linshard: error: step 1: the loss is NaN: training diverged; stopped without saving \(no checkpoint was written" -- train --model "$tmp/huge" --data "$model/config.json" --out "$tmp/div" --tp 2 --steps 3 --batch 2 --seq 8
  if [ ! -e "$tmp/div/model.safetensors" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: a diverged run saved a checkpoint"; fi
  # Resumed from a good checkpoint of step 2 that then diverges: the checkpoint stays byte for byte.
  expect 0 "step 2/2" -- train --model "$tmp/ctx12" --data "$model/config.json" --out "$tmp/div2" --tp 2 --steps 2 --batch 2 --seq 8
  fill "$tmp/div2/model.safetensors" transformer.ln_f.weight 3e38
  before=$(cat "$tmp"/div2/* | cksum)
  expect 1 "^linshard: error: step 3: the loss is NaN: training diverged; stopped without saving \(the checkpoint of step 2 stays" -- train --data "$model/config.json" --out "$tmp/div2" --resume --tp 2 --steps 4
  if [ "$(cat "$tmp"/div2/* | cksum)" = "$before" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: a diverged resumed run changed the checkpoint"; fi
fi

# ---- issue 10: BOOL and U8 buffers in a checkpoint are skipped; a weight stored so is refused ----
# st_rewrite IN OUT add|retype NAME DTYPE [DIM...]: copies a safetensors file, adding tensor NAME
# (DTYPE BOOL or U8, the given shape; for a square last pair of dims a lower-triangular mask, as
# older transformers stored "h.N.attn.bias") or giving the existing tensor NAME dtype DTYPE (one
# byte per element, all 1).
st_rewrite() {
  python3 - "$@" <<'PY'
import json, struct, sys
src, dst, mode, name, dtype = sys.argv[1:6]
shape = [int(d) for d in sys.argv[6:]]
with open(src, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
meta = header.pop("__metadata__", None)
blobs = {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}
order = sorted(header, key=lambda k: header[k]["data_offsets"][0])
if mode == "add":
    count = 1
    for d in shape: count *= d
    if len(shape) >= 2 and shape[-1] == shape[-2]:
        T = shape[-1]
        tri = bytes(1 if j <= i else 0 for i in range(T) for j in range(T))
        blobs[name] = tri * (count // (T * T))
    else:
        blobs[name] = bytes(i % 256 for i in range(count))
    header[name] = {"dtype": dtype, "shape": shape}
    order.append(name)
else:
    count = 1
    for d in header[name]["shape"]: count *= d
    header[name]["dtype"] = dtype
    blobs[name] = b"\x01" * count
out, at = {}, 0
if meta is not None: out["__metadata__"] = meta
for k in order:
    out[k] = {"dtype": header[k]["dtype"], "shape": header[k]["shape"],
              "data_offsets": [at, at + len(blobs[k])]}
    at += len(blobs[k])
text = json.dumps(out).encode()
text += b" " * (-len(text) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs[k] for k in order))
PY
}
if command -v python3 >/dev/null; then
  mkdir -p "$tmp/buffers" "$tmp/boolw"
  cp "$tmp/ctx12/config.json" "$tmp/buffers/" && cp "$tmp/ctx12/config.json" "$tmp/boolw/"
  st_rewrite "$tmp/ctx12/model.safetensors" "$tmp/buffers/a.safetensors" add h.0.attn.bias BOOL 1 1 12 12
  st_rewrite "$tmp/buffers/a.safetensors" "$tmp/buffers/model.safetensors" add h.0.attn.masked_u8 U8 5
  rm "$tmp/buffers/a.safetensors"
  for P in 1 2; do
    "$bin" forward --model "$tmp/ctx12" --tokens 5,9,100,0 --tp $P --dump-logits "$tmp/plain$P.bin" >/dev/null 2>&1
    expect 0 "written to $tmp/buffers$P.bin" -- forward --model "$tmp/buffers" --tokens 5,9,100,0 --tp $P --dump-logits "$tmp/buffers$P.bin"
    if [ -s "$tmp/plain$P.bin" ] && cmp -s "$tmp/plain$P.bin" "$tmp/buffers$P.bin"; then passed=$((passed + 1)); else
      failed=$((failed + 1)); echo "FAIL: BOOL/U8 buffer tensors changed the logits at P=$P"; fi
  done
  st_rewrite "$tmp/ctx12/model.safetensors" "$tmp/boolw/model.safetensors" retype h.0.ln_1.bias BOOL
  expect 1 "^linshard: error: .*tensor 'h.0.ln_1.bias' has dtype BOOL" -- forward --model "$tmp/boolw" --tokens 1,2
  expect_one_line 1 forward --model "$tmp/boolw" --tokens 1,2
  expect 1 "tensor 'h.0.ln_1.bias' has dtype BOOL: linshard reads F32, F16 and BF16" -- verify --model "$tmp/boolw" --tp 1,2
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
