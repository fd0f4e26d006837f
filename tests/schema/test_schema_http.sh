#!/usr/bin/env bash
# POST /v1/records of a run-time schema (ingest --schema --http-listen) on librdkafka's mock cluster, with curl: NDJSON
# (protobuf's JSON mapping) and delimited protobuf bodies answered 200 once durable, grouped per VIN into column
# packs (pbpack v4, the default) that the sink loads (every record, every column); a record that is not valid under the schema (unknown
# key, int32 overflow, bad UTF-8, a frame that does not decode, an empty key) answered 400 naming it, nothing taken,
# counted, and the worker goes on; 415, 413, 401/403 with tokens. A built-in `telepack ingest` hosts the mock cluster.
# Usage: test_schema_http.sh DATA_DIR SOURCE_DIR
set -u
data=$1
src=$2
tp=${TELEPACK:?set TELEPACK to the telepack binary}
. "$(dirname "$0")/../support/schema_script.sh"

start_mock_cluster

# start_worker LOG ARGS...: an ingest --schema --http-listen; sets $port
start_worker() {
    local log=$1
    shift
    "$tp" ingest "${ev[@]}" --brokers "$boot" --http-listen 127.0.0.1:0 --linger-ms 50 "$@" 2>"$log" &
    wpid=$!
    pids+=($wpid)
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.*serving POST \/v1\/records of .* (port \([0-9]*\),.*/\1/p' "$log" | head -1)
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || fail "worker did not start: $(cat "$log")"
}
# post NAME TYPE FILE [CURL ARGS...]: prints the status, the body goes to $tmp/NAME.body
post() {
    local name=$1 type=$2 file=$3
    shift 3
    curl -s -o "$tmp/$name.body" -w '%{http_code}' -H "Content-Type: $type" --data-binary "@$file" "$@" \
        "http://127.0.0.1:$port/v1/records"
}

"${gen[@]}" gen 6 40 "$tmp/ev.bin" "$tmp/ev.exp"
"$tp" schema "${ev[@]}" --decode "$tmp/ev.bin" --delimited >"$tmp/ev.json" || fail "decode to NDJSON"
"$tp" schema "${ev[@]}" --decode "$tmp/ev.bin" --delimited --proto-names >"$tmp/ev_proto.json" || fail "decode proto names"
head -120 "$tmp/ev.json" >"$tmp/a.json"
tail -n +121 "$tmp/ev_proto.json" >"$tmp/b.json"

start_worker "$tmp/w1.err" --topic evh --batch-records 16
# NDJSON (lowerCamelCase, then .proto names), then all of it again as delimited protobuf
[ "$(post a application/x-ndjson "$tmp/a.json")" = 200 ] && grep -q '"records":120' "$tmp/a.body" || fail "ndjson a: $(cat "$tmp/a.body")"
[ "$(post b 'application/x-ndjson; charset=utf-8' "$tmp/b.json")" = 200 ] && grep -q '"records":120' "$tmp/b.body" || fail "ndjson b: $(cat "$tmp/b.body")"
[ "$(post c application/x-protobuf "$tmp/ev.bin")" = 200 ] && grep -q '"records":240' "$tmp/c.body" || fail "protobuf: $(cat "$tmp/c.body")"
# Bad records: 400 naming the line or record, nothing of the request taken, the worker goes on.
{ head -2 "$tmp/ev.json"; echo '{"vin":"X1","speed":3}'; } >"$tmp/unk.json"
[ "$(post unk application/x-ndjson "$tmp/unk.json")" = 400 ] && grep -q '"error":"line 3: it is not a record of fleet.ev.v1.EvTelemetry: at column 13: unknown key \\"speed\\" in the top level.*nothing taken","line":3' "$tmp/unk.body" ||
    fail "unknown key: $(cat "$tmp/unk.body")"
echo '{"vin":"X1","ambientTempC":2147483648}' >"$tmp/ovf.json"
[ "$(post ovf application/x-ndjson "$tmp/ovf.json")" = 400 ] && grep -q 'line 1: .*field ambient_temp_c (int32): 2147483648 is outside the int32 range' "$tmp/ovf.body" ||
    fail "int32 overflow: $(cat "$tmp/ovf.body")"
printf '{"vin":"X\xff"}\n' >"$tmp/utf.json"
[ "$(post utf application/x-ndjson "$tmp/utf.json")" = 400 ] && grep -q 'not valid UTF-8' "$tmp/utf.body" || fail "bad UTF-8: $(cat "$tmp/utf.body")"
echo '{"vin":""}' >"$tmp/novin.json"
[ "$(post novin application/x-ndjson "$tmp/novin.json")" = 400 ] && grep -q 'line 1: key vin is empty' "$tmp/novin.body" || fail "empty key: $(cat "$tmp/novin.body")"
{ head -c 0 /dev/null; python3 - "$tmp/ev.bin" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
size, shift, n = 0, 0, 0
while True:
    b = d[n]; n += 1; size |= (b & 0x7f) << shift; shift += 7
    if b < 0x80: break
sys.stdout.buffer.write(d[:n + size] + b"\x02\x08\x01")
PY
} >"$tmp/bad.bin"
[ "$(post badpb application/x-protobuf "$tmp/bad.bin")" = 400 ] && grep -q '"error":"record 2 at byte [0-9]*: it does not decode as fleet.ev.v1.EvTelemetry: at byte 0: field vin.*","record":2' "$tmp/badpb.body" ||
    fail "bad frame: $(cat "$tmp/badpb.body")"
[ "$(post ct text/plain "$tmp/a.json")" = 415 ] || fail "415"
[ "$(post empty application/x-ndjson /dev/null)" = 400 ] && grep -q "no records" "$tmp/empty.body" || fail "empty body: $(cat "$tmp/empty.body")"
# still serving after the refusals
[ "$(post again application/x-ndjson "$tmp/a.json")" = 200 ] || fail "after refusals: $(cat "$tmp/again.body")"
kill -TERM $wpid; wait $wpid; rc=$?
[ $rc = 0 ] || fail "worker exited $rc: $(tail -3 "$tmp/w1.err")"
grep -q "ingest: 600 records of $msg (schema 99b3bbc325167eac) taken (0 from gateways, 0 rejected; 5 refused over HTTP)" "$tmp/w1.err" ||
    fail "summary: $(tail -2 "$tmp/w1.err")"

# The packs load: every record once (the identity removes the second copies), every column equal.
"$tp" sink "${ev[@]}" --brokers "$boot" --topic evh --group gh --table ev_http --warehouse "sqlite:$tmp/ev.db" \
    --create-table --flush-ms 100 -X log_level=3 2>"$tmp/sink.err" &
spid=$!
pids+=($spid)
for _ in $(seq 600); do
    [ "$(sqlite3 "$tmp/ev.db" 'SELECT count(*) FROM ev_http' 2>/dev/null || echo 0)" = 240 ] && break
    sleep 0.1
done
sleep 0.5
kill -TERM $spid; wait $spid
"${gen[@]}" check-sqlite "$tmp/ev.exp" "$tmp/ev.db" ev_http || fail "rows loaded from the HTTP packs differ from the records"
grep -q "sending it to" "$tmp/sink.err" && fail "a pack of the HTTP ingest went to the DLQ: $(grep 'sending it to' "$tmp/sink.err" | head -2)"

# Tokens: a string key (the VIN) needs a token for every vehicle; a token with an id list gets 403.
printf '%s *\n%s 1-5\n' aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb >"$tmp/tokens"
start_worker "$tmp/w2.err" --topic evh2 --auth-tokens "$tmp/tokens"
[ "$(post noauth application/x-ndjson "$tmp/a.json")" = 401 ] || fail "401: $(cat "$tmp/noauth.body")"
[ "$(post all application/x-ndjson "$tmp/a.json" -H "Authorization: Bearer aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")" = 200 ] || fail "token *: $(cat "$tmp/all.body")"
[ "$(post list application/x-ndjson "$tmp/a.json" -H "Authorization: Bearer bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")" = 403 ] &&
    grep -q "line 1: vehicle WVWZZZ1JZ.* is not among the vehicles this token may send for (a string key needs a token for every vehicle" "$tmp/list.body" ||
    fail "token with a list: $(cat "$tmp/list.body")"
kill -TERM $wpid; wait $wpid

# Refused at start: plaintext gateways off loopback without --tls-cert or --insecure, plain HTTP off loopback.
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic ev --listen 0.0.0.0:0 2>"$tmp/err"; rc=$?
[ $rc = 2 ] &&
    grep -q "refusing plaintext gateways on 0.0.0.0:0.*--tls-cert FILE --tls-key FILE, or --insecure" "$tmp/err" ||
        fail "ingest --schema --listen off loopback: $rc $(cat "$tmp/err")"
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic ev --http-listen 0.0.0.0:0 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "refusing plain HTTP" "$tmp/err" || fail "plain HTTP off loopback: $rc $(cat "$tmp/err")"
"$tp" ingest --schema x --help | grep -q -- '--http-listen H:P' || fail "--help: --http-listen"

[ $fails = 0 ] && echo "all schema HTTP ingest checks passed"
exit $((fails > 0))
