#!/usr/bin/env python3
"""A TCP forwarder that can be switched off and on, to make a real server "unavailable" for one client.

Usage: tcp_gate.py LISTEN_PORT TARGET_HOST:TARGET_PORT CONTROL_FILE
While CONTROL_FILE contains "down" it refuses new connections (closes them at once) and drops open ones;
otherwise it forwards bytes both ways. Prints "ready" on stdout when listening.
"""
import os
import selectors
import socket
import sys


def main():
    port = int(sys.argv[1])
    host, tport = sys.argv[2].rsplit(":", 1)
    control = sys.argv[3]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(64)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    peers = {}
    print("ready", flush=True)

    def down():
        try:
            with open(control) as f:
                return f.read().strip() == "down"
        except OSError:
            return False

    def close(s):
        other = peers.pop(s, None)
        for x in (s, other):
            if x is None:
                continue
            peers.pop(x, None)
            try:
                sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    while True:
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            if s is ls:
                c, _ = ls.accept()
                if down():
                    c.close()
                    continue
                try:
                    u = socket.create_connection((host, int(tport)), timeout=5)
                except OSError:
                    c.close()
                    continue
                for a, b in ((c, u), (u, c)):
                    a.setblocking(True)
                    peers[a] = b
                    sel.register(a, selectors.EVENT_READ, None)
                continue
            if s not in peers:
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                close(s)
                continue
            try:
                peers[s].sendall(data)
            except (OSError, KeyError):
                close(s)
        if down():
            for s in list(peers):
                close(s)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        os._exit(0)
