#!/usr/bin/env python3
"""reset_visibility.py to-client|to-server ROUNDS: one side of a loopback
connection sends a few bytes and closes with SO_LINGER {1, 0} (a reset,
no FIN); once its close() has returned, the other side (same process,
another thread, told by an Event) asks what TCP tells it:
  getpeername()  must fail with ENOTCONN (the reset is already in);
  recv()         must return the bytes sent before the reset, then
                 raise ECONNRESET.
CPython's ssl module relies on both (TestPreHandshakeClose: data before
a TLS handshake on a connection already closed). Prints the outcomes as
counts; bare TCP prints {'ENOTCONN, bytes, ECONNRESET': ROUNDS}.

to-client: the accepting side resets, the connecting side checks.
to-server: the connecting side resets, the accepting side checks."""
import collections
import errno
import socket
import struct
import sys
import threading

mode, rounds = sys.argv[1], int(sys.argv[2])
payload = b"HTTP/1.0 307 Temporary Redirect\r\nLocation: https://example.com/\r\n\r\n"
seen = collections.Counter()


def reset_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.send(payload)
    sock.close()


def observe(sock):
    parts = []
    try:
        sock.getpeername()
        parts.append("connected")
    except OSError as e:
        parts.append(errno.errorcode.get(e.errno, str(e.errno)))
    got = b""
    sock.settimeout(10)
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                parts.append("bytes" if got == payload else f"{len(got)} B")
                parts.append("EOF")
                break
            got += chunk
    except OSError as e:
        parts.append("bytes" if got == payload else f"{len(got)} B")
        parts.append(errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__)
    return ", ".join(parts)


for _ in range(rounds):
    lst = socket.create_server(("127.0.0.1", 0))
    accepted, closed = threading.Event(), threading.Event()
    result = {}

    def server():
        conn, _ = lst.accept()
        accepted.set()
        if mode == "to-client":
            reset_close(conn)
            closed.set()
        else:
            closed.wait(20)
            result["seen"] = observe(conn)
            conn.close()

    t = threading.Thread(target=server)
    t.start()
    cli = socket.create_connection(lst.getsockname(), timeout=20)
    accepted.wait(20)
    if mode == "to-client":
        closed.wait(20)
        result["seen"] = observe(cli)
        cli.close()
    else:
        reset_close(cli)
        closed.set()
    t.join()
    lst.close()
    seen[result.get("seen", "no result")] += 1
print(dict(seen))
