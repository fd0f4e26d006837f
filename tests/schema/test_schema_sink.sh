#!/usr/bin/env bash
# The EV telemetry schema end to end on librdkafka's mock cluster: ingest --schema --from -> Kafka (column packs,
# pbpack v4, and rows, pbpack v1; key =
# VIN, tp-schema / tp-schema-fp headers; --pack-by partition: several VINs a pack, no key) -> sink --schema ->
# SQLite: every record exactly once, every column equal;
# packs of an incompatible or unknown fingerprint to the DLQ with both fingerprints; a compatible writer version
# (the sink's schema adds a field) accepted. A built-in `telepack ingest` hosts the mock cluster.
# Usage: test_schema_sink.sh DATA_DIR SOURCE_DIR
set -u
data=$1
src=$2
tp=${TELEPACK:?set TELEPACK to the telepack binary}
. "$(dirname "$0")/../support/schema_script.sh"
dl=(--input-format delimited)

start_mock_cluster

"${gen[@]}" gen 6 40 "$tmp/ev.bin" "$tmp/ev.exp"
"${gen[@]}" gen 2 3 "$tmp/added.bin" "$tmp/added.exp" --added
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic ev "${dl[@]}" --from "$tmp/ev.bin" --batch-records 16 2>"$tmp/ing.err" ||
    fail "ingest --schema: $(cat "$tmp/ing.err")"
grep -q "240 records of $msg (schema 99b3bbc325167eac) -> 18 packs delivered" "$tmp/ing.err" || fail "ingest summary: $(cat "$tmp/ing.err")"
# packs of other versions of the message into the same topic: a writer with an added field, a retyped one
"$tp" ingest --schema "$data/ev_added.pb" --message $msg --brokers "$boot" --topic ev "${dl[@]}" --from "$tmp/added.bin" 2>/dev/null ||
    fail "ingest added"
"$tp" ingest --schema "$data/ev_retyped.pb" --message $msg --brokers "$boot" --topic ev "${dl[@]}" --from "$tmp/ev.bin" \
    --batch-records 1000 2>/dev/null || fail "ingest retyped"
added_fp=$("$tp" schema --schema "$data/ev_added.pb" --message $msg | sed -n 's/^fingerprint: //p')
retyped_fp=$("$tp" schema --schema "$data/ev_retyped.pb" --message $msg | sed -n 's/^fingerprint: //p')
# a record that does not decode is refused before anything of it is sent
printf '\x02\x08\x01' >"$tmp/bad.bin"
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic ev "${dl[@]}" --from "$tmp/bad.bin" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "record 0 (ending at input byte 3): it does not decode as $msg" "$tmp/err" || fail "bad record: $rc $(cat "$tmp/err")"

# The sink: ev_telemetry, knowing the ev_added version as a writer (incompatible: it has a column the table lacks).
"$tp" sink "${ev[@]}" --writer-schema "$data/ev_added.pb" --brokers "$boot" --topic ev --group g1 \
    --warehouse "sqlite:$tmp/ev.db" --create-table --flush-ms 100 -X log_level=3 2>"$tmp/sink.err" &
spid=$!
pids+=($spid)
n=0
for _ in $(seq 600); do
    n=$(sqlite3 "$tmp/ev.db" 'SELECT count(*) FROM ev_telemetry' 2>/dev/null || echo 0)
    [ "$n" = 240 ] && [ "$(grep -c 'sending it to ev.dlq' "$tmp/sink.err")" -ge 3 ] && break
    sleep 0.1
done
sleep 0.5
kill -TERM $spid; wait $spid; rc=$?
[ $rc = 0 ] || fail "sink exited $rc: $(tail -3 "$tmp/sink.err")"
"${gen[@]}" check-sqlite "$tmp/ev.exp" "$tmp/ev.db" ev_telemetry || fail "rows in SQLite differ from the records sent"
grep -q "incompatible with this sink's 99b3bbc325167eac: enum value DRIVE_STATE_TOWED" "$tmp/sink.err" &&
    grep -q "fingerprint $added_fp" "$tmp/sink.err" || fail "no DLQ for the added writer: $(grep dlq "$tmp/sink.err" | head -2)"
