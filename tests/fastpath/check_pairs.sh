#!/usr/bin/env bash
# Pins the fast paths: instructions per malloc(32)+free pair under jsmalloc, counted
# exactly by callgrind, must stay within the budget (docs/design.md explains each
# instruction). usage: check_pairs.sh <pairs binary> <libjsmalloc.so> <pattern> <budget>
set -euo pipefail
bin=$1 lib=$2 pattern=$3 budget=$4
n=200000
count() {
  local out
  out=$(mktemp)
  LD_PRELOAD=$lib valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$pattern" "$1" \
    >/dev/null 2>&1
  awk '/^(summary|totals):/ {print $2; exit}' "$out"
  rm -f "$out"
}
base=$(count 0)
full=$(count $n)
per=$(( (full - base + n / 2) / n ))
echo "jsmalloc: $pattern malloc(32)+free pair = $per instructions (budget $budget)"
if [ "$per" -gt "$budget" ]; then
  echo "FAIL: the $pattern fast path grew past its budget" >&2
  exit 1
fi
if [ "$per" -lt 20 ]; then
  echo "FAIL: implausibly few instructions ($per): is jsmalloc really preloaded?" >&2
  exit 1
fi
