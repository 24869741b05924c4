#!/usr/bin/env python3
"""reset_visibility.py to-client|to-server ROUNDS: one side of a loopback
connection sends a few bytes and closes with SO_LINGER {1, 0} (a reset,
no FIN); once its close() has returned, the other side (same process,
another thread, told by an Event) asks what TCP tells it:
  getpeername()  must fail with ENOTCONN (the reset is already in);
  recv()         must return the bytes sent before the reset at once
                 (a non-blocking recv() does not say EAGAIN), then
                 raise ECONNRESET.
CPython's ssl module relies on both (TestPreHandshakeClose: data before
a TLS handshake on a connection already closed). Prints the outcomes as
counts; bare TCP prints {'ENOTCONN, bytes, ECONNRESET': ROUNDS}.

to-client: the accepting side resets, the connecting side checks.
to-server: the connecting side resets, the accepting side checks.
to-client-spin, to-server-spin: the checking side does not wait to be
told: it calls getpeername() over and over until it fails, then recv()s
at once (the moment nestls's engine may not have taken the reset in)."""
import collections
import errno
import socket
import struct
import sys
import threading
import time

mode, rounds = sys.argv[1], int(sys.argv[2])
spin = mode.endswith("-spin")
mode = mode.removesuffix("-spin")
payload = b"HTTP/1.0 307 Temporary Redirect\r\nLocation: https://example.com/\r\n\r\n"
seen = collections.Counter()


def reset_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.send(payload)
    sock.close()


def observe(sock, spin):
    parts = []
    deadline = time.monotonic() + 10
    while True:
        try:
            sock.getpeername()
            if spin and time.monotonic() < deadline:
                continue
            parts.append("connected")
        except OSError as e:
            parts.append(errno.errorcode.get(e.errno, str(e.errno)))
        break
    got = b""
    sock.setblocking(False)  # as CPython's ssl module looks: at once
    try:
        got = sock.recv(4096)
    except BlockingIOError:
        parts.append("EAGAIN")
    except OSError:
        pass  # the reset itself: recv() below says which
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
    accepted, connected, closed = threading.Event(), threading.Event(), threading.Event()
    result = {}

    def server():
        conn, _ = lst.accept()
        accepted.set()
        if mode == "to-client":
            # Once connect() has returned: a reset before that would be
            # connect()'s failure (SO_ERROR), over nestls as over TCP
            # whose connect() had to wait.
            connected.wait(20)
            reset_close(conn)
            closed.set()
        else:
            if not spin:
                closed.wait(20)
            result["seen"] = observe(conn, spin)
            conn.close()

    t = threading.Thread(target=server)
    t.start()
    cli = socket.create_connection(lst.getsockname(), timeout=20)
    connected.set()
    accepted.wait(20)
    if mode == "to-client":
        if not spin:
            closed.wait(20)
        result["seen"] = observe(cli, spin)
        cli.close()
    else:
        reset_close(cli)
        closed.set()
    t.join()
    lst.close()
    seen[result.get("seen", "no result")] += 1
print(dict(seen))
