#!/bin/sh
# secure.valgrind: runs the program given under memcheck; any error memcheck reports
# fails the test. Exits 77 (CTest's SKIP_RETURN_CODE: "not run") without valgrind.
if ! command -v valgrind >/dev/null 2>&1; then
  echo "valgrind is not installed: not run"
  exit 77
fi
# nouserintercepts: by default memcheck puts its own malloc in place of the program's,
# and the test would run valgrind's allocator instead of the secure library.
exec valgrind --quiet --error-exitcode=99 --track-origins=no \
  --soname-synonyms=somalloc=nouserintercepts "$@"
