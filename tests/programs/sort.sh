#!/usr/bin/env bash
# sort on a large generated file (gen_lines.awk), on the system allocator and under
# LD_PRELOAD=libjsmalloc.so: plain, numeric, unique, and by keys with a small buffer
# (temporary files, merges). Same output (checksums), exit 0, jsmalloc served each run.
#
# Usage: sort.sh <libjsmalloc.so> <work dir> [lines]
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
programs_setup "$1" "$2"
lines=${3:-2000000}

command -v sort >/dev/null || skip "no sort"
cd "$WORK"
mkdir tmp
awk -v n="$lines" -f "$here/gen_lines.awk" >input || fail "generating $lines lines failed"
[ "$(wc -l <input)" -eq "$lines" ] || fail "the generator wrote $(wc -l <input) lines, not $lines"

variants=(
  "plain|"
  "numeric|-n"
  "unique|-u"
  "keys-small-buffer|-S 8M -T tmp -t ' ' -k2,2 -k1,1n"
)
for variant in "${variants[@]}"; do
  name=${variant%%|*}
  eval "args=(${variant#*|})"
  for allocator in system jsmalloc; do
    runner=()
    [ "$allocator" = jsmalloc ] && runner=(under_jsmalloc)
    status=0
    "${runner[@]}" sort "${args[@]}" input 2>"$name.$allocator.err" | sha256sum >"$name.$allocator.sum" ||
      status=$?
    if [ "$status" -ne 0 ]; then
      tail -n 30 "$name.$allocator.err" >&2
      fail "sort ${args[*]} on $allocator exited with status $status"
    fi
  done
  same_file "$name.system.sum" "$name.jsmalloc.sum" "sort ($name)"
  same_stderr "$name.system.err" "$name.jsmalloc.err" "sort ($name)"
  check_jsmalloc_served "$name.jsmalloc.err" "sort ($name)"
done
[ -z "$(ls tmp)" ] || fail "sort left temporary files"
# The input is large; keep the directory only when a check failed.
cd / && rm -rf "$WORK"
echo "sort: $lines lines, ${#variants[@]} variants, same output on both allocators"
