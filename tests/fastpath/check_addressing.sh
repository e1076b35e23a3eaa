#!/usr/bin/env bash
# Pins how the hit paths of malloc and free address memory (tools/hit-path prints them
# from the built library): no store or read-modify-write with an index register, and no
# index scaled by 4 or 8 at all. A pop waits on the push before it and the push on the
# pop, through the list's head and budget; addressed by base and displacement (the
# cache's address plus the class's tag, fast_path.h ListSlot) a tight malloc+free pair
# took 8.5 cycles on this project's machines, addressed by a scaled index 12.0, at the
# same instruction count, so check_pairs.sh cannot see the difference.
# usage: check_addressing.sh <hit-path tool> <libjsmalloc.so>
set -euo pipefail
tool=$1 lib=$2
status=0
for fn in malloc free; do
  path=$("$tool" "$lib" "$fn")
  # Lines: "<n> <address> <mnemonic> <operands>"; AT&T syntax, the destination last.
  bad=$(printf '%s\n' "$path" | awk '
    NF >= 4 && $1 ~ /^[0-9]+$/ {
      ops = $0; sub(/^[ \t]*[0-9]+[ \t]+[0-9a-f]+[ \t]+[a-z0-9]+[ \t]*/, "", ops)
      sub(/[ \t]+#.*$/, "", ops)
      if (ops ~ /,[48]\)/) { print "scaled index: " $0; next }
      # The last operand is memory with an index: a store (mov) or an RMW (add, sub...).
      if ($3 != "cmp" && $3 != "test" && $3 !~ /^prefetch/ && ops ~ /\(%[a-z0-9]+,%[a-z0-9]+(,[0-9])?\)$/)
        print "indexed store: " $0
    }')
  count=$(printf '%s\n' "$path" | awk '/instructions$/ {print $2}')
  if [ -z "$count" ]; then
    echo "FAIL: no hit path of $fn found in $lib" >&2
    status=1
  elif [ -n "$bad" ]; then
    echo "FAIL: $fn's hit path addresses the cache the slow way:" >&2
    printf '%s\n' "$bad" >&2
    status=1
  else
    echo "jsmalloc: $fn hit path ($count instructions): no indexed store, no scaled index"
  fi
done
exit $status
