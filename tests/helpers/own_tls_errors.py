#!/usr/bin/env python3
"""own_tls_errors.py ROUNDS: a program that speaks TLS itself (Python's ssl
module, inside whatever layers nestls adds) and fails certificate
verification ROUNDS times: its client trusts no CA that signed the
server's certificate. Prints the exception class each round raised, as
counts: {"SSLCertVerificationError": ROUNDS} is what Python raises bare.

When the handshake fails, OpenSSL (in the program) queues the reason, then
the program writes its alert on the socket; if nestls's direct write of
that alert cleared the thread's OpenSSL error queue, Python finds no
reason and raises SSLEOFError instead."""
import collections
import os
import socket
import ssl
import sys
import threading

CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "certs")
rounds = int(sys.argv[1])
srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
srv_ctx.load_cert_chain(f"{CERTS}/outer-server.pem", f"{CERTS}/outer-server.key")
seen = collections.Counter()
for _ in range(rounds):
    lst = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = lst.accept()
        try:
            srv_ctx.wrap_socket(conn, server_side=True)
        except OSError:
            pass
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    cli = ssl.create_default_context()  # trusts the system CAs only
    s = socket.create_connection(lst.getsockname(), timeout=20)
    try:
        cli.wrap_socket(s, server_hostname="localhost")
        seen["no error"] += 1
    except ssl.SSLError as e:
        seen[type(e).__name__] += 1
    s.close()
    t.join()
    lst.close()
print(dict(seen))
