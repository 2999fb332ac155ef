#!/usr/bin/env bash
# expect_failure.sh MESSAGE COMMAND... — passes when COMMAND exits non-zero and its stderr or
# stdout contains MESSAGE. Used for the paths where failing cleanly is the correct behaviour.
set -u
want=$1
shift
out=$("$@" 2>&1)
rc=$?
if [ "$rc" -eq 0 ]; then
  echo "FAIL: expected a non-zero exit from: $*"
  echo "$out"
  exit 1
fi
if ! grep -qF -- "$want" <<<"$out"; then
  echo "FAIL: exit $rc, but the output lacks '$want':"
  echo "$out"
  exit 1
fi
echo "ok: exit $rc with '$want'"
