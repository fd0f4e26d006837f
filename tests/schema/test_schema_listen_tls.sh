#!/usr/bin/env bash
# The listeners of `ingest --schema` with TLS, mutual TLS, event-time checks and the operations endpoint, on
# librdkafka's mock cluster, with a small Python gateway (ssl module) and curl: a gateway with a client certificate of
# the CA gets its records acked over TLS, and two records whose time is decades off are rejected with code 4
# (event_time), the rest acked; a client certificate of another CA, none at all, and plaintext on the TLS port are
# refused (counted by reason); POST /v1/records over HTTPS (the same certificate by default) answers 400 for a record
# of 1970, counted; /metrics shows the built-in ingest's names with the values of this run; /readyz is 200 once a pack
# is delivered and 503 naming Kafka while no broker is up; SIGHUP reloads the certificate (a bad file keeps the old
# one); the start-up refusals. Certificates are made here with `openssl req`.
# Usage: test_schema_listen_tls.sh DATA_DIR SOURCE_DIR
set -u
data=$1
src=$2
tp=${TELEPACK:?set TELEPACK to the telepack binary}
for p in python3 curl openssl; do
    command -v $p >/dev/null || { echo "$p not installed: skipping"; exit 77; }
done
. "$(dirname "$0")/../support/schema_script.sh"

# ---- certificates: the server's and a gateway's signed by ca; a rogue gateway's and a second server's by ca2 ----
cd "$tmp" || exit 1
for ca in ca ca2; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "/CN=test $ca" \
        -keyout $ca.key -out $ca.pem 2>/dev/null || { echo "FAIL: openssl req"; exit 1; }
done
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
signed() { # signed NAME CN CA
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" -keyout "$1.key" \
        -out "$1.csr" 2>/dev/null &&
        openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 1 -extfile san.ext \
            -out "$1.pem" 2>/dev/null
}
signed srv localhost ca && signed srv2 localhost ca2 && signed gw depot-gw ca && signed rogue rogue-gw ca2 ||
    { echo "FAIL: making certificates"; exit 1; }
cp srv.pem live.pem
cp srv.key live.key

# ---- start-up refusals ----
refused() { # refused DESCRIPTION PATTERN ARGS...: exit 2 with PATTERN on stderr
    local what=$1 pat=$2 rc=0
    shift 2
    "$tp" ingest "${ev[@]}" --brokers 127.0.0.1:1 --topic t "$@" 2>err || rc=$?
    [ $rc = 2 ] && grep -q -- "$pat" err || fail "$what: exit $rc, $(cat err)"
}
refused "--tls-cert without --tls-key" "--tls-cert and --tls-key go together" --listen 127.0.0.1:0 --tls-cert srv.pem
refused "--tls-client-ca without a certificate" "needs --tls-cert" --listen 127.0.0.1:0 --tls-client-ca ca.pem
refused "--tls-client-ca without --listen" "applies to the gateway listener" --http-listen 127.0.0.1:0 \
    --tls-cert srv.pem --tls-key srv.key --tls-client-ca ca.pem
refused "--tls-cert with --from" "apply to --listen and --http-listen" --from /dev/null --tls-cert srv.pem \
    --tls-key srv.key
refused "--metrics-listen with --from" "a --from replay has no operations endpoint" --from /dev/null \
    --metrics-listen 127.0.0.1:0
refused "a certificate file that is not PEM" "san.ext" --listen 127.0.0.1:0 --tls-cert san.ext --tls-key srv.key

"$tp" ingest --topic host -X test.mock.num.brokers=1 -X log_level=3 --listen 127.0.0.1:0 2>host.err &
pids+=($!)
boot=
for _ in $(seq 100); do
    boot=$(sed -n 's/.*mock cluster bootstrap servers: \(.*\)$/\1/p' host.err | head -1)
    [ -n "$boot" ] && break
    sleep 0.1
done
[ -n "$boot" ] || { echo "FAIL: no mock cluster: $(cat host.err)"; exit 1; }

