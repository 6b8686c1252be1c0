#!/bin/sh
# exports.sh ENGINE.so - the shipped engine exports exactly one symbol,
# create_instance (engine_api.h); test hooks live in the test variant only.
# Prints the harness's closing line, so scripts/test counts it.
set -u
syms=$(nm -D --defined-only "$1" | awk '$2 ~ /^[TDBVWRi]$/ {print $3}' | sort)
if [ "$syms" = "create_instance" ]; then
    echo "one exported symbol: create_instance"
    echo "1 passed, 0 failed, 0 skipped"
    exit 0
fi
echo "$1 exports:"
echo "$syms"
echo "0 passed, 1 failed, 0 skipped"
exit 1
