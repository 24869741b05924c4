#!/usr/bin/env python3
"""closerange.py PORT: what closing descriptor ranges does to a wrapped
connection to an echo server on 127.0.0.1:PORT (a program's daemonizing
or subprocess code does this).

1. CLOSE_RANGE_CLOEXEC over the wrapped descriptor leaves it open and
   still wrapped: getpeername still names the TCP peer, it still echoes,
   and it is close-on-exec now.
2. closefrom(fd + 1) (os.closerange(fd + 1, 2**31 - 1), the call Python's
   own code makes) with the wrapped descriptor below the range: done in a
   blink (it used to walk 2^31 numbers), and the descriptor still echoes.
3. close_range over the wrapped descriptor closes it: a new connection
   that gets the same number is a new, working, wrapped connection.
Prints one line per step; "ok" at the end."""
import ctypes
import fcntl
import os
import socket
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
CLOSE_RANGE_CLOEXEC = 4


def echo(s, text):
    s.sendall(text.encode() + b"\n")
    got = b""
    while not got.endswith(b"\n"):
        chunk = s.recv(100)
        if not chunk:
            raise SystemExit("EOF instead of the echo of " + text)
        got += chunk
    assert got.decode().strip() == text, got


def main():
    port = int(sys.argv[1])
    s = socket.create_connection(("127.0.0.1", port))
    fd = s.fileno()
    echo(s, "first")
    if libc.close_range(fd, fd, CLOSE_RANGE_CLOEXEC) != 0:
        raise SystemExit("close_range CLOEXEC: errno %d" % ctypes.get_errno())
    peer = s.getpeername()
    assert peer == ("127.0.0.1", port), peer
    assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    echo(s, "after cloexec")
    print("cloexec: still wrapped, peer", peer[0], flush=True)
    start = time.monotonic()
    os.closerange(fd + 1, 2**31 - 1)
    took = time.monotonic() - start
    echo(s, "after closerange")
    # A bound against walking the number space (that took about 15 s), not
    # a speed test: the walk of the table takes microseconds.
    print("closerange above it: %s" % ("fast" if took < 5 else "took %.1f s" % took), flush=True)
    number = fd
    if libc.close_range(fd, fd, 0) != 0:
        raise SystemExit("close_range: errno %d" % ctypes.get_errno())
    s.detach()
    t = socket.create_connection(("127.0.0.1", port))
    assert t.getpeername() == ("127.0.0.1", port)
    echo(t, "new")
    print("closed; the number", "reused" if t.fileno() == number else "not reused",
          "by a working connection", flush=True)
    print("ok", flush=True)


if __name__ == "__main__":
    main()
