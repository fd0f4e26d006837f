#!/usr/bin/env bash
# sink --schema-dir on librdkafka's mock cluster: the sink finds the writer version of a pack by its tp-schema-fp in
# a directory of descriptor sets instead of being given it (--writer-schema). A compatible older version found there
# loads; an incompatible one and an unknown fingerprint go to the DLQ with the reason; a version added to the
# directory while the sink runs is found at once; files that are not sets of the message are skipped with a warning
# or ignored. A built-in `telepack ingest` hosts the mock cluster.
# Usage: test_schema_dir_sink.sh DATA_DIR SOURCE_DIR
set -u
data=$1
src=$2
tp=${TELEPACK:?set TELEPACK to the telepack binary}
. "$(dirname "$0")/../support/schema_script.sh"
fp() { "$tp" schema --schema "$1" --message $msg | sed -n 's/^fingerprint: //p'; }
ev_fp=$(fp "$data/ev_telemetry.pb")
added_fp=$(fp "$data/ev_added.pb")
retyped_fp=$(fp "$data/ev_retyped.pb")
[ -n "$ev_fp" ] && [ -n "$added_fp" ] && [ -n "$retyped_fp" ] || { echo "FAIL: no fingerprints"; exit 1; }

start_mock_cluster

rows() { sqlite3 "$tmp/ev.db" "SELECT count(*) FROM $1" 2>/dev/null || echo 0; }
# wait_for CONDITION-COMMAND...: up to 60 s (a loaded machine under ASan is slow)
wait_for() { for _ in $(seq 600); do "$@" && return 0; sleep 0.1; done; return 1; }

"${gen[@]}" gen 6 40 "$tmp/ev.bin" "$tmp/ev.exp"
"${gen[@]}" gen 2 3 "$tmp/added.bin" "$tmp/added.exp" --added
ingest() { # ingest SET TOPIC FILE
    "$tp" ingest --schema "$data/$1" --message $msg --brokers "$boot" --topic "$2" --from "$3" --input-format delimited \
        --batch-records 16 2>"$tmp/ing.err" || fail "ingest $1 into $2: $(cat "$tmp/ing.err")"
}
# Topic ev: the old version (ev_telemetry, 18 packs), the sink's own (ev_added, 2 packs), an incompatible one
# (ev_retyped, 18 packs).
ingest ev_telemetry.pb ev "$tmp/ev.bin"
ingest ev_added.pb ev "$tmp/added.bin"
ingest ev_retyped.pb ev "$tmp/ev.bin"

# The directory: the old and the retyped versions, a set of another message, junk, a dot file, a subdirectory.
mkdir -p "$tmp/schemas/sub"
cp "$data/ev_telemetry.pb" "$tmp/schemas/ev-2024.pb"
cp "$data/ev_retyped.pb" "$tmp/schemas/ev-retyped.pb"
cp "$data/vehicle.pb" "$tmp/schemas/vehicle.pb"
echo "not a descriptor set" >"$tmp/schemas/notes.txt"
cp "$data/ev_retyped.pb" "$tmp/schemas/.partial"

"$tp" sink --schema "$data/ev_added.pb" --message $msg --schema-dir "$tmp/schemas" --brokers "$boot" --topic ev \
    --group g1 --table ev_v2 --warehouse "sqlite:$tmp/ev.db" --create-table --flush-ms 100 -X log_level=3 \
    2>"$tmp/sink.err" &
spid=$!
pids+=($spid)
dlq_count() { [ "$(grep -c 'sending it to ev.dlq' "$tmp/sink.err")" -ge "$1" ]; }
all_loaded() { [ "$(rows ev_v2)" = 246 ] && dlq_count 18; }
wait_for all_loaded || fail "ev_v2 holds $(rows ev_v2) rows, not 240 + 6; DLQ lines: $(grep -c 'sending it to' "$tmp/sink.err")"
sleep 0.3
kill -TERM $spid; wait $spid; rc=$?
[ $rc = 0 ] || fail "sink exited $rc: $(tail -3 "$tmp/sink.err")"
grep -q "schema dir $tmp/schemas: 2 version(s) of $msg found" "$tmp/sink.err" || fail "start-up line: $(grep 'schema dir' "$tmp/sink.err")"
grep -q "notes.txt skipped: the descriptor set is malformed" "$tmp/sink.err" || fail "no warning for the junk file"
grep -q "vehicle.pb skipped" "$tmp/sink.err" && fail "a set of another message is warned about (want: debug only)"
grep -q "\.partial" "$tmp/sink.err" && fail "a dot file was read"
grep -q "fingerprint $retyped_fp (ev-retyped.pb), incompatible with this sink's $added_fp" "$tmp/sink.err" ||
    fail "no DLQ naming the incompatible version's file: $(grep dlq "$tmp/sink.err" | head -2)"
[ "$(sqlite3 "$tmp/ev.db" 'SELECT count(*) FROM ev_v2 WHERE tire_pressure_kpa = 200')" = 2 ] || fail "own packs not loaded"
[ "$(sqlite3 "$tmp/ev.db" 'SELECT count(DISTINCT vin) FROM ev_v2')" = 8 ] || fail "vehicles: $(sqlite3 "$tmp/ev.db" 'SELECT count(DISTINCT vin) FROM ev_v2')"
[ "$(sqlite3 "$tmp/ev.db" "SELECT sum(next_offset) FROM kafka_offsets WHERE table_name = 'ev_v2'")" = 38 ] ||
    fail "offsets: $(sqlite3 "$tmp/ev.db" 'SELECT * FROM kafka_offsets')"

