#!/usr/bin/env bash
# The installable library: `meson install --destdir` of this build, then a program outside the tree (consumer.c)
# built with only `pkg-config --cflags --libs telepack` writes and reads a pack and prints tp_version().
# Also: the shared library exports exactly the TP_API functions of include/telepack/, and every public header
# compiles alone. Usage: test_install.sh BUILD_DIR SOURCE_DIR B_SANITIZE
set -euo pipefail
build=$1 src=$2 sanitize=${3:-none}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

meson install -C "$build" --destdir "$work/destdir" --no-rebuild --quiet >"$work/install.log" 2>&1 ||
    { cat "$work/install.log" >&2; fail "meson install --destdir failed"; }
pc=$(find "$work/destdir" -name telepack.pc | head -n 1)
[ -n "$pc" ] || fail "no telepack.pc installed"
for h in telepack.h version.h api.h error.h varint.h delimited.h record.h record_json.h rows.h pack.h pack_meta.h; do
    [ -n "$(find "$work/destdir" -path "*/include/telepack/$h")" ] || fail "header telepack/$h not installed"
done

export PKG_CONFIG_PATH=${pc%/*} PKG_CONFIG_SYSROOT_DIR=$work/destdir
cflags=$(pkg-config --cflags telepack) libs=$(pkg-config --libs telepack)
extra=()
[ "$sanitize" = none ] || extra=(-fsanitize="$sanitize")
cc -std=c11 -Wall -Wextra -Werror "${extra[@]}" $cflags "$src/tests/install/consumer.c" -o "$work/consumer" $libs ||
    fail "the outside program does not build with pkg-config's flags ($cflags $libs)"
libdir=$(dirname "$(find "$work/destdir" -name 'libtelepack.so*' | head -n 1)")
out=$(LD_LIBRARY_PATH="$libdir" "$work/consumer") || fail "the outside program failed: $out"
echo "$out"
version=$(sed -n "s/^ *version: '\([^']*\)'.*/\1/p" "$src/meson.build" | head -n 1)
[[ "$out" == "telepack $version (headers $version): 5 records in a columns pack of "* ]] ||
    fail "unexpected output (want telepack $version, 5 records, columns): $out"

# Exactly the public API is exported: the TP_API names in the headers, no more, no fewer.
so=$(find "$work/destdir" -name 'libtelepack.so.*' -type f | head -n 1)
if [ -n "$so" ]; then
    nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' | sort -u >"$work/exported"
    grep -hoE '^TP_API [^(]*\(' "$src"/include/telepack/*.h "$src"/include/telepack/*.in |
        sed -E 's/.*[ *](tp_[a-z0-9_]+)\($/\1/' | sort -u >"$work/declared"
    diff "$work/declared" "$work/exported" >"$work/diff" ||
        { cat "$work/diff" >&2; fail "exported symbols differ from the TP_API declarations (< declared, > exported)"; }
    echo "exports: $(wc -l <"$work/exported") functions, all declared TP_API"
fi

# Each public header compiles alone (self-contained), as C and as C++ when a C++ compiler is around.
for h in "$work"/destdir/*/*/include/telepack/*.h "$work"/destdir/*/include/telepack/*.h; do
    [ -f "$h" ] || continue
    printf '#include <telepack/%s>\n' "${h##*/}" >"$work/one.c"
    cc -std=c11 -Wall -Wextra -Werror $cflags -fsyntax-only "$work/one.c" || fail "telepack/${h##*/} does not compile alone"
done
echo "ok"
