#!/usr/bin/env bash
# The sink into ClickHouse over HTTPS with a password kept off the command line: a real broker, ClickHouse's HTTPS
# listener with a certificate from the test CA that tools/clickhouse makes, and a user that needs a password.
# - clickhouses:// with --ca-file and --password-file loads every record exactly once;
# - without the CA the sink stops at start-up with a sentence about TLS verification (exit 1), not a retry loop;
# - a wrong password is refused with ClickHouse's own reason; --password on the command line draws a warning.
set -euo pipefail

skip_or_fail() {
    if [ "${TP_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        echo "FAIL: $1 is not set but TP_REQUIRE_INTEGRATION=1; start the services with tools/kafka and tools/clickhouse." >&2
        exit 1
    fi
    echo "SKIP: $1 is not set (run 'tools/kafka start', 'tools/clickhouse start' and eval their 'env')." >&2
    exit 77
}
for v in TP_TEST_KAFKA_BROKERS TP_TEST_CLICKHOUSE_URL TP_TEST_CLICKHOUSE_HTTPS_URL TP_TEST_CLICKHOUSE_CA \
    TP_TEST_CLICKHOUSE_USER TP_TEST_CLICKHOUSE_PASSWORD_FILE; do
    [ -n "${!v:-}" ] || skip_or_fail "$v"
done

root=${TP_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
tp=${TELEPACK:?TELEPACK must point at the telepack binary}
brokers=$TP_TEST_KAFKA_BROKERS
ch=$TP_TEST_CLICKHOUSE_URL
https_hostport=${TP_TEST_CLICKHOUSE_HTTPS_URL#https://}
topic=tp-it-chtls-$$-$RANDOM
db=tp_it_tls_$$_$RANDOM
work=$(mktemp -d)
pid=

fail() {
    echo "FAIL: $*" >&2
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
    exit 1
}
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    curl -s "$ch/" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    TP_KAFKA_BOOTSTRAP=$brokers "$root/tools/kafka" delete-topic "$topic" >/dev/null 2>&1 || true
    [ -n "${TP_KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
q() { curl -sf "$ch/" --data-binary "$1"; }
rows() { q "SELECT count() FROM $db.vehicle_positions FINAL" 2>/dev/null || echo 0; }

q "CREATE DATABASE IF NOT EXISTS $db" >/dev/null || fail "cannot create database $db"
TP_KAFKA_BOOTSTRAP=$brokers "$root/tools/kafka" create-topic "$topic" 2 >/dev/null
"$tp" gen --vehicles 50 --seconds 40 --seed 7 --format ndjson >"$work/fleet.ndjson"
total=$(wc -l <"$work/fleet.ndjson")
"$tp" ingest --brokers "$brokers" --topic "$topic" --from "$work/fleet.ndjson" 2>"$work/ingest.log" ||
    fail "ingest of $total records failed"

sink() { # sink LOG ARGS...: runs the sink in the foreground with a time limit
    local log=$1
    shift
    timeout 60 "$tp" sink --brokers "$brokers" --topic "$topic" --group "$topic-g" --create-table \
        --batch-rows 1000 --flush-ms 100 --user "$TP_TEST_CLICKHOUSE_USER" "$@" 2>"$log"
}

# 1. No CA: the server's certificate cannot be verified; a clear sentence and exit 1 at start-up.
rc=0
sink "$work/noca.log" --warehouse "clickhouses://$https_hostport/$db" \
    --password-file "$TP_TEST_CLICKHOUSE_PASSWORD_FILE" || rc=$?
[ "$rc" = 1 ] || fail "without the CA the sink exited $rc, want 1"
grep -q "TLS verification failed" "$work/noca.log" || fail "no sentence about TLS verification without the CA"
[ "$(rows)" = 0 ] || fail "rows were loaded without a verified server"

# 2. Wrong password (from a file): ClickHouse's reason, exit 1.
echo "not-the-password" >"$work/wrong"
rc=0
sink "$work/wrong.log" --warehouse "clickhouses://$https_hostport/$db" --ca-file "$TP_TEST_CLICKHOUSE_CA" \
    --password-file "$work/wrong" || rc=$?
[ "$rc" = 1 ] || fail "with a wrong password the sink exited $rc, want 1"
grep -qi "password" "$work/wrong.log" || fail "the refusal does not mention the password"
! grep -q "not-the-password" "$work/wrong.log" || fail "the password appears in the log"

# 3. HTTPS, the CA and the password from a file: every record, once.
"$tp" sink --brokers "$brokers" --topic "$topic" --group "$topic-g" --create-table --batch-rows 1000 \
    --flush-ms 100 --user "$TP_TEST_CLICKHOUSE_USER" --warehouse "clickhouses://$https_hostport/$db" \
    --ca-file "$TP_TEST_CLICKHOUSE_CA" --password-file "$TP_TEST_CLICKHOUSE_PASSWORD_FILE" 2>"$work/sink.log" &
pid=$!
for _ in $(seq 600); do [ "$(rows)" -ge "$total" ] && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid" || fail "the sink over HTTPS exited non-zero after SIGTERM"
pid=
[ "$(rows)" = "$total" ] || fail "the table holds $(rows) distinct records, want $total"
dups=$(q "SELECT count() - uniqExact(vehicle_id, sampled_at_ms, seq) FROM $db.vehicle_positions FINAL")
[ "$dups" = 0 ] || fail "$dups duplicate rows"
grep -q "(HTTPS)" "$work/sink.log" || true

# 4. --password on the command line works but is warned about.
rc=0
timeout 20 "$tp" sink --brokers "$brokers" --topic "$topic" --group "$topic-g2" --user "$TP_TEST_CLICKHOUSE_USER" \
    --password "$(cat "$TP_TEST_CLICKHOUSE_PASSWORD_FILE")" --warehouse "clickhouses://$https_hostport/$db" \
    --ca-file "$TP_TEST_CLICKHOUSE_CA" --table no_such_table 2>"$work/cmdline.log" || rc=$?
grep -q "where ps shows it" "$work/cmdline.log" || fail "no warning about a password on the command line"
echo "ok: $total records over HTTPS with a verified server and a password from a file"
