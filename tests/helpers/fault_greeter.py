#!/usr/bin/env python3
"""fault_greeter.py DIR --greeting TEXT [--port N]: a plaintext TCP server
that speaks first, and records how each connection ended for it.

Listens on 127.0.0.1 (port N, or one the kernel picks) and prints "port N"
when ready. For connection K (1, 2, ...) it writes TEXT and a newline at
once, the moment accept() returns (before any TLS layer a preloaded
nestls wraps around it can be up: those bytes must wait, and never leave
in plaintext), then reads until the end and writes DIR/conn-K.done:
  "BYTES SHA256 eof"  or  "BYTES SHA256 error ERRNAME"
(an error while writing the greeting counts as the end too). Serves
connections concurrently; it never closes one before the end, except the
first N connections with --close N: it closes those right after the
greeting, reading nothing (a program that closes its socket while the TLS
layers a preloaded nestls wraps around it are still coming up), and
writes "0 SHA256 closed"."""
import argparse
import errno
import hashlib
import os
import socketserver
import sys
import threading


class Greeter(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, port, directory, greeting, close_first=0):
        self.directory = directory
        self.close_first = close_first
        self.greeting = greeting
        self.count = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Handler)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        srv = self.server
        with srv.lock:
            srv.count += 1
            k = srv.count
        close_at_once = k <= srv.close_first
        digest = hashlib.sha256()
        size = 0
        end = "eof"
        try:
            self.request.sendall(srv.greeting)
            if close_at_once:
                self.request.close()
                end = "closed"
            while not close_at_once:
                data = self.request.recv(1 << 16)
                if not data:
                    break
                digest.update(data)
                size += len(data)
        except OSError as e:
            end = "error " + errno.errorcode.get(e.errno, str(e.errno))
        done = os.path.join(srv.directory, "conn-%d.done" % k)
        with open(done + ".tmp", "w") as f:
            f.write("%d %s %s\n" % (size, digest.hexdigest(), end))
        os.rename(done + ".tmp", done)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--greeting", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--close", type=int, default=0, metavar="N",
                    help="close the first N connections right after the greeting")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    srv = Greeter(args.port, args.dir, args.greeting.encode() + b"\n", args.close)
    print("port %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
