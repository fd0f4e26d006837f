#!/usr/bin/env bash
# The TCP gateway listener with TLS, mutual TLS and tokens, driven by `telepack gen --connect` against
# `telepack ingest` on librdkafka's in-process mock cluster: a TLS handshake with a client certificate and a token
# (the CN in the log); the client refusing a server certificate of another CA; the server refusing a client
# certificate of another CA, and none; a plaintext v2 hello and plaintext v1 bytes on the TLS port (closed with a
# reason, counted, no hang); a missing and an unknown token; vehicles outside the token's allowance (rejected, the
# rest acked); v1 refused while tokens are configured; SIGHUP reloading the certificate and the tokens; TLS sent to a
# plain port; the start-up refusals (plaintext off loopback without --insecure, cert without key, ...). Then the
# topic is read back with `telepack sink` into SQLite: every accepted record exactly once, nothing rejected.
# Certificates are made here with `openssl req`. Usage: test_gateway_tls.sh (TELEPACK names the binary)
set -uo pipefail
tp=${TELEPACK:?TELEPACK must name the telepack binary}
for p in python3 curl openssl sqlite3 timeout; do
    command -v $p >/dev/null || { echo "$p not installed: skipping"; exit 77; }
done
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
fails=0
checks=0
check() { # check DESCRIPTION CONDITION...
    local what=$1
    shift
    checks=$((checks + 1))
    if ! "$@"; then
        echo "FAIL: $what" >&2
        fails=$((fails + 1))
    fi
}
wait_for() { # wait_for FILE PATTERN: up to 10 s for PATTERN to appear in FILE
    for _ in $(seq 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1:" >&2
    cat "$1" >&2
    return 1
}

# ---- certificates: two CAs; the server's and a gateway's signed by ca, others by ca2 ----
cd "$work" || exit 1
for ca in ca ca2; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "/CN=test $ca" \
        -keyout $ca.key -out $ca.pem 2>/dev/null || { echo "openssl req failed"; exit 1; }
done
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
signed() { # signed NAME CN CA
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" -keyout "$1.key" \
        -out "$1.csr" 2>/dev/null &&
        openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 1 -extfile san.ext \
            -out "$1.pem" 2>/dev/null
}
signed srv localhost ca && signed srv2 localhost ca2 && signed gw depot-3-gw-17 ca && signed rogue rogue-gw ca2 ||
    { echo "making certificates failed"; exit 1; }

good=abcdefghijklmnopqrstuvwx0123456789 # vehicles 1000-1004 and 2000-2999
all=ZYXWVUTSRQPONMLKJIHGFEDCBA-ZYXWVU   # every vehicle
printf '%s 1000-1004,2000-2999\n%s\n' "$good" "$all" >tokens
echo "$good" >good.tok
echo "$all" >all.tok
echo "nonononononononononononononono" >unknown.tok

mock=(--topic packs -X test.mock.num.brokers=1 -X log_level=3)

# ---- start-up refusals (argument validation, nothing bound) ----
refused() { # refused DESCRIPTION PATTERN ARGS...: exit 2 with PATTERN on stderr
    local what=$1 pat=$2 rc=0
    shift 2
    timeout 10 "$tp" ingest "${mock[@]}" "$@" 2>"$work/err" || rc=$?
    check "$what exits 2 (got $rc)" test "$rc" = 2
    check "... saying: $pat" grep -q -- "$pat" "$work/err"
}
refused "plaintext gateways on 0.0.0.0" "refusing plaintext gateways on 0.0.0.0:0.*--insecure" --listen 0.0.0.0:0
refused "plaintext gateways on every interface" "refusing plaintext gateways on :0" --listen :0
refused "--tls-cert without --tls-key" "--tls-cert and --tls-key go together" --listen 127.0.0.1:0 --tls-cert srv.pem
refused "--tls-client-ca without --tls-cert" "needs --tls-cert" --listen 127.0.0.1:0 --tls-client-ca ca.pem
refused "a key of another certificate" "does not belong to the certificate" --listen 127.0.0.1:0 --tls-cert srv.pem \
    --tls-key gw.key
"$tp" ingest "${mock[@]}" --listen 0.0.0.0:0 --insecure 2>"$work/insecure.err" &
p=$!
pids+=("$p")
wait_for "$work/insecure.err" "listening for gateways on 0.0.0.0:0" >/dev/null
check "--insecure allows plaintext on 0.0.0.0" grep -q "listening for gateways on 0.0.0.0:0 (port [0-9]*), plaintext" \
    "$work/insecure.err"
kill -INT "$p"
wait "$p"
rc=0
"$tp" gen --vehicles 1 --seconds 1 --tls-ca ca.pem -q >/dev/null 2>"$work/err" || rc=$?
check "gen --tls-ca without --connect exits 2 (got $rc)" test "$rc" = 2
"$tp" ingest --help >"$work/help"
for o in --tls-cert --tls-key --tls-client-ca --auth-tokens --insecure; do
    check "ingest --help documents $o" grep -q -- "$o" "$work/help"
done
"$tp" gen --help >"$work/ghelp"
for o in --tls-ca --tls-cert --tls-key --token-file; do
    check "gen --help documents $o" grep -q -- "$o" "$work/ghelp"
done

# ---- the TLS listener with client certificates and tokens ----
"$tp" ingest "${mock[@]}" --linger-ms 20 --listen 127.0.0.1:0 --tls-cert srv.pem --tls-key srv.key \
    --tls-client-ca ca.pem --auth-tokens tokens --idle-timeout 5 --metrics-listen 127.0.0.1:0 2>"$work/ing.err" &
ing=$!
pids+=("$ing")
wait_for "$work/ing.err" "mock cluster bootstrap servers" || exit 1
port=$(sed -n 's/.*listening for gateways on .*(port \([0-9]*\)).*/\1/p' "$work/ing.err" | head -n 1)
mport=$(sed -n 's/.*readyz on .*port \([0-9]*\).*/\1/p' "$work/ing.err" | head -n 1)
boot=$(sed -n 's/.*mock cluster bootstrap servers: //p' "$work/ing.err" | head -n 1)
check "the listener says TLS with client certificates and tokens" \
    grep -q "(port $port), TLS with client certificates, tokens required" "$work/ing.err"
mtls=(--tls-ca ca.pem --tls-cert gw.pem --tls-key gw.key)
gen() { # gen NAME ARGS...: 10 s at most (a hang fails); stderr in NAME.err, exit status printed
    local name=$1 rc=0
    shift
    timeout 10 "$tp" gen --connect "127.0.0.1:$port" --seconds 3 --drop-rate 0 -q "$@" 2>"$work/$name.err" || rc=$?
    echo "$rc"
}

# accepted: vehicles 2000..2009 (3 s x 10 = 30 records), all within the token's allowance
rc=$(gen ok "${mtls[@]}" --token-file good.tok --vehicles 10 --first-vehicle-id 2000)
check "TLS + client certificate + token: gen exits 0 (got $rc)" test "$rc" = 0
check "... the log names the certificate's CN" wait_for "$work/ing.err" "TLS session with .*CN=depot-3-gw-17.*TLSv1"
# vehicles 1000..1009: 1005..1009 are outside the allowance, rejected; 1000..1004 (15 records) acked
rc=$(gen allowance "${mtls[@]}" --token-file good.tok --vehicles 10 --first-vehicle-id 1000)
check "vehicles outside the allowance: gen exits 1 (got $rc)" test "$rc" = 1
check "... saying 15 records were rejected" grep -q "rejected 15 records" "$work/allowance.err"
check "... and none left unacked" sh -c "! grep -q 'not acked' '$work/allowance.err'"

rc=$(gen wrongca --tls-ca ca2.pem --tls-cert gw.pem --tls-key gw.key --token-file good.tok --vehicles 1 \
    --first-vehicle-id 3000)
check "the client refuses a server certificate of another CA (exit 1, got $rc)" test "$rc" = 1
check "... saying the verification failed" grep -q "TLS: certificate verification failed" "$work/wrongca.err"
rc=$(gen rogue --tls-ca ca.pem --tls-cert rogue.pem --tls-key rogue.key --token-file good.tok --vehicles 1 \
    --first-vehicle-id 3000)
check "a client certificate of another CA is refused (exit 1, got $rc)" test "$rc" = 1
check "... the server says the client CA did not sign it" \
    wait_for "$work/ing.err" "TLS handshake failed: certificate verification failed.*--tls-client-ca"
rc=$(gen nocert --tls-ca ca.pem --token-file good.tok --vehicles 1 --first-vehicle-id 3000)
check "no client certificate is refused (exit 1, got $rc)" test "$rc" = 1
check "... the server says none came" wait_for "$work/ing.err" "peer did not return a certificate"
rc=$(gen plain --token-file good.tok --vehicles 1 --first-vehicle-id 3000)
check "a plaintext v2 hello on the TLS port: gen exits 1 (got $rc)" test "$rc" = 1
check "... told that the port requires TLS" grep -q "this port requires TLS" "$work/plain.err"
python3 - "$port" >"$work/v1plain.out" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
s.sendall(bytes([9, 8, 0xd0, 0x0f, 16, 1, 24, 1, 32, 1]))  # a v1 record in clear
t = time.time()
try:
    closed = s.recv(100) == b""
except ConnectionResetError:
    closed = True
except socket.timeout:
    closed = False
print("closed" if closed and time.time() - t < 4 else "open")
EOF
check "plaintext v1 bytes on the TLS port are closed at once" grep -q closed "$work/v1plain.out"
check "... with the reason logged" wait_for "$work/ing.err" "plaintext (not a TLS handshake) sent to the TLS gateway port"
# A client that connects and never starts the handshake: closed by the hello deadline (the idle timeout, 5 s here).
python3 - "$port" >"$work/silent.out" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(9)
t = time.time()
try:
    closed = s.recv(100) == b""
except ConnectionResetError:
    closed = True
except socket.timeout:
    closed = False
print("closed after %.1f s" % (time.time() - t) if closed else "open")
EOF
check "a silent connection on the TLS port is closed by the deadline ($(cat "$work/silent.out"))" \
    grep -qE "closed after [4-8]\." "$work/silent.out"
check "... with the reason logged" wait_for "$work/ing.err" "no TLS handshake within 5000 ms"
rc=$(gen notoken "${mtls[@]}" --vehicles 1 --first-vehicle-id 3000)
check "no token: refused (exit 1, got $rc)" test "$rc" = 1
check "... requires authentication" grep -q "requires authentication: send a token" "$work/notoken.err"
rc=$(gen badtoken "${mtls[@]}" --token-file unknown.tok --vehicles 1 --first-vehicle-id 3000)
check "an unknown token: refused (exit 1, got $rc)" test "$rc" = 1
check "... unknown token" grep -q "unknown token" "$work/badtoken.err"
rc=0
timeout 3 "$tp" gen --connect "127.0.0.1:$port" "${mtls[@]}" --protocol 1 --vehicles 1 --seconds 1 -q \
    --first-vehicle-id 3000 2>"$work/v1.err" || rc=$?
check "v1 over TLS while tokens are configured never gets an ack (gen stopped by timeout, got $rc)" test "$rc" = 124
check "... the server refuses v1" grep -q "protocol v1 (no handshake) is refused because authentication is required" \
    "$work/ing.err"

# SIGHUP: the certificate and the tokens. A bad certificate file keeps the old one.
cp srv.pem srv.pem.orig
echo garbage >srv.pem
kill -HUP "$ing"
wait_for "$work/ing.err" "keeping the old TLS certificate" >/dev/null
check "a bad certificate on SIGHUP keeps the old one (logged)" grep -q "keeping the old TLS certificate: cannot use" \
    "$work/ing.err"
rc=$(gen hup0 "${mtls[@]}" --token-file good.tok --vehicles 2 --first-vehicle-id 2100)
check "... and TLS still works with it (got $rc)" test "$rc" = 0
cp srv2.pem srv.pem
cp srv2.key srv.key
new=NEWNEWNEWNEWNEWNEWNEWNEW
printf '%s 2200-2299\n' "$new" >tokens
echo "$new" >new.tok
kill -HUP "$ing"
wait_for "$work/ing.err" "reloaded the TLS certificate" >/dev/null
wait_for "$work/ing.err" "reloaded the token file" >/dev/null
rc=$(gen hup1 "${mtls[@]}" --token-file new.tok --vehicles 2 --first-vehicle-id 2200)
check "after SIGHUP the old CA no longer verifies the server (got $rc)" test "$rc" = 1
check "... verification failed" grep -q "certificate verification failed" "$work/hup1.err"
rc=$(gen hup2 --tls-ca ca2.pem --tls-cert gw.pem --tls-key gw.key --token-file new.tok --vehicles 2 \
    --first-vehicle-id 2200)
check "... the new certificate's CA does, with the new token (got $rc)" test "$rc" = 0
rc=$(gen hup3 --tls-ca ca2.pem --tls-cert gw.pem --tls-key gw.key --token-file good.tok --vehicles 1 \
    --first-vehicle-id 2000)
check "... and the old token is unknown now (got $rc)" test "$rc" = 1
check "... unknown token" grep -q "unknown token" "$work/hup3.err"

curl -s "http://127.0.0.1:$mport/metrics" >"$work/metrics"
metric() { awk -v k="$1" '$1 == k {print $2}' "$work/metrics"; }
tlsf() { metric "telepack_ingest_gateway_tls_failures_total{reason=\"$1\"}"; }
check "metric: client certificate failures (rogue, none: got $(tlsf client_certificate))" \
    test "$(tlsf client_certificate)" -ge 2
check "metric: 2 plaintext connections (got $(tlsf plaintext))" test "$(tlsf plaintext)" = 2
check "metric: handshake failures for the refused server certificates (got $(tlsf handshake))" \
    test "$(tlsf handshake)" -ge 2
check "metric: 15 records rejected for their vehicle" \
    test "$(metric 'telepack_ingest_records_rejected_total{reason="vehicle_not_allowed"}')" = 15
check "metric: refusals auth_failed (2)" test "$(metric 'telepack_ingest_gateway_refusals_total{reason="auth_failed"}')" = 2
check "metric: refusals auth_required (no token, plaintext hello: 2)" \
    test "$(metric 'telepack_ingest_gateway_refusals_total{reason="auth_required"}')" = 2
check "metric: refusals v1_not_allowed (at least 1)" \
    test "$(metric 'telepack_ingest_gateway_refusals_total{reason="v1_not_allowed"}')" -ge 1
check "metric: closes tls_error (at least 5)" \
    test "$(metric 'telepack_ingest_gateway_closes_total{reason="tls_error"}')" -ge 5
check "metric: TLS sessions counted" test "$(metric telepack_ingest_gateway_tls_sessions_total)" -ge 5

# ---- TLS sent to a plain port ----
"$tp" ingest "${mock[@]}" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 2>"$work/plainport.err" &
pp=$!
pids+=("$pp")
wait_for "$work/plainport.err" "listening for gateways" || exit 1
pport=$(sed -n 's/.*listening for gateways on .*(port \([0-9]*\)).*/\1/p' "$work/plainport.err" | head -n 1)
pmport=$(sed -n 's/.*readyz on .*port \([0-9]*\).*/\1/p' "$work/plainport.err" | head -n 1)
rc=0
timeout 10 "$tp" gen --connect "127.0.0.1:$pport" --tls-ca ca.pem --vehicles 1 --seconds 1 -q 2>"$work/toplain.err" ||
    rc=$?
check "TLS to a plain port: gen fails at once (exit 1, got $rc)" test "$rc" = 1
check "... asking whether the port speaks TLS" grep -q "does the server speak TLS on this port" "$work/toplain.err"
check "... the server says why" grep -q "started a TLS handshake on a port without TLS" "$work/plainport.err"
n=$(curl -s "http://127.0.0.1:$pmport/metrics" |
    awk '$1 == "telepack_ingest_gateway_tls_failures_total{reason=\"tls_to_plain_port\"}" {print $2}')
check "... counted (got $n)" test "$n" = 1
kill -INT "$pp"
wait "$pp"

# ---- exactly once: 30 (2000..2009) + 15 (1000..1004) + 6 (2100..2101) + 6 (2200..2201) records ----
"$tp" sink --brokers "$boot" --topic packs --group verify --warehouse "sqlite:$work/out.db" --create-table \
    --flush-ms 100 --metrics-listen 127.0.0.1:0 -X log_level=3 2>"$work/sink.err" &
sink=$!
pids+=("$sink")
wait_for "$work/sink.err" "readyz on" || exit 1
sport=$(sed -n 's/.*readyz on .*port \([0-9]*\).*/\1/p' "$work/sink.err" | head -n 1)
for _ in $(seq 100); do
    got=$(curl -s "http://127.0.0.1:$sport/metrics" |
        awk '$1 == "telepack_sink_rows_loaded_total{warehouse=\"sqlite\"}" {print $2}')
    [ "${got:-0}" -ge 57 ] 2>/dev/null && break
    sleep 0.1
done
sleep 0.5 # a duplicate pack would show up by now
decoded=$(curl -s "http://127.0.0.1:$sport/metrics" | awk '$1 == "telepack_sink_records_total" {print $2}')
kill -TERM "$sink"
wait "$sink"
check "Kafka holds exactly the 57 accepted records (decoded $decoded)" test "$decoded" = 57
rows=$(sqlite3 "$work/out.db" 'SELECT count(DISTINCT vehicle_id || ":" || sampled_at_ms) FROM vehicle_positions')
check "SQLite has 57 distinct records (got $rows)" test "$rows" = 57
bad=$(sqlite3 "$work/out.db" 'SELECT count(*) FROM vehicle_positions WHERE vehicle_id BETWEEN 1005 AND 1999
    OR vehicle_id >= 3000')
check "no rejected or refused record reached Kafka (got $bad)" test "$bad" = 0

kill -INT "$ing"
rc=0
wait "$ing" || rc=$?
check "ingest exits 0 on SIGINT (got $rc)" test "$rc" = 0
echo "$checks checks, $fails failed"
[ "$fails" = 0 ]
