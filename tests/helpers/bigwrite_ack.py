#!/usr/bin/env python3
"""bigwrite_ack.py server PORT ROUNDS SIZE | client PORT ROUNDS SIZE:
request/response with large requests. The client writes SIZE bytes with
one os.write() call (a blocking socket: the kernel, or nestls, takes it
all), then waits for the server's 32-byte SHA-256 prefix of those bytes
before the next round. The server reads exactly SIZE bytes per round and
answers. Nothing more is written until the answer comes, so any byte the
client's side keeps back (instead of sending) stalls the exchange.
Prints "ok ROUNDS" at the end; exits 1 on a wrong answer."""
import hashlib
import os
import socket
import sys


def read_exactly(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise SystemExit("early EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def main():
    role, port, rounds, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if role == "server":
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(1)
        print("port", srv.getsockname()[1], flush=True)
        s, _ = srv.accept()
        for _ in range(rounds):
            s.sendall(hashlib.sha256(read_exactly(s, size)).digest())
        s.close()
        print("ok", rounds, flush=True)
        return 0
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.settimeout(None)
    for k in range(rounds):
        data = os.urandom(size)
        n = os.write(s.fileno(), data)
        if n != size:
            raise SystemExit("short write %d of %d" % (n, size))
        s.settimeout(30)  # a stall shows as a timeout
        if read_exactly(s, 32) != hashlib.sha256(data).digest():
            raise SystemExit("round %d: wrong answer" % k)
        s.settimeout(None)
    s.close()
    print("ok", rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
