#!/usr/bin/env bash
# A schema of your own through a real broker into a real ClickHouse and into SQLite: the EV telemetry of
# tests/schema (ev_telemetry.proto, ev_gen.py) goes `telepack ingest --schema --from FILE` -> Kafka (3 partitions)
# -> `telepack sink --schema clickhouse://...` (table generated: Array, Nullable, UInt64, Int64 ns Timestamp on
# 18.16) and `sink --schema sqlite:...`; every record exactly once and every field equal to the generator's
# expectation (ClickHouse's JSON output compared field by field, floats by their bits). A restart with another
# consumer group loads nothing twice (the positions are in the warehouse), and tables made for another version of
# the schema or with another ORDER BY are refused at start with a sentence naming the difference.
# Usage: schema_sink.sh SCHEMA_DATA_DIR (the build folder of tests/schema, holding ev_telemetry.pb and ev_added.pb)
set -uo pipefail

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

data=${1:?usage: schema_sink.sh SCHEMA_DATA_DIR}
root=${TP_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
tp=${TELEPACK:?TELEPACK must point at the telepack binary}
brokers=$TP_TEST_KAFKA_BROKERS
ch=$TP_TEST_CLICKHOUSE_URL
ch_hostport=${ch#http://}
ch_hostport=${ch_hostport%%/*}
topic=tp-it-schema-$$-$RANDOM
db=tp_it_schema_$$_$RANDOM
msg=fleet.ev.v1.EvTelemetry
ev=(--schema "$data/ev_telemetry.pb" --message $msg)
gen=(python3 "$root/tests/schema/ev_gen.py")
work=$(mktemp -d)
pid=

fail() {
    echo "FAIL: $*" >&2
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -15 "$f" >&2; }; done
    exit 1
}
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    curl -s "$ch/" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    TP_KAFKA_BOOTSTRAP=$brokers "$root/tools/kafka" delete-topic "$topic" >/dev/null 2>&1 || true
    [ -n "${TP_KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
q() { curl -sf "$ch/" --data-binary "$1"; }

TP_KAFKA_BOOTSTRAP=$brokers "$root/tools/kafka" create-topic "$topic" 3 >/dev/null || fail "cannot create topic $topic"
"${gen[@]}" gen 6 40 "$work/ev.bin" "$work/ev.exp" || fail "ev_gen.py gen"
"$tp" ingest "${ev[@]}" --brokers "$brokers" --topic "$topic" --from "$work/ev.bin" --input-format delimited --batch-records 16 \
    2>"$work/ingest.log" || fail "ingest --schema --from"
grep -q "240 records of $msg (schema [0-9a-f]*) -> 18 packs delivered" "$work/ingest.log" || fail "ingest summary"

# run_sink NAME ARGS...: the sink in the background until the table holds 240 rows and the positions of the 18
# packs are stored, then SIGTERM; exit 0 expected.
wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.2
    done
}
stop_sink() {
    kill -TERM "$pid"
    wait "$pid"
    local rc=$?
    pid=
    [ $rc = 0 ] || fail "sink exited $rc"
}
ch_done() {
    [ "$(q "SELECT count() FROM $db.ev_telemetry FINAL" 2>/dev/null)" = 240 ] &&
        [ "$(q "SELECT sum(n) FROM (SELECT max(next_offset) AS n FROM $db.kafka_offsets WHERE table_name = 'ev_telemetry' AND topic = '$topic' GROUP BY kafka_partition)" 2>/dev/null)" = 18 ]
}

# 1. ClickHouse: the table generated, every record once, every field equal.
chw="clickhouse://$ch_hostport/$db"
"$tp" sink "${ev[@]}" --brokers "$brokers" --topic "$topic" --group "g1-$topic" --warehouse "$chw" --create-table \
    --flush-ms 200 2>"$work/sink1.log" &
pid=$!
wait_for 60 ch_done || fail "ClickHouse did not get the 240 records and 18 positions"
stop_sink
"${gen[@]}" check-clickhouse "$work/ev.exp" "$ch" "$db" ev_telemetry || fail "rows in ClickHouse differ from the records sent"
ddl=$(q "SELECT engine, sorting_key, partition_key FROM system.tables WHERE database = '$db' AND name = 'ev_telemetry'")
case "$ddl" in
*ReplacingMergeTree*"vin, recorded_at, seq"*"toYYYYMMDD(toDateTime(intDiv(recorded_at, 1000000000)))"*) ;;
*) fail "engine / order key / partition key: $ddl" ;;
esac
types=$(q "SELECT name, type FROM system.columns WHERE database = '$db' AND table = 'ev_telemetry' FORMAT TSV")
for want in "battery_cell_voltages_v	Array(Float32)" "battery_current_a	Nullable(Float64)" "seq	UInt64" \
    "trip_deltas	Array(Int64)" "fault_codes	Array(UInt32)" "tags	Array(String)" "drive_state	Int32" \
    "can_hv_interlock	UInt8" "raw_frame	String" "kafka_offset	Int64"; do
    grep -qxF "$want" <<<"$types" || fail "column type: want '$want' in: $types"
done
grep -qE "^recorded_at	(Int64|DateTime64\(9, 'UTC'\))$" <<<"$types" || fail "recorded_at type: $types"

# 2. Restarted with another consumer group (Kafka knows nothing of it): resumes at the positions ClickHouse holds,
#    loads nothing twice.
"$tp" sink "${ev[@]}" --brokers "$brokers" --topic "$topic" --group "g2-$topic" --warehouse "$chw" \
    --flush-ms 200 2>"$work/sink2.log" &
pid=$!
wait_for 30 grep -q "resum\|assigned\|positions" "$work/sink2.log" || true
sleep 3
stop_sink
"${gen[@]}" check-clickhouse "$work/ev.exp" "$ch" "$db" ev_telemetry >/dev/null ||
    fail "a restart loaded records twice: $("${gen[@]}" check-clickhouse "$work/ev.exp" "$ch" "$db" ev_telemetry)"

# 3. Tables that would break exactly-once or load garbage are refused at start, naming the difference.
timeout 30 "$tp" sink --schema "$data/ev_added.pb" --message $msg --table ev_telemetry --brokers "$brokers" \
    --topic "$topic" --group "g3-$topic" --warehouse "$chw" 2>"$work/added.log"
rc=$?
[ $rc = 1 ] && grep -q "table $db.ev_telemetry has no column tire_pressure_kpa of schema $msg" "$work/added.log" ||
    fail "a table of another version: exit $rc"
grep -q "ALTER TABLE $db.ev_telemetry ADD COLUMN tire_pressure_kpa Float32" "$work/added.log" || fail "no ALTER advice"
q "CREATE TABLE $db.ev_short AS $db.ev_telemetry ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(toDateTime(intDiv(recorded_at, 1000000000))) ORDER BY (vin, recorded_at)" ||
    fail "cannot create ev_short"
timeout 30 "$tp" sink "${ev[@]}" --table ev_short --brokers "$brokers" --topic "$topic" --group "g4-$topic" \
    --warehouse "$chw" 2>"$work/short.log"
rc=$?
[ $rc = 1 ] && grep -q "ev_short is ORDER BY (vin,recorded_at), not the identity of schema $msg" "$work/short.log" ||
    fail "a table ORDER BY less than the identity: exit $rc"
q "CREATE TABLE $db.ev_plain AS $db.ev_telemetry ENGINE = MergeTree PARTITION BY toYYYYMMDD(toDateTime(intDiv(recorded_at, 1000000000))) ORDER BY (vin, recorded_at, seq)" ||
    fail "cannot create ev_plain"
timeout 30 "$tp" sink "${ev[@]}" --table ev_plain --brokers "$brokers" --topic "$topic" --group "g5-$topic" \
    --warehouse "$chw" 2>"$work/plain.log"
rc=$?
[ $rc = 1 ] && grep -q "ev_plain has ENGINE = MergeTree, which does not collapse re-delivered records" "$work/plain.log" ||
    fail "a MergeTree table: exit $rc"

# 4. The same topic into SQLite through the real broker.
sq_done() { [ "$(sqlite3 "$work/ev.db" 'SELECT count(*) FROM ev_telemetry' 2>/dev/null)" = 240 ] &&
    [ "$(sqlite3 "$work/ev.db" "SELECT sum(next_offset) FROM kafka_offsets WHERE table_name = 'ev_telemetry'" 2>/dev/null)" = 18 ]; }
"$tp" sink "${ev[@]}" --brokers "$brokers" --topic "$topic" --group "g6-$topic" --warehouse "sqlite:$work/ev.db" \
    --create-table --flush-ms 200 2>"$work/sink6.log" &
pid=$!
wait_for 60 sq_done || fail "SQLite did not get the 240 records and 18 positions"
stop_sink
"${gen[@]}" check-sqlite "$work/ev.exp" "$work/ev.db" ev_telemetry || fail "rows in SQLite differ from the records sent"
"$tp" sink "${ev[@]}" --brokers "$brokers" --topic "$topic" --group "g7-$topic" --warehouse "sqlite:$work/ev.db" \
    --flush-ms 200 2>"$work/sink7.log" &
pid=$!
sleep 3
stop_sink
"${gen[@]}" check-sqlite "$work/ev.exp" "$work/ev.db" ev_telemetry >/dev/null || fail "a restart changed the SQLite rows"
echo "schema pipeline into ClickHouse and SQLite: 240 records each exactly once, every field equal"
