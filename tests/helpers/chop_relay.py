#!/usr/bin/env python3
"""chop_relay.py --to PORT [--seed N]: a plain TCP relay that re-segments.

Listens on 127.0.0.1 (a port the kernel picks), prints "port N" when
ready, and for each connection opens one to 127.0.0.1:PORT and copies
bytes both ways, cutting what it reads into random pieces (1 byte, a few
bytes, an MTU, 16 KiB, or all of it) sent one by one with TCP_NODELAY,
with random short pauses in between: what TLS records look like when the
network splits and delays them. EOF in one direction is passed on as a
half-close, and the last bytes before it are passed on first. Used between
two wrapped programs, so that the engines on both ends see the worst
segmentation and timing a real network can produce."""
import argparse
import random
import socket
import sys
import threading
import time

SIZES = (1, 2, 5, 13, 100, 1448, 4096, 16384, 16389, 65536)


def pump(src, dst, rng):
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            while data:
                n = len(data) if rng.random() < 0.3 else rng.choice(SIZES)
                dst.sendall(data[:n])
                data = data[n:]
                if rng.random() < 0.02:
                    time.sleep(rng.random() * 0.005)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve(client, target, seed):
    try:
        upstream = socket.create_connection(("127.0.0.1", target))
    except OSError:
        client.close()
        return
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threads = [
        threading.Thread(target=pump, args=(client, upstream, random.Random(seed)), daemon=True),
        threading.Thread(target=pump, args=(upstream, client, random.Random(seed + 1)), daemon=True),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    upstream.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print("port", srv.getsockname()[1], flush=True)
    conn_no = 0
    while True:
        client, _ = srv.accept()
        conn_no += 1
        threading.Thread(target=serve, args=(client, args.to, args.seed * 7919 + conn_no),
                         daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
