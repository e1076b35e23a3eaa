# Helpers shared by the tests/programs/*.sh scripts; sourced, not run.
#
# Each script runs a real program twice, on the system allocator and under
# LD_PRELOAD=libjsmalloc.so with JSMALLOC_SHOW_STATS=1, and compares what the two runs
# printed. The statistics jsmalloc prints at exit prove it served the process:
#
#   jsmalloc: statistics (pid 42) <- a block starts with this line,
#     ...                         <- goes on over the indented lines after it,
#     spans allocated:   123      <- (at least one block must show spans taken)
#     ...                         <- and ends at the first line not indented (an empty
#                                    line there belongs to the block)
#
# Any other stderr line starting "jsmalloc:" is a report (an error) and fails the test.

set -euo pipefail

# Exit status CTest reads as "skipped" (SKIP_RETURN_CODE in CMakeLists.txt).
readonly SKIP=77

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

skip() {
  echo "SKIP: $*" >&2
  exit "$SKIP"
}

# programs_setup <libjsmalloc.so> <work dir>: checks the library, makes an empty work dir.
programs_setup() {
  JSMALLOC_SO=$1
  WORK=$2
  [ -f "$JSMALLOC_SO" ] || fail "no library at $JSMALLOC_SO"
  case "$JSMALLOC_SO" in /*) ;; *) JSMALLOC_SO=$PWD/$JSMALLOC_SO ;; esac
  rm -rf "$WORK"
  mkdir -p "$WORK"
  # Both runs must see the same environment, and only the preloaded run the allocator's
  # reporting switches; other JSMALLOC_* options (variants) are left as they are.
  unset JSMALLOC_VERBOSE JSMALLOC_SHOW_STATS
  export LC_ALL=C TZ=UTC
}

# under_jsmalloc <command...>: runs the command with jsmalloc preloaded, statistics on.
under_jsmalloc() {
  LD_PRELOAD=$JSMALLOC_SO${LD_PRELOAD:+:$LD_PRELOAD} JSMALLOC_SHOW_STATS=1 "$@"
}

# jsmalloc_stderr <mode> <file>: reads a preloaded run's stderr.
#   mode strip: prints it without the statistics blocks (to compare with a system run);
#   mode check: prints "<blocks> <blocks with spans allocated> <report lines>", and the
#               report lines themselves on stderr.
jsmalloc_stderr() {
  awk -v mode="$1" '
    function end_block() {
      if (in_block && has_spans) proven++
      in_block = 0
    }
    /^jsmalloc: statistics/ {
      end_block(); in_block = 1; has_spans = 0; blocks++; next
    }
    /^jsmalloc:/ {
      end_block(); reports++
      if (mode == "check") print "unexpected jsmalloc report: " $0 > "/dev/stderr"
      else print
      next
    }
    in_block && /^[ \t]/ {
      if ($0 ~ /spans allocated:[[:space:]]+[1-9]/) has_spans = 1
      next
    }
    in_block && /^$/ { end_block(); next }
    { end_block() }
    mode == "strip" { print }
    END {
      end_block()
      if (mode == "check") printf "%d %d %d\n", blocks, proven, reports
    }
  ' "$2"
}

# check_jsmalloc_served <stderr file> <what>: the run printed at least one statistics
# block with spans allocated, and no other "jsmalloc:" line.
check_jsmalloc_served() {
  local counts blocks proven reports
  counts=$(jsmalloc_stderr check "$1")
  read -r blocks proven reports <<<"$counts"
  if [ "$reports" -ne 0 ]; then
    fail "$2: jsmalloc reported $reports problem(s) on stderr ($1)"
  fi
  if [ "$proven" -eq 0 ]; then
    echo "--- stderr of $2 ($1):" >&2
    head -c 4000 "$1" >&2 || true
    fail "$2: no 'jsmalloc: statistics' block with 'spans allocated' > 0 in $blocks block(s)," \
      "so jsmalloc did not serve the process"
  fi
  echo "$2: jsmalloc served it ($blocks statistics block(s), $proven with spans allocated)"
}

# same_stderr <system stderr> <jsmalloc stderr> <what>: equal once statistics are removed.
same_stderr() {
  if ! diff -u "$1" <(jsmalloc_stderr strip "$2") >&2; then
    fail "$3: stderr differs between the system allocator and jsmalloc"
  fi
}

# same_file <system output> <jsmalloc output> <what>
same_file() {
  if ! cmp -s "$1" "$2"; then
    diff -u "$1" "$2" | head -n 60 >&2 || true
    fail "$3: output differs between the system allocator and jsmalloc ($1 vs $2)"
  fi
}
