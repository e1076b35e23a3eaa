#!/usr/bin/env bash
# JSMALLOC_VERBOSE=1 makes jsmalloc print its options, one "jsmalloc: option ..." line
# each, on stderr: check it does when preloaded into python3.
#
# Usage: verbose.sh <libjsmalloc.so> <work dir> <python3>
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
programs_setup "$1" "$2"
python=$3

command -v "$python" >/dev/null || skip "no $python"
python=$("$python" -c 'import sys; print(sys.executable)') || fail "cannot run $3"

cd "$WORK"
status=0
LD_PRELOAD=$JSMALLOC_SO${LD_PRELOAD:+:$LD_PRELOAD} JSMALLOC_VERBOSE=1 \
  "$python" -c 'import json; print(json.dumps({"ok": [1, 2, 3]}))' >out 2>err || status=$?
[ "$status" -eq 0 ] || { cat err >&2; fail "python with JSMALLOC_VERBOSE=1 exited with status $status"; }
[ "$(cat out)" = '{"ok": [1, 2, 3]}' ] || fail "python printed '$(cat out)'"
options=$(grep -c '^jsmalloc: option ' err || true)
if [ "$options" -eq 0 ]; then
  echo "--- stderr:" >&2
  cat err >&2
  fail "JSMALLOC_VERBOSE=1 printed no 'jsmalloc: option ' line"
fi
echo "verbose: $options option line(s):"
grep '^jsmalloc: option ' err
