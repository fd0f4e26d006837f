#!/usr/bin/env bash
# pack --schema / inspect --schema with the EV telemetry schema (VIN string key, Timestamp, nested battery, repeated
# cell voltages, enum): every record back once and every field equal, grouped per VIN in arrival order; the packs
# are standard pbpack v1 (zstd -d gives the original messages); --layout columns gives the same records (and rows
# for records with unknown fields); NDJSON input (protobuf's JSON mapping: what inspect prints packs back to the
# same records); refusals with their sentences and exit codes.
# Usage: test_schema_pack.sh DATA_DIR SOURCE_DIR
set -u
data=$1
src=$2
tp=${TELEPACK:?set TELEPACK to the telepack binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ev=(--schema "$data/ev_telemetry.pb" --message fleet.ev.v1.EvTelemetry)
gen=("python3" "$src/ev_gen.py")
dl=(--input-format delimited)

"${gen[@]}" gen 7 30 "$tmp/ev.bin" "$tmp/ev.exp" || fail "generator"
"$tp" pack "${ev[@]}" "${dl[@]}" --in "$tmp/ev.bin" --out "$tmp/ev.packs" --batch-records 8 2>"$tmp/pack.err" || fail "pack exited $?"
grep -q '210 records -> 28 packs (fleet.ev.v1.EvTelemetry, pbpack v1' "$tmp/pack.err" || fail "pack summary: $(cat "$tmp/pack.err")"
"$tp" inspect "${ev[@]}" --proto-names "$tmp/ev.packs" >"$tmp/out.json" 2>"$tmp/inspect.err" || fail "inspect exited $?"
grep -q '28 packs, 210 records of fleet.ev.v1.EvTelemetry' "$tmp/inspect.err" || fail "inspect summary: $(cat "$tmp/inspect.err")"
"${gen[@]}" check-json "$tmp/ev.exp" "$tmp/out.json" || fail "inspect --schema output differs from the records packed"
# lowerCamelCase by default
"$tp" inspect "${ev[@]}" "$tmp/ev.packs" 2>/dev/null | head -1 | grep -q '"recordedAt":"2024-05-01T12:00:00Z"' || fail "json names"
# The packs are standard: zstd -d gives the original delimited messages (reordered per VIN): same bytes in total.
if command -v zstd >/dev/null; then
    zstd -dc <"$tmp/ev.packs" >"$tmp/plain.bin" || fail "zstd -d"
    [ "$(wc -c <"$tmp/plain.bin")" = "$(wc -c <"$tmp/ev.bin")" ] || fail "zstd -d gives $(wc -c <"$tmp/plain.bin") bytes, not $(wc -c <"$tmp/ev.bin")"
    "$tp" schema "${ev[@]}" --decode "$tmp/plain.bin" --delimited --proto-names >"$tmp/plain.json" || fail "decode zstd -d output"
    "${gen[@]}" check-json "$tmp/ev.exp" "$tmp/plain.json" >/dev/null || fail "zstd -d output differs"
fi
# codec none, one pack
"${gen[@]}" gen 1 5 "$tmp/one.bin" "$tmp/one.exp"
"$tp" pack "${ev[@]}" "${dl[@]}" --in "$tmp/one.bin" --out "$tmp/one.raw" --codec none -q || fail "codec none"
"$tp" inspect "${ev[@]}" --proto-names "$tmp/one.raw" >"$tmp/one.json" 2>/dev/null || fail "inspect codec none"
"${gen[@]}" check-json "$tmp/one.exp" "$tmp/one.json" >/dev/null || fail "codec none round trip"
# --key-field: an integer key (seq) groups differently
"$tp" pack "${ev[@]}" "${dl[@]}" --key-field seq --in "$tmp/ev.bin" --out "$tmp/seq.packs" 2>"$tmp/err" || fail "key seq"
grep -q '210 records -> 60 packs' "$tmp/err" || fail "integer key grouping: $(cat "$tmp/err")"

# Layout columns (pbpack v4, docs/FORMAT_SCHEMA.md): the same records back, field by field, in fewer bytes; a pack
# whose records hold a field the schema does not know (ev_gen --added: field 17) stays rows, nothing dropped.
"$tp" pack "${ev[@]}" --input-format delimited --layout columns --in "$tmp/ev.bin" --out "$tmp/cols.packs" --batch-records 8 2>"$tmp/err" ||
    fail "pack --layout columns exited $?"
grep -q '210 records -> 28 packs (fleet.ev.v1.EvTelemetry, layout columns, 0 as rows' "$tmp/err" || fail "columns summary: $(cat "$tmp/err")"
[ "$(wc -c <"$tmp/cols.packs")" -lt "$(wc -c <"$tmp/ev.packs")" ] || fail "columns are not smaller than rows"
"$tp" inspect "${ev[@]}" --proto-names "$tmp/cols.packs" >"$tmp/cols.json" 2>"$tmp/inspect.err" || fail "inspect columns exited $?"
grep -q '28 packs, 210 records of .*layout columns' "$tmp/inspect.err" || fail "inspect columns summary: $(cat "$tmp/inspect.err")"
"${gen[@]}" check-json "$tmp/ev.exp" "$tmp/cols.json" || fail "inspect of the column packs differs from the records packed"
cmp -s "$tmp/out.json" "$tmp/cols.json" || fail "rows and columns print differently"
"${gen[@]}" gen 3 10 "$tmp/added.bin" "$tmp/added.exp" --added || fail "generator --added"
"$tp" pack "${ev[@]}" --input-format delimited --layout columns --in "$tmp/added.bin" --out "$tmp/added.packs" 2>"$tmp/err" || fail "pack added exited $?"
grep -q '3 as rows: unknown fields' "$tmp/err" || fail "unknown fields did not fall back to rows: $(cat "$tmp/err")"
zstd -dc <"$tmp/added.packs" | cmp -s - <(zstd -dc <"$tmp/added.packs") || fail "zstd -d of the fallback"
[ "$(zstd -dc <"$tmp/added.packs" | wc -c)" = "$(wc -c <"$tmp/added.bin")" ] || fail "the fallback packs lost bytes"

# Refusals.
# NDJSON is the default input (as for the built-in record): delimited input without --input-format is refused with
# a hint
"$tp" pack "${ev[@]}" --in "$tmp/ev.bin" --out "$tmp/x" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "line 1: .*give --input-format delimited" "$tmp/err" || fail "delimited as ndjson: $rc $(cat "$tmp/err")"
"$tp" pack --schema "$data/ev_telemetry.pb" --in "$tmp/ev.bin" --out "$tmp/x" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "go together" "$tmp/err" || fail "no --message: $rc $(cat "$tmp/err")"
"$tp" pack "${ev[@]}" --key-field latitude --in "$tmp/ev.bin" --out "$tmp/x" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "cannot be the key" "$tmp/err" || fail "float key: $rc $(cat "$tmp/err")"
# a record that does not decode (vin with wire type 0) after two good ones: exit 2, record named, the two packed
python3 - "$tmp/ev.bin" "$tmp/bad.bin" <<'PY'
import sys
d, n = open(sys.argv[1], "rb").read(), 0
for _ in range(2):
    size, shift = 0, 0
    while True:
        b = d[n]; n += 1; size |= (b & 0x7f) << shift; shift += 7
        if b < 0x80: break
    n += size
open(sys.argv[2], "wb").write(d[:n] + b"\x02\x08\x01")
PY
"$tp" pack "${ev[@]}" "${dl[@]}" --in "$tmp/bad.bin" --out "$tmp/bad.packs" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "record 2 .*does not decode as fleet.ev.v1.EvTelemetry: at byte 0: field vin" "$tmp/err" ||
    fail "bad record: $rc $(cat "$tmp/err")"
"$tp" inspect "${ev[@]}" --summary-only "$tmp/bad.packs" 2>&1 | grep -q ' 2 records' || fail "records before the bad one"
# an empty VIN cannot be a Kafka key
printf '\x02\x18\x01' >"$tmp/novin.bin"
"$tp" pack "${ev[@]}" "${dl[@]}" --in "$tmp/novin.bin" --out "$tmp/x" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "key vin is empty" "$tmp/err" || fail "empty vin: $rc $(cat "$tmp/err")"
# inspect: a built-in column pack, a truncated stream
"$tp" gen --vehicles 2 --seconds 5 2>/dev/null | "$tp" pack --out "$tmp/builtin.packs" -q
"$tp" inspect "${ev[@]}" "$tmp/builtin.packs" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "travels as version 1" "$tmp/err" || fail "v2 pack: $rc $(cat "$tmp/err")"
head -c 100 "$tmp/ev.packs" >"$tmp/cut.packs"
"$tp" inspect "${ev[@]}" "$tmp/cut.packs" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "truncated" "$tmp/err" || fail "truncated: $rc $(cat "$tmp/err")"
# the built-in packs under another message type: the first frame does not decode
"$tp" gen --vehicles 1 --seconds 3 2>/dev/null | "$tp" pack --layout rows --out "$tmp/rows.packs" -q
"$tp" inspect "${ev[@]}" "$tmp/rows.packs" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "does not decode as fleet.ev.v1.EvTelemetry" "$tmp/err" || fail "wrong schema: $rc $(cat "$tmp/err")"
"$tp" pack --schema x --help | grep -q -- '--key-field C' || fail "pack --schema --help"
"$tp" pack --schema x --help | grep -q -- '--ignore-unknown-fields' || fail "pack --schema --help: --ignore-unknown-fields"

# NDJSON in: what inspect prints (lowerCamelCase and .proto names) packs back to the same records.
"$tp" inspect "${ev[@]}" "$tmp/ev.packs" >"$tmp/camel.json" 2>/dev/null || fail "inspect camel"
for names in camel out; do
    "$tp" pack "${ev[@]}" --in "$tmp/$names.json" --out "$tmp/j.packs" --batch-records 8 2>"$tmp/err" || fail "pack ndjson ($names) exited $?: $(cat "$tmp/err")"
    grep -q '210 records -> 28 packs (fleet.ev.v1.EvTelemetry, pbpack v1, codec zstd), .* NDJSON in' "$tmp/err" || fail "ndjson summary: $(cat "$tmp/err")"
    "$tp" inspect "${ev[@]}" --proto-names "$tmp/j.packs" >"$tmp/j.json" 2>/dev/null || fail "inspect ndjson packs ($names)"
    "${gen[@]}" check-json "$tmp/ev.exp" "$tmp/j.json" || fail "ndjson ($names) packs differ from the records"
    cmp -s "$tmp/j.json" "$tmp/out.json" || fail "ndjson ($names) packs print differently"
done
# stdin, blank lines and CRLF
(echo; sed 's/$/\r/' "$tmp/camel.json") | "$tp" pack "${ev[@]}" --out "$tmp/j.packs" -q || fail "ndjson stdin crlf"
"$tp" inspect "${ev[@]}" --summary-only "$tmp/j.packs" 2>&1 | grep -q ' 210 records' || fail "ndjson stdin crlf count"
# unknown keys: refused naming the key and the line, or skipped with --ignore-unknown-fields
{ head -2 "$tmp/camel.json"; echo '{"vin":"X1","battery":{"soc":1}}'; } >"$tmp/unk.json"
"$tp" pack "${ev[@]}" --in "$tmp/unk.json" --out "$tmp/x" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q 'line 3: .*unknown key "soc" in battery.*--ignore-unknown-fields skips such keys.*the 2 records before it are packed' "$tmp/err" ||
    fail "unknown key: $rc $(cat "$tmp/err")"
"$tp" inspect "${ev[@]}" --summary-only "$tmp/x" 2>&1 | grep -q ' 2 records' || fail "records before the unknown key"
"$tp" pack "${ev[@]}" --ignore-unknown-fields --in "$tmp/unk.json" --out "$tmp/x" 2>"$tmp/err" || fail "ignore unknown: $(cat "$tmp/err")"
grep -q '3 records' "$tmp/err" || fail "ignore unknown count: $(cat "$tmp/err")"
# bad values: named with line, column and field
echo '{"vin":"X1","ambientTempC":2147483648}' >"$tmp/bad.json"
"$tp" pack "${ev[@]}" --in "$tmp/bad.json" --out "$tmp/x" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q 'line 1: it is not a record of fleet.ev.v1.EvTelemetry: at column 28: field ambient_temp_c (int32): 2147483648 is outside the int32 range' "$tmp/err" ||
    fail "int32 overflow: $rc $(cat "$tmp/err")"
echo '{"vin":""}' >"$tmp/bad.json"
"$tp" pack "${ev[@]}" --in "$tmp/bad.json" --out "$tmp/x" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "line 1: key vin is empty" "$tmp/err" || fail "ndjson empty vin: $rc $(cat "$tmp/err")"
# bounds: a line above 4 x --max-record-bytes, a record whose encoding is above --max-record-bytes
python3 -c 'print("{\"vin\":\"X\",\"tags\":[" + ",".join(["\"abcdefgh\""] * 40) + "]}")' >"$tmp/big.json"
"$tp" pack "${ev[@]}" --max-record-bytes 100 --in "$tmp/big.json" --out "$tmp/x" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "line 1 is longer than 400 bytes" "$tmp/err" || fail "long line: $rc $(cat "$tmp/err")"
"$tp" pack "${ev[@]}" --max-record-bytes 300 --in "$tmp/big.json" --out "$tmp/x" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "line 1: it encodes to more than the limit of 300 bytes" "$tmp/err" || fail "large record: $rc $(cat "$tmp/err")"
"$tp" pack --help | grep -q -- '--schema FILE' || fail "pack --help does not mention --schema"

[ $fails = 0 ] && echo "all schema pack/inspect checks passed"
exit $((fails > 0))
