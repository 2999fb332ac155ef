#!/usr/bin/env bash
# test_train.sh LINSHARD — `linshard train` end to end on a tiny model (2 layers, 32 wide,
# 4 heads, context 32, GPT-2 vocabulary): the same losses at every P for the same seed,
# checkpoints that the other commands load, resuming at another P exactly where a run left
# off, and one-line errors.
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() {
  failed=$((failed + 1))
  echo "FAIL: $*"
}

s='The quick brown fox jumps over the lazy dog. A stitch in time saves nine. '
s+='All that glitters is not gold. Where there is smoke there is fire. '
text=''
while [ ${#text} -lt 20000 ]; do text+=$s; done
printf '%s' "${text:0:20000}" >"$tmp/data.txt"
printf 'too short' >"$tmp/short.txt"

shape=(--layers 2 --embd 32 --heads 4 --ctx 32 --seq 32 --batch 2 --lr 3e-3 --seed 7)

# train OUT ARGS...: runs linshard train, fails the test on a non-zero exit.
train() {
  local out=$1
  shift
  if "$bin" train --data "$tmp/data.txt" --out "$out" "$@" 2>"$tmp/train.err"; then
    ok
  else
    fail "linshard train --out $out $* -> exit $?"
    cat "$tmp/train.err"
  fi
}

# agree CSV_A CSV_B FIRST LAST: losses of steps FIRST..LAST agree within 1e-4 relative.
agree() {
  if awk -F, -v first="$3" -v last="$4" '
      FNR == 1 { next }
      NR == FNR { a[$1] = $2; next }
      $1 >= first && $1 <= last { n++; d = $2 - a[$1]; if (d < 0) d = -d
                                  if (!($1 in a) || d > 1e-4 * a[$1]) bad++ }
      END { exit !(n == last - first + 1 && bad == 0) }' "$1" "$2"; then
    ok
  else
    fail "losses of $1 and $2 (steps $3-$4) differ"
    paste -d' ' "$1" "$2"
  fi
}

# (a) the same seed gives the same losses at P = 1 and P = 2, and they decrease.
train "$tmp/p1" "${shape[@]}" --steps 6 --tp 1
train "$tmp/p2" "${shape[@]}" --steps 6 --tp 2
agree "$tmp/p1/train_log.csv" "$tmp/p2/train_log.csv" 1 6
if awk -F, 'NR == 2 { first = $2 } NR == 7 { last = $2 } END { exit !(NR == 7 && last < first - 0.05) }' \
  "$tmp/p2/train_log.csv"; then ok; else
  fail "the loss does not decrease"
  cat "$tmp/p2/train_log.csv"
fi
if head -1 "$tmp/p2/train_log.csv" | grep -qx 'step,loss,val_loss,tokens_per_s' &&
  awk -F, 'NR == 7 && $3 > 0 { found = 1 } END { exit !found }' "$tmp/p2/train_log.csv"; then ok; else
  fail "train_log.csv: header or final validation loss missing"
fi
for f in model.safetensors config.json optimizer.safetensors trainer_state.json; do
  if [ -s "$tmp/p2/$f" ]; then ok; else fail "checkpoint file $f missing"; fi
done
if command -v gnuplot >/dev/null; then
  if [ -s "$tmp/p2/loss.png" ]; then ok; else fail "gnuplot is installed but loss.png is missing"; fi
fi

# (b) the checkpoint is an ordinary model for the other commands, at any P.
if "$bin" forward --model "$tmp/p2" --tokens 464,2068,7586 --tp 3 >"$tmp/fwd.out" 2>&1; then ok; else
  fail "forward --model checkpoint"
  cat "$tmp/fwd.out"
fi
if "$bin" generate --model "$tmp/p2" --tp 2 -n 4 --seed 1 >"$tmp/gen.out" 2>&1; then ok; else
  fail "generate --model checkpoint"
  cat "$tmp/gen.out"
fi

# (c) 6 steps in one go (P = 2) == 3 steps (P = 2) then --resume for 3 more at P = 3 and P = 4.
train "$tmp/a" "${shape[@]}" --steps 6 --save-every 3 --tp 2
train "$tmp/b" "${shape[@]}" --steps 3 --decay-steps 6 --tp 2
cp -r "$tmp/b" "$tmp/b4"
cp -r "$tmp/b" "$tmp/b3"
train "$tmp/b" --resume --steps 6 --tp 3
agree "$tmp/a/train_log.csv" "$tmp/b/train_log.csv" 1 6
train "$tmp/b4" --resume --steps 6 --tp 4
agree "$tmp/a/train_log.csv" "$tmp/b4/train_log.csv" 4 6
if grep -qE '"step":[[:space:]]*6,' "$tmp/b/trainer_state.json"; then ok; else fail "resumed state not at step 6"; fi

# (e) A save killed before its commit: stale NAME.next files, no marker. The previous checkpoint
# is intact: resuming discards them and continues exactly as the uninterrupted run.
cp -r "$tmp/b3" "$tmp/killed1"
cp "$tmp/a/model.safetensors" "$tmp/killed1/model.safetensors.next"
printf 'half-written' >"$tmp/killed1/optimizer.safetensors.next"
train "$tmp/killed1" --resume --steps 6 --tp 2
agree "$tmp/a/train_log.csv" "$tmp/killed1/train_log.csv" 4 6
if ls "$tmp/killed1" | grep -q '\.next$'; then fail "stale .next files left"; else ok; fi
# (f) A save killed during its commit (marker written, one file moved): the commit is finished
# on the next start, so the checkpoint is the newer one, whole (step 6, nothing to do).
cp -r "$tmp/b3" "$tmp/killed2"
for f in model.safetensors config.json optimizer.safetensors trainer_state.json; do
  cp "$tmp/a/$f" "$tmp/killed2/$f.next"
done
printf 'commit\n' >"$tmp/killed2/checkpoint.commit"
mv "$tmp/killed2/model.safetensors.next" "$tmp/killed2/model.safetensors"
if "$bin" train --data "$tmp/data.txt" --out "$tmp/killed2" --resume --steps 6 2>"$tmp/k2.err"; then
  fail "resume after an interrupted commit should find the checkpoint already at step 6"
elif grep -q "6" "$tmp/k2.err" && grep -qE '"step":[[:space:]]*6,' "$tmp/killed2/trainer_state.json" &&
     cmp -s "$tmp/a/optimizer.safetensors" "$tmp/killed2/optimizer.safetensors" &&
     [ ! -e "$tmp/killed2/checkpoint.commit" ]; then ok; else
  fail "the interrupted commit was not finished:"; cat "$tmp/k2.err"; ls "$tmp/killed2"
fi

# (d) errors: one line on stderr, nothing on stdout; 2 for usage, 1 for a failed job.
expect_one_line() {
  local code=$1
  shift
  local out rc
  out=$("$bin" train "$@" 2>"$tmp/err")
  rc=$?
  if [ "$rc" -eq "$code" ] && [ -z "$out" ] && [ "$(wc -l <"$tmp/err")" -eq 1 ]; then ok; else
    fail "linshard train $* -> exit $rc (want $code), stdout '$out', stderr:"
    cat "$tmp/err"
  fi
}
expect_one_line 1 --data "$tmp/missing.txt" --out "$tmp/e1" "${shape[@]}" --steps 1
expect_one_line 1 --data "$tmp/short.txt" --out "$tmp/e2" "${shape[@]}" --steps 1
expect_one_line 1 --data "$tmp/data.txt" --out "$tmp/e3" --resume --steps 2
expect_one_line 1 --data "$tmp/data.txt" --out "$tmp/b" --resume --steps 6
expect_one_line 1 --data "$tmp/data.txt" --out "$tmp/e4" "${shape[@]}" --tp 5 --steps 1
expect_one_line 2 --data "$tmp/data.txt" --out "$tmp/e5" --steps 0
expect_one_line 2 --data "$tmp/data.txt" --out "$tmp/e5" --lr abc
expect_one_line 2 --data "$tmp/data.txt" --out "$tmp/e5" --bogus
expect_one_line 2 --out "$tmp/e5"
expect_one_line 2 --data "$tmp/data.txt"
expect_one_line 2 --data "$tmp/data.txt" --out "$tmp/e5" --resume --layers 2
expect_one_line 2 --data "$tmp/data.txt" --out "$tmp/e5" --steps
expect_one_line 2 --data "$tmp/data.txt" --out "$tmp/e5" extra

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
