#!/usr/bin/env bash
# Integration smoke test of the real ClickHouse server: a ReplacingMergeTree table keyed on the record identity,
# RowBinary inserts over HTTP with curl (a re-delivered batch collapses under FINAL), and a malformed insert that
# must be rejected without leaving rows behind.
set -euo pipefail

if [ -z "${TP_TEST_CLICKHOUSE_URL:-}" ]; then
    if [ "${TP_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        echo "FAIL: TP_TEST_CLICKHOUSE_URL is not set but TP_REQUIRE_INTEGRATION=1; start a server with 'tools/clickhouse start' and 'eval \"\$(tools/clickhouse env)\"'." >&2
        exit 1
    fi
    echo "SKIP: TP_TEST_CLICKHOUSE_URL is not set (run 'tools/clickhouse start' and 'eval \"\$(tools/clickhouse env)\"')." >&2
    exit 77
fi

url=${TP_TEST_CLICKHOUSE_URL%/}
db=tp_it_smoke_$$_$RANDOM
table=$db.positions
work=$(mktemp -d)

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# sql STATEMENT [BODY_FILE]: run a statement (with a RowBinary body when given); prints the result, fails on non-200.
sql() {
    local code
    if [ $# -ge 2 ]; then
        code=$(curl -sS -o "$work/out" -w '%{http_code}' --data-binary "@$2" \
            "$url/?query=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1")")
    else
        code=$(curl -sS -o "$work/out" -w '%{http_code}' --data-binary "$1" "$url/")
    fi || fail "cannot reach ClickHouse at $url"
    [ "$code" = 200 ] || { cat "$work/out" >&2; fail "HTTP $code for: $1"; }
    cat "$work/out"
}

expect() { # expect WHAT EXPECTED SQL
    local got
    got=$(sql "$3")
    [ "$got" = "$2" ] || fail "$1: got '$got', expected '$2' ($3)"
}

cleanup() {
    curl -sS -o /dev/null --data-binary "DROP DATABASE IF EXISTS $db" "$url/" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

[ "$(curl -sS --max-time 5 "$url/ping")" = "Ok." ] || fail "$url/ping did not answer 'Ok.'"

sql "CREATE DATABASE $db" >/dev/null
sql "CREATE TABLE $table (
        vehicle_id String, sampled_at DateTime, seq UInt32,
        lat Float64, lon Float64, speed Float32, version UInt64)
    ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(sampled_at)
    ORDER BY (vehicle_id, sampled_at, seq)" >/dev/null

# Row files in RowBinary (little-endian numbers, strings as varint length + bytes). first.bin: 20 vehicles x 50 records,
# version 1; again.bin: the first 100 of them re-delivered as version 2 with speed + 1000; bad.bin: rows of vehicle
# 'bad' cut off in the middle of a value; expected: sums computed here.
python3 - "$work" <<'PY'
import struct, sys

work = sys.argv[1]

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

def row(vid, t, seq, lat, lon, speed, version):
    v = vid.encode()
    return varint(len(v)) + v + struct.pack("<IIddfQ", t, seq, lat, lon, speed, version)

base = 1795000000  # a fixed second within one month, so every row lands in one table partition
rows = []
for vehicle in range(20):
    for seq in range(50):
        rows.append((f"veh-{vehicle:04d}", base + seq * 5, seq, 52.0 + vehicle / 1000 + seq / 1e6,
                     13.0 + vehicle / 1000 - seq / 1e6, float(seq % 120), 1))
with open(f"{work}/first.bin", "wb") as f:
    for r in rows:
        f.write(row(*r))
again = [(r[0], r[1], r[2], r[3], r[4], r[5] + 1000.0, 2) for r in rows[:100]]
with open(f"{work}/again.bin", "wb") as f:
    for r in again:
        f.write(row(*r))
bad = b"".join(row("bad", base, i, 1.0, 2.0, 3.0, 1) for i in range(10))
with open(f"{work}/bad.bin", "wb") as f:
    f.write(bad[:-5])
final = {(r[0], r[1], r[2]): r for r in rows}
final.update({(r[0], r[1], r[2]): r for r in again})
with open(f"{work}/expected", "w") as f:
    # reinterpretAsString drops trailing zero bytes
    lat = struct.pack("<d", final[("veh-0007", base + 49 * 5, 49)][3]).rstrip(b"\0").hex().upper()
    f.write(f"{len(final)} {int(sum(r[5] for r in final.values()))} {sum(r[2] for r in final.values())} {lat}\n")
PY
read -r want_rows want_speed want_seq want_lat <"$work/expected"

insert="INSERT INTO $table FORMAT RowBinary"
sql "$insert" "$work/first.bin" >/dev/null
expect "rows after the first insert" 1000 "SELECT count() FROM $table FINAL"
sql "$insert" "$work/again.bin" >/dev/null
expect "rows after re-delivering 100" "$want_rows" "SELECT count() FROM $table FINAL"
expect "distinct identities" "$want_rows" "SELECT uniqExact(vehicle_id, sampled_at, seq) FROM $table"
expect "newest versions kept" 100 "SELECT countIf(version = 2) FROM $table FINAL"
expect "sum of speeds" "$want_speed" "SELECT toUInt64(sum(speed)) FROM $table FINAL"
expect "sum of seq" "$want_seq" "SELECT sum(seq) FROM $table FINAL"
expect "a Float64 survives bit for bit" "$want_lat" \
    "SELECT hex(reinterpretAsString(lat)) FROM $table FINAL WHERE vehicle_id = 'veh-0007' AND seq = 49"

# A truncated body is refused and leaves nothing behind.
code=$(curl -sS -o "$work/out" -w '%{http_code}' --data-binary "@$work/bad.bin" \
    "$url/?query=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$insert")") ||
    fail "cannot reach ClickHouse at $url"
[ "$code" != 200 ] || fail "a truncated RowBinary body was accepted (HTTP 200)"
grep -q "Cannot read all data" "$work/out" || { cat "$work/out" >&2; fail "unexpected error text for a truncated RowBinary body"; }
expect "rows of the refused insert" 0 "SELECT count() FROM $table WHERE vehicle_id = 'bad'"
expect "rows after the refused insert" "$want_rows" "SELECT count() FROM $table FINAL"

sql "DROP DATABASE $db" >/dev/null
expect "database dropped" 0 "SELECT count() FROM system.databases WHERE name = '$db'"
echo "ok: RowBinary over HTTP, ReplacingMergeTree FINAL collapsed a re-delivered batch, truncated insert refused"
