#!/usr/bin/env bash
# `telepack ingest --http-listen` with curl against librdkafka's in-process mock cluster: 200 for NDJSON and
# delimited protobuf, and the records then in Kafka exactly once (read back by `telepack sink` into SQLite: the
# decoded-records counter and the table); 400 naming the bad line or record (and nothing of it taken), 401 without
# or with a wrong token, 403 for a vehicle outside the token's ids, 413, 415, 405, 404; the metrics; SIGHUP reloads
# the token file (a bad one keeps the old); HTTPS with a self-signed certificate; and the start-up refusals (plain
# HTTP on a non-loopback address, a bad token file naming its line, cert without key).
# Usage: test_http_ingest.sh (TELEPACK names the binary)
set -uo pipefail
tp=${TELEPACK:?TELEPACK must name the telepack binary}
for p in python3 curl openssl sqlite3; do
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
# wait_for FILE PATTERN: up to 10 s for PATTERN to appear in FILE
wait_for() {
    for _ in $(seq 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1:" >&2
    cat "$1" >&2
    return 1
}
# post NAME ARGS...: curl the endpoint; the body goes to $work/NAME.body, the status is printed
post() {
    local name=$1
    shift
    curl -s -o "$work/$name.body" -w '%{http_code}' "$@"
}

good=abcdefghijklmnopqrstuvwx0123456789 # may send for vehicles 1000-1049 and 2000
other=ZYXWVUTSRQPONMLKJIHGFEDCBA-ZYXWVU # every vehicle
cat >"$work/tokens" <<EOF
# gateways of depot A
$good 1000-1049,2000
$other   # the replay job
EOF

# ---- start-up refusals (argument validation, nothing bound) ----
mock=(--topic packs -X test.mock.num.brokers=1 -X log_level=3)
rc=0
"$tp" ingest "${mock[@]}" --http-listen 0.0.0.0:0 2>"$work/err" || rc=$?
check "plain HTTP on 0.0.0.0 exits 2 (got $rc)" test "$rc" = 2
check "... and says why and what to do" grep -q "refusing plain HTTP on 0.0.0.0:0.*--insecure" "$work/err"
rc=0
"$tp" ingest "${mock[@]}" --http-listen :0 2>"$work/err" || rc=$?
check "plain HTTP on every interface (:0) exits 2 (got $rc)" test "$rc" = 2
rc=0
"$tp" ingest "${mock[@]}" --http-listen 127.0.0.1:0 --http-tls-cert "$work/x" 2>"$work/err" || rc=$?
check "--http-tls-cert without --http-tls-key exits 2 (got $rc)" test "$rc" = 2
rc=0
"$tp" ingest "${mock[@]}" --from /dev/null --auth-tokens "$work/tokens" 2>"$work/err" || rc=$?
check "--auth-tokens without a listener (--from only) exits 2 (got $rc)" test "$rc" = 2
printf '# ok\n%s\nshort\n' "$good" >"$work/bad-tokens"
rc=0
"$tp" ingest "${mock[@]}" --http-listen 127.0.0.1:0 --auth-tokens "$work/bad-tokens" 2>"$work/err" || rc=$?
check "a bad token file exits 2 (got $rc)" test "$rc" = 2
check "... naming its line" grep -q "bad-tokens: line 3: the token has 5 characters" "$work/err"
rc=0
"$tp" ingest "${mock[@]}" --http-listen 127.0.0.1:0 --auth-tokens "$work/none" 2>"$work/err" || rc=$?
check "a missing token file exits 1 (got $rc)" test "$rc" = 1
"$tp" ingest --help >"$work/help"
for o in --http-listen --http-tls-cert --http-tls-key --insecure --auth-tokens --http-max-body --http-timeout-ms; do
    check "--help documents $o" grep -q -- "$o" "$work/help"
done

# ---- the endpoint ----
"$tp" ingest "${mock[@]}" --linger-ms 20 --http-listen 127.0.0.1:0 --auth-tokens "$work/tokens" \
    --http-max-body 128K --metrics-listen 127.0.0.1:0 2>"$work/ing.err" &
ing=$!
pids+=("$ing")
wait_for "$work/ing.err" "serving POST /v1/records" || exit 1
port=$(sed -n 's/.*serving POST .* (port \([0-9]*\),.*/\1/p' "$work/ing.err")
mport=$(sed -n 's/.*readyz on .* (port \([0-9]*\)).*/\1/p' "$work/ing.err")
boot=$(sed -n 's/.*mock cluster bootstrap servers: \(.*\)$/\1/p' "$work/ing.err")
url="http://127.0.0.1:$port/v1/records"
nd=(-H "Content-Type: application/x-ndjson")
pb=(-H "Content-Type: application/x-protobuf")
auth=(-H "Authorization: Bearer $good")

python3 - "$work" <<'PY'
import json, struct, sys
work = sys.argv[1]
def rec(v, t, seq):
    return json.dumps({"vehicle_id": v, "sampled_at_ms": 1767225600000 + t, "seq": seq, "latitude": 35.6,
                       "longitude": 139.7, "speed_kmh": 31.5, "meter_status": "METER_STATUS_HIRED"})
with open(work + "/ok.ndjson", "w") as f:           # 500 records, vehicles 1000-1049, a blank line in between
    for t in range(10):
        for v in range(50):
            f.write(rec(1000 + v, t * 1000, t) + "\n")
        if t == 4:
            f.write("\n")
with open(work + "/bad.ndjson", "w") as f:          # line 3 is bad: nothing of it may be taken
    f.write(rec(1000, 999000, 1) + "\n" + rec(1001, 999000, 1) + "\n" + '{"vehicle_id": 1002}\n')
with open(work + "/forbidden.ndjson", "w") as f:    # line 2 is vehicle 1050, outside 1000-1049,2000
    f.write(rec(2000, 999000, 1) + "\n" + rec(1050, 999000, 1) + "\n")
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)
def pbrec(v, t, seq):
    msg = (b"\x08" + varint(v) + b"\x10" + varint(1767225600000 + t) + b"\x18" + varint(seq)
           + b"\x21" + struct.pack("<d", 35.5))
    return varint(len(msg)) + msg
