#!/usr/bin/env python3
"""oob_inline.py: ftplib's abort(): a client sends b"ABOR\\r\\n" with
MSG_OOB (TCP marks the last byte urgent); the server, with SO_OOBINLINE
set as an FTP server sets it, reads up to the line's end. Prints what the
server read, or "timed out" after 10 s. Bare TCP: b'ABOR\\r\\n'."""
import socket
import threading

lst = socket.create_server(("127.0.0.1", 0))
result = {}


def server():
    conn, _ = lst.accept()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
    conn.settimeout(10)
    got = b""
    try:
        while not got.endswith(b"\n"):
            chunk = conn.recv(1024)
            if not chunk:
                break
            got += chunk
        result["got"] = repr(got)
    except TimeoutError:
        result["got"] = f"timed out after {got!r}"
    conn.close()


t = threading.Thread(target=server)
t.start()
cli = socket.create_connection(lst.getsockname(), timeout=20)
cli.sendall(b"ABOR\r\n", socket.MSG_OOB)
t.join()
cli.close()
print(result.get("got"))
