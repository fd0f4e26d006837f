#!/usr/bin/env bash
# `telepack ingest` from the command line against librdkafka's in-process mock cluster: --help, NDJSON and delimited
# replays (every record delivered and acked), bad input (exit 2 after delivering what came before), usage errors.
# Usage: test_cli_ingest.sh (TELEPACK names the binary)
set -euo pipefail
tp=${TELEPACK:?TELEPACK must name the telepack binary}
command -v python3 >/dev/null || { echo "python3 not installed: skipping"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
checks=0
check() { # check DESCRIPTION CONDITION...
    local what=$1
    shift
    checks=$((checks + 1))
    if ! "$@"; then
        echo "FAIL: $what" >&2
        for f in "$work"/*.err; do
            echo "--- ${f##*/}:" >&2
            tail -5 "$f" >&2
        done
        fails=$((fails + 1))
    fi
}
mock=(--topic packs -X test.mock.num.brokers=1 -X log_level=3 --linger-ms 50)

# --help
"$tp" ingest --help >"$work/help"
check "--help names --brokers and --max-buffered-bytes" grep -q -- "--max-buffered-bytes" "$work/help"

# NDJSON: 60 vehicles x 30 samples
python3 - "$work/recs.ndjson" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for t in range(30):
        for v in range(60):
            f.write(json.dumps({"vehicle_id": 5000 + v, "sampled_at_ms": 1767225600000 + t * 1000, "seq": t,
                                "latitude": 35.6 + v / 1000, "longitude": 139.7, "speed_kmh": 31.5,
                                "meter_status": "METER_STATUS_HIRED"}) + "\n")
PY
rc=0
"$tp" ingest "${mock[@]}" --from "$work/recs.ndjson" --batch-records 16 --linger-ms 50 2>"$work/err" || rc=$?
check "ndjson replay exits 0 (got $rc)" test "$rc" = 0
check "ndjson: 1800 records in" grep -q "1800 records in" "$work/err"
check "ndjson: 1800 records acked" grep -q "1800 acked" "$work/err"
check "ndjson: 1800 records in packs" grep -Eq "packs out \(1800 records" "$work/err"

# grouping: per partition (default) one pack per partition of the mock's 4 when nothing fills; per vehicle one
# pack per vehicle; --layout rows implies per vehicle
rc=0
"$tp" ingest "${mock[@]}" --from "$work/recs.ndjson" --linger-ms 5000 2>"$work/err" || rc=$?
check "per partition exits 0 (got $rc)" test "$rc" = 0
check "per partition: 4 packs of the 1800 records" grep -Eq "4 packs out \(1800 records" "$work/err"
rc=0
"$tp" ingest "${mock[@]}" --from "$work/recs.ndjson" --pack-by vehicle --linger-ms 5000 --headers full \
    2>"$work/err" || rc=$?
check "per vehicle exits 0 (got $rc)" test "$rc" = 0
check "per vehicle: 60 packs of the 1800 records" grep -Eq "60 packs out \(1800 records" "$work/err"
rc=0
"$tp" ingest "${mock[@]}" --from "$work/recs.ndjson" --layout rows --linger-ms 5000 2>"$work/err" || rc=$?
check "rows exits 0 (got $rc)" test "$rc" = 0
check "rows: per vehicle, 60 packs" grep -Eq "60 packs out \(1800 records" "$work/err"

# the same from stdin
rc=0
"$tp" ingest "${mock[@]}" --from - <"$work/recs.ndjson" 2>"$work/err" || rc=$?
check "stdin replay exits 0 (got $rc)" test "$rc" = 0
check "stdin: 1800 acked" grep -q "1800 acked" "$work/err"

# delimited: varint length + VehicleRecord (fields 1, 2, 3 as varints, 4 as a double)
python3 - "$work/recs.bin" "$work/garbage.bin" <<'PY'
import struct, sys
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)
with open(sys.argv[1], "wb") as f:
    for i in range(500):
        msg = (b"\x08" + varint(7000 + i % 25) + b"\x10" + varint(1767225600000 + i) + b"\x18" + varint(i)
               + b"\x21" + struct.pack("<d", 35.5))
        f.write(varint(len(msg)) + msg)
with open(sys.argv[2], "wb") as f:
    msg = b"\x08\x01\x10\x02"
    f.write(varint(len(msg)) + msg)
    f.write(varint(1 << 40))  # a length prefix far above the record limit
PY
rc=0
"$tp" ingest "${mock[@]}" --from "$work/recs.bin" --input-format delimited 2>"$work/err" || rc=$?
check "delimited replay exits 0 (got $rc)" test "$rc" = 0
check "delimited: 500 acked" grep -q "500 acked" "$work/err"

rc=0
"$tp" ingest "${mock[@]}" --from "$work/garbage.bin" --input-format delimited 2>"$work/err" || rc=$?
check "delimited garbage exits 2 (got $rc)" test "$rc" = 2
check "delimited garbage: message names the record" grep -q "record 1 at byte offset 5" "$work/err"
check "delimited garbage: the good record before it is acked" grep -q "1 acked" "$work/err"

# truncated delimited file: the last record cut short
head -c -3 "$work/recs.bin" >"$work/trunc.bin"
rc=0
"$tp" ingest "${mock[@]}" --from "$work/trunc.bin" --input-format delimited 2>"$work/err" || rc=$?
check "truncated delimited exits 2 (got $rc)" test "$rc" = 2
check "truncated: 499 acked" grep -q "499 acked" "$work/err"

