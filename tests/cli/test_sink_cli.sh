#!/usr/bin/env bash
# `telepack sink` at the command line: --help, usage errors with their exit codes and sentences, and a run against
# an in-process mock cluster (-X test.mock.num.brokers=1) stopped by SIGTERM: clean exit with a summary.
set -u
tp=${TELEPACK:?TELEPACK must point at the telepack binary}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
checks=0

expect() { # expect WANT_RC NEEDLE -- ARGS...: runs telepack sink ARGS, checks exit status and that output has NEEDLE
    local want=$1 needle=$2
    shift 3
    local out rc
    out=$("$tp" sink "$@" 2>&1)
    rc=$?
    checks=$((checks + 1))
    if [ "$rc" != "$want" ] || ! grep -qF -- "$needle" <<<"$out"; then
        echo "FAIL: telepack sink $* -> rc $rc (want $want), output lacks '$needle':" >&2
        echo "$out" | head -5 >&2
        fails=$((fails + 1))
    fi
}

base=(--brokers 127.0.0.1:1 --topic t --group g)
expect 0 "--batch-rows N" -- --help
expect 0 "dead-letter" -- -h
expect 2 "are required" --
expect 2 "are required" -- --topic t
expect 2 "'abc' is not a whole number" -- "${base[@]}" --warehouse "sqlite:$work/a.db" --batch-rows abc
expect 2 "--batch-rows '0'" -- "${base[@]}" --warehouse "sqlite:$work/a.db" --batch-rows 0
expect 2 "--flush-ms '-5'" -- "${base[@]}" --warehouse "sqlite:$work/a.db" --flush-ms -5
expect 2 "--log-level 'loud'" -- "${base[@]}" --warehouse "sqlite:$work/a.db" --log-level loud
expect 2 "--log-format 'xml'" -- "${base[@]}" --warehouse "sqlite:$work/a.db" --log-format xml
expect 2 "unexpected argument 'extra'" -- "${base[@]}" --warehouse "sqlite:$work/a.db" extra
expect 2 "not key=value" -- "${base[@]}" --warehouse "sqlite:$work/a.db" --create-table -X nonsense
expect 2 "no.such.property" -- "${base[@]}" --warehouse "sqlite:$work/a.db" --create-table -X no.such.property=1
expect 1 "create-table" -- "${base[@]}" --warehouse "sqlite:$work/missing-table.db"
expect 2 "sqlite:" -- "${base[@]}" --warehouse "sqlite:"
expect 2 "--lineage-columns maybe: give yes or no" -- "${base[@]}" --warehouse "sqlite:$work/a.db" --lineage-columns maybe
expect 2 "made only for the built-in ClickHouse table" -- "${base[@]}" --warehouse "sqlite:$work/a.db" --create-table \
    --lineage-columns no

# A run against a mock cluster, stopped by SIGTERM: exit 0 and a summary line (JSON logs).
expect 2 "--metrics-listen 'nonsense'" -- "${base[@]}" --warehouse "sqlite:$work/a.db" --metrics-listen nonsense

# A run against a mock cluster with the operations endpoint, stopped by SIGTERM: exit 0 and a summary line.
"$tp" sink "${base[@]}" --warehouse "sqlite:$work/run.db" --create-table --log-format json \
    --metrics-listen 127.0.0.1:0 -X test.mock.num.brokers=1 2>"$work/run.log" &
pid=$!
for _ in $(seq 50); do
    grep -q '"consuming' "$work/run.log" 2>/dev/null && break
    sleep 0.1
done
port=$(sed -n 's/.*on port \([0-9]*\).*/\1/p' "$work/run.log" | head -n 1)
checks=$((checks + 1))
if [ -z "$port" ] || ! curl -sf "http://127.0.0.1:$port/healthz" >/dev/null ||
    ! curl -sf "http://127.0.0.1:$port/metrics" | grep -q '^telepack_sink_rows_loaded_total{warehouse="sqlite"} 0'; then
    echo "FAIL: operations endpoint on port '$port'" >&2
    fails=$((fails + 1))
fi
sleep 0.3
kill -TERM "$pid"
wait "$pid"
rc=$?
checks=$((checks + 1))
if [ "$rc" != 0 ] || ! grep -q '"summary: 0 rows' "$work/run.log" || ! python3 -c '
import json, sys
for line in open(sys.argv[1]):
    json.loads(line)
' "$work/run.log"; then
    echo "FAIL: SIGTERM run: rc $rc, log:" >&2
    cat "$work/run.log" >&2
    fails=$((fails + 1))
fi

echo "$checks checks, $fails failed" >&2
[ "$fails" = 0 ]
