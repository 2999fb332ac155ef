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

# (g) trainer_state.json is range-checked field by field: an edited or damaged value is refused
# with a one-line error naming it (a val_fraction of 1.5 crashed; a seed of 1e30 was undefined
# behaviour). A state from before "steps" and "save_every" were kept still resumes.
# set_state DIR FIELD VALUE: replaces FIELD's value in DIR/trainer_state.json.
set_state() {
  sed -i -E "s/(\"$2\":[[:space:]]*)[^,}]*/\1$3/" "$1/trainer_state.json"
}
bad_state() {
  rm -rf "$tmp/bad"
  cp -r "$tmp/b3" "$tmp/bad"
  set_state "$tmp/bad" "$1" "$2"
  expect_one_line 1 --data "$tmp/data.txt" --out "$tmp/bad" --resume --steps 6
  if grep -q "\"$1\"" "$tmp/err"; then ok; else fail "$1 = $2: the error does not name it"; fi
}
bad_state val_fraction 1.5
bad_state val_fraction -0.1
bad_state val_fraction 1
bad_state seed 1e3091
bad_state seed 1e30
bad_state seed -1
bad_state step 2.5
bad_state step 1e30
bad_state adam_step -3
bad_state batch 0
bad_state batch 1e9
bad_state seq 100000
bad_state lr 0
bad_state lr -1e-3
bad_state min_lr 1e999
bad_state warmup -1
bad_state decay_steps -2
bad_state weight_decay -0.1
bad_state clip -1
bad_state save_every -1
bad_state steps 0
cp -r "$tmp/b3" "$tmp/old"
sed -i -E '/"(steps|save_every)"/d; s/("val_fraction":[^,]*),/\1/' "$tmp/old/trainer_state.json"
train "$tmp/old" --resume --steps 6 --tp 2
agree "$tmp/a/train_log.csv" "$tmp/old/train_log.csv" 1 6

# (h) --resume restores --steps and --save-every: a run of 4 steps saving every step, killed
# after step 2 (its state, with steps 4), resumes to step 4 and still saves (and validates) at
# steps 3 and 4.
train "$tmp/se" "${shape[@]}" --steps 2 --save-every 1 --decay-steps 4
set_state "$tmp/se" steps 4
train "$tmp/se" --resume
if grep -qE '"step":[[:space:]]*4,' "$tmp/se/trainer_state.json" &&
  awk -F, 'NR > 1 && $3 != "" { n++ } END { exit !(NR == 5 && n == 4) }' "$tmp/se/train_log.csv"; then
  ok
else
  fail "--resume without --steps/--save-every did not restore them"
  cat "$tmp/se/trainer_state.json" "$tmp/se/train_log.csv"
fi

# (i) a non-empty --out is not replaced without --resume unless --overwrite is given.
cp -r "$tmp/b3" "$tmp/ow"
expect_one_line 1 --data "$tmp/data.txt" --out "$tmp/ow" "${shape[@]}" --steps 1
if grep -qE '"step":[[:space:]]*3,' "$tmp/ow/trainer_state.json"; then ok; else
  fail "a refused run changed the checkpoint"
fi
train "$tmp/ow" "${shape[@]}" --steps 1 --overwrite
if grep -qE '"step":[[:space:]]*1,' "$tmp/ow/trainer_state.json" &&
  [ "$(wc -l <"$tmp/ow/train_log.csv")" -eq 2 ]; then ok; else
  fail "--overwrite did not start afresh"
fi
expect_one_line 2 --data "$tmp/data.txt" --out "$tmp/ow" --resume --overwrite

# (j) an unwritable --out is refused before the training (one line: no progress lines).
expect_one_line 1 --data "$tmp/data.txt" --out "$tmp/data.txt" "${shape[@]}" --steps 1
if grep -q 'cannot write' "$tmp/err"; then ok; else fail "--out FILE: $(cat "$tmp/err")"; fi
if [ "$(id -u)" -ne 0 ]; then
  mkdir "$tmp/ro" && chmod 555 "$tmp/ro"
  expect_one_line 1 --data "$tmp/data.txt" --out "$tmp/ro" "${shape[@]}" --steps 1
  chmod 755 "$tmp/ro"
fi

# (k) debris of killed runs: the writers' temporaries whose pid is gone are removed on the next
# start (a live pid's are kept), and a fresh run's temporary model directory is gone as soon as
# the model is loaded, so a kill cannot leave it.
sleep 0 &
dead=$!
wait "$dead"
cp -r "$tmp/b3" "$tmp/debris"
for f in model.safetensors.next.tmp.$dead train_log.csv.tmp.$dead .write-probe.tmp.$dead \
  config.json.tmp.$$; do
  printf 'x' >"$tmp/debris/$f"
done
train "$tmp/debris" --resume --steps 4
left=$(find "$tmp/debris" -name "*.tmp.$dead")
if [ -z "$left" ] && [ -e "$tmp/debris/config.json.tmp.$$" ]; then
  ok
else
  fail "temporaries of dead writers left (or a live one removed):"
  ls -A "$tmp/debris"
fi
mkdir "$tmp/tmpdir"
TMPDIR="$tmp/tmpdir" "$bin" train --data "$tmp/data.txt" --out "$tmp/kill" "${shape[@]}" \
  --steps 100000 2>"$tmp/kill.err" &
pid=$!
for _ in $(seq 600); do
  grep -q 'train: step 1/' "$tmp/kill.err" && break
  sleep 0.1
done
kill -9 "$pid"
wait "$pid" 2>/dev/null
if grep -q 'train: step 1/' "$tmp/kill.err" && [ -z "$(ls -A "$tmp/tmpdir")" ]; then ok; else
  fail "a killed fresh run left its temporary model directory:"
  ls -A "$tmp/tmpdir"
  cat "$tmp/kill.err"
fi

# (l) the log and the checkpoint agree after a kill: the log is written before the commit, so a
# run stopped between the two has logged rows beyond its checkpoint, which resuming drops and
# computes again. A log that cannot be written stops the run where a kill would: the
# checkpoint must not have moved past the log.
cp -r "$tmp/b3" "$tmp/lk"
awk -F, 'BEGIN { OFS = "," } NR > 1 && $1 > 3 { $2 = 99 } { print }' "$tmp/a/train_log.csv" \
  >"$tmp/lk/train_log.csv"
cp "$tmp/a/model.safetensors" "$tmp/lk/model.safetensors.next"
train "$tmp/lk" --resume --steps 6 --tp 2
agree "$tmp/a/train_log.csv" "$tmp/lk/train_log.csv" 1 6
if [ "$(wc -l <"$tmp/lk/train_log.csv")" -eq 7 ]; then ok; else
  fail "the resumed log has duplicate or missing rows:"
  cat "$tmp/lk/train_log.csv"
fi
cp -r "$tmp/b3" "$tmp/lf"
rm "$tmp/lf/train_log.csv"
mkdir -p "$tmp/lf/train_log.csv/x"
"$bin" train --data "$tmp/data.txt" --out "$tmp/lf" --resume --steps 6 2>"$tmp/lf.err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q 'train_log.csv' "$tmp/lf.err" &&
  grep -qE '"step":[[:space:]]*3,' "$tmp/lf/trainer_state.json"; then ok; else
  fail "the checkpoint was committed although its log row was not written (exit $rc)"
  tail -1 "$tmp/lf.err"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
