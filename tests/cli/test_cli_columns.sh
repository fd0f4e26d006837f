#!/bin/sh
# CLI test for `telepack pack --layout columns`: gen | pack --layout columns | inspect gives back exactly what the
# row layout gives back, the column stream is smaller, and the option's errors exit 2 with a message.
# Needs the TELEPACK environment variable (set by tests/meson.build) pointing at the binary.
set -u
T=${TELEPACK:?set TELEPACK to the telepack binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
checks=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
check() { checks=$((checks + 1)); }

for q in 1e-6 1e-7 0; do
    "$T" gen --vehicles 7 --seconds 300 --quantize "$q" >"$tmp/fleet.ndjson" 2>/dev/null
    st=$?
    check
    [ $st -eq 0 ] || fail "gen --quantize $q failed"
    "$T" pack -q --in "$tmp/fleet.ndjson" --out "$tmp/rows.packs" --batch-records 50 --layout rows
    "$T" pack -q --in "$tmp/fleet.ndjson" --out "$tmp/cols.packs" --batch-records 50 --layout columns
    st=$?
    check
    [ $st -eq 0 ] || fail "pack --layout columns failed (quantum $q)"
    "$T" inspect "$tmp/rows.packs" >"$tmp/rows.out" 2>/dev/null
    "$T" inspect "$tmp/cols.packs" >"$tmp/cols.out" 2>"$tmp/cols.err"
    st=$?
    check
    [ $st -eq 0 ] || fail "inspect of the column packs failed (quantum $q): $(cat "$tmp/cols.err")"
    check
    cmp -s "$tmp/rows.out" "$tmp/cols.out" || fail "inspect prints different records for rows and columns (quantum $q)"
    check
    [ "$(wc -l <"$tmp/cols.out")" -eq "$(wc -l <"$tmp/fleet.ndjson")" ] || fail "record count differs (quantum $q)"
    rows=$(wc -c <"$tmp/rows.packs") cols=$(wc -c <"$tmp/cols.packs")
    check
    [ "$cols" -lt "$rows" ] || fail "column packs ($cols bytes) not smaller than row packs ($rows bytes), quantum $q"
    # --layout coded (docs/FORMAT_V2.md "Coded columns"): the same records back, in fewer bytes
    "$T" pack -q --in "$tmp/fleet.ndjson" --out "$tmp/coded.packs" --batch-records 50 --layout coded
    st=$?
    check
    [ $st -eq 0 ] || fail "pack --layout coded failed (quantum $q)"
    "$T" inspect "$tmp/coded.packs" >"$tmp/coded.out" 2>"$tmp/coded.err"
    st=$?
    check
    [ $st -eq 0 ] || fail "inspect of the coded packs failed (quantum $q): $(cat "$tmp/coded.err")"
    check
    cmp -s "$tmp/rows.out" "$tmp/coded.out" || fail "inspect prints different records for rows and coded (quantum $q)"
    coded=$(wc -c <"$tmp/coded.packs")
    check
    [ "$coded" -lt "$cols" ] || fail "coded packs ($coded bytes) not smaller than column packs ($cols bytes), quantum $q"
done

"$T" pack --layout columns --codec none --in "$tmp/fleet.ndjson" --out "$tmp/x" 2>"$tmp/err"
st=$?
check
[ $st -eq 2 ] && grep -q "needs --codec zstd" "$tmp/err" || fail "--layout columns --codec none: $(cat "$tmp/err")"
"$T" pack --layout coded --codec none --in "$tmp/fleet.ndjson" --out "$tmp/x" 2>"$tmp/err"
st=$?
check
[ $st -eq 2 ] && grep -q "needs --codec zstd" "$tmp/err" || fail "--layout coded --codec none: $(cat "$tmp/err")"
"$T" pack --layout diagonal --in "$tmp/fleet.ndjson" --out "$tmp/x" 2>"$tmp/err"
st=$?
check
[ $st -eq 2 ] && grep -q "diagonal" "$tmp/err" || fail "--layout diagonal: $(cat "$tmp/err")"
"$T" pack --help | grep -q -- "--layout"
st=$?
check
[ $st -eq 0 ] || fail "pack --help does not mention --layout"

# pbpack v3 (several vehicles, sorted): inspect reads it from the file form; an unsorted one is refused, exit 2.
# The packs are the fuzz corpus's v3 contents (their first byte is the fuzz target's mode) in a zstd frame.
corpus=${TP_SOURCE_ROOT:-.}/tests/fuzz/corpus/colpack
if command -v zstd >/dev/null 2>&1 && [ -f "$corpus/fleet-multi.v3" ]; then
    tail -c +2 "$corpus/fleet-multi.v3" | zstd -q --check >"$tmp/v3.zst"
    "$T" inspect "$tmp/v3.zst" >"$tmp/v3.ndjson" 2>"$tmp/err"
    st=$?
    check
    [ $st -eq 0 ] && grep -q "1 packs, 120 records" "$tmp/err" || fail "inspect of a v3 pack: $(cat "$tmp/err")"
    check
    sed 's/.*"vehicle_id":\([0-9]*\),"sampled_at_ms":\([0-9]*\).*/\1 \2/' "$tmp/v3.ndjson" >"$tmp/keys"
    sort -n -k1,1 -k2,2 -s "$tmp/keys" | cmp -s - "$tmp/keys" || fail "inspect of a v3 pack: not sorted by vehicle, time"
    check
    [ "$(cut -d' ' -f1 "$tmp/keys" | sort -u | wc -l)" -eq 40 ] || fail "inspect of a v3 pack: not 40 vehicles"
    tail -c +2 "$corpus/unsorted.v3" | zstd -q --check >"$tmp/bad.zst"
    "$T" inspect "$tmp/bad.zst" >/dev/null 2>"$tmp/err"
    st=$?
    check
    [ $st -eq 2 ] && grep -q "sorted by vehicle_id" "$tmp/err" || fail "inspect of an unsorted v3 pack: $st $(cat "$tmp/err")"
fi

echo "$checks checks, $failures failed" >&2
[ "$checks" -gt 0 ] && [ "$failures" -eq 0 ]
