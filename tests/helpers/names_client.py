#!/usr/bin/env python3
"""names_client.py PORT NAME [OTHER...]: names_client.c's -c mode in Python.

Resolves NAME, then each OTHER, with socket.getaddrinfo (IPv4, as
socket.create_connection does), and connects to NAME's first address: a
copy, as every Python program connects. Sends stdin, half-closes, and
prints the reply. Exit status 0; 3 when resolving or connect fails, with
"names_client.py: connect: EACCES (...)" on stderr; 4 for other I/O."""
import errno
import os
import socket
import sys


def fail(what, e, status):
    name = errno.errorcode.get(e.errno, "E?") if e.errno else type(e).__name__
    print("names_client.py: %s: %s (%s)" % (what, name, e.strerror or e), file=sys.stderr)
    return status


def main():
    if len(sys.argv) < 3:
        print("usage: names_client.py PORT NAME [OTHER...]", file=sys.stderr)
        return 1
    port, names = int(sys.argv[1]), sys.argv[2:]
    try:
        found = [socket.getaddrinfo(n, port, socket.AF_INET, socket.SOCK_STREAM) for n in names]
    except socket.gaierror as e:
        return fail("getaddrinfo", e, 3)
    family, kind, proto, _, address = found[0][0]
    s = socket.socket(family, kind, proto)
    try:
        s.connect(address)
    except OSError as e:
        return fail("connect", e, 3)
    try:
        s.sendall(sys.stdin.buffer.read())
        s.shutdown(socket.SHUT_WR)
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            os.write(1, chunk)
    except OSError as e:
        return fail("I/O", e, 4)
    return 0


if __name__ == "__main__":
    sys.exit(main())