grep -q "fingerprint $retyped_fp, but this sink loads fingerprint 99b3bbc325167eac" "$tmp/sink.err" ||
    fail "no DLQ for the retyped writer: $(grep dlq "$tmp/sink.err" | head -3)"
# 18 packs + 2 of the added writer + 6 of the retyped one, over the partitions
[ "$(sqlite3 "$tmp/ev.db" "SELECT sum(next_offset) FROM kafka_offsets WHERE table_name = 'ev_telemetry'")" = 26 ] ||
    fail "offsets: $(sqlite3 "$tmp/ev.db" 'SELECT * FROM kafka_offsets')"
sqlite3 "$tmp/ev.db" .schema | grep -q 'PRIMARY KEY (vin, recorded_at, seq)' || fail "identity key: $(sqlite3 "$tmp/ev.db" .schema)"
# Restarted: nothing loaded twice (the offsets are in the database).
"$tp" sink "${ev[@]}" --writer-schema "$data/ev_added.pb" --brokers "$boot" --topic ev --group g1b \
    --warehouse "sqlite:$tmp/ev.db" --flush-ms 100 -X log_level=3 2>"$tmp/sink2.err" &
spid=$!
pids+=($spid)
sleep 2
kill -TERM $spid; wait $spid
"${gen[@]}" check-sqlite "$tmp/ev.exp" "$tmp/ev.db" ev_telemetry >/dev/null || fail "a restart changed the rows"
grep -q "sending it to" "$tmp/sink2.err" && fail "a restart dead-lettered again"

# A compatible writer: the sink's schema is ev_added (one more field), the packs ev_telemetry's.
"$tp" sink --schema "$data/ev_added.pb" --message $msg --writer-schema "$data/ev_telemetry.pb" --brokers "$boot" \
    --topic ev --group g2 --table ev_v2 --warehouse "sqlite:$tmp/ev.db" --create-table --flush-ms 100 -X log_level=3 \
    2>"$tmp/sink3.err" &
spid=$!
pids+=($spid)
for _ in $(seq 600); do
    n=$(sqlite3 "$tmp/ev.db" 'SELECT count(*) FROM ev_v2' 2>/dev/null || echo 0)
    [ "$n" -ge 246 ] && break
    sleep 0.1
done
sleep 0.3
kill -TERM $spid; wait $spid
[ "$(sqlite3 "$tmp/ev.db" 'SELECT count(*) FROM ev_v2')" = 246 ] || fail "compatible: $(sqlite3 "$tmp/ev.db" 'SELECT count(*) FROM ev_v2') rows, not 240 + 6"
[ "$(sqlite3 "$tmp/ev.db" 'SELECT count(*) FROM ev_v2 WHERE tire_pressure_kpa = 200')" = 2 ] || fail "added field not loaded"
grep -q "fingerprint $retyped_fp" "$tmp/sink3.err" || fail "retyped not dead-lettered by the ev_added sink"
# A table made for another version of the schema is refused with a sentence naming the missing column.
timeout 20 "$tp" sink --schema "$data/ev_added.pb" --message $msg --table ev_telemetry --brokers "$boot" --topic ev \
    --group g3 --warehouse "sqlite:$tmp/ev.db" 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "has no column tire_pressure_kpa of schema $msg ($added_fp)" "$tmp/err" ||
    fail "mismatched table: $rc $(cat "$tmp/err")"

# The same records as layout rows (pbpack v1, --layout rows; the default is columns, pbpack v4) load the same.
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic evrows --from "$tmp/ev.bin" --input-format delimited --batch-records 16 --layout rows \
    2>/dev/null || fail "ingest --layout rows"
"$tp" sink "${ev[@]}" --brokers "$boot" --topic evrows --group g6 --table ev_rows --warehouse "sqlite:$tmp/ev.db" \
    --create-table --flush-ms 100 -X log_level=3 2>"$tmp/sink6.err" &
spid=$!
pids+=($spid)
for _ in $(seq 600); do
    [ "$(sqlite3 "$tmp/ev.db" 'SELECT count(*) FROM ev_rows' 2>/dev/null || echo 0)" = 240 ] && break
    sleep 0.1
