#!/usr/bin/env bash
# PITFALL 14: libjsmalloc.so must not pull the C++ runtime into C programs.
set -euo pipefail
needed=$(readelf -d "$1" | grep NEEDED || true)
echo "$needed"
if echo "$needed" | grep -q 'libstdc++'; then
  echo "FAIL: $1 depends on libstdc++" >&2
  exit 1
fi
echo "$needed" | grep -q 'libc.so' || { echo "FAIL: no libc dependency listed" >&2; exit 1; }
