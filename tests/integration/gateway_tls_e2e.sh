#!/usr/bin/env bash
# Gateways over a real network path, secured end to end: `telepack gen --connect` as 4 gateways over TLS with a
# client certificate (mutual TLS) and a token -> `telepack ingest --tls-cert --tls-client-ca --auth-tokens` ->
# the real broker's SASL_SSL listener (--kafka-config with the test CA and the SCRAM password from a file) ->
# `telepack sink` -> ClickHouse over HTTPS (clickhouses:// with --ca-file, --user, --password-file). Every record
# exactly once in the table; one gateway's vehicles outside its token's allowance are rejected and never loaded.
# Certificates for the gateway listener are made here with `openssl req`.
set -euo pipefail

skip_or_fail() {
    if [ "${TP_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        echo "FAIL: $1 is not set but TP_REQUIRE_INTEGRATION=1; start the services with tools/kafka and tools/clickhouse." >&2
        exit 1
    fi
    echo "SKIP: $1 is not set (run 'tools/kafka start', 'tools/clickhouse start' and eval their 'env')." >&2
    exit 77
}
for v in TP_TEST_KAFKA_BROKERS TP_TEST_KAFKA_SASL_BROKERS TP_TEST_KAFKA_CA TP_TEST_KAFKA_SASL_USER \
    TP_TEST_KAFKA_SASL_PASSWORD_FILE TP_TEST_CLICKHOUSE_URL TP_TEST_CLICKHOUSE_HTTPS_URL TP_TEST_CLICKHOUSE_CA \
    TP_TEST_CLICKHOUSE_USER TP_TEST_CLICKHOUSE_PASSWORD_FILE; do
    [ -n "${!v:-}" ] || skip_or_fail "$v"
done
command -v openssl >/dev/null || { echo "FAIL: openssl is not installed" >&2; exit 1; }

root=${TP_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
tp=${TELEPACK:?TELEPACK must point at the telepack binary}
ch=$TP_TEST_CLICKHOUSE_URL
https_hostport=${TP_TEST_CLICKHOUSE_HTTPS_URL#https://}
topic=tp-it-gwtls-$$-$RANDOM
db=tp_it_gwtls_$$_$RANDOM
work=$(mktemp -d)
ing=
sk=

fail() {
    echo "FAIL: $*" >&2
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
    exit 1
}
cleanup() {
    for p in $ing $sk; do kill -9 "$p" 2>/dev/null || true; done
    curl -s "$ch/" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    TP_KAFKA_BOOTSTRAP=$TP_TEST_KAFKA_BROKERS "$root/tools/kafka" delete-topic "$topic" >/dev/null 2>&1 || true
    [ -n "${TP_KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
q() { curl -sf "$ch/" --data-binary "$1"; }
rows() { q "SELECT count() FROM $db.vehicle_positions FINAL" 2>/dev/null || echo 0; }

# The gateway listener's CA, server certificate (127.0.0.1) and a gateway's client certificate.
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "/CN=gateway test CA" \
    -keyout ca.key -out ca.pem 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
for c in srv:localhost gw:fleet-gw; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=${c#*:}" -keyout "${c%%:*}.key" \
        -out "${c%%:*}.csr" 2>/dev/null
    openssl x509 -req -in "${c%%:*}.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile san.ext \
        -out "${c%%:*}.pem" 2>/dev/null
done
tok=$(openssl rand -hex 24)
limited=$(openssl rand -hex 24)
printf '%s\n%s 20001-20010\n' "$tok" "$limited" >tokens
echo "$tok" >gw.tok
echo "$limited" >limited.tok
(
    umask 077
    {
        echo "security.protocol=SASL_SSL"
        echo "sasl.mechanisms=SCRAM-SHA-512"
        echo "sasl.username=$TP_TEST_KAFKA_SASL_USER"
        echo "sasl.password=$(cat "$TP_TEST_KAFKA_SASL_PASSWORD_FILE")"
        echo "ssl.ca.location=$TP_TEST_KAFKA_CA"
    } >kafka.properties
)

q "CREATE DATABASE IF NOT EXISTS $db" >/dev/null || fail "cannot create database $db"
TP_KAFKA_BOOTSTRAP=$TP_TEST_KAFKA_BROKERS "$root/tools/kafka" create-topic "$topic" 4 >/dev/null

"$tp" ingest --brokers "$TP_TEST_KAFKA_SASL_BROKERS" --kafka-config kafka.properties --topic "$topic" \
    --listen 127.0.0.1:0 --tls-cert srv.pem --tls-key srv.key --tls-client-ca ca.pem --auth-tokens tokens \
    --linger-ms 100 --metrics-listen 127.0.0.1:0 2>"$work/ingest.log" &
ing=$!
for _ in $(seq 100); do grep -q "listening for gateways" "$work/ingest.log" && break; sleep 0.1; done
port=$(sed -n 's/.*listening for gateways on .*(port \([0-9]*\)).*/\1/p' "$work/ingest.log" | head -n 1)
mport=$(sed -n 's/.*readyz on .*port \([0-9]*\).*/\1/p' "$work/ingest.log" | head -n 1)
[ -n "$port" ] || fail "ingest did not start"
grep -q "TLS with client certificates, tokens required" "$work/ingest.log" || fail "the listener is not TLS + tokens"

"$tp" sink --brokers "$TP_TEST_KAFKA_SASL_BROKERS" --kafka-config kafka.properties --topic "$topic" \
    --group "$topic-g" --create-table --batch-rows 1000 --flush-ms 100 --user "$TP_TEST_CLICKHOUSE_USER" \
    --warehouse "clickhouses://$https_hostport/$db" --ca-file "$TP_TEST_CLICKHOUSE_CA" \
    --password-file "$TP_TEST_CLICKHOUSE_PASSWORD_FILE" 2>"$work/sink.log" &
sk=$!

# 200 vehicles (10001..10200) for 30 s over 4 gateways, all allowed; then vehicles 20001..20020 with a token that
# allows 20001..20010: the other half is rejected.
timeout 120 "$tp" gen --connect "127.0.0.1:$port" --gateways 4 --tls-ca ca.pem --tls-cert gw.pem --tls-key gw.key \
    --token-file gw.tok --vehicles 200 --seconds 30 --drop-rate 0 -q 2>"$work/gen.log" || fail "gen over TLS failed"
rc=0
timeout 60 "$tp" gen --connect "127.0.0.1:$port" --tls-ca ca.pem --tls-cert gw.pem --tls-key gw.key \
    --token-file limited.tok --vehicles 20 --first-vehicle-id 20001 --seconds 30 --drop-rate 0 -q \
    2>"$work/gen-limited.log" || rc=$?
[ "$rc" = 1 ] || fail "gen with a limited token exited $rc, want 1 (rejected records)"
grep -q "rejected 300 records" "$work/gen-limited.log" || fail "gen did not report 300 rejected records"
total=$((200 * 30 + 10 * 30))

for _ in $(seq 900); do [ "$(rows)" -ge "$total" ] && break; sleep 0.2; done
sleep 2 # a duplicate would show by now
kill -INT "$ing"
wait "$ing" || fail "ingest exited non-zero"
ing=
kill -TERM "$sk"
wait "$sk" || fail "sink exited non-zero"
sk=
[ "$(rows)" = "$total" ] || fail "the table holds $(rows) distinct records, want $total"
all=$(q "SELECT count() FROM $db.vehicle_positions")
dups=$(q "SELECT count() - uniqExact(vehicle_id, sampled_at_ms, seq) FROM $db.vehicle_positions FINAL")
[ "$dups" = 0 ] || fail "$dups duplicate rows"
out=$(q "SELECT count() FROM $db.vehicle_positions WHERE vehicle_id > 20010")
[ "$out" = 0 ] || fail "$out rows of vehicles outside the token's allowance were loaded"
grep -q "CN=fleet-gw" "$work/ingest.log" || fail "the ingest log does not name the gateway certificate's CN"
echo "ok: $total records from 5 TLS gateways (mutual TLS, tokens) via Kafka SASL_SSL into ClickHouse over HTTPS," \
    "each once ($all rows before FINAL); 300 rejected for their vehicle"
