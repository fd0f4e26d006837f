#!/usr/bin/env bash
# Crash test (issue 5): `telepack ingest` is killed with -9 mid-stream and restarted on the same port. The gateways
# (`telepack gen --connect`) reconnect and resend every record that was not acked; ClickHouse (FINAL) must then hold
# each record exactly once, every field bit for bit. 2,000 vehicles x 100 records, paced so the kill lands mid-stream.
. "$(dirname "$0")/../support/lib.sh"
e2e_init crash-ingest

gen_args=(--vehicles 2000 --seconds 100 --drop-rate 0 --seed 21)
e2e_expected "${gen_args[@]}"
e2e_topic "$TOPIC" 8
e2e_database
port=$(e2e_free_port)
mport=$(e2e_free_port)
e2e_ingest ingest1 "$port" "$BROKERS" --linger-ms 300 --metrics-listen "127.0.0.1:$mport"
e2e_sink sink "$BROKERS" "clickhouse://${CH#http://}/$DB"
e2e_spawn gen "$TP" gen "${gen_args[@]}" --connect "127.0.0.1:$port" --gateways 4 --rate 25000

ingested() { [ "$(e2e_metric "127.0.0.1:$mport" telepack_ingest_records_total)" -ge "$1" ] 2>/dev/null; }
e2e_until 60 "ingest to take 30% of the records" ingested $((E2E_EXPECTED_N * 3 / 10))
in1=$(e2e_metric "127.0.0.1:$mport" telepack_ingest_records_total)
e2e_alive gen || e2e_fail "gen finished before the kill; nothing was tested"
e2e_kill9 ingest1
e2e_log "killed ingest with -9 after it took about $in1 of $E2E_EXPECTED_N records; restarting it on port $port"
sleep 1
e2e_ingest ingest2 "$port" "$BROKERS" --linger-ms 300

e2e_wait_exit gen 180
[ "$E2E_STATUS" = 0 ] || e2e_fail "gen --connect exited with status $E2E_STATUS after the ingest restart"
e2e_log "gen: $(tail -n 1 "$E2E_WORK/gen.log")"
e2e_until 120 "$E2E_EXPECTED_N records in ClickHouse" ch_complete "$E2E_EXPECTED_N"
e2e_stop ingest2
e2e_stop sink
sum2=$(e2e_summary ingest2)
e2e_log "restarted ingest: $sum2"
in2=$(sed -n 's/^ingest summary: \([0-9]*\) records in.*/\1/p' <<<"$sum2")
[ "${in2:-0}" -ge $((E2E_EXPECTED_N - in1)) ] ||
    e2e_fail "the restarted ingest took only $in2 records; at least $((E2E_EXPECTED_N - in1)) never reached the first one"
read -r topic_records topic_packs < <(e2e_topic_records "$TOPIC" "$BROKERS")
raw=$(ch_rows)
e2e_log "topic: $topic_records records in $topic_packs packs ($((topic_records - E2E_EXPECTED_N)) resent records delivered twice); ClickHouse count() = $raw"
e2e_compare_clickhouse
e2e_pass "ingest kill -9 and restart: no record lost, none doubled after dedup"