with open(work + "/ok.bin", "wb") as f:             # 200 records, other identities than ok.ndjson
    for i in range(200):
        f.write(pbrec(1000 + i % 20, 500000 + i, i))
with open(work + "/bad.bin", "wb") as f:            # record 3 is not a VehicleRecord (field 1 as a fixed64 cut short)
    f.write(pbrec(1000, 999500, 1) + pbrec(1001, 999500, 1) + varint(3) + b"\x09\x01\x02")
with open(work + "/big.ndjson", "w") as f:          # above the 128 KiB --http-max-body
    for i in range(1000):
        f.write(rec(1000, 2000000 + i, i) + "\n")
PY

s=$(post ok "${auth[@]}" "${nd[@]}" --data-binary @"$work/ok.ndjson" "$url")
check "NDJSON: 200 (got $s: $(cat "$work/ok.body"))" test "$s" = 200
check "NDJSON: counts in the answer" grep -q '"records":500' "$work/ok.body"
s=$(post okpb -H "Authorization: Bearer $other" "${pb[@]}" --data-binary @"$work/ok.bin" "$url")
check "protobuf: 200 (got $s: $(cat "$work/okpb.body"))" test "$s" = 200
check "protobuf: counts in the answer" grep -q '"records":200' "$work/okpb.body"

s=$(post bad "${auth[@]}" "${nd[@]}" --data-binary @"$work/bad.ndjson" "$url")
check "bad NDJSON line: 400 (got $s)" test "$s" = 400
check "... naming line 3 and the field" grep -q '"line 3: field sampled_at_ms.*"line":3' "$work/bad.body"
s=$(post badpb "${auth[@]}" "${pb[@]}" --data-binary @"$work/bad.bin" "$url")
check "bad protobuf record: 400 (got $s)" test "$s" = 400
check "... naming record 3 and its byte offset" grep -q '"record 3 at byte [0-9]*: not a valid.*"record":3' \
    "$work/badpb.body"
