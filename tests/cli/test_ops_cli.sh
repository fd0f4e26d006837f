#!/usr/bin/env bash
# The operations endpoint of `telepack ingest` without outside services: --metrics-listen 127.0.0.1:0 logs the port
# it bound; /readyz is 503 with a reason while no broker is reachable and 200 against an in-process mock cluster
# (-X test.mock.num.brokers=1) once the producer's statistics show it connected; /metrics passes the strict reader
# (tests/support/prom_text.py), exports the producer's telepack_kafka_* series and counts what `telepack gen
# --connect` sent; bad and busy --metrics-listen addresses are refused with a sentence.
set -u
tp=${TELEPACK:?TELEPACK must point at the telepack binary}
root=${TP_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
prom="python3 $root/tests/support/prom_text.py"
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
fails=0
checks=0

check() { # check WHAT COMMAND...: counts a check, reports WHAT when COMMAND fails
    local what=$1
    shift
    checks=$((checks + 1))
    if ! "$@"; then
        echo "FAIL: $what" >&2
        fails=$((fails + 1))
    fi
}
status() { curl -s --max-time 5 -o "$work/body" -w '%{http_code}' "$1"; }
# start LOG ARGS...: runs telepack ingest in the background; sets pid, mport, gport (bound ports, from its log)
start() {
    local log=$1
    shift
    "$tp" ingest --topic ops-cli --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 -X statistics.interval.ms=100 \
        "$@" 2>"$log" &
    pid=$!
    mport= gport=
    for _ in $(seq 100); do
        mport=$(sed -n 's/.*serving \/metrics, \/healthz, \/readyz on 127.0.0.1:0 (port \([0-9]*\)).*/\1/p' "$log")
        gport=$(sed -n 's/.*listening for gateways on .* (port \([0-9]*\)).*/\1/p' "$log")
        [ -n "$mport" ] && [ -n "$gport" ] && break
        sleep 0.1
    done
}
stop() {
    kill -TERM "$pid"
    wait "$pid"
    local rc=$?
    pid=
    return $rc
}
wait_status() { # wait_status URL CODE: polls up to 10 s
    for _ in $(seq 100); do
        [ "$(status "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# 1. No broker: alive, not ready, and it says why.
start "$work/nobroker.log" --brokers 127.0.0.1:1 -X log_level=0
check "the ingest logs the metrics port it bound (not 0)" test -n "$mport" -a "${mport:-0}" != 0
check "/healthz is 200 without a broker" test "$(status "http://127.0.0.1:$mport/healthz")" = 200
check "/readyz is 503 without a broker" wait_status "http://127.0.0.1:$mport/readyz" 503
check "/readyz says the producer has no broker: $(cat "$work/body")" grep -q "^not ready: kafka: no broker connect" "$work/body"
check "the ingest without a broker stops cleanly" stop

# 2. A mock cluster: ready; records sent by a gateway show up in the counters.
start "$work/mock.log" -X test.mock.num.brokers=1 --linger-ms 50
m=http://127.0.0.1:$mport
check "/readyz turns 200 once the producer is connected" wait_status "$m/readyz" 200
check "/readyz says ok" grep -qx ok "$work/body"
check "telepack gen --connect delivers 300 records" \
    "$tp" gen --vehicles 10 --seconds 30 --drop-rate 0 --connect "127.0.0.1:$gport" -q
snap=$work/mock.json
check "/metrics follows the exposition format" $prom scrape "$m/metrics" "$snap"
check "telepack_ingest_records_total counts the 300 records" test "$($prom value "$snap" telepack_ingest_records_total)" = 300
check "telepack_ingest_packs_total counts packs" test "$($prom value "$snap" telepack_ingest_packs_total)" -gt 0
bin=$($prom value "$snap" telepack_ingest_bytes_in_total)
bout=$($prom value "$snap" telepack_ingest_bytes_out_total)
check "bytes after compression ($bout) are fewer than before ($bin)" test "${bout:-0}" -gt 0 -a "${bout:-0}" -lt "${bin:-0}"
check "the producer's broker is exported as UP" test "$($prom value "$snap" telepack_kafka_broker_up role=producer)" = 1
check "the producer's statistics are counted" test "$($prom value "$snap" telepack_kafka_stats_updates_total role=producer)" -gt 0
check "build info names the ingest worker" test "$($prom value "$snap" telepack_build_info worker=ingest)" = 1
check "the ingest on the mock cluster stops cleanly" stop

# 3. Bad and busy addresses.
out=$("$tp" ingest --brokers 127.0.0.1:1 --topic t --listen 127.0.0.1:0 --metrics-listen nonsense 2>&1)
rc=$?
check "--metrics-listen nonsense exits 2 (got $rc: $out)" test "$rc" = 2
check "--metrics-listen nonsense names the value" grep -q "nonsense" <<<"$out"
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1])); __import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(30)' "$work/busy" &
holder=$!
for _ in $(seq 100); do [ -s "$work/busy" ] && break; sleep 0.1; done
busy=$(cat "$work/busy" 2>/dev/null)
out=$(timeout 20 "$tp" ingest --brokers 127.0.0.1:1 --topic t --listen 127.0.0.1:0 --metrics-listen "127.0.0.1:$busy" 2>&1)
rc=$?
kill "$holder" 2>/dev/null
check "a busy --metrics-listen port exits 1 (got $rc: $out)" test "$rc" = 1
check "a busy --metrics-listen port is named" grep -q "$busy" <<<"$out"

echo "$checks checks, $fails failed" >&2
[ "$fails" = 0 ]
