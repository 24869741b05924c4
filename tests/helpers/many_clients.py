#!/usr/bin/env python3
"""many_clients.py HOST PORT [--clients 50] [--bytes 65536]: concurrent
echo clients that check every reply.

All clients connect at once (a barrier releases them together); client i
sends its own bytes (different from every other client's), reads back the
same number of bytes, and compares. Prints one line per failing client and
a summary "N of N clients got their bytes back"; exit status 0 only when
every client did."""
import argparse
import hashlib
import socket
import sys
import threading


def payload(i, size):
    out = bytearray()
    block = 0
    while len(out) < size:
        out += hashlib.sha256(b"client %d block %d" % (i, block)).digest()
        block += 1
    return bytes(out[:size])


def client(i, args, barrier, results):
    data = payload(i, args.bytes)
    try:
        barrier.wait(timeout=30)
        with socket.create_connection((args.host, args.port), timeout=30) as s:
            sender = threading.Thread(target=s.sendall, args=(data,))
            sender.start()  # read while writing: neither side may block the other
            got = bytearray()
            while len(got) < len(data):
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                got += chunk
            sender.join()
            if bytes(got) != data:
                results[i] = "client %d: sent %d bytes, got %d back, %s" % (
                    i, len(data), len(got), "short" if len(got) < len(data) else "different")
                return
            results[i] = None
    except Exception as e:  # noqa: BLE001 - every failure is reported per client
        results[i] = "client %d: %s: %s" % (i, type(e).__name__, e)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--bytes", type=int, default=65536)
    args = ap.parse_args()
    results = ["did not finish"] * args.clients
    barrier = threading.Barrier(args.clients)
    threads = [threading.Thread(target=client, args=(i, args, barrier, results))
               for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = [r for r in results if r is not None]
    for r in bad:
        print(r)
    print("%d of %d clients got their bytes back" % (args.clients - len(bad), args.clients))
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
