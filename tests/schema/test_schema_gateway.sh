#!/usr/bin/env bash
# Gateways sending records of a run-time schema (ingest --schema --listen) on librdkafka's mock cluster, with a small
# Python gateway: protocol v2 records are decoded under the schema, a bad one (wrong wire type, empty key) rejected
# by a REJECT frame naming it while the rest are acked once durable; protocol v1 acked the same, a bad record
# closing the connection; tokens: a string key needs a token for every vehicle (REJECT code 3); the packs load
# (every record, every column). A built-in `telepack ingest` hosts the mock cluster.
# Usage: test_schema_gateway.sh DATA_DIR SOURCE_DIR
set -u
data=$1
src=$2
tp=${TELEPACK:?set TELEPACK to the telepack binary}
. "$(dirname "$0")/../support/schema_script.sh"

start_mock_cluster

start_worker() {
    local log=$1
    shift
    "$tp" ingest "${ev[@]}" --brokers "$boot" --listen 127.0.0.1:0 --linger-ms 50 "$@" 2>"$log" &
    wpid=$!
    pids+=($wpid)
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening for gateways with records of .* (port \([0-9]*\)),.*/\1/p' "$log" | head -1)
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || fail "worker did not start: $(cat "$log")"
}

# gateway.py VERSION PORT FILE [TOKEN] [BAD...]: sends the delimited records of FILE (a bad record "wiretype" or
# "novin" inserted after record 2 for each BAD), prints "ack A" and one "reject N CODE REASON" line each, or
# "closed A" when the server closed the connection first.
cat >"$tmp/gateway.py" <<'PY'
import socket, sys
ver, port, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
token = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else ""
bad = {"wiretype": b"\x08\x01", "novin": b"\x18\x01"}
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
d, recs, i = open(path, "rb").read(), [], 0
while i < len(d):
    n, j = read_varint(d, i); recs.append(d[j:j + n]); i = j + n
for k, b in enumerate(sys.argv[5:]):
    recs.insert(2 + k, bad[b])
sock = socket.create_connection(("127.0.0.1", port))
if ver == 2:
    hello = (b"\x0a" + varint(len(token)) + token.encode() if token else b"") + b"\x12\x04test"
    out = b"\xd4\xd0\xc7\x57\x02" + varint(len(hello)) + hello
    out += b"".join(b"\x01" + varint(len(r)) + r for r in recs)
else:
    out = b"".join(varint(len(r)) + r for r in recs)
sock.sendall(out)
sock.settimeout(20)
buf, ack, pos, hello_done = b"", 0, 0, ver == 1
try:
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
            if ver == 1:
                n, j = read_varint(buf, 0)
                if n is None: break
                ack, buf = n, buf[j:]
                continue
            if len(buf) < 2: break
            n, j = read_varint(buf, 1)
            if n is None or len(buf) < j + n: break
            t, p, buf = buf[0], buf[j:j + n], buf[j + n:]
            if t == 0x81: ack = read_varint(p, 0)[0]
            elif t == 0x82:
                num, k = read_varint(p, 0); code, k = read_varint(p, k)
                print("reject", num, code, p[k:].decode("utf-8", "replace"))
except socket.timeout:
    pass
print(("ack" if ack >= len(recs) else "closed"), ack)
PY
gw() { python3 "$tmp/gateway.py" "$@"; }

"${gen[@]}" gen 6 40 "$tmp/ev.bin" "$tmp/ev.exp"
start_worker "$tmp/w1.err" --topic evg --batch-records 16
# v2: 240 good records and two bad ones after record 2: rejected by number and reason, the rest acked (242)
gw 2 "$port" "$tmp/ev.bin" - wiretype novin >"$tmp/v2.out" || fail "gateway v2 client"
grep -q "^reject 3 1 does not decode as $msg: at byte 0: field vin (number 1, string) has wire type 0, not 2" "$tmp/v2.out" ||
    fail "v2 reject of a bad record: $(cat "$tmp/v2.out")"
