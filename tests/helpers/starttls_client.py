#!/usr/bin/env python3
"""starttls_client.py PROTO HOST PORT LINE: a plaintext client of PROTO
(smtp, imap, pop3, ftp) that knows nothing of STARTTLS or TLS, the program
wrapped in the client role.

Connects, reads the server's greeting as a plaintext client does (SMTP and
FTP: a whole multi-line reply; IMAP and POP3: one line) and prints it as
"greeting: " + repr of the raw bytes; then sends LINE + CRLF, reads one
line and prints "reply: " + it. Every read is bounded by a 10 s timeout.
Exit status 0, or 2 when the connection ends first."""
import socket
import sys


def main():
    proto, host, port, line = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    s = socket.create_connection((host, port), timeout=10)
    f = s.makefile("rb")
    greeting = b""
    while True:
        got = f.readline(4096)
        if not got:
            print("connection ended in the greeting: %r" % greeting, flush=True)
            return 2
        greeting += got
        if proto in ("imap", "pop3") or len(got) < 4 or got[3:4] != b"-":
            break
    print("greeting: %r" % greeting, flush=True)
    s.sendall(line.encode() + b"\r\n")
    reply = f.readline(4096)
    if not reply:
        print("connection ended before the reply", flush=True)
        return 2
    print("reply: %s" % reply.decode("ascii", "replace").strip(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