# Off loopback with a certificate: no --insecure needed (binds every interface on a free port).
"$tp" ingest "${ev[@]}" --brokers "$boot" --topic t --listen :0 --tls-cert srv.pem --tls-key srv.key 2>any.err &
apid=$!
pids+=($apid)
for _ in $(seq 100); do grep -q "listening for gateways" any.err && break; sleep 0.1; done
grep -q "listening for gateways with records of $msg .*, TLS, publishing" any.err ||
    fail "TLS gateways on every interface: $(cat any.err)"
kill -TERM $apid; wait $apid

"$tp" ingest "${ev[@]}" --brokers "$boot" --topic evt --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --linger-ms 50 \
    --tls-cert live.pem --tls-key live.key --tls-client-ca ca.pem --metrics-listen 127.0.0.1:0 2>w.err &
wpid=$!
pids+=($wpid)
port= hport= mport=
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening for gateways with records of .* (port \([0-9]*\)),.*/\1/p' w.err | head -1)
    hport=$(sed -n 's/.*serving POST \/v1\/records of .* (port \([0-9]*\), https.*/\1/p' w.err | head -1)
    mport=$(sed -n 's/.*readyz on .*port \([0-9]*\).*/\1/p' w.err | head -1)
    [ -n "$port" ] && [ -n "$hport" ] && [ -n "$mport" ] && break
    sleep 0.1
done
[ -n "$port" ] && [ -n "$hport" ] && [ -n "$mport" ] || { echo "FAIL: worker did not start: $(cat w.err)"; exit 1; }
grep -q "TLS with client certificates" w.err || fail "the log does not say mutual TLS: $(cat w.err)"

# gateway.py PORT FILE CA [CERT KEY] [BAD...]: protocol v2 over TLS (verifying the server against CA), the delimited
# records of FILE with a bad record inserted after record 2 for each BAD (old: time 1970; far: the year 2100);
# prints "reject N CODE REASON" lines and "ack A", or "tls-error WHAT" / "closed A".
cat >gateway.py <<'PY'
import socket, ssl, sys
port, path, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cert, key = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] != "-" else (None, None)
def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7f | 0x80]); n >>= 7
    return out + bytes([n])
def read_varint(buf, i):
    n = s = 0
    while True:
        if i >= len(buf): return None, i
        b = buf[i]; i += 1; n |= (b & 0x7f) << s; s += 7
        if b < 0x80: return n, i
def at(seconds):  # vin + recorded_at {seconds}
    ts = b"\x08" + varint(seconds)
    return b"\x0a\x11WBA0000000000TIME" + b"\x12" + varint(len(ts)) + ts
bad = {"old": at(1), "far": at(4102444800)}
d, recs, i = open(path, "rb").read(), [], 0
while i < len(d):
    n, j = read_varint(d, i); recs.append(d[j:j + n]); i = j + n
for k, b in enumerate(sys.argv[6:]):
    recs.insert(2 + k, bad[b])
ctx = ssl.create_default_context(cafile=ca)
if cert:
    ctx.load_cert_chain(cert, key)
raw = socket.create_connection(("127.0.0.1", port))
raw.settimeout(20)
try:
    sock = ctx.wrap_socket(raw, server_hostname="localhost")
    hello = b"\x12\x04test"
    sock.sendall(b"\xd4\xd0\xc7\x57\x02" + varint(len(hello)) + hello +
                 b"".join(b"\x01" + varint(len(r)) + r for r in recs))
    buf, ack, hello_done = b"", 0, False
    while ack < len(recs):
        chunk = sock.recv(65536)
        if not chunk: break
        buf += chunk
        while True:
            if not hello_done:
                if len(buf) < 6: break
                n, j = read_varint(buf, 5)
                if n is None or len(buf) < j + n: break
                status, _ = read_varint(buf[j:j + n], 1)
                if status: print("refused", status); sys.exit(0)
                buf, hello_done = buf[j + n:], True
                continue
            if len(buf) < 2: break
            n, j = read_varint(buf, 1)
            if n is None or len(buf) < j + n: break
            t, p, buf = buf[0], buf[j:j + n], buf[j + n:]
            if t == 0x81: ack = read_varint(p, 0)[0]
            elif t == 0x82:
                num, k = read_varint(p, 0); code, k = read_varint(p, k)
                print("reject", num, code, p[k:].decode("utf-8", "replace"))
    print(("ack" if ack >= len(recs) else "closed"), ack)
