#!/usr/bin/env bash
# Crash test (issue 5): one of two `telepack sink`s of a consumer group is killed with -9 mid-stream. With a 6 s
# session timeout the group evicts it and the survivor takes over all 8 partitions, resuming each at the offsets the
# warehouse recorded. ClickHouse (FINAL) must hold each record exactly once, every field bit for bit.
. "$(dirname "$0")/../support/lib.sh"
e2e_init crash-sink

gen_args=(--vehicles 2000 --seconds 100 --drop-rate 0 --seed 22)
e2e_expected "${gen_args[@]}"
e2e_topic "$TOPIC" 8
e2e_database
port=$(e2e_free_port)
m1=$(e2e_free_port)
m2=$(e2e_free_port)
e2e_ingest ingest "$port" "$BROKERS" --linger-ms 300 --layout rows # pbpack v1 here; the other tests use the default (v2)
wh="clickhouse://${CH#http://}/$DB"
e2e_sink sink1 "$BROKERS" "$wh" --metrics-listen "127.0.0.1:$m1" --batch-rows 5000
e2e_sink sink2 "$BROKERS" "$wh" --metrics-listen "127.0.0.1:$m2" --batch-rows 5000
assigned() { [ "$(e2e_metric "127.0.0.1:$1" telepack_sink_assigned_partitions)" = "$2" ]; }
both_assigned() { a=$(e2e_metric "127.0.0.1:$m1" telepack_sink_assigned_partitions); [ "${a:-0}" -gt 0 ] && [ "$a" -lt 8 ]; }
e2e_until 60 "the two sinks to share the 8 partitions" both_assigned
e2e_spawn gen "$TP" gen "${gen_args[@]}" --connect "127.0.0.1:$port" --gateways 4 --rate 20000

loaded_by() { [ "$(e2e_metric "127.0.0.1:$1" telepack_sink_rows_loaded_total)" -ge "$2" ] 2>/dev/null; }
e2e_until 60 "sink1 to load 20,000 rows" loaded_by "$m1" 20000
e2e_alive gen || e2e_fail "gen finished before the kill; nothing was tested"
p1=$(e2e_metric "127.0.0.1:$m1" telepack_sink_assigned_partitions)
before=$(ch_rows FINAL)
e2e_kill9 sink1
t_kill=$SECONDS
e2e_log "killed sink1 (it owned $p1 partitions) with -9; $before of $E2E_EXPECTED_N records in ClickHouse"
e2e_until 60 "sink2 to take over all 8 partitions" assigned "$m2" 8
e2e_log "sink2 owns all 8 partitions $((SECONDS - t_kill)) s after the kill"

e2e_wait_exit gen 180
[ "$E2E_STATUS" = 0 ] || e2e_fail "gen --connect exited with status $E2E_STATUS"
e2e_until 120 "$E2E_EXPECTED_N records in ClickHouse" ch_complete "$E2E_EXPECTED_N"
e2e_stop ingest
e2e_stop sink2
e2e_log "sink2: $(e2e_summary sink2)"
e2e_log "ClickHouse count() = $(ch_rows), count() FINAL = $(ch_rows FINAL)"
e2e_compare_clickhouse
e2e_pass "sink kill -9, the other member took over: no record lost, none doubled after dedup"
