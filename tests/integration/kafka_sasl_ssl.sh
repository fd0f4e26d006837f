#!/usr/bin/env bash
# Both workers against the real broker's SASL_SSL listener (TLS with the test CA, SCRAM-SHA-512), with the
# librdkafka settings and the password in a properties file (--kafka-config), never on the command line:
# - ingest replays a fleet and sink loads it into SQLite: every record exactly once;
# - a wrong password: ingest and sink stop at once with librdkafka's authentication error, exit 1 (not a retry loop);
# - without the CA: the TLS verification fails, same outcome.
set -euo pipefail

skip_or_fail() {
    if [ "${TP_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        echo "FAIL: $1 is not set but TP_REQUIRE_INTEGRATION=1; start the broker with tools/kafka." >&2
        exit 1
    fi
    echo "SKIP: $1 is not set (run 'tools/kafka start' and eval its 'env')." >&2
    exit 77
}
for v in TP_TEST_KAFKA_BROKERS TP_TEST_KAFKA_SASL_BROKERS TP_TEST_KAFKA_CA TP_TEST_KAFKA_SASL_USER \
    TP_TEST_KAFKA_SASL_PASSWORD_FILE; do
    [ -n "${!v:-}" ] || skip_or_fail "$v"
done
command -v sqlite3 >/dev/null || { echo "FAIL: sqlite3 is not installed" >&2; exit 1; }

root=${TP_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
tp=${TELEPACK:?TELEPACK must point at the telepack binary}
topic=tp-it-sasl-$$-$RANDOM
work=$(mktemp -d)
pid=

fail() {
    echo "FAIL: $*" >&2
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
    exit 1
}
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    TP_KAFKA_BOOTSTRAP=$TP_TEST_KAFKA_BROKERS "$root/tools/kafka" delete-topic "$topic" >/dev/null 2>&1 || true
    [ -n "${TP_KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

props() { # props FILE PASSWORD [CA]: a librdkafka properties file, readable by its owner only
    (
        umask 077
        {
            echo "# librdkafka settings for the SASL_SSL listener"
            echo "security.protocol=SASL_SSL"
            echo "sasl.mechanisms=SCRAM-SHA-512"
            echo "sasl.username=$TP_TEST_KAFKA_SASL_USER"
            echo "sasl.password=$2"
            [ -z "${3:-}" ] || echo "ssl.ca.location=$3"
        } >"$1"
    )
}
password=$(cat "$TP_TEST_KAFKA_SASL_PASSWORD_FILE")
props "$work/good.properties" "$password" "$TP_TEST_KAFKA_CA"
props "$work/wrong.properties" "not-the-password" "$TP_TEST_KAFKA_CA"
props "$work/noca.properties" "$password"

TP_KAFKA_BOOTSTRAP=$TP_TEST_KAFKA_BROKERS "$root/tools/kafka" create-topic "$topic" 2 >/dev/null
"$tp" gen --vehicles 40 --seconds 30 --seed 11 >"$work/fleet.ndjson"
total=$(wc -l <"$work/fleet.ndjson")

# 1. A wrong password and a missing CA: nothing delivered, librdkafka's reason logged, exit 1.
for bad in wrong noca; do
    rc=0
    timeout 60 "$tp" ingest --brokers "$TP_TEST_KAFKA_SASL_BROKERS" --topic "$topic" --from "$work/fleet.ndjson" \
        --kafka-config "$work/$bad.properties" 2>"$work/ingest-$bad.log" || rc=$?
    [ "$rc" = 1 ] || fail "ingest with the $bad settings exited $rc, want 1"
    grep -q "Kafka did not let the producer in" "$work/ingest-$bad.log" || fail "ingest ($bad) did not say why it stopped"
    rc=0
    timeout 60 "$tp" sink --brokers "$TP_TEST_KAFKA_SASL_BROKERS" --topic "$topic" --group "$topic-bad" \
        --kafka-config "$work/$bad.properties" --warehouse "sqlite:$work/bad.db" --create-table \
        2>"$work/sink-$bad.log" || rc=$?
    [ "$rc" = 1 ] || fail "sink with the $bad settings exited $rc, want 1"
    grep -qE "Kafka did not let the (consumer|dead-letter producer) in" "$work/sink-$bad.log" ||
        fail "sink ($bad) did not say why it stopped"
done
grep -qi "authentication" "$work/ingest-wrong.log" || fail "no authentication error logged for a wrong password"
grep -qi "certificate verify failed" "$work/ingest-noca.log" || fail "no TLS verification error without the CA"
! grep -q "not-the-password" "$work"/*.log || fail "a password appears in a log"

# 2. The right settings: replay, then load; every record once.
"$tp" ingest --brokers "$TP_TEST_KAFKA_SASL_BROKERS" --topic "$topic" --from "$work/fleet.ndjson" \
    --kafka-config "$work/good.properties" 2>"$work/ingest.log" || fail "ingest over SASL_SSL failed"
"$tp" sink --brokers "$TP_TEST_KAFKA_SASL_BROKERS" --topic "$topic" --group "$topic-g" \
    --kafka-config "$work/good.properties" --warehouse "sqlite:$work/fleet.db" --create-table --flush-ms 100 \
    2>"$work/sink.log" &
pid=$!
rows() { sqlite3 "$work/fleet.db" "SELECT count(*) FROM vehicle_positions" 2>/dev/null || echo 0; }
for _ in $(seq 600); do [ "$(rows)" -ge "$total" ] && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid" || fail "the sink over SASL_SSL exited non-zero after SIGTERM"
pid=
[ "$(rows)" = "$total" ] || fail "SQLite holds $(rows) records, want $total"
# ps never showed the password: it was only in the properties file.
! grep -q "$password" "$work"/*.log || fail "the password appears in a log"
echo "ok: $total records through SASL_SSL (SCRAM-SHA-512) with the password in a file"
