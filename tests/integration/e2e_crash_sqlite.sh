#!/usr/bin/env bash
# Crash test (issue 5): `telepack sink --warehouse sqlite:PATH` is killed with -9 mid-stream and restarted. SQLite
# commits the rows and the consumer offsets in one transaction, so the table must hold each record exactly once with
# no FINAL or GROUP BY, and the restarted sink must load exactly the packs the killed one had not committed:
# (packs in the topic) - (sum of next_offset in kafka_offsets right after the kill) — exactly-once, not deduplication.
. "$(dirname "$0")/../support/lib.sh"
e2e_init crash-sqlite

gen_args=(--vehicles 2000 --seconds 100 --drop-rate 0 --seed 26)
e2e_expected "${gen_args[@]}"
e2e_topic "$TOPIC" 8
db=$E2E_WORK/fleet.db
port=$(e2e_free_port)
mport=$(e2e_free_port)
e2e_ingest ingest "$port" "$BROKERS" --linger-ms 300 --layout rows # pbpack v1 here; the other tests use the default (v2)
e2e_sink sink1 "$BROKERS" "sqlite:$db" --batch-rows 5000 --metrics-listen "127.0.0.1:$mport"
e2e_spawn gen "$TP" gen "${gen_args[@]}" --connect "127.0.0.1:$port" --gateways 4 --rate 20000

sq() { python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$db" "$1"; }
loaded() { [ "$(e2e_metric "127.0.0.1:$mport" telepack_sink_rows_loaded_total)" -ge "$1" ] 2>/dev/null; }
e2e_until 60 "the sink to load 30% of the records" loaded $((E2E_EXPECTED_N * 3 / 10))
e2e_alive gen || e2e_fail "gen finished before the kill; nothing was tested"
e2e_kill9 sink1
rows_kill=$(sq "SELECT count(*) FROM vehicle_positions")
offs_kill=$(sq "SELECT coalesce(sum(next_offset), 0) FROM kafka_offsets")
e2e_log "killed the sink with -9: $rows_kill rows and $offs_kill packs committed in SQLite"
[ "$rows_kill" -gt 0 ] && [ "$rows_kill" -lt "$E2E_EXPECTED_N" ] || e2e_fail "$rows_kill rows at the kill: not mid-stream"
e2e_sink sink2 "$BROKERS" "sqlite:$db" --batch-rows 5000

e2e_wait_exit gen 180
[ "$E2E_STATUS" = 0 ] || e2e_fail "gen --connect exited with status $E2E_STATUS"
e2e_stop ingest
rows_now() { [ "$(sq "SELECT count(*) FROM vehicle_positions")" -ge "$1" ]; }
e2e_until 120 "$E2E_EXPECTED_N rows in SQLite" rows_now "$E2E_EXPECTED_N"
read -r topic_records topic_packs < <(e2e_topic_records "$TOPIC" "$BROKERS")
packs_done() { [ "$(sq "SELECT coalesce(sum(next_offset), 0) FROM kafka_offsets")" -ge "$topic_packs" ]; }
e2e_until 60 "the sink to commit the offsets of all $topic_packs packs" packs_done
e2e_stop sink2
sum2=$(e2e_summary sink2)
e2e_log "restarted sink: $sum2"
e2e_log "topic: $topic_records records in $topic_packs packs"
packs2=$(sed -n 's/^summary: [0-9]* rows in \([0-9]*\) packs.*/\1/p' <<<"$sum2")
[ "$packs2" = $((topic_packs - offs_kill)) ] ||
    e2e_fail "the restarted sink loaded $packs2 packs, expected exactly $((topic_packs - offs_kill)) (topic $topic_packs - committed $offs_kill)"
if [ "$topic_records" = "$E2E_EXPECTED_N" ]; then # no gateway resend put a record into two packs
    rows2=$(sed -n 's/^summary: \([0-9]*\) rows.*/\1/p' <<<"$sum2")
    [ "$rows2" = $((E2E_EXPECTED_N - rows_kill)) ] ||
        e2e_fail "the restarted sink loaded $rows2 rows, expected exactly $((E2E_EXPECTED_N - rows_kill))"
fi
e2e_compare_sqlite "$db"
e2e_pass "SQLite sink kill -9 and restart: $rows_kill rows before, $((E2E_EXPECTED_N - rows_kill)) after, each exactly once"
