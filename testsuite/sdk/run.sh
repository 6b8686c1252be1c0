#!/bin/sh
# run.sh KVHOST ENGINE - the Couchbase SDK tests (node --test) against one
# build's kvhost and engine. Needs `npm install --no-save` in this folder first (scripts/test
# runs it). Ends with the harness's line "N passed, N failed".
cd "$(dirname "$0")" || exit 2
if [ ! -d node_modules/couchbase ]; then
    echo "testsuite/sdk: the SDK is not installed: run 'npm install --no-save' in testsuite/sdk"
    echo "0 passed, 1 failed"
    exit 1
fi
out=$(mktemp)
KVHOST=$1 ENGINE=$2 node --test --test-concurrency=1 >"$out" 2>&1
rc=$?
cat "$out"
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$out")
fail=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$out")
rm -f "$out"
echo "${pass:-0} passed, ${fail:-1} failed"
exit $rc
