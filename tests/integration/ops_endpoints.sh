#!/usr/bin/env bash
# The operations endpoints of running workers: `telepack ingest` and `telepack sink` (ClickHouse behind a TCP gate)
# with --metrics-listen 127.0.0.1:0, fed by `telepack gen --connect`. Every /metrics scrape is checked strictly
# (tests/support/prom_text.py); counters move as records flow and never go down, byte counters agree, the
# consumer lag per partition and the event-time lag histogram appear; with the gate closed the sink's /readyz says
# 503 with a reason while /healthz stays 200, and 200 again once the gate opens; every record ends up in the table
# exactly once.
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
prom="python3 $root/tests/support/prom_text.py"
brokers=$TP_TEST_KAFKA_BROKERS
ch=$TP_TEST_CLICKHOUSE_URL
ch_hostport=${ch#http://}
ch_hostport=${ch_hostport%%/*}
run=$$_$RANDOM
topic=tp-it-ops-$run
db=tp_it_ops_$run
vehicles=60
seconds=50                                  # simulated seconds per phase, one record per vehicle per second
phase=$((vehicles * seconds))
work=$(mktemp -d)
ing_pid= sink_pid= gen_pid= gate_pid=

fail() {
    echo "FAIL: $*" >&2
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -15 "$f" >&2; }; done
    exit 1
}
cleanup() {
    for p in $gen_pid $ing_pid $sink_pid; do kill -9 "$p" 2>/dev/null || true; done
    [ -n "$gate_pid" ] && kill "$gate_pid" 2>/dev/null || true
    curl -s --max-time 10 "$ch/" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    TP_KAFKA_BOOTSTRAP=$brokers timeout 30 "$root/tools/kafka" delete-topic "$topic" >/dev/null 2>&1 || true
    TP_KAFKA_BOOTSTRAP=$brokers timeout 30 "$root/tools/kafka" delete-topic "$topic.dlq" >/dev/null 2>&1 || true
    [ -n "${TP_KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

q() { curl -sf --max-time 10 "$ch/" --data-binary "$1"; }
rows() { q "SELECT count() FROM $db.vehicle_positions FINAL" 2>/dev/null || echo 0; }
# status URL: the HTTP status of a GET (000 when it cannot connect); the body goes to $work/body
status() { curl -s --max-time 5 -o "$work/body" -w '%{http_code}' "$1" || true; }
# log_port LOG REGEX: the number in the first line of LOG matching REGEX (a sed -n s///p expression), waiting 15 s
log_port() {
    local p=
    for _ in $(seq 150); do
        p=$(sed -n "$2" "$1" | head -1)
        [ -n "$p" ] && break
        sleep 0.1
    done
    echo "$p"
}
# scrape WORKER: checks /metrics of ingest or sink strictly; echoes the file the snapshot went to
scrape() {
    local port out
    if [ "$1" = ingest ]; then port=$ing_mport; else port=$sink_mport; fi
    out=$(mktemp "$work/$1.XXXXXX.json")
    $prom scrape "http://127.0.0.1:$port/metrics" "$out" >&2 || fail "the $1's /metrics broke the exposition format"
    echo "$out"
}
# val SNAP NAME [K=V...]: the sum of the matching samples, or fail
val() {
    $prom value "$@" || fail "no sample $2 ${*:3} in $1"
}
# wait_val WORKER MIN NAME [K=V...]: scrape until the value reaches MIN (30 s at most); echoes the snapshot
wait_val() {
    local w=$1 min=$2 s v
    shift 2
    for _ in $(seq 60); do
        s=$(scrape "$w")
        v=$($prom value "$s" "$@" 2>/dev/null || echo -1)
        if python3 -c "import sys; sys.exit(0 if float('$v') >= float('$min') else 1)"; then
            echo "$s"
            return 0
        fi
        sleep 0.5
    done
    fail "$w: $* stayed at $v, expected at least $min"
}

# The gate in front of ClickHouse, on a free port.
gate_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo up >"$work/gate"
python3 "$root/tests/support/tcp_gate.py" "$gate_port" "$ch_hostport" "$work/gate" >"$work/gate.log" 2>&1 &
gate_pid=$!
for _ in $(seq 50); do grep -q ready "$work/gate.log" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$work/gate.log" || fail "the TCP gate did not start"

q "CREATE DATABASE IF NOT EXISTS $db" >/dev/null || fail "cannot create database $db in ClickHouse at $ch"
TP_KAFKA_BOOTSTRAP=$brokers timeout 60 "$root/tools/kafka" create-topic "$topic" 4 >/dev/null ||
    fail "cannot create topic $topic"

"$tp" ingest --brokers "$brokers" --topic "$topic" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --batch-records 50 --linger-ms 300 --threads 1 -X statistics.interval.ms=500 2>"$work/ingest.log" &
ing_pid=$!
"$tp" sink --brokers "$brokers" --topic "$topic" --group "$topic-g" --metrics-listen 127.0.0.1:0 \
    --warehouse "clickhouse://127.0.0.1:$gate_port/$db" --create-table --batch-rows 1000 --flush-ms 200 \
    -X statistics.interval.ms=500 -X session.timeout.ms=6000 -X heartbeat.interval.ms=1000 2>"$work/sink.log" &
sink_pid=$!

ing_mport=$(log_port "$work/ingest.log" 's/.*serving \/metrics.* (port \([0-9]*\)).*/\1/p')
gw_port=$(log_port "$work/ingest.log" 's/.*listening for gateways on .* (port \([0-9]*\)).*/\1/p')
sink_mport=$(log_port "$work/sink.log" 's/.*serving \/metrics.* on port \([0-9]*\).*/\1/p')
[ -n "$ing_mport" ] && [ "$ing_mport" != 0 ] || fail "the ingest did not log the port of its metrics endpoint"
[ -n "$gw_port" ] && [ "$gw_port" != 0 ] || fail "the ingest did not log its gateway port"
[ -n "$sink_mport" ] && [ "$sink_mport" != 0 ] || fail "the sink did not log the port of its metrics endpoint"
ing=http://127.0.0.1:$ing_mport
snk=http://127.0.0.1:$sink_mport

# Both report ready: the ingest once its producer is connected, the sink once it joined its group.
for w in "$ing" "$snk"; do
    for _ in $(seq 300); do [ "$(status "$w/readyz")" = 200 ] && break; sleep 0.1; done
    [ "$(status "$w/readyz")" = 200 ] || fail "$w/readyz: $(cat "$work/body") after 30 s"
    [ "$(status "$w/healthz")" = 200 ] || fail "$w/healthz is not 200"
done
i0=$(scrape ingest)
s0=$(scrape sink)
[ "$(val "$i0" telepack_build_info worker=ingest)" = 1 ] || fail "telepack_build_info{worker=\"ingest\"} is not 1"
[ "$(val "$s0" telepack_build_info worker=sink)" = 1 ] || fail "telepack_build_info{worker=\"sink\"} is not 1"
[ "$(val "$i0" telepack_ingest_records_total)" = 0 ] || fail "the ingest counted records before any was sent"
[ "$(val "$i0" telepack_kafka_broker_up role=producer)" -ge 1 ] || fail "the ingest exports no producer broker UP"

# 1. Records flow: scrape both workers while a gateway sends records sampled two minutes ago.
start_ms=$(($(date +%s%3N) - 120000))
gen() { # gen FIRST_VEHICLE_ID RATE LOG
    timeout 60 "$tp" gen --vehicles "$vehicles" --seconds "$seconds" --drop-rate 0 --start-ms "$start_ms" \
        --first-vehicle-id "$1" --rate "$2" --connect "127.0.0.1:$gw_port" -q 2>"$3" &
    gen_pid=$!
}
gen 10001 1000 "$work/gen1.log"
ing_snaps=("$i0") sink_snaps=("$s0")
while kill -0 "$gen_pid" 2>/dev/null; do
    ing_snaps+=("$(scrape ingest)")
    sink_snaps+=("$(scrape sink)")
    sleep 0.3
done
wait "$gen_pid" || fail "telepack gen (phase 1) exited with status $?"
gen_pid=
# gen returned once the ingest acked every record, so the ingest's counters are final now.
i1=$(scrape ingest)
ing_snaps+=("$i1")
[ "$(val "$i1" telepack_ingest_records_total)" = "$phase" ] ||
    fail "telepack_ingest_records_total is $(val "$i1" telepack_ingest_records_total), sent $phase"
packs=$(val "$i1" telepack_ingest_packs_total)
bin=$(val "$i1" telepack_ingest_bytes_in_total)
bout=$(val "$i1" telepack_ingest_bytes_out_total)
[ "$packs" -gt 0 ] && [ "$bin" -gt 0 ] && [ "$bout" -gt 0 ] || fail "ingest packs $packs, bytes in $bin, out $bout"
[ "$bout" -lt "$bin" ] || fail "the ingest's bytes after compression ($bout) are not fewer than before ($bin)"
[ "$(val "$i1" telepack_ingest_pack_bytes_sum)" = "$bout" ] ||
    fail "telepack_ingest_pack_bytes_sum $(val "$i1" telepack_ingest_pack_bytes_sum) != bytes_out_total $bout"
[ "$(val "$i1" telepack_ingest_pack_bytes_count)" = "$packs" ] || fail "pack_bytes_count != packs_total $packs"
[ "$(val "$i1" telepack_ingest_records_per_pack_sum)" = "$phase" ] ||
    fail "records_per_pack_sum $(val "$i1" telepack_ingest_records_per_pack_sum) != records sent $phase"
[ "$(val "$i1" telepack_ingest_produce_latency_seconds_count)" -ge "$packs" ] ||
    fail "fewer produce latency observations than packs"
[ "$(val "$i1" telepack_ingest_gateways)" -le 1 ] || fail "more gateways than connected"
[ "$(val "$i1" telepack_ingest_delivery_errors_total)" = 0 ] || fail "delivery errors without a fault"
# The producer's librdkafka statistics catch up with what was delivered.
wait_val ingest "$packs" telepack_kafka_tx_messages_total role=producer >/dev/null
# The sink loads everything; its consumer lag per partition appears and drains to zero.
s1=$(wait_val sink "$phase" telepack_sink_rows_loaded_total warehouse=clickhouse)
for _ in $(seq 60); do
    s1=$(scrape sink)
    sink_snaps+=("$s1")
    [ "$($prom series "$s1" telepack_sink_consumer_lag_stored topic="$topic")" = 4 ] &&
        [ "$($prom series "$s1" telepack_sink_consumer_lag topic="$topic")" = 4 ] &&
        [ "$(val "$s1" telepack_sink_consumer_lag_stored topic="$topic")" = 0 ] && break
    sleep 0.5
done
for p in 0 1 2 3; do
    [ "$($prom series "$s1" telepack_sink_consumer_lag_stored topic="$topic" partition=$p)" = 1 ] ||
        fail "no telepack_sink_consumer_lag_stored for partition $p of $topic"
    [ "$($prom series "$s1" telepack_sink_consumer_lag topic="$topic" partition=$p)" = 1 ] ||
        fail "no telepack_sink_consumer_lag for partition $p of $topic"
done
[ "$(val "$s1" telepack_sink_consumer_lag_stored topic="$topic")" = 0 ] ||
    fail "unloaded lag $(val "$s1" telepack_sink_consumer_lag_stored topic="$topic") after everything was loaded"
[ "$(val "$s1" telepack_sink_rows_loaded_total warehouse=clickhouse)" = "$phase" ] || fail "sink loaded more rows than sent"
[ "$(val "$s1" telepack_sink_records_total)" = "$phase" ] || fail "sink decoded $(val "$s1" telepack_sink_records_total) records"
[ "$(val "$s1" telepack_sink_packs_total)" = "$packs" ] ||
    fail "the sink consumed $(val "$s1" telepack_sink_packs_total) packs, the ingest delivered $packs"
lagn=$(val "$s1" telepack_sink_event_time_lag_seconds_count)
[ "$lagn" -gt 0 ] || fail "the event-time lag histogram has no observations"
# Records were sampled 70..120 s before they were loaded: at least that much lag, no observation under a minute.
[ "$(val "$s1" telepack_sink_event_time_lag_seconds_bucket le=60)" = 0 ] ||
    fail "event-time lag observations under 60 s for records sampled over 70 s ago"
[ "$(val "$s1" telepack_sink_warehouse_up warehouse=clickhouse)" = 1 ] || fail "warehouse_up is not 1"
[ "$(val "$s1" telepack_sink_assigned_partitions)" = 4 ] || fail "the sink has not the 4 partitions assigned"
[ "$(val "$s1" telepack_kafka_cgrp_up role=consumer)" = 1 ] || fail "telepack_kafka_cgrp_up{role=\"consumer\"} is not 1"
wait_val sink "$packs" telepack_kafka_rx_messages_total role=consumer >/dev/null
# Counters moved: the first and last snapshots differ, and no counter ever went down.
for c in telepack_ingest_records_total telepack_ingest_packs_total telepack_ingest_bytes_in_total \
    telepack_ingest_bytes_out_total; do
    [ "$(val "$i0" $c)" -lt "$(val "$i1" $c)" ] || fail "$c did not move while records flowed"
done
[ "$(val "$s0" telepack_sink_rows_loaded_total warehouse=clickhouse)" -lt "$phase" ] || fail "the sink had rows before"
$prom monotonic "${ing_snaps[@]}" || fail "an ingest counter went down"
$prom monotonic "${sink_snaps[@]}" || fail "a sink counter went down"
echo "phase 1: $phase records, $packs packs, $bin bytes in, $bout bytes out; ${#ing_snaps[@]} + ${#sink_snaps[@]} scrapes" >&2

# 2. The warehouse becomes unreachable while records keep coming: the sink is not ready (it says why) but alive;
#    the ingest stays ready. Then the gate opens and the sink is ready again.
echo down >"$work/gate"
gen 20001 500 "$work/gen2.log"
notready=
for _ in $(seq 300); do
    [ "$(status "$snk/healthz")" = 200 ] || fail "the sink's /healthz is not 200 while the warehouse is down"
    if [ "$(status "$snk/readyz")" = 503 ]; then
        notready=$(cat "$work/body")
        break
    fi
    sleep 0.1
done
[ -n "$notready" ] || fail "the sink's /readyz stayed $(status "$snk/readyz") with the warehouse unreachable for 30 s"
case $notready in
"not ready: "?*) ;;
*) fail "the sink's /readyz answered 503 with '$notready', not 'not ready: <reason>'" ;;
esac
[ "$(wc -l <"$work/body")" -le 1 ] || fail "the readiness reason is more than one line"
s2=$(scrape sink)
[ "$(val "$s2" telepack_sink_warehouse_up warehouse=clickhouse)" = 0 ] || fail "warehouse_up is not 0 while down"
[ "$(val "$s2" telepack_sink_load_errors_total warehouse=clickhouse)" -gt 0 ] || fail "no load error counted"
[ "$(status "$ing/readyz")" = 200 ] || fail "the ingest became not ready ($(cat "$work/body")) though Kafka is up"
for _ in $(seq 10); do # a little longer down: liveness holds, readiness stays down
    [ "$(status "$snk/healthz")" = 200 ] || fail "the sink's /healthz is not 200 while the warehouse is down"
    [ "$(status "$snk/readyz")" = 503 ] || fail "the sink's /readyz said $(cat "$work/body") with the gate closed"
    sleep 0.1
