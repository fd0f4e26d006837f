#!/usr/bin/env bash
# End to end (issue 5): 20,000 vehicles x 50 records from `telepack gen --connect` (8 gateway connections) through
# `telepack ingest` into an 8-partition topic on the real broker, then two `telepack sink`s in one consumer group into
# the real ClickHouse. The table (FINAL) must hold exactly the records gen sent, every field bit for bit.
. "$(dirname "$0")/../support/lib.sh"
e2e_init fleet

vehicles=${TP_E2E_FLEET_VEHICLES:-20000}
seconds=${TP_E2E_FLEET_SECONDS:-50}
gen_args=(--vehicles "$vehicles" --seconds "$seconds" --drop-rate 0 --seed 7)
e2e_expected "${gen_args[@]}"
[ "$E2E_EXPECTED_N" -eq $((vehicles * seconds)) ] ||
    e2e_fail "gen --drop-rate 0 wrote $E2E_EXPECTED_N records, expected $((vehicles * seconds))"
e2e_log "expected records ready: $E2E_EXPECTED_N"

e2e_topic "$TOPIC" 8
e2e_database
port=$(e2e_free_port)
e2e_ingest ingest "$port" "$BROKERS" --linger-ms 500
wh="clickhouse://${CH#http://}/$DB"
e2e_sink sink1 "$BROKERS" "$wh"
e2e_sink sink2 "$BROKERS" "$wh"
# The group shares the partitions before the fleet sends: once sink2 holds some, the rebalance is done. (Sent
# earlier, the million records can be loaded by sink1 alone before sink2 joins: ingest and sink take ~1.5 s.)
both_assigned() { grep -q "INFO sink: assigned " "$E2E_WORK/sink1.log" && grep -q "INFO sink: assigned " "$E2E_WORK/sink2.log"; }
e2e_until 60 "both sinks of the group hold partitions" both_assigned

t_send=$SECONDS
e2e_spawn gen "$TP" gen "${gen_args[@]}" --connect "127.0.0.1:$port" --gateways 8
e2e_wait_exit gen 300
[ "$E2E_STATUS" = 0 ] || e2e_fail "gen --connect exited with status $E2E_STATUS"
e2e_log "gen: every record acked by ingest after $((SECONDS - t_send)) s: $(tail -n 1 "$E2E_WORK/gen.log")"
e2e_until 300 "$E2E_EXPECTED_N records in ClickHouse" ch_complete "$E2E_EXPECTED_N"
e2e_log "all records in ClickHouse $((SECONDS - t_send)) s after gen started"

e2e_stop ingest
e2e_stop sink1
e2e_stop sink2
e2e_log "ingest: $(e2e_summary ingest)"
for s in sink1 sink2; do
    sum=$(e2e_summary "$s")
    e2e_log "$s: $sum"
    rows=$(sed -n 's/^summary: \([0-9]*\) rows.*/\1/p' <<<"$sum")
    [ "${rows:-0}" -gt 0 ] || e2e_fail "$s loaded no rows: the consumer group did not share the partitions"
done

raw=$(ch_rows)
final=$(ch_rows FINAL)
e2e_log "count() = $raw, count() FINAL = $final (duplicates before merges: $((raw - final)))"
[ "$final" -eq "$E2E_EXPECTED_N" ] || e2e_fail "count() FINAL is $final, expected $E2E_EXPECTED_N"
e2e_compare_clickhouse
e2e_pass "$E2E_EXPECTED_N records from $vehicles vehicles, gen -> ingest -> Kafka (8 partitions) -> 2 sinks -> ClickHouse"
