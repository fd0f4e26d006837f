#!/usr/bin/env bash
# The sink against a real broker and a real ClickHouse: 200k records; mid-stream ClickHouse becomes unreachable
# (a TCP gate in front of it is closed) and the sink must pause, retry with backoff and resume without losing a
# record; then the sink is killed with -9 and restarted: it resumes from the kafka_offsets table, and the table
# (FINAL) holds each record exactly once. The table is made with the lineage columns (--lineage-columns yes; the
# crash test e2e_crash_clickhouse loads one without them), and each row's kafka_partition/kafka_offset is checked.
set -euo pipefail

skip_or_fail() {
    if [ "${TP_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        echo "FAIL: $1 is not set but TP_REQUIRE_INTEGRATION=1; start the services with tools/kafka and tools/clickhouse." >&2
        exit 1
    fi
    echo "SKIP: $1 is not set (run 'tools/kafka start', 'tools/clickhouse start' and eval their 'env')." >&2
    exit 77
}
[ -n "${TP_TEST_KAFKA_BROKERS:-}" ] || skip_or_fail TP_TEST_KAFKA_BROKERS
[ -n "${TP_TEST_CLICKHOUSE_URL:-}" ] || skip_or_fail TP_TEST_CLICKHOUSE_URL

root=${TP_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
tp=${TELEPACK:?TELEPACK must point at the telepack binary}
produce=${SINK_PRODUCE:?SINK_PRODUCE must point at the sink_produce test helper}
brokers=$TP_TEST_KAFKA_BROKERS
ch=$TP_TEST_CLICKHOUSE_URL
ch_hostport=${ch#http://}
ch_hostport=${ch_hostport%%/*}
topic=tp-it-sinkch-$$-$RANDOM
db=tp_it_sink_$$_$RANDOM
vehicles=500
per_vehicle=400
total=$((vehicles * per_vehicle))
work=$(mktemp -d)
pid=
gate_pid=

fail() {
    echo "FAIL: $*" >&2
    for f in "$work"/sink*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
    exit 1
}
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    [ -n "$gate_pid" ] && kill "$gate_pid" 2>/dev/null || true
    curl -s "$ch/" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    TP_KAFKA_BOOTSTRAP=$brokers "$root/tools/kafka" delete-topic "$topic" >/dev/null 2>&1 || true
    [ -n "${TP_KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

q() { curl -sf "$ch/" --data-binary "$1"; }
rows() { q "SELECT count() FROM $db.vehicle_positions FINAL" 2>/dev/null || echo 0; }

# A free port for the gate.
gate_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo up >"$work/gate"
python3 "$root/tests/support/tcp_gate.py" "$gate_port" "$ch_hostport" "$work/gate" >"$work/gate.out" 2>&1 &
gate_pid=$!
for _ in $(seq 50); do grep -q ready "$work/gate.out" 2>/dev/null && break; sleep 0.1; done

q "CREATE DATABASE IF NOT EXISTS $db" >/dev/null || fail "cannot create database $db in ClickHouse at $ch"
TP_KAFKA_BOOTSTRAP=$brokers "$root/tools/kafka" create-topic "$topic" 4
"$produce" "$brokers" "$topic" "$vehicles" "$per_vehicle" 50 || fail "could not produce the fleet"

sink() { # sink LOG
    "$tp" sink --brokers "$brokers" --topic "$topic" --group "$topic-g" \
        --warehouse "clickhouse://127.0.0.1:$gate_port/$db" --create-table --lineage-columns yes --batch-rows 4000 --flush-ms 100 \
        -X max.partition.fetch.bytes=50000 -X session.timeout.ms=6000 -X heartbeat.interval.ms=1000 2>"$1" &
    pid=$!
}

# 1. Outage: close the gate once some rows are in, keep it closed for a few retries, open it again.
sink "$work/sink1.log"
for _ in $(seq 300); do [ "$(rows)" -ge 20000 ] && break; sleep 0.1; done
[ "$(rows)" -ge 20000 ] || fail "the sink loaded $(rows) rows in 30 s"
echo down >"$work/gate"
for _ in $(seq 300); do grep -q "retry 4 in" "$work/sink1.log" && break; sleep 0.1; done
grep -q "partitions paused, retry 4 in" "$work/sink1.log" || fail "the sink did not log its retries while ClickHouse was unreachable"
during=$(rows)
sleep 1
[ "$(rows)" = "$during" ] || fail "rows were loaded through a closed gate"
echo up >"$work/gate"
for _ in $(seq 300); do grep -q "available again" "$work/sink1.log" && break; sleep 0.1; done
grep -q "available again" "$work/sink1.log" || fail "the sink did not resume after ClickHouse came back"

# 2. kill -9 mid-stream (if anything is left), restart, everything exactly once.
for _ in $(seq 100); do [ "$(rows)" -ge 100000 ] && break; sleep 0.1; done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
pid=
before=$(rows)
echo "outage survived; killed the sink with $before of $total rows loaded" >&2
sink "$work/sink2.log"
for _ in $(seq 600); do [ "$(rows)" -ge "$total" ] && break; sleep 0.1; done
sleep 1
kill -TERM "$pid"
wait "$pid" || fail "the restarted sink exited with status $?"
pid=

[ "$(rows)" -eq "$total" ] || fail "table holds $(rows) records (FINAL), expected $total"
distinct=$(q "SELECT uniqExact(vehicle_id, sampled_at_ms, seq) FROM $db.vehicle_positions")
[ "$distinct" -eq "$total" ] || fail "$distinct distinct records, expected $total"
bad=$(q "SELECT count() FROM (SELECT vehicle_id, count() AS c, min(seq) AS lo, max(seq) AS hi FROM $db.vehicle_positions FINAL GROUP BY vehicle_id) WHERE c != $per_vehicle OR lo != 1 OR hi != $per_vehicle")
[ "$bad" -eq 0 ] || fail "$bad vehicles with missing records"
# Lineage: every row names a partition of the topic and an offset below the topic's end (1 message = 50 records).
lin=$(q "SELECT count() FROM $db.vehicle_positions WHERE kafka_partition NOT IN (0, 1, 2, 3) OR kafka_offset < 0 OR kafka_offset >= $((total / 50))")
[ "$lin" = 0 ] || fail "$lin rows with a kafka_partition or kafka_offset that no message of the topic has"
nlin=$(q "SELECT uniqExact(kafka_partition, kafka_offset) FROM $db.vehicle_positions FINAL")
[ "$nlin" = $((total / 50)) ] || fail "the rows name $nlin messages, expected $((total / 50))"
raw=$(q "SELECT count() FROM $db.vehicle_positions")
loaded=$(sed -n 's/.*summary: \([0-9]*\) rows.*/\1/p' "$work/sink2.log")
echo "ok: $total records once (FINAL); $raw physical rows before merges; restarted sink loaded $loaded rows after $before" >&2