# `telepack schema --schema-dir` lists what the sink finds there, against the sink's schema.
"$tp" schema --schema "$data/ev_added.pb" --message $msg --schema-dir "$tmp/schemas" >"$tmp/list" 2>"$tmp/list.err"; rc=$?
[ $rc = 1 ] || fail "schema --schema-dir with an incompatible version exited $rc, not 1"
[ "$(cut -f1,2 "$tmp/list" | tr '\t\n' ' ;')" = "$ev_fp ev-2024.pb;$retyped_fp ev-retyped.pb;" ] ||
    fail "schema --schema-dir lines: $(cat "$tmp/list")"
grep -q "^$ev_fp	ev-2024.pb	compatible: the reader's schema adds field tire_pressure_kpa" "$tmp/list" &&
    grep -q "^$retyped_fp	ev-retyped.pb	incompatible: field odometer_m is implicit uint64 in the writer's" "$tmp/list" ||
    fail "schema --schema-dir verdicts: $(cat "$tmp/list")"
grep -q "notes.txt skipped" "$tmp/list.err" && ! grep -q "INFO" "$tmp/list.err" || fail "schema --schema-dir stderr: $(cat "$tmp/list.err")"

# Without the directory the same packs of the old version are dead-lettered (the test above is not vacuous).
"$tp" sink --schema "$data/ev_added.pb" --message $msg --brokers "$boot" --topic ev --group g0 --table ev_nodir \
    --warehouse "sqlite:$tmp/ev.db" --create-table --flush-ms 100 -X log_level=3 2>"$tmp/sink0.err" &
spid=$!
pids+=($spid)
nodir_done() { [ "$(rows ev_nodir)" = 6 ] && [ "$(grep -c 'sending it to ev.dlq' "$tmp/sink0.err")" -ge 36 ]; }
wait_for nodir_done || fail "without --schema-dir: $(rows ev_nodir) rows, $(grep -c 'sending it to' "$tmp/sink0.err") DLQ lines"
kill -TERM $spid; wait $spid
grep -q "fingerprint $ev_fp, but this sink loads fingerprint $added_fp and knows no writer schema" "$tmp/sink0.err" ||
    fail "no DLQ for the old version without the directory"

# A running sink with an empty directory: a version renamed into it is found at once; a fingerprint found nowhere
# goes to the DLQ naming the directory.
mkdir "$tmp/later"
ingest ev_retyped.pb ev2 "$tmp/ev.bin"
"$tp" sink --schema "$data/ev_added.pb" --message $msg --schema-dir "$tmp/later" --brokers "$boot" --topic ev2 \
    --group g2 --table ev_later --warehouse "sqlite:$tmp/ev.db" --create-table --flush-ms 100 -X log_level=3 \
    2>"$tmp/sink2.err" &
spid=$!
pids+=($spid)
started() { grep -q "schema dir $tmp/later: 0 version(s)" "$tmp/sink2.err"; }
wait_for started || fail "sink 2 did not start: $(tail -3 "$tmp/sink2.err")"
dlq2() { [ "$(grep -c 'sending it to ev2.dlq' "$tmp/sink2.err")" -ge 18 ]; }
wait_for dlq2 || fail "unknown fingerprint not dead-lettered: $(tail -3 "$tmp/sink2.err")"
grep -q "fingerprint $retyped_fp, but this sink loads fingerprint $added_fp and knows no writer schema with that fingerprint, neither given nor in --schema-dir $tmp/later" "$tmp/sink2.err" ||
    fail "DLQ reason for an unknown fingerprint: $(grep dlq "$tmp/sink2.err" | head -1)"
cp "$data/ev_telemetry.pb" "$tmp/later/.ev.pb.tmp" && mv "$tmp/later/.ev.pb.tmp" "$tmp/later/ev.pb"
ingest ev_telemetry.pb ev2 "$tmp/ev.bin"
later_loaded() { [ "$(rows ev_later)" = 240 ]; }
wait_for later_loaded || fail "ev_later holds $(rows ev_later) rows after the version was added, not 240"
sleep 0.3
kill -TERM $spid; wait $spid
[ "$(grep -c 'sending it to ev2.dlq' "$tmp/sink2.err")" = 18 ] || fail "packs of the added version were dead-lettered"
grep -q "ev.pb holds $msg fingerprint $ev_fp" "$tmp/sink2.err" || fail "no line for the version found"

# Refused at start: --schema-dir without --schema, a directory that cannot be read.
"$tp" sink --schema-dir "$tmp/schemas" --brokers "$boot" --topic ev --group g3 --warehouse "sqlite:$tmp/x.db" \
    2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q -- "--schema-dir needs --schema" "$tmp/err" || fail "--schema-dir alone: $rc $(cat "$tmp/err")"
"$tp" sink --schema "$data/ev_added.pb" --message $msg --schema-dir "$tmp/nonexistent" --brokers "$boot" --topic ev \
    --group g3 --warehouse "sqlite:$tmp/x.db" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "the schema directory $tmp/nonexistent cannot be read (No such file or directory)" "$tmp/err" ||
    fail "missing directory: $rc $(cat "$tmp/err")"

[ $fails = 0 ] && echo "all schema dir sink checks passed"
exit $((fails > 0))
