#!/bin/sh
# Tests of `telepack tune`: JSON output on small samples (simulator and NDJSON), the recommendation is on the
# Pareto front (across both pack layouts) and meets the target, the front and the ratios are consistent with the
# rows, the pack bytes of each layout match `telepack pack`, errors, and the plot.
set -eu
T=${TELEPACK:?TELEPACK must name the telepack binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# check.py FILE RULE TARGET [LAYOUTS]: verifies one `tune --json` document (LAYOUTS: the layouts swept, in order,
# default rows,columns).
cat > "$tmp/check.py" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
rule, target = sys.argv[2], float(sys.argv[3])
layouts = (sys.argv[4] if len(sys.argv) > 4 else "rows,columns").split(",")
pts, s = doc["points"], doc["sample"]
assert pts, "no points"
# Every (batch, level, linger) is measured once per layout, the layouts next to each other in the order given;
# the same packs (count, records) in each layout, but their own bytes.
assert len(pts) % len(layouts) == 0, len(pts)
for i in range(0, len(pts), len(layouts)):
    group = pts[i:i + len(layouts)]
    assert [p["layout"] for p in group] == layouts, group
    for p in group[1:]:
        for k in ("batch_records", "zstd_level", "linger_ms", "latency_ms", "packs", "records"):
            assert p[k] == group[0][k], (k, group)
    assert len({p["pack_bytes"] for p in group}) == len(group), ("layouts gave the same bytes", group)
keys = [(p["batch_records"], p["zstd_level"], p["linger_ms"], p["layout"]) for p in pts]
assert len(set(keys)) == len(keys), "a point appears twice"
def close(a, b): return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)
for p in pts:
    assert p["records"] > 0 and p["packs"] > 0, p
    assert p["records"] <= s["records"], p
    assert close(p["bytes_per_record"], p["pack_bytes"] / p["records"]), p
    assert close(p["kafka_bytes_per_record"], p["kafka_bytes"] / p["records"]), p
    assert p["kafka_bytes"] > p["pack_bytes"], p
    assert close(p["ratio_vs_json"], s["json_bytes_per_record"] / p["bytes_per_record"]), p
    assert close(p["kafka_ratio_vs_json"], s["json_bytes_per_record"] / p["kafka_bytes_per_record"]), p
    assert p["records_per_pack"] <= p["batch_records"], p
    assert p["encode_records_per_sec_per_core"] > 0, p
def dominates(a, b):
    no_worse = (a["kafka_bytes_per_record"] <= b["kafka_bytes_per_record"] and
                a["encode_records_per_sec_per_core"] >= b["encode_records_per_sec_per_core"] and
                a["latency_ms"] <= b["latency_ms"])
    better = (a["kafka_bytes_per_record"] < b["kafka_bytes_per_record"] or
              a["encode_records_per_sec_per_core"] > b["encode_records_per_sec_per_core"] or
              a["latency_ms"] < b["latency_ms"])
    return no_worse and better
for i, p in enumerate(pts):
    dominated = any(dominates(q, p) for j, q in enumerate(pts) if j != i)
    assert p["pareto"] == (not dominated), ("pareto flag wrong", i, p)
rec = doc["recommendation"]
assert rec is not None, "no recommendation"
best = pts[rec["index"]]
for k in ("batch_records", "zstd_level", "layout", "linger_ms", "kafka_bytes_per_record", "latency_ms"):
    assert rec[k] == best[k], (k, rec, best)
assert best["pareto"], "recommendation is not on the Pareto front"
assert rec["command"] == "telepack ingest --layout %s --batch-records %d --level %d --linger-ms %d" % (
    best["layout"], best["batch_records"], best["zstd_level"], best["linger_ms"]), rec["command"]
if rule == "latency":
    feasible = [p for p in pts if p["latency_ms"] <= target]
    assert best["latency_ms"] <= target, best
    assert best["kafka_bytes_per_record"] == min(p["kafka_bytes_per_record"] for p in feasible), best
else:
    feasible = [p for p in pts if p["kafka_bytes_per_record"] <= target]
    assert best["kafka_bytes_per_record"] <= target, best
    assert best["latency_ms"] == min(p["latency_ms"] for p in feasible), best
print("ok", len(pts), "points; recommended", rec["command"])
PY

sweep="--batch 10,50,200 --level 1,3 --measure-ms 5"

"$T" tune --help | grep -q -- '--target-latency-ms' || fail "--help does not document --target-latency-ms"
"$T" tune --help | grep -q -- '--layouts LIST' || fail "--help does not document --layouts"
# NDJSON with an unknown key: exit 2 naming key and line, unless --ignore-unknown-fields
printf '{"vehicle_id":5,"sampled_at_ms":1,"lat":35.6}\n' >"$tmp/unknown.ndjson"
rc=0
"$T" tune --from "$tmp/unknown.ndjson" --json >/dev/null 2>"$tmp/unknown.err" || rc=$?
[ "$rc" = 2 ] || fail "tune with an unknown key exited $rc, want 2"
grep -q 'line 1: unknown field "lat"' "$tmp/unknown.err" || fail "tune: unknown key not named: $(cat "$tmp/unknown.err")"
"$T" tune --from "$tmp/unknown.ndjson" --ignore-unknown-fields --batch 1 --level 1 --layouts rows --linger-ms 1000 --measure-ms 1 --json \
    >/dev/null 2>"$tmp/unknown.err" || fail "tune --ignore-unknown-fields failed: $(cat "$tmp/unknown.err")"

