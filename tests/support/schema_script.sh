# Shared harness of the script tests of run-time schemas, sourced once data=, src= (tests/schema) and tp= (the
# telepack binary) are set: a scratch directory removed at exit together with every background process listed in
# $pids, fail() counting into $fails, the EV telemetry schema's options ($msg, ${ev[@]}), its generator
# (${gen[@]}), and start_mock_cluster.
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
msg=fleet.ev.v1.EvTelemetry
ev=(--schema "$data/ev_telemetry.pb" --message $msg)
gen=("python3" "$src/ev_gen.py")

# start_mock_cluster: a built-in `telepack ingest` hosting librdkafka's mock cluster (log in $tmp/host.err); sets
# $boot to its bootstrap servers, or exits 1.
start_mock_cluster() {
    "$tp" ingest --topic host -X test.mock.num.brokers=1 -X log_level=3 --listen 127.0.0.1:0 2>"$tmp/host.err" &
    pids+=($!)
    boot=
    for _ in $(seq 100); do
        boot=$(sed -n 's/.*mock cluster bootstrap servers: \(.*\)$/\1/p' "$tmp/host.err" | head -1)
        [ -n "$boot" ] && break
        sleep 0.1
    done
    [ -n "$boot" ] || { echo "FAIL: no mock cluster: $(cat "$tmp/host.err")"; exit 1; }
}
