#!/usr/bin/env bash
# tune --schema with the EV telemetry schema (VIN string key, Timestamp every 5 s per vehicle): the JSON document
# of the built-in tune (every point once, the Pareto flags consistent with the rows, the recommendation on the front
# and meeting the target, the ingest --schema command), packs closed by batch and linger, pack bytes equal to
# `telepack pack --schema`, the NDJSON baseline equal to `telepack inspect --schema`, and refusals.
# Usage: test_schema_tune.sh DATA_DIR SOURCE_DIR
set -u
data=$1
src=$2
tp=${TELEPACK:?set TELEPACK to the telepack binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ev=(--schema "$data/ev_telemetry.pb" --message fleet.ev.v1.EvTelemetry)
gen=("python3" "$src/ev_gen.py")

"$tp" tune --help | grep -q -- '--schema FILE' || fail "tune --help does not document --schema"
"$tp" tune --help | grep -q -- '--message NAME' || fail "tune --help does not document --message"

cat >"$tmp/check.py" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
target, schema_pb = float(sys.argv[2]), sys.argv[3]
pts, s = doc["points"], doc["sample"]
assert pts, "no points"
keys = [(p["batch_records"], p["zstd_level"], p["linger_ms"], p["layout"]) for p in pts]
assert len(set(keys)) == len(keys), "a point appears twice"
assert {p["layout"] for p in pts} == {"rows", "columns"}, "a run-time schema has the rows and columns layouts"
def close(a, b): return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)
for p in pts:
    assert p["records"] > 0 and p["packs"] > 0 and p["records"] <= s["records"], p
    assert close(p["bytes_per_record"], p["pack_bytes"] / p["records"]), p
    assert close(p["kafka_bytes_per_record"], p["kafka_bytes"] / p["records"]), p
    # headers (tp-schema, tp-schema-fp, ...), the 17-byte VIN key and framing: well over 100 bytes a message
    assert p["kafka_bytes"] - p["pack_bytes"] >= 100 * p["packs"], p
    assert close(p["ratio_vs_json"], s["json_bytes_per_record"] / p["bytes_per_record"]), p
    assert p["records_per_pack"] <= p["batch_records"], p
    assert p["encode_records_per_sec_per_core"] > 0, p
def dominates(a, b):
    ka, kb = a["kafka_bytes_per_record"], b["kafka_bytes_per_record"]
    ea, eb = a["encode_records_per_sec_per_core"], b["encode_records_per_sec_per_core"]
    la, lb = a["latency_ms"], b["latency_ms"]
    return ka <= kb and ea >= eb and la <= lb and (ka < kb or ea > eb or la < lb)
for i, p in enumerate(pts):
    assert p["pareto"] == (not any(dominates(q, p) for j, q in enumerate(pts) if j != i)), ("pareto flag", i, p)
rec = doc["recommendation"]
assert rec is not None, "no recommendation"
best = pts[rec["index"]]
assert best["pareto"] and best["latency_ms"] <= target, best
feasible = [p for p in pts if p["latency_ms"] <= target]
assert best["kafka_bytes_per_record"] == min(p["kafka_bytes_per_record"] for p in feasible), best
want = "telepack ingest --schema %s --message fleet.ev.v1.EvTelemetry --layout %s --batch-records %d --level %d" % (
    schema_pb, best["layout"], best["batch_records"], best["zstd_level"])
assert rec["command"] == want, (rec["command"], want)
print("ok", len(pts), "points; recommended", rec["command"])
PY

# 4 vehicles x 60 records, one every 5 s per vehicle, interleaved.
"${gen[@]}" gen 4 60 "$tmp/ev.bin" "$tmp/ev.exp" >/dev/null || fail "generator"
"$tp" tune "${ev[@]}" --from "$tmp/ev.bin" --json --batch 10,50 --level 1,3 --linger-ms 20000,86400000 \
    --measure-ms 5 --target-latency-ms 86400000 >"$tmp/a.json" 2>"$tmp/err" || fail "tune --schema: $(cat "$tmp/err")"
python3 "$tmp/check.py" "$tmp/a.json" 86400000 "$data/ev_telemetry.pb" >/dev/null || fail "tune --schema document"
python3 - "$tmp/a.json" <<'PY' || fail "sample or packs per linger"
import json, sys
doc = json.load(open(sys.argv[1]))
s = doc["sample"]
assert s["records"] == 240 and s["vehicles"] == 4, s
assert abs(s["records_per_sec_per_vehicle"] - 0.2) < 0.002, s  # 5 s apart, give or take the nanos
assert len(doc["points"]) == 16, len(doc["points"])
for p in doc["points"]:
    assert not p["linger_derived"] and p["latency_ms"] == p["linger_ms"], p
    # one record every 5 s: a 20 s linger closes packs at 4 records, a day's at the batch size
    want = min(p["batch_records"], 4 if p["linger_ms"] == 20000 else p["batch_records"])
    assert abs(p["records_per_pack"] - want) < 1e-9, (p, want)
PY

