#!/bin/sh
# CLI tests for `telepack gen`, `pack` and `inspect`: gen | pack | inspect gives back exactly the generated records,
# --help and option errors, and bad input reported with exit status 2 and a message naming the problem and where.
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
ok() { checks=$((checks + 1)); }

# expect STATUS PATTERN CMD...: runs CMD, wants exit status STATUS and PATTERN (grep -E) in its stderr.
expect() {
    want=$1 pattern=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    ok
    if [ "$got" -ne "$want" ]; then
        fail "'$*' exited $got, want $want; stderr: $(cat "$tmp/err")"
    elif [ -n "$pattern" ] && ! grep -Eq -- "$pattern" "$tmp/err"; then
        fail "'$*' stderr lacks /$pattern/: $(cat "$tmp/err")"
    fi
}

same() { # same FILE1 FILE2 WHAT
    ok
    cmp -s "$1" "$2" || fail "$3: $1 and $2 differ"
}

# ---- round trips ----
"$T" gen --vehicles 30 --seconds 300 --seed 7 --out "$tmp/gen.ndjson" 2>/dev/null || fail "gen failed"
[ "$(wc -l <"$tmp/gen.ndjson")" -gt 8000 ] || fail "gen wrote too few records"
ok

# zstd packs: every record back, byte for byte; packs group by vehicle, so compare sorted (the sampled_at_ms digits
# have equal length, so a text sort is a (vehicle, time) sort) and each vehicle's own order unsorted.
"$T" pack --layout rows --in "$tmp/gen.ndjson" --out "$tmp/gen.packs" 2>/dev/null || fail "pack failed"
"$T" inspect "$tmp/gen.packs" >"$tmp/back.ndjson" 2>/dev/null || fail "inspect failed"
sort "$tmp/gen.ndjson" >"$tmp/gen.sorted"
sort "$tmp/back.ndjson" >"$tmp/back.sorted"
same "$tmp/gen.sorted" "$tmp/back.sorted" "gen | pack | inspect"
grep '"vehicle_id":10017,' "$tmp/gen.ndjson" >"$tmp/v1"
grep '"vehicle_id":10017,' "$tmp/back.ndjson" >"$tmp/v2"
[ -s "$tmp/v1" ] || fail "vehicle 10017 missing from gen output"
same "$tmp/v1" "$tmp/v2" "one vehicle's records keep their order"

# The same through a pipe, from delimited input, with codec none, with small batches and a tiny memory cap.
"$T" gen --vehicles 30 --seconds 300 --seed 7 --format delimited 2>/dev/null |
    "$T" pack --layout rows --input-format delimited 2>/dev/null >"$tmp/delim.packs"
same "$tmp/gen.packs" "$tmp/delim.packs" "packs from delimited input equal packs from NDJSON"
"$T" pack --in "$tmp/gen.ndjson" --codec none --out "$tmp/gen.raw" 2>/dev/null || fail "pack --codec none failed"
"$T" inspect - <"$tmp/gen.raw" 2>"$tmp/raw.err" | sort >"$tmp/raw.sorted"
same "$tmp/gen.sorted" "$tmp/raw.sorted" "codec none round trip"
ok
grep -q "codec none" "$tmp/raw.err" || fail "inspect did not report codec none: $(cat "$tmp/raw.err")"
"$T" pack --in "$tmp/gen.ndjson" --batch-records 7 --max-buffered 50 --level 1 -q | "$T" inspect - 2>/dev/null |
    sort >"$tmp/small.sorted"
same "$tmp/gen.sorted" "$tmp/small.sorted" "small batches and memory cap"

# Counts: 10 vehicles x 450 s without drops = 4500 records; 200 per pack = 2 full packs + 1 of 50 per vehicle.
"$T" gen --vehicles 10 --seconds 450 --drop-rate 0 -q | "$T" pack -q >"$tmp/count.packs"
expect 0 "^inspect: 30 packs, 4500 records, .* compressed, .* content, ratio [0-9.]+x" \
    "$T" inspect --summary-only "$tmp/count.packs"
