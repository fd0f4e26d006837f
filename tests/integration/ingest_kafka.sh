#!/usr/bin/env bash
# Integration test of `telepack ingest` against the real Kafka broker: 2,000 NDJSON records of 50 vehicles replayed
# through the gateway path into a 4-partition topic; read back with kcat: one vehicle's packs on one partition with
# key = vehicle id, the tp-records headers add up to every record, and each payload is a zstd frame.
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
work=$(mktemp -d)
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
cleanup() {
    TP_KAFKA_BOOTSTRAP=$brokers "$root/tools/kafka" delete-topic "$topic" >/dev/null 2>&1 || true
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
    2>"$work/err" || { cat "$work/err" >&2; fail "ingest exited non-zero"; }
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
echo "PASS"