# Simulator sample, latency target.
"$T" tune --json --vehicles 4 --seconds 400 $sweep --target-latency-ms 60000 > "$tmp/a.json" || fail "tune (latency)"
python3 "$tmp/check.py" "$tmp/a.json" latency 60000 || fail "latency target"
python3 - "$tmp/a.json" <<'PY' || fail "derived linger"
import json, sys
doc = json.load(open(sys.argv[1]))
rate = doc["sample"]["records_per_sec_per_vehicle"]
for p in doc["points"]:
    assert p["linger_derived"] and p["latency_ms"] == p["linger_ms"], p
    # the linger that fills the batch at the sample's per-vehicle rate
    assert abs(p["linger_ms"] - p["batch_records"] / rate * 1000) <= 1.0, (p, rate)
PY

# Cost target: the median Kafka bytes/record of that run, so some points meet it and some do not.
cost=$(python3 -c 'import json,sys; v=sorted(p["kafka_bytes_per_record"] for p in json.load(open(sys.argv[1]))["points"]); print(v[len(v)//2])' "$tmp/a.json")
"$T" tune --json --vehicles 4 --seconds 400 $sweep --target-cost "$cost" > "$tmp/b.json" || fail "tune (cost)"
python3 "$tmp/check.py" "$tmp/b.json" cost "$cost" || fail "cost target"

# NDJSON sample with explicit lingers: 3 vehicles, one record every 2 s.
python3 - > "$tmp/s.ndjson" <<'PY'
import json
for t in range(150):
    for v in (7, 8, 9):
        print(json.dumps({"vehicle_id": v, "sampled_at_ms": 1767225600000 + t * 2000 + v, "seq": t + 1,
                          "latitude": 35.681 + 0.00001 * t * v, "longitude": 139.767 - 0.00002 * t,
                          "speed_kmh": (t * 3 % 60) + 0.5, "heading_deg": (t * 7) % 360, "accuracy_m": 4.5,
                          "meter_status": "METER_STATUS_HIRED" if t % 50 < 30 else "METER_STATUS_VACANT"}))
PY
"$T" tune --json --from "$tmp/s.ndjson" --batch 10,100 --level 1 --linger-ms 5000,60000 --measure-ms 5 \
    --target-latency-ms 60000 > "$tmp/c.json" || fail "tune --from"
python3 "$tmp/check.py" "$tmp/c.json" latency 60000 || fail "--from sample"
python3 - "$tmp/c.json" <<'PY' || fail "explicit lingers"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["sample"]["records"] == 450 and doc["sample"]["vehicles"] == 3, doc["sample"]
assert len(doc["points"]) == 8
for p in doc["points"]:
    assert not p["linger_derived"] and p["latency_ms"] == p["linger_ms"], p
    # one record per 2 s: a 5 s linger closes packs at 3 records, a 60 s one at 30 (or the batch size)
    want = min(p["batch_records"], 3 if p["linger_ms"] == 5000 else 30)
    assert abs(p["records_per_pack"] - want) < 1e-9, (p, want)
PY
# The pack bytes of each layout are what `telepack pack` writes for the same packs: 50 records per pack, every
# vehicle's 150 records in three full packs (none cut by the end of the sample). Layouts in the order given.
"$T" tune --json --from "$tmp/s.ndjson" --batch 50 --level 3 --linger-ms 86400000 --layouts columns,rows,coded \
    --measure-ms 5 --target-latency-ms 86400000 > "$tmp/e.json" || fail "tune --layouts columns,rows,coded"
python3 "$tmp/check.py" "$tmp/e.json" latency 86400000 columns,rows,coded || fail "--layouts columns,rows,coded"
for layout in rows columns coded; do
    bytes=$("$T" pack --in "$tmp/s.ndjson" --batch-records 50 --level 3 --layout $layout -q | wc -c)
    python3 - "$tmp/e.json" $layout "$bytes" <<'PY' || fail "$layout pack bytes differ from telepack pack"
import json, sys
pts = [p for p in json.load(open(sys.argv[1]))["points"] if p["layout"] == sys.argv[2]]
assert len(pts) == 1 and pts[0]["packs"] == 9 and pts[0]["packs_cut_by_sample_end"] == 0, pts
assert pts[0]["pack_bytes"] == int(sys.argv[3]), (pts[0]["pack_bytes"], sys.argv[3])
PY
done
# One layout alone.
"$T" tune --json --from "$tmp/s.ndjson" --batch 10,100 --level 1 --linger-ms 60000 --layouts rows --measure-ms 5 \
    > "$tmp/f.json" || fail "tune --layouts rows"