s=$(post empty "${auth[@]}" "${nd[@]}" --data-binary $'\n' "$url")
check "a body without records: 400 (got $s)" test "$s" = 400

s=$(post noauth "${nd[@]}" --data-binary @"$work/ok.ndjson" "$url")
check "no token: 401 (got $s)" test "$s" = 401
s=$(post wrong -H "Authorization: Bearer ${good}x" "${nd[@]}" --data-binary @"$work/ok.ndjson" "$url")
check "wrong token: 401 (got $s)" test "$s" = 401
s=$(post basic -H "Authorization: Basic dXNlcjpwYXNz" "${nd[@]}" --data-binary @"$work/ok.ndjson" "$url")
check "not a bearer token: 401 (got $s)" test "$s" = 401
check "401 says what to send" grep -q "Bearer TOKEN" "$work/basic.body"
s=$(post forbidden "${auth[@]}" "${nd[@]}" --data-binary @"$work/forbidden.ndjson" "$url")
check "vehicle outside the token's ids: 403 (got $s)" test "$s" = 403
check "... naming line 2 and vehicle 1050" grep -q '"line 2: vehicle 1050 is not among' "$work/forbidden.body"

s=$(post big "${auth[@]}" "${nd[@]}" --data-binary @"$work/big.ndjson" "$url")
check "body above --http-max-body: 413 (got $s)" test "$s" = 413
s=$(post bigchunked "${auth[@]}" "${nd[@]}" -H "Transfer-Encoding: chunked" --data-binary @"$work/big.ndjson" "$url")
check "chunked body above --http-max-body: 413 (got $s)" test "$s" = 413
s=$(post ctype "${auth[@]}" -H "Content-Type: text/csv" --data-binary @"$work/ok.ndjson" "$url")
check "another content type: 415 (got $s)" test "$s" = 415
s=$(post get "${auth[@]}" "$url")
check "GET: 405 (got $s)" test "$s" = 405
s=$(post notfound "${auth[@]}" "${nd[@]}" --data-binary @"$work/ok.ndjson" "http://127.0.0.1:$port/v2/records")
check "another path: 404 (got $s)" test "$s" = 404

# SIGHUP: a bad file keeps the old tokens; a good one replaces them
printf 'tooshort\n' >"$work/tokens"
kill -HUP "$ing"
wait_for "$work/ing.err" "keeping the old tokens: token file .*line 1" || true
s=$(post hup1 "${auth[@]}" "${nd[@]}" --data-binary @"$work/forbidden.ndjson" "$url")
check "after a bad reload the old token still works (403 for its vehicle, got $s)" test "$s" = 403
new=NEWNEWNEWNEWNEWNEWNEWNEW
printf '%s 1\n' "$new" >"$work/tokens"
kill -HUP "$ing"
wait_for "$work/ing.err" "reloaded the token file" || true
s=$(post hup2 "${auth[@]}" "${nd[@]}" --data-binary @"$work/forbidden.ndjson" "$url")
check "after a good reload the old token is refused (401, got $s)" test "$s" = 401
s=$(post hup3 -H "Authorization: Bearer $new" "${nd[@]}" --data-binary @"$work/forbidden.ndjson" "$url")
check "... and the new one allows only its vehicle (403, got $s)" test "$s" = 403

curl -s "http://127.0.0.1:$mport/metrics" >"$work/metrics"
metric() { awk -v k="$1" '$1 == k {print $2}' "$work/metrics"; }
check "metric: 2 requests answered 200" test "$(metric 'telepack_ingest_http_requests_total{code="200"}')" = 2
check "metric: 3 answered 400" test "$(metric 'telepack_ingest_http_requests_total{code="400"}')" = 3
check "metric: 4 answered 401" test "$(metric 'telepack_ingest_http_requests_total{code="401"}')" = 4
check "metric: 700 records" test "$(metric telepack_ingest_http_records_total)" = 700
check "metric: auth failure missing" test "$(metric 'telepack_ingest_http_auth_failures_total{reason="missing"}')" = 1
check "metric: auth failure unknown" test "$(metric 'telepack_ingest_http_auth_failures_total{reason="unknown"}')" = 2
check "metric: auth failure malformed" \
    test "$(metric 'telepack_ingest_http_auth_failures_total{reason="malformed"}')" = 1
