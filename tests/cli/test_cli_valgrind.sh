#!/bin/sh
# The offline commands under valgrind: their option parsing and a short run read no uninitialised memory and
# leak nothing. (gen once left its TLS paths as the stack had them and now and then refused TLS options nobody
# gave: a flaky failure valgrind reports every time.) Skipped without valgrind (the CI installs it).
set -eu
T=${TELEPACK:?TELEPACK must name the telepack binary}
command -v valgrind >/dev/null || { echo "SKIP: valgrind is not installed"; exit 77; }
# a sanitizer build checks the same itself (and valgrind cannot run it)
if ldd "$T" 2>/dev/null | grep -q -e libasan -e libubsan || grep -q -a __asan_init "$T"; then
    echo "SKIP: $T is built with sanitizers"; exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
vg() { valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect "$@"; }

vg "$T" gen --vehicles 3 --seconds 30 --quantize 1e-7 -q --out "$tmp/fleet.ndjson" || fail "gen under valgrind: $?"
[ -s "$tmp/fleet.ndjson" ] || fail "gen wrote nothing"
for layout in rows columns coded; do
    vg "$T" pack -q --layout "$layout" --batch-records 20 --in "$tmp/fleet.ndjson" --out "$tmp/$layout.packs" ||
        fail "pack --layout $layout under valgrind: $?"
    vg "$T" inspect "$tmp/$layout.packs" >"$tmp/$layout.out" 2>/dev/null || fail "inspect of $layout packs under valgrind: $?"
    [ "$(wc -l <"$tmp/$layout.out")" -eq "$(wc -l <"$tmp/fleet.ndjson")" ] || fail "inspect of $layout packs: record count"
done
vg "$T" tune --from "$tmp/fleet.ndjson" --batch 10 --level 1 --layouts columns,coded --measure-ms 1 >/dev/null ||
    fail "tune under valgrind: $?"
echo "cli under valgrind: gen, pack (3 layouts), inspect, tune clean"
