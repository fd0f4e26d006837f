#!/usr/bin/env bash
# telepack schema: the columns table, --normal-form, --compare's verdicts and exit codes, refused schemas with the
# field named (exit 2), --decode to NDJSON and --reencode byte-identical to protoc's encoding, delimited input, and
# a message that does not decode. Usage: test_schema_cli.sh DATA_DIR SOURCE_DIR (DATA_DIR: the built .pb/.bin).
set -u
data=$1
src=$2
tp=${TELEPACK:?set TELEPACK to the telepack binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ev=(--schema "$data/ev_telemetry.pb" --message fleet.ev.v1.EvTelemetry)

"$tp" schema --help | grep -q -- '--schema FILE' || fail "--help does not describe --schema"
out=$("$tp" schema "${ev[@]}") || fail "schema exited $?"
grep -q '^7 *battery_cell_voltages_v *float *repeated *4.5 packed$' <<<"$out" || fail "no cell voltages line: $out"
grep -q '^key: vin$' <<<"$out" || fail "key is not vin"
grep -q '^time: recorded_at (ns)$' <<<"$out" || fail "time is not recorded_at"
grep -q '^identity: vin recorded_at seq$' <<<"$out" || fail "identity"
grep -q '^fingerprint: 99b3bbc325167eac$' <<<"$out" || fail "fingerprint"

out=$("$tp" schema "${ev[@]}" --key seq --time odometer_m --time-unit ms --identity can_torque_nmm)
grep -q '^identity: seq odometer_m can_torque_nmm$' <<<"$out" || fail "roles by option: $out"
"$tp" schema "${ev[@]}" --key latitude 2>"$tmp/err"; rc=$?
[ $rc = 2 ] || fail "a floating key exited $rc, not 2"
grep -q "column latitude (double) cannot be the key" "$tmp/err" || fail "floating key message: $(cat "$tmp/err")"

"$tp" schema "${ev[@]}" --normal-form | head -1 | grep -qx 'tp-schema-normal-form 1' || fail "normal form header"

out=$("$tp" schema "${ev[@]}" --compare "$data/ev_reordered.pb"); rc=$?
[ $rc = 0 ] && [ "$out" = identical ] || fail "reordered: $rc $out"
out=$("$tp" schema "${ev[@]}" --compare "$data/ev_added.pb"); rc=$?
[ $rc = 0 ] && grep -q '^compatible: ' <<<"$out" || fail "added: $rc $out"
out=$("$tp" schema "${ev[@]}" --compare "$data/ev_retyped.pb"); rc=$?
[ $rc = 1 ] && grep -q '^incompatible: field odometer_m' <<<"$out" || fail "retyped: $rc $out"

"$tp" schema --schema "$data/refused.pb" --message refused.v1.WithMap 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "field counters is a map" "$tmp/err" || fail "map: $rc $(cat "$tmp/err")"
"$tp" schema --schema "$src/ev_telemetry.proto" --message fleet.ev.v1.EvTelemetry 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "malformed" "$tmp/err" || fail "a .proto instead of a set: $rc $(cat "$tmp/err")"
"$tp" schema "${ev[@]}" --reencode x 2>/dev/null; [ $? = 2 ] || fail "--reencode without --decode"

# Decode what protoc encoded, encode it again: the same bytes.
"$tp" schema "${ev[@]}" --decode "$data/ev_full.bin" --reencode "$tmp/re.bin" >"$tmp/full.json" || fail "decode"
cmp -s "$data/ev_full.bin" "$tmp/re.bin" || fail "re-encoded message differs from protoc's"
grep -q '"recordedAt":"2024-05-01T12:00:00.250Z"' "$tmp/full.json" || fail "json: $(cat "$tmp/full.json")"
"$tp" schema "${ev[@]}" --decode "$data/ev_full.bin" --proto-names | grep -q '"recorded_at":' || fail "proto names"
# protoc reads the re-encoded bytes back to the same text as the original.
if command -v protoc >/dev/null; then
    protoc --proto_path="$src" --decode=fleet.ev.v1.EvTelemetry "$src/ev_telemetry.proto" <"$data/ev_full.bin" >"$tmp/a.txt"
    protoc --proto_path="$src" --decode=fleet.ev.v1.EvTelemetry "$src/ev_telemetry.proto" <"$tmp/re.bin" >"$tmp/b.txt"
    cmp -s "$tmp/a.txt" "$tmp/b.txt" || fail "protoc --decode differs"
fi

# Delimited: two messages with their varint lengths.
python3 - "$data" "$tmp/two.bin" <<'PY'
import sys
d = sys.argv[1]
out = b""
for name in ("ev_full.bin", "ev_sparse.bin"):
    m = open(d + "/" + name, "rb").read()
    n, pre = len(m), b""
    while n >= 0x80:
        pre += bytes([n & 0x7f | 0x80]); n >>= 7
    out += pre + bytes([n]) + m
open(sys.argv[2], "wb").write(out)
PY
"$tp" schema "${ev[@]}" --decode "$tmp/two.bin" --delimited --reencode "$tmp/two.re" >"$tmp/two.json" || fail "delimited"
[ "$(wc -l <"$tmp/two.json")" = 2 ] || fail "delimited lines"
cmp -s "$tmp/two.bin" "$tmp/two.re" || fail "delimited re-encode differs"
printf '\x08\x01' >"$tmp/bad.bin"
"$tp" schema "${ev[@]}" --decode "$tmp/bad.bin" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "field vin (number 1, string) has wire type 0" "$tmp/err" || fail "bad message: $rc $(cat "$tmp/err")"

[ $fails = 0 ] && echo "all schema CLI checks passed"
exit $((fails > 0))