except (ssl.SSLError, ConnectionError, socket.timeout) as e:
    print("tls-error", type(e).__name__, e)
PY
gw() { python3 gateway.py "$@"; }

"${gen[@]}" gen 4 30 ev.bin ev.exp
gw "$port" ev.bin ca.pem gw.pem gw.key old far >ok.out || fail "gateway client"
grep -q "^reject 3 4 recorded_at is 1000 ms since the epoch, more than 3653 days before now" ok.out ||
    fail "a record of 1970 over TLS: $(cat ok.out)"
grep -q "^reject 4 4 recorded_at is 4102444800000 ms since the epoch, more than 3653 days after now" ok.out ||
    fail "a record of the year 2100: $(cat ok.out)"
grep -q "^ack 122$" ok.out && [ "$(grep -c '^reject' ok.out)" = 2 ] || fail "mutual TLS acks: $(cat ok.out)"
gw "$port" ev.bin ca.pem rogue.pem rogue.key >rogue.out
grep -q "^tls-error\|^closed 0" rogue.out || fail "a client certificate of another CA: $(cat rogue.out)"
gw "$port" ev.bin ca.pem >none.out
grep -q "^tls-error\|^closed 0" none.out || fail "no client certificate: $(cat none.out)"
gw "$port" ev.bin ca2.pem gw.pem gw.key >wrongca.out
grep -q "^tls-error SSLCertVerificationError" wrongca.out ||
    fail "the server's certificate against ca2: $(cat wrongca.out)"
python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$port)); s.settimeout(10)
s.sendall(b'\xd4\xd0\xc7\x57\x02\x06\x12\x04test'); d=s.recv(300); print(d[:5].hex(), d)" >plain.out 2>&1
grep -q "^d4d0c75702 .*this port requires TLS" plain.out || fail "a plaintext hello on the TLS port: $(cat plain.out)"

# HTTPS with the same certificate (--tls-cert is --http-tls-cert's default): a record of 1970 is 400, counted
printf '{"vin":"WBA0000000000HTTP","recorded_at":"1970-01-01T00:00:01Z"}\n' >old.json
code=$(curl -s -o old.body -w '%{http_code}' --cacert ca.pem -H 'Content-Type: application/x-ndjson' \
    --data-binary @old.json "https://localhost:$hport/v1/records")
[ "$code" = 400 ] &&
    grep -q 'line 1: recorded_at is 1000 ms since the epoch, more than 3653 days before now' old.body ||
    fail "HTTPS record of 1970: $code $(cat old.body)"
"$tp" schema "${ev[@]}" --decode ev.bin --delimited >ev.json || fail "decode to NDJSON"
code=$(curl -s -o good.body -w '%{http_code}' --cacert ca.pem -H 'Content-Type: application/x-ndjson' \
    --data-binary @ev.json "https://localhost:$hport/v1/records")
[ "$code" = 200 ] || fail "HTTPS records: $code $(cat good.body)"

# /metrics: the built-in ingest's names, this run's values; /readyz 200 (packs were delivered)
curl -s "http://127.0.0.1:$mport/metrics" >metrics
metric() { awk -v k="$1" '$1 == k {print $2}' metrics; }
[ "$(metric telepack_ingest_records_total)" = 240 ] || fail "records_total: $(metric telepack_ingest_records_total)"
[ "$(metric 'telepack_ingest_records_rejected_total{reason="event_time"}')" = 2 ] ||
    fail "event_time rejects: $(grep rejected_total metrics)"
[ "$(metric telepack_ingest_http_records_rejected_total)" = 1 ] || fail "HTTP rejects: $(grep http_records_rej metrics)"
[ "$(metric 'telepack_ingest_gateway_tls_failures_total{reason="client_certificate"}')" -ge 1 ] 2>/dev/null ||
    fail "client_cert TLS failures: $(grep tls_failures metrics)"