check "metric: auth failure vehicle" test "$(metric 'telepack_ingest_http_auth_failures_total{reason="vehicle"}')" = 3

# Read the topic back: exactly the 700 records of the two accepted requests, each once.
"$tp" sink --brokers "$boot" --topic packs --group verify --warehouse "sqlite:$work/out.db" --create-table \
    --flush-ms 100 --metrics-listen 127.0.0.1:0 -X log_level=3 2>"$work/sink.err" &
sink=$!
pids+=("$sink")
wait_for "$work/sink.err" "readyz on" || exit 1
sport=$(sed -n 's/.*readyz on .*port \([0-9]*\).*/\1/p' "$work/sink.err" | head -n 1)
got=0
for _ in $(seq 100); do
    got=$(curl -s "http://127.0.0.1:$sport/metrics" | awk '$1 == "telepack_sink_rows_loaded_total{warehouse=\"sqlite\"}" {print $2}')
    [ "${got:-0}" -ge 700 ] 2>/dev/null && break
    sleep 0.1
done
sleep 0.5 # a duplicate pack would show up by now
decoded=$(curl -s "http://127.0.0.1:$sport/metrics" | awk '$1 == "telepack_sink_records_total" {print $2}')
kill -TERM "$sink"
wait "$sink"
check "Kafka holds exactly the 700 accepted records (decoded $decoded)" test "$decoded" = 700
rows=$(sqlite3 "$work/out.db" 'SELECT count(*) FROM vehicle_positions')
check "SQLite has the 700 rows (got $rows)" test "$rows" = 700
none=$(sqlite3 "$work/out.db" 'SELECT count(*) FROM vehicle_positions WHERE sampled_at_ms >= 1767225600000 + 999000')
check "nothing of the refused requests reached Kafka (got $none)" test "$none" = 0

kill -INT "$ing"
rc=0
wait "$ing" || rc=$?
check "ingest exits 0 on SIGINT (got $rc)" test "$rc" = 0
check "ingest summary: 700 records acked" grep -q "700 acked" "$work/ing.err"

# ---- HTTPS with a self-signed certificate ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
"$tp" ingest "${mock[@]}" --linger-ms 20 --http-listen 127.0.0.1:0 --http-tls-cert "$work/cert.pem" \
    --http-tls-key "$work/key.pem" 2>"$work/tls.err" &
tls=$!
pids+=("$tls")
wait_for "$work/tls.err" "serving POST /v1/records" || exit 1
tport=$(sed -n 's/.*serving POST .* (port \([0-9]*\),.*/\1/p' "$work/tls.err")
check "the log says https" grep -q "(port $tport, https" "$work/tls.err"
s=$(post tls --cacert "$work/cert.pem" "${nd[@]}" --data-binary @"$work/ok.ndjson" "https://127.0.0.1:$tport/v1/records")
check "HTTPS with the test CA: 200 (got $s)" test "$s" = 200
s=$(post tlsbad "${nd[@]}" --data-binary @"$work/ok.ndjson" "https://127.0.0.1:$tport/v1/records")
check "HTTPS without trusting the certificate fails (got $s)" test "$s" = 000
s=$(post plain "${nd[@]}" --data-binary @"$work/ok.ndjson" "http://127.0.0.1:$tport/v1/records")
check "plain HTTP to the TLS listener gets no answer (got $s)" test "$s" = 000
kill -INT "$tls"
rc=0
wait "$tls" || rc=$?
check "TLS ingest exits 0 (got $rc)" test "$rc" = 0
check "TLS ingest: 500 acked" grep -q "500 acked" "$work/tls.err"
rc=0
"$tp" ingest "${mock[@]}" --http-listen 127.0.0.1:0 --http-tls-cert "$work/key.pem" --http-tls-key "$work/cert.pem" \
    2>"$work/err" || rc=$?
check "swapped cert and key: exits non-zero with a sentence (got $rc)" grep -q "certificate and key" "$work/err"

echo "$checks checks, $fails failed"
[ "$fails" = 0 ]
