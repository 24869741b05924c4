#!/usr/bin/env python3
"""sink.py DIR [--port N] [--hash-only]: a TCP server that records what
every connection sends.

Listens on 127.0.0.1 (port N, or one the kernel picks) and prints
"port N" on stdout when ready. For connection K (1, 2, ...):
  DIR/accepted.log  gets "K HOST:PORT" the moment it is accepted (so a
                    test can prove that nothing connected);
  DIR/conn-K.bin    everything received (unless --hash-only);
  DIR/conn-K.done   written when the connection ends:
                    "BYTES SHA256 eof" or "BYTES SHA256 error ERRNAME".
It never sends anything, and serves connections concurrently."""
import argparse
import errno
import hashlib
import os
import socketserver
import sys
import threading


class Sink(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port, directory, hash_only):
        self.directory = directory
        self.hash_only = hash_only
        self.count = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Handler)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        srv = self.server
        with srv.lock:
            srv.count += 1
            k = srv.count
            with open(os.path.join(srv.directory, "accepted.log"), "a") as log:
                log.write("%d %s:%d\n" % (k, self.client_address[0], self.client_address[1]))
        digest = hashlib.sha256()
        size = 0
        end = "eof"
        out = None
        if not srv.hash_only:
            out = open(os.path.join(srv.directory, "conn-%d.bin" % k), "wb")
        try:
            while True:
                data = self.request.recv(1 << 18)
                if not data:
                    break
                digest.update(data)
                size += len(data)
                if out:
                    out.write(data)
        except OSError as e:
            end = "error " + errno.errorcode.get(e.errno, str(e.errno))
        if out:
            out.close()
        done = os.path.join(srv.directory, "conn-%d.done" % k)
        with open(done + ".tmp", "w") as f:
            f.write("%d %s %s\n" % (size, digest.hexdigest(), end))
        os.rename(done + ".tmp", done)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--hash-only", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    srv = Sink(args.port, args.dir, args.hash_only)
    print("port %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
