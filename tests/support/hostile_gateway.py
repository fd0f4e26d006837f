#!/usr/bin/env python3
"""Hostile gateway connections for the end-to-end tests: each case connects to an ingest worker, sends bytes that
break docs/GATEWAY.md, and must see the worker close the connection within the timeout.

Usage: hostile_gateway.py HOST:PORT [TIMEOUT_S]. Prints one line per case; exits 1 if any connection stayed open or
was acked records it never sent.
"""
import os
import random
import socket
import sys
import time

CASES = [
    ("giant length prefix (2^64-1)", b"\xff" * 9 + b"\x01"),
    ("varint longer than 10 bytes", b"\xff" * 11 + b"\x01"),
    ("length above max_record_bytes (1 MB)", b"\x80\x80\x40" + b"\x00" * 64),
    ("record body that is not a VehicleRecord", b"\x14" + b"\xff" * 20),
    ("1 MiB of random bytes", random.Random(5).randbytes(1 << 20)),
]


def run(addr, payload, timeout):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(timeout)
    got = b""
    t0 = time.monotonic()
    try:
        s.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):
        return "closed while sending", got, time.monotonic() - t0
    try:
        while True:
            b = s.recv(4096)
            if not b:
                return "closed", got, time.monotonic() - t0
            got += b
    except ConnectionResetError:
        return "reset", got, time.monotonic() - t0
    except socket.timeout:
        return "still open", got, time.monotonic() - t0
    finally:
        s.close()


def main():
    addr = sys.argv[1]
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    bad = 0
    for name, payload in CASES:
        how, got, dt = run(addr, payload, timeout)
        ok = how != "still open" and not any(got)  # an ack other than 0 would be an ack for records never sent
        bad += not ok
        print(f"{'ok' if ok else 'FAIL'}: {name}: connection {how} after {dt:.2f} s, {len(got)} ack bytes")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
