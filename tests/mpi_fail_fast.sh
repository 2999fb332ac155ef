#!/usr/bin/env bash
# mpi_fail_fast.sh SECONDS MESSAGE COMMAND... — passes when COMMAND (an mpirun line) ends within
# SECONDS with a non-zero exit, its output contains MESSAGE, and linshard printed exactly one
# error line ("linshard: error: ..." or a usage error "linshard CMD: ..."), whichever rank failed.
# A rank that fails must end the whole job at once: a job still running after SECONDS is a hang.
set -u
limit=$1
want=$2
shift 2
cmd="$*"
start=$SECONDS
out=$(timeout -k 5 "$limit" "$@" 2>&1)
rc=$?
took=$((SECONDS - start))
fail() {
  echo "FAIL: $1, after ${took}s, from: $cmd"
  echo "$out"
  exit 1
}
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then fail "still running after ${limit}s (a hang)"; fi
if [ "$rc" -eq 0 ]; then fail "expected a non-zero exit"; fi
if ! grep -qF -- "$want" <<<"$out"; then fail "exit $rc, but the output lacks '$want'"; fi
lines=$(grep -cE '^linshard( [a-z]+)*: ' <<<"$out")
if [ "$lines" -ne 1 ]; then fail "linshard printed $lines error lines, not 1"; fi
echo "ok: exit $rc after ${took}s with '$want'"
