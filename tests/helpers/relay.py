#!/usr/bin/env python3
"""relay.py DIR --to PORT: a plain TCP relay that records both directions.

Listens on 127.0.0.1 (a port the kernel picks), prints "port N" on stdout
when ready, and for each connection K opens one to 127.0.0.1:PORT and
copies bytes both ways, recording them in DIR/conn-K.up (client to
server) and DIR/conn-K.down (server to client). EOF in one direction is
passed on as a half-close. Used to look inside an outer TLS layer: placed
behind a TLS-terminating peer, what it records is what that layer carried."""
import argparse
import os
import socket
import socketserver
import sys
import threading


def pump(src, dst, path):
    with open(path, "wb") as out:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                out.write(data)
                out.flush()
                dst.sendall(data)
        except OSError:
            pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class Relay(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, directory, upstream):
        self.directory = directory
        self.upstream = upstream
        self.count = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        srv = self.server
        with srv.lock:
            srv.count += 1
            k = srv.count
        base = os.path.join(srv.directory, "conn-%d" % k)
        with socket.create_connection(("127.0.0.1", srv.upstream)) as up:
            t = threading.Thread(target=pump, args=(up, self.request, base + ".down"))
            t.start()
            pump(self.request, up, base + ".up")
            t.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--to", type=int, required=True)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    srv = Relay(args.dir, args.to)
    print("port %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
