#!/bin/sh
# usage: expect_refusal.sh STATUS TEXT COMMAND [ARG...]
# Passes when COMMAND exits with STATUS and its standard error contains TEXT: a
# workload given a bad value refuses it by name instead of reading it as 0.
want_status=$1
want_text=$2
shift 2
err=$("$@" 2>&1 >/dev/null)
status=$?
if [ "$status" -ne "$want_status" ]; then
  echo "expected exit $want_status, got $status: $*" >&2
  echo "$err" >&2
  exit 1
fi
case $err in
  *"$want_text"*) exit 0 ;;
esac
echo "expected '$want_text' on stderr of: $*" >&2
echo "got: $err" >&2
exit 1
