#!/usr/bin/env python3
"""era_client.py PORT DIR N: one connection per era, in one process (run
wrapped, so that its TLS sessions can be resumed across eras).

For K = 1..N: waits (at most 30 s) until DIR/go-K exists, connects to
127.0.0.1:PORT, sends "era K", reads the echo and prints "K: ok", or
"K: error NAME" when the connection fails. A reload test changes the
files between eras; each era's answer shows what the new files allowed."""
import os
import socket
import sys
import time


def main():
    port, directory, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for k in range(1, n + 1):
        go = os.path.join(directory, "go-%d" % k)
        for _ in range(300):
            if os.path.exists(go):
                break
            time.sleep(0.1)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
                s.sendall(b"era %d\n" % k)
                reply = s.recv(4096)
                print("%d: %s" % (k, "ok" if reply.startswith(b"era") else "empty"), flush=True)
        except OSError as e:
            print("%d: error %s" % (k, e.__class__.__name__), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
