#!/usr/bin/env bash
# --config FILE end to end on librdkafka's mock cluster with the EV schema of tests/schema: `ingest --config f.yaml
# --from FILE` and `sink --config f.yaml` into SQLite do what the equivalent flags do (same packs, same rows), the
# file's relative paths start at its directory, a flag on the command line overrides the file, the built-in record
# path takes a file too, a bad key is refused with its line, and --help of both commands names --config.
# Usage: test_pipeline_config_cli.sh DATA_DIR SCHEMA_SOURCE_DIR
set -u
data=$1
src=$2
tp=${TELEPACK:?set TELEPACK to the telepack binary}
. "$(dirname "$0")/../support/schema_script.sh"

start_mock_cluster
"${gen[@]}" gen 6 40 "$tmp/ev.bin" "$tmp/ev.exp"

# The pipeline file lives in conf/ with its descriptor set; the commands run from elsewhere.
mkdir -p "$tmp/conf" "$tmp/elsewhere"
cp "$data/ev_telemetry.pb" "$tmp/conf/ev.pb"
cat >"$tmp/conf/pipeline.yaml" <<YAML
# the EV pipeline
schema: {descriptor: ev.pb, message: $msg, key_field: vin}
kafka:
  brokers: "$boot"
  topic: evc
  properties:
    log_level: 3
ingest:
  batch_records: 16
  input_format: delimited
sink:
  group: gc
  warehouse: "sqlite:ev.db"
  create_table: true
  flush_ms: 100
YAML
cd "$tmp/elsewhere" || exit 1

# ingest: the file and the flags make the same packs
"$tp" ingest --config ../conf/pipeline.yaml --from "$tmp/ev.bin" 2>"$tmp/ing.err" || fail "ingest --config: $(cat "$tmp/ing.err")"
grep -q "240 records of $msg (schema 99b3bbc325167eac) -> 18 packs delivered" "$tmp/ing.err" ||
    fail "ingest --config summary: $(cat "$tmp/ing.err")"
"$tp" ingest --schema "$data/ev_telemetry.pb" --message $msg --key-field vin --brokers "$boot" --topic evf \
    --batch-records 16 --input-format delimited -X log_level=3 --from "$tmp/ev.bin" 2>"$tmp/ingf.err" || fail "ingest flags: $(cat "$tmp/ingf.err")"
grep -q "240 records of $msg (schema 99b3bbc325167eac) -> 18 packs delivered" "$tmp/ingf.err" ||
    fail "ingest flags summary: $(cat "$tmp/ingf.err")"
# a flag overrides the file: one pack per vehicle at --batch-records 1000, into another topic
"$tp" ingest --config "$tmp/conf/pipeline.yaml" --batch-records 1000 --topic evo --from "$tmp/ev.bin" 2>"$tmp/ingo.err" ||
    fail "ingest override: $(cat "$tmp/ingo.err")"
grep -q "240 records of $msg (schema 99b3bbc325167eac) -> 6 packs delivered" "$tmp/ingo.err" ||
    fail "ingest override summary: $(cat "$tmp/ingo.err")"

# run_sink DB TABLE ARGS...: runs the sink with ARGS until TABLE of DB holds 240 rows, then stops it
run_sink() {
    local db=$1 table=$2
    shift 2
    "$tp" sink "$@" 2>"$tmp/sink.err" &
    local spid=$! n=0
    pids+=($spid)
    for _ in $(seq 600); do
        n=$(sqlite3 "$db" "SELECT count(*) FROM $table" 2>/dev/null || echo 0)
        [ "$n" = 240 ] && break
        sleep 0.1
    done
    sleep 0.3
    kill -TERM $spid
    wait $spid || fail "sink $* exited $?: $(tail -3 "$tmp/sink.err")"
    [ "$n" = 240 ] || fail "sink $*: $n rows in $table: $(tail -3 "$tmp/sink.err")"
}
run_sink "$tmp/conf/ev.db" ev_telemetry --config ../conf/pipeline.yaml
"${gen[@]}" check-sqlite "$tmp/ev.exp" "$tmp/conf/ev.db" ev_telemetry || fail "sink --config: rows differ"
[ -e "$tmp/elsewhere/ev.db" ] && fail "sqlite:ev.db was taken relative to the working directory"
run_sink "$tmp/flags.db" ev_telemetry --schema "$data/ev_telemetry.pb" --message $msg --key-field vin \
    --brokers "$boot" --topic evc --group gf --warehouse "sqlite:$tmp/flags.db" --create-table --flush-ms 100 -X log_level=3