ok
[ -s "$tmp/out" ] && fail "--summary-only printed records"
expect 0 "^pack: 4500 records -> 30 packs \(codec zstd\)" sh -c "'$T' gen --vehicles 10 --seconds 450 --drop-rate 0 -q | '$T' pack --out /dev/null"

# Standard tools: the pack stream decompresses with zstd -d to the delimited records, vehicle by vehicle.
if command -v zstd >/dev/null; then
    zstd -q -d -c "$tmp/gen.packs" >"$tmp/content" || fail "zstd -d cannot read the packs"
    same "$tmp/content" "$tmp/gen.raw" "zstd -d output equals the codec none stream"
fi

# Determinism.
"$T" gen --vehicles 5 --seconds 30 --seed 7 -q >"$tmp/a"
"$T" gen --vehicles 5 --seconds 30 --seed 7 -q >"$tmp/b"
"$T" gen --vehicles 5 --seconds 30 --seed 8 -q >"$tmp/c"
same "$tmp/a" "$tmp/b" "gen with one seed"
ok
cmp -s "$tmp/a" "$tmp/c" && fail "different seeds gave the same records"
"$T" gen --vehicles 2 --seconds 3 --start-ms 1000000000000 --quantize 1e-7 --interval-ms 500 --drop-rate 0 -q >"$tmp/d"
ok
[ "$(wc -l <"$tmp/d")" -eq 12 ] || fail "2 vehicles x 3 s at 500 ms should be 12 records, got $(wc -l <"$tmp/d")"
ok
head -1 "$tmp/d" | grep -q '"sampled_at_ms":100000000000[0-7],' || fail "--start-ms not applied: $(head -1 "$tmp/d")"
"$T" gen --vehicles 3 --seconds 5 --rate 100000 -q | wc -l >"$tmp/n"
ok
[ "$(cat "$tmp/n")" -eq 15 ] || fail "paced gen wrote $(cat "$tmp/n") records, want 15"
expect 0 "^gen: 15 records from 3 vehicles over 5 s" "$T" gen --vehicles 3 --seconds 5 --drop-rate 0
# --start-ms now is the wall clock in ms (it used to be rounded down to the second, so a paced record's sampled_at
# preceded its send by up to a second), plus the sample's 0-7 ms jitter.
before=$(date +%s%3N)
"$T" gen --vehicles 1 --seconds 1 --start-ms now --drop-rate 0 -q >"$tmp/now"
after=$(date +%s%3N)
ok
first=$(sed 's/.*"sampled_at_ms":\([0-9]*\).*/\1/' "$tmp/now")
[ "$first" -ge "$before" ] && [ "$first" -le $((after + 7)) ] ||
    fail "--start-ms now gave sampled_at_ms $first, not between $before and $after + 7"
# --upload-every: the same records in upload order
"$T" gen --vehicles 4 --seconds 7 --drop-rate 0.05 -q | sort >"$tmp/plain"
"$T" gen --vehicles 4 --seconds 7 --drop-rate 0.05 --upload-every 3 -q >"$tmp/up"
ok
sort "$tmp/up" | cmp -s - "$tmp/plain" || fail "--upload-every changed the records"
cmp -s "$tmp/up" "$tmp/plain" && fail "--upload-every did not change the order"
expect 2 "is not a whole multiple of --interval-ms 1000 ms" "$T" gen --upload-every 2.5

# ---- help and usage errors ----
for cmd in gen pack inspect; do
    "$T" "$cmd" --help >"$tmp/help" 2>&1
    st=$?
    ok
    [ $st -eq 0 ] || fail "telepack $cmd --help exited $st"
    ok
    grep -q "^Usage: telepack $cmd" "$tmp/help" || fail "telepack $cmd --help prints no usage"
    expect 2 "unknown option '--no-such-option'.*--help" "$T" "$cmd" --no-such-option
