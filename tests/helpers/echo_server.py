#!/usr/bin/env python3
"""echo_server.py thread|fork [--port N]: a TCP echo server.

thread: socketserver.ThreadingTCPServer (one thread per connection);
fork:   socketserver.ForkingTCPServer (one child process per connection,
        the parent closes its copy at once).
Listens on 127.0.0.1 or --host (port N, or one the kernel picks), prints "port N"
on stdout when ready, and sends back every byte it receives until the
client's EOF, then closes."""
import argparse
import socket
import socketserver
import sys


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(1 << 16)
            if not data:
                return
            self.request.sendall(data)


class Threading(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128


class Forking(socketserver.ForkingTCPServer):
    allow_reuse_address = True
    request_queue_size = 128
    max_children = 200


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["thread", "fork"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    cls = Threading if args.mode == "thread" else Forking
    if ":" in args.host:
        cls = type(cls.__name__ + "6", (cls,), {"address_family": socket.AF_INET6})
    srv = cls((args.host, args.port), Echo)
    print("port %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