"${gen[@]}" check-sqlite "$tmp/ev.exp" "$tmp/flags.db" ev_telemetry || fail "sink flags: rows differ"
[ "$(sqlite3 "$tmp/conf/ev.db" .schema)" = "$(sqlite3 "$tmp/flags.db" .schema)" ] ||
    fail "the file and the flags made different tables"
# flags override the file: another topic, group and table
run_sink "$tmp/conf/ev.db" ev_o --config ../conf/pipeline.yaml --topic evo --group go --table ev_o
"${gen[@]}" check-sqlite "$tmp/ev.exp" "$tmp/conf/ev.db" ev_o || fail "sink override: rows differ"

# The built-in record takes a file too (no schema section): ingest section knobs and a flag on top.
python3 - "$tmp/recs.ndjson" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for t in range(10):
        for v in range(20):
            f.write(json.dumps({"vehicle_id": 5000 + v, "sampled_at_ms": 1767225600000 + t * 1000, "seq": t,
                                "latitude": 35.6, "longitude": 139.7}) + "\n")
PY
printf 'kafka: {brokers: "%s", topic: rec, properties: {log_level: 3}}\ningest: {from: recs.ndjson, pack_by: vehicle, linger_ms: 5000}\n' \
    "$boot" >"$tmp/conf/builtin.yaml"
cp "$tmp/recs.ndjson" "$tmp/conf/"
"$tp" ingest --config ../conf/builtin.yaml 2>"$tmp/b.err" || fail "built-in ingest --config: $(cat "$tmp/b.err")"
grep -q "200 records in .* 20 packs out (200 records" "$tmp/b.err" || fail "built-in per vehicle: $(cat "$tmp/b.err")"
"$tp" ingest --config ../conf/builtin.yaml --pack-by partition 2>"$tmp/b.err" || fail "built-in override: $(cat "$tmp/b.err")"
grep -q "20 packs out" "$tmp/b.err" && fail "--pack-by partition did not override the file: $(cat "$tmp/b.err")"
grep -q "200 records in" "$tmp/b.err" || fail "built-in override: $(cat "$tmp/b.err")"

# Refused with the file, the line and the nearest key; exit 2.
printf 'sink:\n  group: g\n  flush_msec: 10\n' >"$tmp/conf/bad.yaml"
"$tp" sink --config ../conf/bad.yaml 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -qx 'telepack sink: ../conf/bad.yaml:3: unknown key "flush_msec" in sink (did you mean flush_ms?)' "$tmp/err" ||
    fail "bad key: $rc $(cat "$tmp/err")"
printf 'schema: {descriptor: ev.pb, message: %s}\ningest:\n  threads: 2\n' $msg >"$tmp/conf/bad2.yaml"
"$tp" ingest --config ../conf/bad2.yaml --from "$tmp/ev.bin" 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q 'bad2.yaml:3: unknown key "threads" in ingest (telepack ingest --schema x --config-keys lists the keys)' "$tmp/err" ||
    fail "ingest --schema path takes no --threads: $rc $(cat "$tmp/err")"
"$tp" sink --config ../conf/missing.yaml 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q 'missing.yaml: cannot be read' "$tmp/err" || fail "missing file: $rc $(cat "$tmp/err")"

for c in "ingest" "sink" "ingest --schema x"; do
    # shellcheck disable=SC2086
    "$tp" $c --help | grep -q -- "--config FILE" || fail "$c --help does not name --config"
done
[ $fails = 0 ] && echo "ok"
exit $((fails > 0))