done
expect 2 "option '--vehicles' needs a value" "$T" gen --vehicles
expect 2 "--vehicles 'abc' is not a whole number from 1 to 10000000" "$T" gen --vehicles abc
expect 2 "--seconds '-5' is not a whole number" "$T" gen --seconds -5
expect 2 "--format 'xml' is not one of ndjson or delimited" "$T" gen --format xml
expect 2 "--quantize '3e-6' is not a resolution" "$T" gen --quantize 3e-6
expect 2 "--drop-rate '0.9' is not a number from 0 to 0.5" "$T" gen --drop-rate 0.9
expect 2 "unexpected argument 'extra'" "$T" gen extra
expect 2 "--codec 'lz4' is not one of none or zstd" "$T" pack --codec lz4
expect 2 "--level '99' is not a whole number from 1 to 22" "$T" pack --level 99
expect 2 "--batch-records '0' is not a whole number" "$T" pack --batch-records 0
expect 2 "--input-format 'csv' is not one of ndjson or delimited" "$T" pack --input-format csv
expect 2 "--max-pack-bytes '1' is not a whole number from 1024" "$T" inspect --max-pack-bytes 1
expect 2 "give one input file, not 2" "$T" inspect a b
expect 1 "cannot open $tmp/missing: No such file" "$T" inspect "$tmp/missing"
expect 1 "cannot open $tmp/missing: No such file" "$T" pack --in "$tmp/missing" --out "$tmp/x"
expect 1 "cannot create $tmp/no/such/dir" "$T" gen --out "$tmp/no/such/dir"

# ---- bad input ----
head -2 "$tmp/gen.ndjson" >"$tmp/bad.ndjson"
echo '{"vehicle_id":10001,"sampled_at_ms":1767225600000,"seq":"x"}' >>"$tmp/bad.ndjson"
expect 2 "line 3: field seq: \"x\" is not a decimal integer.*2 records before it are packed" \
    "$T" pack --in "$tmp/bad.ndjson" --out "$tmp/bad.packs"
expect 0 "^inspect: 2 packs, 2 records" "$T" inspect "$tmp/bad.packs"
echo 'not json' >"$tmp/bad2.ndjson"
expect 2 "line 1: not valid JSON" "$T" pack --in "$tmp/bad2.ndjson" --out "$tmp/bad.packs"
printf '\310\001' >"$tmp/bad.delim"
expect 2 "record 0 at byte offset 0: the input ends after 0 of its 200 bytes" \
    "$T" pack --input-format delimited --in "$tmp/bad.delim" --out "$tmp/bad.packs"
printf '\377\377\377\377\377\377\377\377\377\377\001' >"$tmp/bad.delim"
expect 2 "record 0 at byte offset 0: the length prefix is not a valid varint" \
    "$T" pack --input-format delimited --in "$tmp/bad.delim" --out "$tmp/bad.packs"
printf '\002\377\377' >"$tmp/bad.delim"
expect 2 "record 0 at byte offset 0 is not a valid VehicleRecord" \
    "$T" pack --input-format delimited --in "$tmp/bad.delim" --out "$tmp/bad.packs"

# Truncated pack stream: the records of the whole packs are printed, then exit 2 naming the pack and offset.
size=$(wc -c <"$tmp/count.packs")
head -c $((size - 100)) "$tmp/count.packs" >"$tmp/trunc.packs"
expect 2 "pack 29 at byte offset [0-9]+: the input ends inside the pack after [0-9]+ bytes; the file is truncated" \
    "$T" inspect "$tmp/trunc.packs"
ok
[ "$(wc -l <"$tmp/out")" -eq 4450 ] || fail "truncated input: want the 4450 records of 29 whole packs, got $(wc -l <"$tmp/out")"
ok
grep -q "inspect: 29 packs, 4450 records.*stopped at the bad input" "$tmp/err" || fail "no summary after the error"

# A damaged byte inside the second pack: caught by the zstd checksum (or frame checks), pack 1 named.
if command -v python3 >/dev/null; then
    python3 - "$tmp/count.packs" "$tmp/flip.packs" <<'PY' || fail "python3 could not flip a byte"
