#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (a build of its own: the tests build with GCC)
# and runs each over tests/fuzz/corpus: the default library's, then the secure one's.
#   usage: run_fuzz.sh <source dir> <build dir> short|long
#   short: CTest's fuzz.libfuzzer, a fixed count of inputs (FUZZ_RUNS, 3000)
#          and at most 30 s, for each library;
#   long:  `make fuzz`, FUZZ_SECONDS (600) of fuzzing for each library.
# New inputs go to <build dir>/corpus (the secure library's to corpus-secure), crashes
# to <build dir>/crash-* (secure-crash-*): a crash that is fixed is kept as a regression
# input by copying it into tests/fuzz/corpus.
# Fails (never skips) when clang or libFuzzer is missing: tools/install-deps test
# installs clang-14 and libclang-rt-14-dev.
set -euo pipefail
src=$1 dir=$2 mode=$3
CXX_FUZZ=${CXX_FUZZ:-clang++}
CC_FUZZ=${CC_FUZZ:-clang}
if ! command -v "$CXX_FUZZ" >/dev/null 2>&1; then
  echo "run_fuzz: $CXX_FUZZ not found: install clang-14 and libclang-rt-14-dev (tools/install-deps test)" >&2
  exit 1
fi
fuzzer_lib=$("$CXX_FUZZ" -print-file-name=libclang_rt.fuzzer-x86_64.a)
if [ ! -f "$fuzzer_lib" ]; then
  fuzzer_lib=$("$CXX_FUZZ" -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a
fi
if [ ! -f "$fuzzer_lib" ]; then
  echo "run_fuzz: libFuzzer (libclang_rt.fuzzer-x86_64.a) not found for $CXX_FUZZ: install libclang-rt-14-dev" >&2
  exit 1
fi
log=$dir/build.log
mkdir -p "$dir"
if ! { cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$CC_FUZZ" \
         -DCMAKE_CXX_COMPILER="$CXX_FUZZ" -DJSMALLOC_BUILD_TESTS=OFF -DJSMALLOC_BUILD_BENCH=OFF \
         -DJSMALLOC_BUILD_FUZZ=ON &&
       cmake --build "$dir" --target jsmalloc_fuzz_api jsmalloc_fuzz_api_secure -j 2; } \
     >"$log" 2>&1; then
  cat "$log" >&2
  echo "run_fuzz: the clang build of the fuzz target failed (log above)" >&2
  exit 1
fi
mkdir -p "$dir/corpus" "$dir/corpus-secure"
case $mode in
  short) limits=(-runs="${FUZZ_RUNS:-3000}" -max_total_time=30) ;;
  long) limits=(-max_total_time="${FUZZ_SECONDS:-600}") ;;
  *) echo "run_fuzz: mode is short or long, not $mode" >&2; exit 2 ;;
esac
# The seed inputs run first; -max_len bounds a thread's program at about a thousand calls.
run() {  # <target> <corpus dir> <artifact prefix>
  echo "run_fuzz: $1" >&2
  "$dir/tests/fuzz/$1" "${limits[@]}" -max_len=4096 -timeout=60 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$3" "$2" "$src/tests/fuzz/corpus"
}
run jsmalloc_fuzz_api "$dir/corpus" "$dir/"
run jsmalloc_fuzz_api_secure "$dir/corpus-secure" "$dir/secure-"
