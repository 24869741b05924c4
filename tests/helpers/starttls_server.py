#!/usr/bin/env python3
"""starttls_server.py tls|plain PROTO [options]: STARTTLS peers for tests.

tls PROTO --cert C --key K [--refuse LINE] [--extra]
    A server that speaks PROTO's real plaintext prelude (smtp, imap, pop3,
    ftp): greeting, capabilities, STARTTLS; then wraps the socket with
    Python's ssl module (certificate C, key K) and, inside TLS, answers
    every line L with "echo: L\\r\\n" and prints "tls-received: L".
    Greetings are multi-line where the protocol allows it (smtp, ftp), so
    that a client must read whole replies. It prints "greeting-sent" and
    "tls-up" as it goes.
      --refuse LINE  answer the STARTTLS command with LINE instead, then
                     wait for the client to close (prints "refused").
      --extra        send a plaintext line right after the STARTTLS answer
                     (an injection a client must refuse).
plain PROTO
    A plaintext line server, the program wrapped in the server role: sends
    PROTO's greeting (SMTP and FTP multi-line; none for postgres), then
    answers each line L with "echo: L\\r\\n" and closes after the first.

Both listen on 127.0.0.1 (--port N, or one the kernel picks), print "port N" when
ready, serve connections one after another, and stop on SIGTERM."""
import argparse
import socket
import ssl
import sys

# Greetings of the plaintext program (server role): nestls must drop them.
PLAIN_GREETING = {
    "smtp": b"220-plain.example first line of a multi-line greeting\r\n"
            b"220 plain.example ESMTP program\r\n",
    "imap": b"* OK plain.example IMAP program ready\r\n",
    "pop3": b"+OK plain.example POP3 program ready\r\n",
    "ftp": b"220-plain.example FTP program\r\n220 plain.example ready\r\n",
    "postgres": b"",
}

# Greetings of the STARTTLS server (client role): nestls must hand them to
# the program byte for byte.
TLS_GREETING = {
    "smtp": b"220-mx.test ESMTP starttls test server\r\n220 mx.test ready\r\n",
    "imap": b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] imap.test ready\r\n",
    "pop3": b"+OK pop3.test ready\r\n",
    "ftp": b"220-ftp.test welcome\r\n220 ftp.test ready\r\n",
}


def out(msg):
    print(msg, flush=True)


def read_line(f):
    line = f.readline(4096)
    if not line:
        raise EOFError("peer closed")
    return line


def prelude(proto, conn, f, args):
    """Speak PROTO's server prelude; True when TLS must start."""
    conn.sendall(TLS_GREETING[proto])
    out("greeting-sent")
    answer = None
    for _ in range(10):
        line = read_line(f)
        word = line.strip().split(b" ")
        out("prelude-received: %s" % line.strip().decode("ascii", "replace"))
        if proto == "smtp":
            verb = word[0].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-mx.test greets you\r\n250-PIPELINING\r\n"
                             b"250-STARTTLS\r\n250 8BITMIME\r\n")
            elif verb == b"STARTTLS":
                answer = b"220 2.0.0 Ready to start TLS\r\n"
            else:
                conn.sendall(b"530 5.7.0 Must issue a STARTTLS command first\r\n")
        elif proto == "imap":
            tag, verb = word[0], word[1].upper() if len(word) > 1 else b""
            if verb == b"STARTTLS":
                conn.sendall(b"* an untagged line first\r\n")
                answer = tag + b" OK Begin TLS negotiation now\r\n"
            else:
                conn.sendall(tag + b" BAD STARTTLS first\r\n")
        elif proto == "pop3":
            if word[0].upper() == b"STLS":
                answer = b"+OK Begin TLS negotiation\r\n"
            else:
                conn.sendall(b"-ERR STLS first\r\n")
        elif proto == "ftp":
            if line.strip().upper() == b"AUTH TLS":
                answer = b"234 AUTH TLS ok\r\n"
            else:
                conn.sendall(b"530 AUTH TLS first\r\n")
        if answer is not None:
            break
    if answer is None:
        return False
    if args.refuse:
        conn.sendall(args.refuse.encode() + b"\r\n")
        out("refused")
        # Whatever the client sends now would be plaintext: show it.
        while True:
            data = conn.recv(4096)
            if not data:
                return False
            out("plaintext-after-refusal: %r" % data)
    conn.sendall(answer + (b"extra plaintext line\r\n" if args.extra else b""))
    return True


def serve_tls(conn, args):
    f = conn.makefile("rb")
    if not prelude(args.proto, conn, f, args):
        return
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    tls = ctx.wrap_socket(conn, server_side=True)
    out("tls-up")
    tf = tls.makefile("rb")
    while True:
        line = tf.readline(4096)
        if not line:
            return
        out("tls-received: %s" % line.strip().decode("ascii", "replace"))
        tls.sendall(b"echo: " + line.strip() + b"\r\n")


def serve_plain(conn, args):
    conn.sendall(PLAIN_GREETING[args.proto])
    f = conn.makefile("rb")
    line = f.readline(4096)
    if line:
        out("plain-received: %r" % line)
        conn.sendall(b"echo: " + line.strip() + b"\r\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["tls", "plain"])
    ap.add_argument("proto", choices=["smtp", "imap", "pop3", "ftp", "postgres"])
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--refuse")
    ap.add_argument("--extra", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(8)
    out("port %d" % srv.getsockname()[1])
    while True:
        conn, _ = srv.accept()
        try:
            (serve_tls if args.mode == "tls" else serve_plain)(conn, args)
        except (OSError, EOFError, ssl.SSLError) as e:
            out("connection ended: %s" % e)
        finally:
            conn.close()


if __name__ == "__main__":
    sys.exit(main())
