#!/usr/bin/env python3
"""step_client.py PORT GOFILE: two connections to 127.0.0.1:PORT, one
before and one after something changes (a plain client, run wrapped).

Connection 1 sends "one" and prints "1: REPLY", then stays open; once
GOFILE exists (at most 30 s), connection 2 sends "two" and prints
"2: REPLY" (or "2: error NAME" when it fails), and then connection 1
sends "three" and prints "1 again: REPLY" (or its error). The replies are
an echo server's. Exit status 0 when connection 1 carried both lines."""
import os
import socket
import sys
import time


def exchange(sock, line):
    sock.sendall(line.encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def main():
    port, gofile = int(sys.argv[1]), sys.argv[2]
    first = socket.create_connection(("127.0.0.1", port), timeout=20)
    print("1:", exchange(first, "one"), flush=True)
    for _ in range(300):
        if os.path.exists(gofile):
            break
        time.sleep(0.1)
    try:
        second = socket.create_connection(("127.0.0.1", port), timeout=20)
        print("2:", exchange(second, "two"), flush=True)
        second.close()
    except OSError as e:
        print("2: error", e.__class__.__name__, flush=True)
    try:
        print("1 again:", exchange(first, "three"), flush=True)
    except OSError as e:
        print("1 again: error", e.__class__.__name__, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
