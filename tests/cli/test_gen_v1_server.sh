#!/usr/bin/env bash
# A v2 gateway (telepack gen --connect) meeting a v1-only server: such a server reads the v2 magic as a record length
# of 183 MB, above its limit, and closes the connection. The client must say so in a sentence that points at a v1-only
# server, keep its records (none acked, none lost), and retry with backoff instead of spinning.
set -euo pipefail
tp=${TELEPACK:?TELEPACK must point at the telepack binary}
work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
    exit 1
}

# The fake v1 server: reads the first 4 bytes of each connection (a v1 length prefix), then closes it, as a v1 server
# does with a length above its record limit. Counts connections.
python3 - "$work" <<'PY' &
import socket, sys
work = sys.argv[1]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(16)
open(f"{work}/port", "w").write(str(s.getsockname()[1]))
n = 0
s.settimeout(30)
while True:
    try:
        c, _ = s.accept()
    except socket.timeout:
        break
    c.settimeout(5)
    first = b""
    try:
        while len(first) < 4:
            b = c.recv(4 - len(first))
            if not b:
                break
            first += b
    except socket.timeout:
        pass
    n += 1
    with open(f"{work}/conns", "w") as f:
        f.write(f"{n} {first.hex()}\n")
    c.close()
PY
server=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

rc=0
timeout 6 "$tp" gen --vehicles 2 --seconds 2 --connect "127.0.0.1:$port" 2>"$work/gen.log" || rc=$?
[ "$rc" != 0 ] || fail "gen reported success against a server that closes every connection"
grep -q "before its hello (a v1-only server" "$work/gen.log" ||
    fail "the client did not say the server closed before its hello"
read -r conns magic <"$work/conns"
[ "$magic" = d4d0c757 ] || fail "the client did not open with the v2 magic (server saw '$magic')"
# Backoff: a handful of attempts in 6 s, not a spin.
[ "$conns" -ge 2 ] && [ "$conns" -le 20 ] || fail "$conns connection attempts in 6 s: want a few, with backoff"
echo "ok: $conns attempts, each closed before the hello, reported as a v1-only server"