import sys
data = bytearray(open(sys.argv[1], "rb").read())
# Find the start of the second frame (zstd magic), then damage a byte well inside it.
second = data.index(b"\x28\xb5\x2f\xfd", 4)
data[second + 40] ^= 0x55
open(sys.argv[2], "wb").write(data)
PY
    expect 2 "pack 1 at byte offset [1-9][0-9]*: " "$T" inspect "$tmp/flip.packs"
    ok
    [ "$(wc -l <"$tmp/out")" -eq 200 ] || fail "damaged pack 1: want the 200 records of pack 0, got $(wc -l <"$tmp/out")"
fi

# Garbage after valid packs, and input that is neither zstd packs nor raw records.
cp "$tmp/count.packs" "$tmp/tail.packs"
printf 'garbage!' >>"$tmp/tail.packs"
expect 2 "pack 30 at byte offset $size does not start with the zstd magic \(28 b5 2f fd\) but with 67 61 72 62" \
    "$T" inspect "$tmp/tail.packs"
printf 'hello world' >"$tmp/text"
expect 2 "raw record 0 at byte offset 0: the input ends after 10 of its 104 bytes" "$T" inspect "$tmp/text"
# A pack above --max-pack-bytes.
expect 2 "pack 0 at byte offset 0: .*max_pack_bytes" "$T" inspect --max-pack-bytes 1024 "$tmp/count.packs"
# An all-zero record (vehicle 0, time 0: every field default) first in a rows pack: packed and read back, not a
# failure. It used to make `pack --layout rows` exit 1 with the records after it lost.
printf '{"vehicle_id":0,"sampled_at_ms":0}\n{"vehicle_id":0,"sampled_at_ms":5,"seq":1}\n{"vehicle_id":0,"sampled_at_ms":0}\n' \
    >"$tmp/zero.ndjson"
for codec in zstd none; do
    expect 0 "3 records -> 1 packs" "$T" pack --layout rows --codec $codec --in "$tmp/zero.ndjson" --out "$tmp/zero.packs"
    expect 0 "" "$T" inspect "$tmp/zero.packs"
    ok
    [ "$(grep -c '"vehicle_id":0,"sampled_at_ms":0,' "$tmp/out")" -eq 2 ] ||
        fail "zero record, codec $codec: want it back twice, got: $(cat "$tmp/out")"
done
# Unknown keys: an error naming the key and the line (a misspelt "lat" used to pack as latitude 0, exit 0), unless
# --ignore-unknown-fields; both spellings of the field names stay accepted.
printf '{"vehicle_id":5,"sampled_at_ms":1}\n{"vehicle_id":5,"sampled_at_ms":1767225600000,"lat":35.6,"lon":139.7}\n' \
    >"$tmp/unknown.ndjson"
expect 2 'line 2: unknown field "lat" \(did you mean latitude\?\).*1 records before it are packed' \
    "$T" pack --in "$tmp/unknown.ndjson" --out "$tmp/unknown.packs"
expect 0 "2 records -> 1 packs" "$T" pack --ignore-unknown-fields --in "$tmp/unknown.ndjson" --out "$tmp/unknown.packs"
printf '{"vehicleId":5,"sampledAtMs":1,"speedKmh":2.5,"meter_status":"METER_STATUS_HIRED"}\n' >"$tmp/camel.ndjson"
expect 0 "1 records -> 1 packs" "$T" pack --in "$tmp/camel.ndjson" --out "$tmp/camel.packs"
expect 0 "" "$T" inspect "$tmp/camel.packs"
ok
grep -q '"speed_kmh":2.5,' "$tmp/out" || fail "camelCase speedKmh not read: $(cat "$tmp/out")"
"$T" pack --help | grep -q -- --ignore-unknown-fields || fail "pack --help lacks --ignore-unknown-fields"
ok
# Empty input is no packs, not an error.
: >"$tmp/empty"
expect 0 "^inspect: 0 packs, 0 records" "$T" inspect "$tmp/empty"

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