done
echo up >"$work/gate"
for _ in $(seq 300); do
    [ "$(status "$snk/healthz")" = 200 ] || fail "the sink's /healthz is not 200 while it recovers"
    [ "$(status "$snk/readyz")" = 200 ] && break
    sleep 0.1
done
[ "$(status "$snk/readyz")" = 200 ] || fail "the sink's /readyz is still $(cat "$work/body") 30 s after the gate opened"
echo "phase 2: sink not ready with the warehouse unreachable ('$notready'), ready again after" >&2

wait "$gen_pid" || fail "telepack gen (phase 2) exited with status $?"
gen_pid=
total=$((2 * phase))
for _ in $(seq 300); do [ "$(rows)" -ge "$total" ] && break; sleep 0.1; done
s3=$(wait_val sink "$total" telepack_sink_rows_loaded_total warehouse=clickhouse)
[ "$(val "$s3" telepack_sink_warehouse_up warehouse=clickhouse)" = 1 ] || fail "warehouse_up is not 1 after recovery"
[ "$(val "$s3" telepack_sink_retries_total warehouse=clickhouse)" -gt 0 ] || fail "no retry counted"
$prom monotonic "${sink_snaps[@]}" "$s2" "$s3" || fail "a sink counter went down across the outage"
i3=$(scrape ingest)
[ "$(val "$i3" telepack_ingest_records_total)" = "$total" ] || fail "the ingest counted $(val "$i3" telepack_ingest_records_total) of $total"

kill -TERM "$ing_pid" "$sink_pid"
wait "$ing_pid" || fail "the ingest exited with status $?"
ing_pid=
wait "$sink_pid" || fail "the sink exited with status $?"
sink_pid=
[ "$(rows)" = "$total" ] || fail "the table holds $(rows) records (FINAL), sent $total"
distinct=$(q "SELECT uniqExact(vehicle_id, sampled_at_ms, seq) FROM $db.vehicle_positions")
[ "$distinct" = "$total" ] || fail "$distinct distinct records in the table, sent $total"
echo "ok: $total records exactly once; /metrics strict on every scrape, /readyz 503 -> 200 around the outage" >&2