# bad NDJSON line 4: the three before are delivered, exit 2
{ head -3 "$work/recs.ndjson"; echo '{"vehicle_id": "x", "sampled_at_ms": 1}'; } >"$work/bad.ndjson"
rc=0
"$tp" ingest "${mock[@]}" --from "$work/bad.ndjson" 2>"$work/err" || rc=$?
check "bad ndjson exits 2 (got $rc)" test "$rc" = 2
check "bad ndjson: line named" grep -q "line 4" "$work/err"
check "bad ndjson: 3 acked" grep -q "3 acked" "$work/err"

# layout rows and an all-zero record first (vehicle 0, every field default): delivered and acked like any other
# record (it used to stop the worker with exit 1)
{ echo '{"vehicle_id":0,"sampled_at_ms":0}'; head -20 "$work/recs.ndjson"; echo '{"vehicle_id":0,"sampled_at_ms":0}'; } \
    >"$work/zero.ndjson"
rc=0
"$tp" ingest "${mock[@]}" --layout rows --from "$work/zero.ndjson" 2>"$work/err" || rc=$?
check "rows + zero record exits 0 (got $rc)" test "$rc" = 0
check "rows + zero record: 22 acked" grep -q "22 acked" "$work/err"

# an unknown key (a misspelt field): exit 2 naming the key and line, the records before it delivered; accepted
# with --ignore-unknown-fields
{ head -3 "$work/recs.ndjson"; echo '{"vehicle_id":5,"sampled_at_ms":1767225600000,"lat":35.6,"lon":139.7}'; } \
    >"$work/unknown.ndjson"
rc=0
"$tp" ingest "${mock[@]}" --from "$work/unknown.ndjson" 2>"$work/err" || rc=$?
check "unknown key exits 2 (got $rc)" test "$rc" = 2
check "unknown key: key and line named" grep -q 'line 4: unknown field "lat"' "$work/err"
check "unknown key: 3 acked" grep -q "3 acked" "$work/err"
rc=0
"$tp" ingest "${mock[@]}" --ignore-unknown-fields --from "$work/unknown.ndjson" 2>"$work/err" || rc=$?
check "--ignore-unknown-fields exits 0 (got $rc)" test "$rc" = 0
check "--ignore-unknown-fields: 4 acked" grep -q "4 acked" "$work/err"

# missing file
rc=0
"$tp" ingest "${mock[@]}" --from "$work/nope.ndjson" 2>"$work/err" || rc=$?
check "missing file exits 2 (got $rc)" test "$rc" = 2

# gen --connect before the worker listens: the gateways retry with backoff, then deliver everything; SIGINT makes
# the worker flush and exit 0 with every record acked
for attempt in 1 2 3; do # the free port picked here can be taken by another test before ingest binds it: retry
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$tp" gen --vehicles 40 --seconds 25 --drop-rate 0 --connect "127.0.0.1:$port" --gateways 3 2>"$work/gen.err" &
    gen=$!
    sleep 0.2
    "$tp" ingest "${mock[@]}" --listen "127.0.0.1:$port" 2>"$work/ing.err" &
    ing=$!
    sleep 0.3
    if kill -0 $ing 2>/dev/null || ! grep -q "cannot listen" "$work/ing.err"; then
        break
    fi
    kill $gen 2>/dev/null || true
    wait $gen 2>/dev/null || true
done
rc=0
wait $gen || rc=$?
check "gen --connect exits 0 (got $rc)" test "$rc" = 0
check "gen sent 1000 records" grep -q "1000 records" "$work/gen.err"
kill -INT $ing
rc=0
wait $ing || rc=$?
check "ingest exits 0 on SIGINT (got $rc)" test "$rc" = 0
check "ingest acked the 1000 records" grep -q "1000 acked" "$work/ing.err"
usage_gen=0
"$tp" gen --connect 127.0.0.1:1 --out x >/dev/null 2>&1 || usage_gen=$?
check "gen --connect with --out is a usage error" test "$usage_gen" = 2

# usage errors
usage() { # usage DESCRIPTION ARGS...
    local what=$1 rc=0
    shift
    "$tp" ingest "$@" >/dev/null 2>"$work/err" || rc=$?
    check "$what exits 2 (got $rc)" test "$rc" = 2
}
usage "no topic" -X test.mock.num.brokers=1 --from "$work/recs.ndjson"
usage "no brokers" --topic packs --from "$work/recs.ndjson"
usage "bad --batch-records" "${mock[@]}" --batch-records 0
usage "bad --level" "${mock[@]}" --level 99
usage "bad --max-open-vehicles" "${mock[@]}" --max-open-vehicles 0
usage "bad --input-format" "${mock[@]}" --input-format csv
usage "malformed -X" "${mock[@]}" -X nonsense
usage "unknown -X property" "${mock[@]}" -X no.such.property=1
usage "bad --listen" "${mock[@]}" --listen nowhere
usage "stray argument" "${mock[@]}" extra
usage "bad --pack-by" "${mock[@]}" --pack-by fleet
check "bad --pack-by: the message names it" grep -q -- "--pack-by 'fleet' is not one of partition or vehicle" "$work/err"
usage "bad --headers" "${mock[@]}" --headers none
usage "--pack-by partition with --layout rows" "${mock[@]}" --pack-by partition --layout rows
check "partition with rows: the message says why" grep -q "needs --layout columns" "$work/err"

echo "$checks checks, $fails failed"
[ "$fails" = 0 ]
