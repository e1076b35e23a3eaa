#!/usr/bin/env bash
# The library built with clang: warning-free under -Werror, no libstdc++ dependency, and
# fast paths within the same instruction budgets as GCC's (clang's code differs, and
# once needed three more instructions per pair), addressing the cache as GCC's do.
# usage: clang_build.sh <source dir> <build dir> <pairs binary> <tight budget> <batch budget>
set -euo pipefail
src=$1 dir=$2 pairs=$3 tight=$4 batch=$5
cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DJSMALLOC_BUILD_TESTS=OFF -DJSMALLOC_BUILD_BENCH=OFF >/dev/null
# The libraries whose sources differ (plain, secure, prefixed); the static ones compile
# the same sources the same way again, and took half of this test's two minutes.
cmake --build "$dir" -j 2 --target jsmalloc jsmalloc-secure jsmalloc-prefixed >/dev/null
lib=$dir/libjsmalloc.so
"$src/tests/pitfalls/no_libstdcxx.sh" "$lib"
"$src/tests/fastpath/check_pairs.sh" "$pairs" "$lib" tight "$tight"
"$src/tests/fastpath/check_pairs.sh" "$pairs" "$lib" batch "$batch"
"$src/tests/fastpath/check_addressing.sh" "$src/tools/hit-path" "$lib"
