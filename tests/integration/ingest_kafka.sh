#!/usr/bin/env bash
# Integration test of `telepack ingest` against the real Kafka broker: 2,000 NDJSON records of 50 vehicles replayed
# through the gateway path into a 4-partition topic; read back with kcat. --pack-by vehicle --headers full: one
# vehicle's packs on one partition with key = vehicle id, the tp-records headers add up to every record, and each
# payload is a zstd frame. Defaults (--pack-by partition, compact header): no key, tp=3,N headers adding up to every
# record, and, loaded by telepack sink into SQLite, every vehicle's records on the partition CRC32(key) mod 4.
set -euo pipefail

if [ -z "${TP_TEST_KAFKA_BROKERS:-}" ]; then
    if [ "${TP_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        echo "FAIL: TP_TEST_KAFKA_BROKERS is not set but TP_REQUIRE_INTEGRATION=1; start a broker with 'tools/kafka start' and 'eval \"\$(tools/kafka env)\"'." >&2
        exit 1
    fi
    echo "SKIP: TP_TEST_KAFKA_BROKERS is not set (run 'tools/kafka start' and 'eval \"\$(tools/kafka env)\"')." >&2
    exit 77
fi
root=${TP_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
tp=${TELEPACK:?TELEPACK must name the telepack binary}
brokers=$TP_TEST_KAFKA_BROKERS
topic=tp-it-ingest-$$-$RANDOM
topic2=$topic-partition
work=$(mktemp -d)
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
cleanup() {
    [ -n "${sink:-}" ] && kill "$sink" 2>/dev/null || true
    TP_KAFKA_BOOTSTRAP=$brokers "$root/tools/kafka" delete-topic "$topic" >/dev/null 2>&1 || true
    TP_KAFKA_BOOTSTRAP=$brokers "$root/tools/kafka" delete-topic "$topic2" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
command -v kcat >/dev/null && kcat=kcat || kcat=kafkacat
TP_KAFKA_BOOTSTRAP=$brokers "$root/tools/kafka" create-topic "$topic" 4

python3 - "$work/recs.ndjson" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for t in range(40):
        for v in range(50):
            f.write(json.dumps({"vehicle_id": 9000 + v, "sampled_at_ms": 1767225600000 + t * 1000, "seq": t,
                                "latitude": 35.6 + v / 1000, "longitude": 139.7 + t / 10000}) + "\n")
PY
"$tp" ingest --brokers "$brokers" --topic "$topic" --from "$work/recs.ndjson" --batch-records 16 --linger-ms 100 \
    --pack-by vehicle --headers full 2>"$work/err" || { cat "$work/err" >&2; fail "ingest exited non-zero"; }
grep -q "2000 acked" "$work/err" || { cat "$work/err" >&2; fail "not every record was acked"; }

"$kcat" -C -b "$brokers" -t "$topic" -e -q -f '%p %k %h\n' >"$work/meta" || fail "kcat could not read $topic"
python3 - "$work/meta" <<'PY' || exit 1
import re, sys
total, where = 0, {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    part, key, headers = line.split(" ", 2)
    m = re.search(r"tp-records=(\d+)", headers)
    if not m or "tp-codec=zstd" not in headers:
        sys.exit(f"FAIL: message without the pack headers: {line}")
    total += int(m.group(1))
    if not key.isdigit() or not 9000 <= int(key) < 9050:
        sys.exit(f"FAIL: unexpected key {key!r}")
    if where.setdefault(key, part) != part:
        sys.exit(f"FAIL: vehicle {key} on partitions {where[key]} and {part}")
if total != 2000:
    sys.exit(f"FAIL: headers count {total} records, want 2000")
print(f"{total} records in packs of {len(where)} vehicles")
PY
# every payload starts with the zstd frame magic 28 b5 2f fd
"$kcat" -C -b "$brokers" -t "$topic" -e -q -c 1 -f '%s' | head -c 4 | od -An -tx1 | grep -q "28 b5 2f fd" ||
    fail "payload is not a zstd frame"

# the defaults: packs per partition, the compact header, no key
TP_KAFKA_BOOTSTRAP=$brokers "$root/tools/kafka" create-topic "$topic2" 4
"$tp" ingest --brokers "$brokers" --topic "$topic2" --from "$work/recs.ndjson" --batch-records 16 --linger-ms 100 \
    2>"$work/err" || { cat "$work/err" >&2; fail "ingest (per partition) exited non-zero"; }
grep -q "2000 acked" "$work/err" || { cat "$work/err" >&2; fail "per partition: not every record was acked"; }
"$kcat" -C -b "$brokers" -t "$topic2" -e -q -f '%p|%k|%h\n' >"$work/meta2" || fail "kcat could not read $topic2"
python3 - "$work/meta2" <<'PY' || exit 1
import re, sys
total = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    part, key, headers = line.split("|", 2)
    m = re.fullmatch(r"tp=3,(\d+)", headers)
    if not m:
        sys.exit(f"FAIL: per partition: headers are not the one compact header of a version-3 pack: {line}")
    if key:
        sys.exit(f"FAIL: per partition: message with key {key!r}")
    total += int(m.group(1))
if total != 2000:
    sys.exit(f"FAIL: per partition: headers count {total} records, want 2000")
PY
"$tp" sink --brokers "$brokers" --topic "$topic2" --group "g-$topic2" --warehouse "sqlite:$work/it.db" \
    --create-table --flush-ms 100 2>"$work/sink.err" &
sink=$!
python3 - "$work/it.db" <<'PY' || { cat "$work/sink.err" >&2; exit 1; }
import sqlite3, sys, time, zlib
deadline, rows = time.time() + 90, 0
while time.time() < deadline:
    try:
        rows = sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM vehicle_positions").fetchone()[0]
    except sqlite3.Error:
        rows = 0
    if rows >= 2000:
        break
    time.sleep(0.2)
db = sqlite3.connect(sys.argv[1])
n, distinct = db.execute("SELECT count(*), count(DISTINCT vehicle_id || '/' || sampled_at_ms || '/' || seq) "
                         "FROM vehicle_positions").fetchone()
if (n, distinct) != (2000, 2000):
    sys.exit(f"FAIL: per partition: {n} rows, {distinct} distinct identities in the sink's table, want 2000")
for v, parts, part in db.execute("SELECT vehicle_id, count(DISTINCT kafka_partition), min(kafka_partition) "
                                 "FROM vehicle_positions GROUP BY vehicle_id"):
    want = zlib.crc32(str(v).encode()) % 4
    if parts != 1 or part != want:
        sys.exit(f"FAIL: vehicle {v} on {parts} partition(s), first {part}; want only partition {want} (CRC32)")
print("per partition: 2000 records, every vehicle on its CRC32 partition")
PY
kill -INT "$sink"
wait "$sink" || true
sink=
echo "PASS"