done
kill -TERM $spid; wait $spid
"${gen[@]}" check-sqlite "$tmp/ev.exp" "$tmp/ev.db" ev_rows || fail "rows-layout packs differ in SQLite"
grep -q "loads at 100000 rows or 100 ms" "$tmp/sink6.err" || fail "a --schema sink's default --batch-rows is not 100000: $(grep consuming "$tmp/sink6.err")"

# Several keys a pack (--pack-by partition): column packs of every VIN of a partition, sorted by (vin, time), sent
# without a Kafka key to the VINs' partition; the sink loads them the same. --layout rows cannot hold several keys.
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic evpart --from "$tmp/ev.bin" --input-format delimited --pack-by partition --batch-records 50 \
    2>"$tmp/ingp.err" || fail "ingest --pack-by partition: $(cat "$tmp/ingp.err")"
grep -q "240 records of $msg" "$tmp/ingp.err" || fail "ingest --pack-by partition summary: $(cat "$tmp/ingp.err")"
keys=$(kcat -C -b "$boot" -t evpart -e -q -f '%p:%k\n' 2>/dev/null)
[ -n "$keys" ] && ! grep -q ':.' <<<"$keys" || fail "--pack-by partition messages carry a key: $keys"
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic evpart --from "$tmp/ev.bin" --input-format delimited --pack-by partition --layout rows \
    2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q -- "--pack-by partition needs --layout columns" "$tmp/err" ||
    fail "--pack-by partition --layout rows: $rc $(cat "$tmp/err")"
"$tp" sink "${ev[@]}" --brokers "$boot" --topic evpart --group g8 --table ev_part --warehouse "sqlite:$tmp/ev.db" \
    --create-table --flush-ms 100 -X log_level=3 2>"$tmp/sink7.err" &
spid=$!
pids+=($spid)
for _ in $(seq 600); do
    [ "$(sqlite3 "$tmp/ev.db" 'SELECT count(*) FROM ev_part' 2>/dev/null || echo 0)" = 240 ] && break
    sleep 0.1
done
kill -TERM $spid; wait $spid
"${gen[@]}" check-sqlite "$tmp/ev.exp" "$tmp/ev.db" ev_part || fail "multi-key packs differ in SQLite"
grep -q "sending it to" "$tmp/sink7.err" &&
    fail "a multi-key pack dead-lettered: $(grep 'sending it to' "$tmp/sink7.err" | head -2)"
# No cluster to read the partition count from: exit 1 before anything is read (waits its 10 s).
"$tp" ingest "${ev[@]}" --brokers 127.0.0.1:1 --topic evpart --from "$tmp/ev.bin" --input-format delimited --pack-by partition \
    -X log_level=0 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q -- "--pack-by partition: cannot read the partition count of topic 'evpart'" "$tmp/err" ||
    fail "--pack-by partition without a cluster: $rc $(cat "$tmp/err")"

# Refused at start: plaintext gateways off loopback without --tls-cert or --insecure, and the null: warehouse
# has no table.
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic ev --listen 0.0.0.0:0 2>"$tmp/err"; rc=$?
[ $rc = 2 ] &&
    grep -q "refusing plaintext gateways on 0.0.0.0:0.*--tls-cert" "$tmp/err" ||
        fail "ingest --schema --listen off loopback: $rc $(cat "$tmp/err")"
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic ev --listen 127.0.0.1:0 --pack-by partition 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q -- "--pack-by partition applies to the --from replay" "$tmp/err" ||
    fail "--pack-by partition --listen: $rc $(cat "$tmp/err")"
"$tp" sink "${ev[@]}" --brokers "$boot" --topic ev --group g4 --warehouse null: 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "tables of a schema of your own (--schema) load into sqlite:PATH, clickhouse://HOST:PORT/DB or bigquery://PROJECT/DATASET/TABLE, not null:" "$tmp/err" ||
    fail "sink --schema null: $rc $(cat "$tmp/err")"

