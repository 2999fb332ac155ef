#!/usr/bin/env bash
# test_cli.sh LINSHARD — the program's contract: help, version, exit codes (0 ok, 1 job failed,
# 2 bad usage), one-line errors, and the threads-backend jobs end to end.
set -u
bin=$1
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

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