[ "$(metric 'telepack_ingest_gateway_tls_failures_total{reason="plaintext"}')" = 1 ] ||
    fail "plaintext TLS failures: $(grep tls_failures metrics)"
[ "$(metric telepack_ingest_gateway_tls_sessions_total)" -ge 1 ] 2>/dev/null ||
    fail "TLS sessions: $(grep sessions metrics)"
[ "$(metric telepack_ingest_packs_total)" -ge 4 ] 2>/dev/null || fail "packs: $(metric telepack_ingest_packs_total)"
[ "$(metric telepack_ingest_records_per_pack_sum)" = 240 ] || fail "records out: $(grep records_per_pack_sum metrics)"
[ "$(metric telepack_ingest_bytes_in_total)" -gt 10000 ] 2>/dev/null || fail "bytes in: $(grep bytes_in metrics)"
[ "$(metric telepack_ingest_bytes_out_total)" -gt 1000 ] 2>/dev/null || fail "bytes out: $(grep bytes_out metrics)"
[ "$(metric telepack_ingest_buffered_bytes)" = 0 ] || fail "buffered bytes: $(grep buffered_bytes metrics)"
[ "$(metric telepack_ingest_delivery_errors_total)" = 0 ] || fail "delivery errors: $(grep delivery_err metrics)"
code=$(curl -s -o ready.body -w '%{http_code}' "http://127.0.0.1:$mport/readyz")
[ "$code" = 200 ] || fail "readyz: $code $(cat ready.body)"

# SIGHUP: a bad certificate file keeps the old one; then the server's certificate of ca2 is served to new connections
cp ca.key live.pem
kill -HUP $wpid
sleep 0.5
grep -q "SIGHUP: keeping the old TLS certificate" w.err || fail "a bad certificate on SIGHUP: $(tail -2 w.err)"
gw "$port" ev.bin ca.pem gw.pem gw.key >kept.out
grep -q "^ack 120$" kept.out || fail "after a bad reload: $(cat kept.out)"
cp srv2.pem live.pem
cp srv2.key live.key
kill -HUP $wpid
sleep 0.5
grep -q "SIGHUP: reloaded the TLS certificate live.pem" w.err || fail "reload not logged: $(tail -2 w.err)"
gw "$port" ev.bin ca.pem gw.pem gw.key >old.out
grep -q "^tls-error SSLCertVerificationError" old.out || fail "after SIGHUP the old CA still verifies: $(cat old.out)"
gw "$port" ev.bin ca2.pem gw.pem gw.key >new.out
grep -q "^ack 120$" new.out || fail "the reloaded certificate: $(cat new.out)"
kill -TERM $wpid; wait $wpid; rc=$?
[ $rc = 0 ] || fail "worker exited $rc: $(tail -3 w.err)"
grep -q "ingest: 480 records of $msg .* taken (360 from gateways, 2 rejected; 1 refused over HTTP)" w.err ||
    fail "summary: $(tail -2 w.err)"

# /readyz names Kafka while no broker is up (the producer's statistics every second here)
"$tp" ingest "${ev[@]}" --brokers 127.0.0.1:1 --topic t --http-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    -X statistics.interval.ms=200 2>nb.err &
npid=$!
pids+=($npid)
mport=
for _ in $(seq 100); do
    mport=$(sed -n 's/.*readyz on .*port \([0-9]*\).*/\1/p' nb.err | head -1)
    [ -n "$mport" ] && break
    sleep 0.1
done
sleep 1
code=$(curl -s -o nb.body -w '%{http_code}' "http://127.0.0.1:$mport/readyz")
[ "$code" = 503 ] && grep -q "kafka: no broker" nb.body || fail "readyz without a broker: $code $(cat nb.body)"
kill -TERM $npid; wait $npid

[ $fails = 0 ] && echo "all schema listener TLS and operations checks passed"
exit $((fails > 0))