# A pack larger than --batch-rows, and a pack whose frame does not decode (or belongs to another key): to the DLQ
# whole, the rest loaded.
kcat -P -b "$boot" -t evbad -k VINBAD0000000001 -H tp-format=pbpack -H tp-version=1 -H tp-layout=rows \
    -H tp-codec=zstd -H "tp-schema=$msg" -H tp-schema-version=1 -H tp-records=1 -H tp-dict-id=0 \
    -H tp-schema-fp=99b3bbc325167eac "$tmp/badpack.zst" 2>/dev/null ||
    { printf '\x03\x02\x08\x01' | zstd -q -c >"$tmp/badpack.zst" &&
      kcat -P -b "$boot" -t evbad -k VINBAD0000000001 -H tp-format=pbpack -H tp-version=1 -H tp-layout=rows \
        -H tp-codec=zstd -H "tp-schema=$msg" -H tp-schema-version=1 -H tp-records=1 -H tp-dict-id=0 \
        -H tp-schema-fp=99b3bbc325167eac "$tmp/badpack.zst" 2>"$tmp/kcat.err" || fail "kcat: $(cat "$tmp/kcat.err")"; }
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic evbad "${dl[@]}" --from "$tmp/ev.bin" --batch-records 16 2>/dev/null ||
    fail "ingest into evbad"
"$tp" sink "${ev[@]}" --brokers "$boot" --topic evbad --group g5 --batch-rows 12 --table ev_small \
    --warehouse "sqlite:$tmp/ev.db" --create-table --flush-ms 100 -X log_level=3 2>"$tmp/sink5.err" &
spid=$!
pids+=($spid)
for _ in $(seq 600); do
    grep -q "more than --batch-rows" "$tmp/sink5.err" && grep -q "does not decode as $msg" "$tmp/sink5.err" && break
    sleep 0.1
done
sleep 1
kill -TERM $spid; wait $spid
grep -q "more than --batch-rows 12" "$tmp/sink5.err" || fail "no DLQ for a pack above --batch-rows: $(grep -i dlq "$tmp/sink5.err" | head -2)"
grep -q "does not decode as $msg" "$tmp/sink5.err" || fail "no DLQ for an undecodable frame: $(grep -i dlq "$tmp/sink5.err" | head -2)"
small=$(sqlite3 "$tmp/ev.db" 'SELECT count(*) FROM ev_small')
[ "$small" -gt 0 ] && [ "$small" -lt 240 ] || fail "ev_small holds $small rows: want the packs of at most 12 records, not none or all"

# NDJSON in (the default input format): the same records, as protobuf's JSON mapping, land as the same rows.
"$tp" schema "${ev[@]}" --decode "$tmp/ev.bin" --delimited >"$tmp/ev.json" || fail "decode to NDJSON"
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic evjson --from "$tmp/ev.json" --batch-records 16 2>"$tmp/ing.err" ||
    fail "ingest --schema ndjson: $(cat "$tmp/ing.err")"
grep -q "240 records of $msg (schema 99b3bbc325167eac) -> 18 packs delivered" "$tmp/ing.err" || fail "ndjson ingest summary: $(cat "$tmp/ing.err")"
"$tp" sink "${ev[@]}" --brokers "$boot" --topic evjson --group g7 --table ev_json --warehouse "sqlite:$tmp/ev.db" \
    --create-table --flush-ms 100 -X log_level=3 2>"$tmp/sink6.err" &
spid=$!
pids+=($spid)
for _ in $(seq 600); do
    [ "$(sqlite3 "$tmp/ev.db" 'SELECT count(*) FROM ev_json' 2>/dev/null || echo 0)" = 240 ] && break
    sleep 0.1
done
sleep 0.3
kill -TERM $spid; wait $spid
"${gen[@]}" check-sqlite "$tmp/ev.exp" "$tmp/ev.db" ev_json || fail "rows of the NDJSON ingest differ from the records"
# an unknown key stops the replay naming it and its line, unless --ignore-unknown-fields
{ head -3 "$tmp/ev.json"; echo '{"vin":"X1","speed":1}'; } >"$tmp/unk.json"
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic evjson --from "$tmp/unk.json" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q 'line 4: .*unknown key "speed" in the top level.*(the 3 records before it are sent)' "$tmp/err" ||
    fail "ndjson unknown key: $rc $(cat "$tmp/err")"
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic evjson --from "$tmp/unk.json" --ignore-unknown-fields 2>"$tmp/err" &&
    grep -q "4 records of $msg" "$tmp/err" || fail "ndjson --ignore-unknown-fields: $(cat "$tmp/err")"

[ $fails = 0 ] && echo "all schema sink checks passed"
exit $((fails > 0))
