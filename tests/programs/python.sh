#!/usr/bin/env bash
# python3 on an allocation-heavy script (alloc_heavy.py), on the system allocator and
# under LD_PRELOAD=libjsmalloc.so: same output, exit 0, and jsmalloc served the process.
#
# Usage: python.sh <libjsmalloc.so> <work dir> <python3> <pymalloc|malloc>
#   pymalloc: Python's default, its small objects come from its own arenas;
#   malloc:   PYTHONMALLOC=malloc, every object of the interpreter goes through malloc.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
programs_setup "$1" "$2"
python=$3
mode=$4

command -v "$python" >/dev/null || skip "no $python"
# The interpreter itself, not a wrapper script (pyenv shims are shell scripts).
python=$("$python" -c 'import sys; print(sys.executable)') || fail "cannot run $3"
export PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
unset PYTHONMALLOC PYTHONMALLOCSTATS PYTHONDEVMODE
case "$mode" in
  pymalloc) ;;
  malloc) export PYTHONMALLOC=malloc ;;
  *) fail "unknown mode $mode" ;;
esac

cd "$WORK"
"$python" "$here/alloc_heavy.py" >system.out 2>system.err || fail "python on the system allocator failed ($?)"
status=0
under_jsmalloc "$python" "$here/alloc_heavy.py" >jsmalloc.out 2>jsmalloc.err || status=$?
if [ "$status" -ne 0 ]; then
  tail -n 30 jsmalloc.err >&2
  fail "python under jsmalloc exited with status $status"
fi
same_file system.out jsmalloc.out "python ($mode)"
same_stderr system.err jsmalloc.err "python ($mode)"
check_jsmalloc_served jsmalloc.err "python ($mode)"
echo "python ($mode): $(wc -l <jsmalloc.out) identical lines, $(tail -n 1 jsmalloc.out)"
