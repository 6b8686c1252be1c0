#!/bin/sh
# run.sh KVHOST ENGINE - the Couchbase SDK tests (node --test) against one
# build's kvhost and engine, reported in TAP (tap-reporter.mjs). Needs
# `npm install --no-save` in this folder first (scripts/test runs it).
cd "$(dirname "$0")" || exit 2
if [ ! -d node_modules/couchbase ]; then
    echo "not ok 1 - the SDK is installed: run 'npm install --no-save' in testsuite/sdk"
    echo "1..1"
    exit 1
fi
KVHOST=$1 ENGINE=$2 exec node --test --test-concurrency=1 \
    --test-reporter=./tap-reporter.mjs --test-reporter-destination=stdout
