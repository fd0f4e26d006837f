#!/usr/bin/env bash
# Bad input (issue 5), mixed with good traffic from gen --connect:
# - corrupt packs produced straight to the topic with kcat (truncated zstd frame, flipped byte, bad / missing /
#   inconsistent headers, garbage, a message above --max-pack-bytes, a small pack decompressing above it; a columns
#   (pbpack v2) pack with a flipped bit, and one sent with rows headers) must each land in the dead-letter topic with
#   a tp-error reason and tp-source, and none of their records may reach ClickHouse; two control packs (rows and
#   columns) built and produced the same way but intact must load (so the headers the test writes are right);
# - hostile gateway connections (tests/support/hostile_gateway.py: giant or overlong varint length prefixes,
#   a body that is not a VehicleRecord, random bytes) must be closed by ingest;
# and every good record must arrive, exactly, bit for bit.
. "$(dirname "$0")/../support/lib.sh"
e2e_init bad-input

gen_args=(--vehicles 2000 --seconds 50 --drop-rate 0 --seed 27)
e2e_expected "${gen_args[@]}"
# The control pack: vehicle 90000, 20 records, expected in the table.
control=(--vehicles 1 --seconds 20 --drop-rate 0 --seed 28 --first-vehicle-id 90000)
e2e_expected "${control[@]}"
# The same for the columns layout (pbpack v2): vehicle 90010.
control2=(--vehicles 1 --seconds 20 --drop-rate 0 --seed 31 --first-vehicle-id 90010)
e2e_expected "${control2[@]}"
e2e_topic "$TOPIC" 8
e2e_database
port=$(e2e_free_port)
e2e_ingest ingest "$port" "$BROKERS" --linger-ms 300
e2e_sink sink "$BROKERS" "clickhouse://${CH#http://}/$DB" --batch-rows 5000 --max-pack-bytes 65536
e2e_spawn gen "$TP" gen "${gen_args[@]}" --connect "127.0.0.1:$port" --gateways 4 --rate 20000

# Packs of vehicles 9000x (never in the good traffic): a leak of any of their records shows in the comparison.
mkpack() { # mkpack VEHICLE SECONDS OUT [pack options]
    local v=$1 s=$2 out=$3
    shift 3
    "$TP" gen --vehicles 1 --seconds "$s" --drop-rate 0 --seed 29 --first-vehicle-id "$v" -q |
        "$TP" pack --batch-records 100000 --layout "${LAYOUT:-rows}" -q "$@" --out "$out" || e2e_fail "could not build a pack for vehicle $v"
}
good_headers=(-H tp-format=pbpack -H tp-version=1 -H tp-layout=rows -H tp-codec=zstd
    -H tp-schema=telepack.v1.VehicleRecord -H tp-schema-version=1)
d=$E2E_WORK/packs
mkdir -p "$d"
"$TP" gen "${control[@]}" -q | "$TP" pack --layout rows -q --out "$d/control" ||
    e2e_fail "could not build the control pack"
"$TP" gen "${control2[@]}" -q | "$TP" pack --layout columns -q --out "$d/control2" ||
    e2e_fail "could not build the columns control pack"
