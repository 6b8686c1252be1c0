#!/bin/sh
# install_test.sh BUILD_DIR SOURCE_DIR - `meson install` into a scratch
# directory puts ep_engine.so, kvhost, engine_api.h and ep-engine.pc in place,
# and the README's host, compiled with the flags of the installed ep-engine.pc,
# loads the installed engine and stores and reads an item.
set -eu
build=$1
src=$2
dest=$(mktemp -d "${TMPDIR:-/tmp}/ep_install.XXXXXX")
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet
pc=$(find "$dest" -name ep-engine.pc)
[ -n "$pc" ] || { echo "install_test: no ep-engine.pc installed" >&2; exit 1; }
prefix=$(sed -n 's/^prefix=//p' "$pc")
at="--define-variable=prefix=$dest$prefix"
engine=$(pkg-config "$at" --variable=engine "$pc")
[ -f "$engine" ] || { echo "install_test: $engine is not installed" >&2; exit 1; }
[ -f "$(pkg-config "$at" --variable=includedir "$pc")/ep-engine/engine_api.h" ] ||
    { echo "install_test: engine_api.h is not installed" >&2; exit 1; }
if [ -f "$build/host/kvhost" ]; then
    [ -x "$dest$prefix/bin/kvhost" ] || { echo "install_test: kvhost is not installed" >&2; exit 1; }
fi
# shellcheck disable=SC2046
cc $(pkg-config "$at" --cflags "$pc") -o "$dest/hello" "$src/examples/hello.c" -ldl
"$dest/hello" "$engine"
