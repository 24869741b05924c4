#!/usr/bin/env python3
"""own_tls_errors.py ROUNDS [client|server]: a program that speaks TLS
itself (Python's ssl module, inside whatever layers nestls adds) and fails
its own handshake ROUNDS times. Prints the exception class the client
raised each round, as counts.

client (default): the client trusts no CA that signed the server's
certificate; bare, Python raises {"SSLCertVerificationError": ROUNDS}.
When the handshake fails, OpenSSL (in the program) queues the reason, then
the program writes its alert on the socket; if nestls's direct write of
that alert cleared the thread's OpenSSL error queue, Python finds no
reason and raises SSLEOFError instead.

server: the server's SNI callback raises; bare, the client reads the
server's alert and raises {"SSLError": ROUNDS}. The server thread's queue
holds the callback's failure when it writes that alert: if nestls's
direct write took that error for its own, it cut the connection and the
client raised ConnectionResetError."""
import collections
import os
import socket
import ssl
import sys
import threading

CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "certs")
rounds = int(sys.argv[1])
side = sys.argv[2] if len(sys.argv) > 2 else "client"
srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
srv_ctx.load_cert_chain(f"{CERTS}/outer-server.pem", f"{CERTS}/outer-server.key")
if side == "server":
    def refuse(sslobj, name, ctx):
        raise RuntimeError("no such service")
    srv_ctx.sni_callback = refuse
    cli = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cli.load_verify_locations(f"{CERTS}/outer-ca.pem")
else:
    cli = ssl.create_default_context()  # trusts the system CAs only
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
    s = socket.create_connection(lst.getsockname(), timeout=20)
    try:
        cli.wrap_socket(s, server_hostname="localhost")
        seen["no error"] += 1
    except OSError as e:
        seen[type(e).__name__] += 1
    s.close()
    t.join()
    lst.close()
print(dict(seen))