for v in 90001 90002 90003 90004 90005 90006; do mkpack "$v" 20 "$d/$v"; done
LAYOUT=columns mkpack 90011 20 "$d/90011"
LAYOUT=columns mkpack 90012 20 "$d/90012"
python3 - "$d" <<'PY'
import os, random, sys
d = sys.argv[1]
data = open(f"{d}/90001", "rb").read()
open(f"{d}/90001", "wb").write(data[:len(data) // 2])          # truncated zstd frame
for v in ("90002", "90011"):
    data = bytearray(open(f"{d}/{v}", "rb").read())
    data[len(data) // 2] ^= 0x40                                # one flipped bit in the compressed data
    open(f"{d}/{v}", "wb").write(data)
open(f"{d}/90007", "wb").write(random.Random(7).randbytes(700))  # garbage with good headers
PY
mkpack 90008 4000 "$d/90008" # a 75 KB message, above --max-pack-bytes 65536
# A small zstd bomb: 20,000 copies of a 4-byte record (vehicle 90009) decompress to 100 KB from a few hundred bytes.
python3 -c 'import sys; sys.stdout.buffer.write(b"\x04\x08\x99\xbf\x05" * 20000)' |
    "$TP" pack --input-format delimited --layout rows --batch-records 100000 -q --out "$d/90009" || e2e_fail "could not build the bomb"

e2e_until 60 "the sink to load some good records" eval '[ "$(ch_rows)" -gt 10000 ]'
produce() { # produce KEY FILE HEADER-ARGS...
    local key=$1 file=$2
    shift 2
    timeout 30 "$KCAT" -P -b "$BROKERS" -t "$TOPIC" -k "$key" "$@" "$file" 2>>"$E2E_WORK/kcat-produce.err" ||
        e2e_fail "kcat could not produce $file"
}
v2_headers=("${good_headers[@]/tp-version=1/tp-version=2}")
v2_headers=("${v2_headers[@]/tp-layout=rows/tp-layout=columns}")
produce 90000 "$d/control" "${good_headers[@]}" -H tp-records=20
produce 90010 "$d/control2" "${v2_headers[@]}" -H tp-records=20
produce 90001 "$d/90001" "${good_headers[@]}" -H tp-records=20                  # truncated frame
produce 90002 "$d/90002" "${good_headers[@]}" -H tp-records=20                  # flipped bit
produce 90003 "$d/90003" "${good_headers[@]/tp-format=pbpack/tp-format=pbpak}" -H tp-records=20 # bad format
produce 90004 "$d/90004"                                                       # no headers at all
produce 90005 "$d/90005" "${good_headers[@]}" -H tp-records=21                  # count mismatch
produce 90006 "$d/90006" "${good_headers[@]/tp-version=1/tp-version=9}" -H tp-records=20 # unknown version
produce 90007 "$d/90007" "${good_headers[@]}" -H tp-records=20                  # garbage payload
produce 90008 "$d/90008" "${good_headers[@]}" -H tp-records=4000                # above --max-pack-bytes
produce 90009 "$d/90009" "${good_headers[@]}" -H tp-records=20000               # decompresses above it
produce 90011 "$d/90011" "${v2_headers[@]}" -H tp-records=20                  # columns, flipped bit
produce 90012 "$d/90012" "${good_headers[@]}" -H tp-records=20                  # columns sent as rows
bad_keys="90001 90002 90003 90004 90005 90006 90007 90008 90009 90011 90012"
nbad=11
e2e_log "produced $nbad corrupt packs ($(stat -c %s "$d/90009") B bomb) and 2 control packs among the good traffic"

python3 "$E2E_ROOT/tests/support/hostile_gateway.py" "127.0.0.1:$port" 10 >"$E2E_WORK/hostile.out" 2>&1 ||
    { cat "$E2E_WORK/hostile.out" >&2; e2e_fail "ingest kept a hostile gateway connection open"; }
sed 's/^/    /' "$E2E_WORK/hostile.out" >&2

e2e_wait_exit gen 180
[ "$E2E_STATUS" = 0 ] || e2e_fail "gen --connect exited with status $E2E_STATUS"
e2e_until 120 "$E2E_EXPECTED_N records in ClickHouse" ch_complete "$E2E_EXPECTED_N"
dlq_count() {
    timeout 30 "$KCAT" -C -b "$BROKERS" -t "$TOPIC.dlq" -e -q -f '%k %h\n' >"$E2E_WORK/dlq.txt" 2>/dev/null || return 1
    [ "$(grep -c . "$E2E_WORK/dlq.txt")" -ge "$nbad" ]
}
e2e_until 60 "$nbad messages in $TOPIC.dlq" dlq_count
e2e_stop ingest
e2e_stop sink
sum=$(e2e_summary sink)
e2e_log "sink: $sum"
e2e_log "ingest: $(e2e_summary ingest)"

[ "$(grep -c . "$E2E_WORK/dlq.txt")" = "$nbad" ] ||
    e2e_fail "$(grep -c . "$E2E_WORK/dlq.txt") messages in the DLQ, expected $nbad"
[ "$(cut -d' ' -f1 "$E2E_WORK/dlq.txt" | sort | tr '\n' ' ')" = "$bad_keys " ] ||
    e2e_fail "the DLQ holds keys $(cut -d' ' -f1 "$E2E_WORK/dlq.txt" | sort | tr '\n' ' '), expected $bad_keys"
while read -r key hdrs; do
    grep -q "tp-source=$TOPIC/[0-9]*@[0-9]*" <<<"$hdrs" || e2e_fail "DLQ message of key $key has no tp-source: $hdrs"
    reason=$(grep -o 'tp-error=.*' <<<"$hdrs") || e2e_fail "DLQ message of key $key has no tp-error header: $hdrs"
    e2e_log "DLQ $key: ${reason:0:200}"
done <"$E2E_WORK/dlq.txt"
grep -q " $nbad packs dead-lettered" <<<"$sum" || e2e_fail "the sink's summary does not count $nbad dead-lettered packs"
closed=$(sed -n 's/.* \([0-9]*\) connections closed on error.*/\1/p' <<<"$(e2e_summary ingest)")
[ "${closed:-0}" -ge 5 ] || e2e_fail "ingest closed ${closed:-0} connections on error, expected the 5 hostile ones"
grep -a 'closing connection' "$E2E_WORK/ingest.log" | head -n 5 | cut -d' ' -f2- | cut -c1-220 | sed 's/^/    /' >&2
e2e_compare_clickhouse
e2e_pass "$nbad corrupt packs dead-lettered with reasons, 2 control packs loaded, 5 hostile gateway connections dropped, all good records exact"