grep -q "^reject 4 1 key vin is empty" "$tmp/v2.out" || fail "v2 reject of an empty key: $(cat "$tmp/v2.out")"
grep -q "^ack 242$" "$tmp/v2.out" || fail "v2 acks: $(cat "$tmp/v2.out")"
[ "$(grep -c '^reject' "$tmp/v2.out")" = 2 ] || fail "v2 rejects: $(cat "$tmp/v2.out")"
# v1: all acked; a bad record closes the connection (v1 cannot reject; the 2 records before it were taken, not acked:
# the gateway resends them), the worker goes on
gw 1 "$port" "$tmp/ev.bin" >"$tmp/v1.out" || fail "gateway v1 client"
grep -q "^ack 240$" "$tmp/v1.out" || fail "v1 acks: $(cat "$tmp/v1.out")"
gw 1 "$port" "$tmp/ev.bin" - wiretype >"$tmp/v1bad.out"
grep -q "^closed" "$tmp/v1bad.out" || fail "v1 bad record: $(cat "$tmp/v1bad.out")"
grep -q "record 3 is refused: does not decode as $msg" "$tmp/w1.err" || fail "v1 close not logged: $(tail -3 "$tmp/w1.err")"
gw 2 "$port" "$tmp/ev.bin" >"$tmp/again.out"
grep -q "^ack 240$" "$tmp/again.out" || fail "after the refusals: $(cat "$tmp/again.out")"
kill -TERM $wpid; wait $wpid; rc=$?
[ $rc = 0 ] || fail "worker exited $rc: $(tail -3 "$tmp/w1.err")"
grep -q "ingest: 722 records of $msg (schema 99b3bbc325167eac) taken (722 from gateways, 3 rejected; 0 refused over HTTP)" "$tmp/w1.err" ||
    fail "summary: $(tail -2 "$tmp/w1.err")"

"$tp" sink "${ev[@]}" --brokers "$boot" --topic evg --group gg --table ev_gw --warehouse "sqlite:$tmp/ev.db" \
    --create-table --flush-ms 100 -X log_level=3 2>"$tmp/sink.err" &
spid=$!
pids+=($spid)
for _ in $(seq 600); do
    [ "$(sqlite3 "$tmp/ev.db" 'SELECT count(*) FROM ev_gw' 2>/dev/null || echo 0)" = 240 ] && break
    sleep 0.1
done
sleep 0.5
kill -TERM $spid; wait $spid
"${gen[@]}" check-sqlite "$tmp/ev.exp" "$tmp/ev.db" ev_gw || fail "rows loaded from the gateway packs differ from the records"
grep -q "sending it to" "$tmp/sink.err" && fail "a gateway pack went to the DLQ: $(grep 'sending it to' "$tmp/sink.err" | head -2)"

# Memory cap and quiet connections: 1.5 MB of records against --max-buffered-bytes 1M with a linger of 60 s and packs
# of up to 100000 records: reading pauses at the cap, the oldest groups are packed once the open ones hold half of
# it, and once the gateway has sent everything (quiet for 20 ms) the groups holding its records are packed, so every
# record is acked within the client's 20 s instead of at the 60 s linger (without the quiet flush: 3787 acked).
"${gen[@]}" gen 100 100 "$tmp/big.bin" "$tmp/big.exp"
start_worker "$tmp/w3.err" --topic evg3 --max-buffered-bytes 1M --linger-ms 60000 --batch-records 100000
gw 2 "$port" "$tmp/big.bin" >"$tmp/big.out"
grep -q "^ack 10000$" "$tmp/big.out" || fail "memory cap: $(tail -2 "$tmp/big.out")"
kill -TERM $wpid; wait $wpid

# Tokens: a token without a list takes the VINs; one with an id list gets REJECT code 3 for each.
printf '%s\n%s 1-5\n' aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb >"$tmp/tokens"
start_worker "$tmp/w2.err" --topic evg2 --auth-tokens "$tmp/tokens"
gw 2 "$port" "$tmp/ev.bin" >"$tmp/notoken.out"
grep -q "^refused 3" "$tmp/notoken.out" || fail "no token: $(cat "$tmp/notoken.out")"
gw 2 "$port" "$tmp/ev.bin" aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa >"$tmp/all.out"
grep -q "^ack 240$" "$tmp/all.out" && ! grep -q reject "$tmp/all.out" || fail "token for every vehicle: $(cat "$tmp/all.out")"
gw 2 "$port" "$tmp/ev.bin" bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb >"$tmp/list.out"
[ "$(grep -c '^reject [0-9]* 3 a string key needs credentials for every vehicle' "$tmp/list.out")" = 240 ] &&
    grep -q "^ack 240$" "$tmp/list.out" || fail "token with a list: $(head -3 "$tmp/list.out")"
kill -TERM $wpid; wait $wpid

[ $fails = 0 ] && echo "all schema gateway checks passed"
exit $((fails > 0))