python3 "$tmp/check.py" "$tmp/f.json" latency 60000 rows || fail "--layouts rows"
"$T" tune --json --from "$tmp/s.ndjson" --batch 10,100 --level 1 --linger-ms 60000 --layouts columns \
    --measure-ms 5 > "$tmp/f.json" || fail "tune --layouts columns"
python3 "$tmp/check.py" "$tmp/f.json" latency 60000 columns || fail "--layouts columns"

# On the default simulator sample (quantized GPS), column packs of 200 records at level 3 are smaller than row
# packs, and the table names the layout in its rows and in the recommended command.
"$T" tune --batch 200 --level 3 --measure-ms 5 --target-latency-ms 1000000 > "$tmp/g.txt" || fail "tune B=200"
grep -q -- "recommended: telepack ingest --layout columns --batch-records 200 --level 3 " "$tmp/g.txt" \
    || fail "B=200 level 3: columns not recommended"
python3 - "$tmp/g.txt" <<'PY' || fail "B=200 level 3: columns not smaller than rows"
import sys
bpr = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 6 and f[0] == "200" and f[1] == "3":
        bpr[f[3]] = float(f[5])  # batch level linger layout rec/pack "pack B/rec"
assert set(bpr) == {"rows", "columns"}, bpr
assert bpr["columns"] < bpr["rows"], bpr
PY

# The same from stdin.
"$T" tune --json --from - --batch 10 --level 1 --measure-ms 5 < "$tmp/s.ndjson" > "$tmp/d.json" || fail "--from -"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["sample"]["records"]==450' "$tmp/d.json" \
    || fail "--from - record count"

# No point meets an impossible target: exit 1 and a sentence.
set +e
"$T" tune --vehicles 2 --seconds 100 --batch 10 --level 1 --measure-ms 5 --target-cost 0.5 > /dev/null 2> "$tmp/err"
rc=$?
set -e
[ "$rc" = 1 ] || fail "impossible target: exit $rc, want 1"
grep -q "no point meets the target" "$tmp/err" || fail "impossible target: no explanation"

# Bad options and input: exit 2 with a sentence naming the value.
expect2() {
    set +e
    "$T" tune "$@" > /dev/null 2> "$tmp/err"
    rc=$?
    set -e
    [ "$rc" = 2 ] || fail "tune $*: exit $rc, want 2"
    [ -s "$tmp/err" ] || fail "tune $*: no message"
}
expect2 --batch 0
expect2 --batch 10,,20
expect2 --batch 10,
expect2 --level 20
expect2 --linger-ms x
expect2 --vehicles 0
expect2 --target-cost -3
expect2 --plot out.txt
expect2 --layouts diagonal
expect2 --layouts rows,rows
expect2 --layouts rows,
expect2 --layouts ""
expect2 --layouts rows,columns,rows
grep -q "'rows,columns,rows'" "$tmp/err" || fail "bad --layouts not named"
expect2 --nonsense
expect2 --from "$tmp/does-not-exist.ndjson"
grep -q "does-not-exist" "$tmp/err" || fail "missing file not named"
printf '{"vehicle_id":1,"sampled_at_ms":5}\n{"vehicle_id":"x"}\n' > "$tmp/bad.ndjson"
expect2 --from "$tmp/bad.ndjson"
grep -q "line 2" "$tmp/err" || fail "bad NDJSON line not named"
printf '{"vehicle_id":1,"sampled_at_ms":5}\n' > "$tmp/one.ndjson"
expect2 --from "$tmp/one.ndjson" # one record: no rate to derive the linger from
: > "$tmp/empty.ndjson"
expect2 --from "$tmp/empty.ndjson"

# Plot: with gnuplot an SVG appears; without it the plot is skipped with a note and the run still succeeds.
if command -v gnuplot > /dev/null 2>&1; then
    "$T" tune --vehicles 2 --seconds 100 --batch 10,50 --level 1 --measure-ms 5 --plot "$tmp/p.svg" > /dev/null \
        || fail "tune --plot"
    grep -q "<svg" "$tmp/p.svg" || fail "plot is not an SVG"
    grep -q "rows (pbpack v1)" "$tmp/p.svg" && grep -q "columns (pbpack v2)" "$tmp/p.svg" \
        || fail "plot has no series per layout"
fi
PATH=/nonexistent "$T" tune --vehicles 2 --seconds 100 --batch 10 --level 1 --measure-ms 5 --plot "$tmp/q.svg" \
    > /dev/null 2> "$tmp/err" || fail "tune --plot without gnuplot failed"
grep -q "gnuplot is not installed" "$tmp/err" || fail "no note about the missing gnuplot"
[ ! -e "$tmp/q.svg" ] || fail "a plot appeared without gnuplot"
echo "tune: all checks passed"