# The pack bytes are what `telepack pack --schema` writes for the same packs (60 records per vehicle in three full
# packs of 20), in each layout, and the NDJSON baseline is what `telepack inspect --schema` prints for them.
for lay in rows columns; do
    "$tp" tune "${ev[@]}" --from "$tmp/ev.bin" --json --batch 20 --level 3 --linger-ms 86400000 --measure-ms 5 \
        --layouts $lay --target-latency-ms 86400000 >"$tmp/b.json" 2>"$tmp/err" ||
        fail "tune --schema --batch 20 --layouts $lay: $(cat "$tmp/err")"
    "$tp" pack "${ev[@]}" --input-format delimited --in "$tmp/ev.bin" --batch-records 20 --level 3 --layout $lay -q >"$tmp/ev.packs" ||
        fail "pack --schema --layout $lay"
    "$tp" inspect "${ev[@]}" "$tmp/ev.packs" >"$tmp/ev.ndjson" 2>/dev/null || fail "inspect --schema ($lay)"
    python3 - "$tmp/b.json" "$(wc -c <"$tmp/ev.packs")" "$(wc -c <"$tmp/ev.ndjson")" $lay <<'PY' ||
import json, sys
doc = json.load(open(sys.argv[1]))
(p,) = doc["points"]
assert p["layout"] == sys.argv[4], p
assert p["packs"] == 12 and p["packs_cut_by_sample_end"] == 0 and p["records"] == 240, p
assert p["pack_bytes"] == int(sys.argv[2]), (p["pack_bytes"], sys.argv[2])
json_bytes = doc["sample"]["json_bytes_per_record"] * doc["sample"]["records"]
assert abs(json_bytes - int(sys.argv[3])) < 1e-6, (json_bytes, sys.argv[3])
PY
        fail "bytes differ from pack/inspect --schema --layout $lay"
done
# Derived linger (the time to fill the batch at 0.2 records/s), each vehicle's short last pack left out of the
# sizes, the table, and stdin.
"${gen[@]}" gen 4 30 "$tmp/short.bin" "$tmp/short.exp" >/dev/null || fail "generator (short)"
"$tp" tune "${ev[@]}" --from - --json --batch 20 --level 1 --layouts rows --measure-ms 5 --target-latency-ms 86400000 \
    <"$tmp/short.bin" >"$tmp/c.json" \
    2>"$tmp/err" || fail "tune --schema --from -: $(cat "$tmp/err")"
python3 - "$tmp/c.json" <<'PY' || fail "derived linger or cut packs"
import json, sys
doc = json.load(open(sys.argv[1]))
(p,) = doc["points"]
rate = doc["sample"]["records_per_sec_per_vehicle"]
assert p["linger_derived"] and abs(p["linger_ms"] - 20 / rate * 1000) <= 1.0, (p, rate)
assert p["packs"] == 4 and p["packs_cut_by_sample_end"] == 4 and p["records"] == 80, p
PY
"$tp" tune "${ev[@]}" --from "$tmp/ev.bin" --batch 10,50 --level 1 --measure-ms 5 >"$tmp/t.txt" 2>"$tmp/err" \
    || fail "tune --schema table: $(cat "$tmp/err")"
grep -q "^sample: 240 records, 4 vehicles (varint-delimited fleet.ev.v1.EvTelemetry from " "$tmp/t.txt" \
    || fail "table sample line: $(head -1 "$tmp/t.txt")"
grep -q "^recommended: telepack ingest --schema .* --message fleet.ev.v1.EvTelemetry --layout [a-z]* --batch-records " "$tmp/t.txt" \
    || fail "table recommendation: $(cat "$tmp/t.txt")"

# Refusals: exit 2 and a sentence naming the problem.
expect2() {
    local want=$1
    shift
    "$tp" tune "$@" >/dev/null 2>"$tmp/err"
    local rc=$?
    [ "$rc" = 2 ] || fail "tune $*: exit $rc, want 2"
    grep -q -- "$want" "$tmp/err" || fail "tune $*: no '$want' in: $(cat "$tmp/err")"
}
expect2 "needs --from" "${ev[@]}"
expect2 "'planes' is not valid; give one or more of rows, columns" "${ev[@]}" --from "$tmp/ev.bin" --layouts planes
expect2 "\\-\\-vehicles is for the simulator" "${ev[@]}" --from "$tmp/ev.bin" --vehicles 3
expect2 "go with --schema FILE" --message fleet.ev.v1.EvTelemetry
expect2 "no key column\\|has no key" --schema "$data/ev_telemetry.pb" --message fleet.ev.v1.Battery --from "$tmp/ev.bin"
head -c 100 "$tmp/ev.bin" >"$tmp/cut.bin"
expect2 "cut.bin" "${ev[@]}" --from "$tmp/cut.bin"
printf '\003\010\001\002' >"$tmp/bad.bin" # field 1 (vin, a string) with wire type 0
expect2 "message 0 (ending at input byte 4) does not decode as fleet.ev.v1.EvTelemetry" "${ev[@]}" --from "$tmp/bad.bin"
: >"$tmp/empty.bin"
expect2 "the sample is empty" "${ev[@]}" --from "$tmp/empty.bin"

[ "$fails" = 0 ] || exit 1
echo "schema_tune: all checks passed"
