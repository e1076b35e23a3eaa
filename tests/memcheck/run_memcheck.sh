#!/usr/bin/env bash
# memcheck.<mode>: runs memcheck_program <mode> under valgrind's memcheck and checks that
# memcheck reported exactly what the mode does wrong (and nothing for "clean").
# Fails, never skips, without valgrind or when jsmalloc was built without its headers:
# tools/install-deps test installs valgrind, headers included.
# With "secure", the program is linked with libjsmalloc-secure.a: memcheck's reports are
# the same but where the secure library's own checks abort the program first.
#   usage: run_memcheck.sh <program> <mode> <client requests compiled in: ON|OFF> [secure]
set -uo pipefail
prog=$1 mode=$2 requests=$3 library=${4:-default}
if ! command -v valgrind >/dev/null 2>&1; then
  echo "run_memcheck: valgrind is not installed (tools/install-deps test installs it)" >&2
  exit 1
fi
if [ "$requests" != ON ]; then
  echo "run_memcheck: jsmalloc was built without valgrind/memcheck.h: no client requests" >&2
  exit 1
fi
# By default memcheck replaces malloc in the main program too, and would test itself:
# nouserintercepts leaves jsmalloc's in place, as in a -static program. The js_* calls
# it never replaces: "prefixed" runs with valgrind's defaults.
synonyms=(--soname-synonyms=somalloc=nouserintercepts)
[ "$mode" = prefixed ] && synonyms=()
args=()
[ "$mode" = spanleak ] && [ "$library" = secure ] && args=(65528)
out=$(valgrind --tool=memcheck --leak-check=full --error-exitcode=99 "${synonyms[@]}" \
  "$prog" "$mode" "${args[@]}" 2>&1)
rc=$?
printf '%s\n' "$out"
failed=0
expect() {  # <extended regexp> <what memcheck should have said>
  if ! grep -qE -- "$1" <<<"$out"; then
    echo "run_memcheck: $mode: memcheck did not report $2" >&2
    failed=1
  fi
}
# Exactly the errors the mode makes: none more from jsmalloc's own workings. The exit
# status is error-exitcode's, or the signal's that ended the program (second argument).
errors() {
  expect "ERROR SUMMARY: $1 errors? from" "$1 error(s) in all"
  local want_rc=99
  [ "$1" -eq 0 ] && want_rc=0
  [ $# -gt 1 ] && want_rc=$((128 + $2))
  if [ "$rc" -ne "$want_rc" ]; then
    echo "run_memcheck: $mode: exit status $rc, expected $want_rc" >&2
    failed=1
  fi
}
case $mode in
  clean)
    errors 0
    expect "memcheck_program: clean run ok" "(the program's own checks failed)"
    if grep -qE "definitely lost: [1-9]" <<<"$out"; then
      echo "run_memcheck: clean: memcheck found a leak" >&2
      failed=1
    fi
    ;;
  leak)
    errors 1
    expect "definitely lost: 100 bytes in 1 blocks" "the lost 100-byte block"
    ;;
  hugeleak)
    errors 1
    # "possibly": a huge block spans enough addresses that some word in libc's data
    # points into it; what matters is that no pointer to its start is left, in
    # jsmalloc's table of huge blocks above all, so that memcheck reports the leak.
    expect "(definitely|possibly) lost: 73,400,420 bytes in 1 blocks" "the lost huge block"
    ;;
  spanleak)
    errors 1
    if [ "$library" = secure ]; then
      expect "definitely lost: 65,528 bytes in 1 blocks" "the lost block at a span's start"
    else
      expect "definitely lost: 65,536 bytes in 1 blocks" "the lost block at a span's start"
    fi
    ;;
  uninit)
    errors 4
    expect "Conditional jump or move depends on uninitialised value" "the branches on unwritten bytes"
    ;;
  uaf)
    errors 1
    expect "Invalid read of size 1" "the invalid read"
    expect "is 20 bytes inside a block of size 64 free'd" "it as a read of a freed block"
    ;;
  overflow)
    # The secure library finds its canary overwritten at the free, and aborts.
    if [ "$library" = secure ]; then
      errors 1 6
      expect "jsmalloc: heap overflow" "(the secure library) the overwritten canary"
    else
      errors 1
    fi
    expect "Invalid write of size 1" "the invalid write"
    expect "is 0 bytes after a block of size 40 alloc'd" "it as past the block's end"
    ;;
  large)
    # The secure library's freed large pages are inaccessible: the read faults.
    if [ "$library" = secure ]; then
      errors 3 11
      expect "Process terminating with default action of signal 11" "the read's fault"
    else
      errors 3
    fi
    expect "is 20 bytes inside a block of size 200,000 free'd" "the read of a freed large block"
    expect "is 8 bytes after a (recently re-allocated )?block of size 200,000 alloc'd" "the write past a large block"
    expect "is 0 bytes after a (recently re-allocated )?block of size 73,400,420 alloc'd" "the write past a huge block"
    ;;
  doublefree)
    # memcheck is told of a free of a block it no longer knows only by the secure
    # library, which unregisters before it checks; both abort with jsmalloc's report.
    if [ "$library" = secure ]; then
      errors 1 6
      expect "Invalid free\(\)" "the second free"
    else
      errors 0 6
    fi
    expect "jsmalloc: double free" "(jsmalloc) the double free"
    ;;
  prefixed)
    errors 2
    expect "definitely lost: 100 bytes in 1 blocks" "the lost js_malloc block"
    expect "is 20 bytes inside a block of size 64 free'd" "the read of a block js_free freed"
    ;;
  *)
    echo "run_memcheck: unknown mode $mode" >&2
    exit 2
    ;;
esac
exit $failed
