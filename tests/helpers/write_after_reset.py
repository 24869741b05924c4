#!/usr/bin/env python3
"""write_after_reset.py: the server sends 300 KiB that the client does not
read yet, waits half a second, and resets (SO_LINGER {1, 0}, then close).
The client, once getpeername() says the connection is reset, writes one
byte, then reads everything. Prints
  write <errno name or "ok"> read <bytes> end <errno name or "EOF">
Over TCP the write fails (ECONNRESET, EPIPE after it) and the reads still
return what had arrived. Under nestls every byte of the 300 KiB has
reached the client's side (the engine's buffers hold it) and must be
read: a write there must not throw it away."""
import errno
import socket
import struct
import threading
import time

SIZE = 300 * 1024
lst = socket.create_server(("127.0.0.1", 0))
connected = threading.Event()


def server():
    conn, _ = lst.accept()
    connected.wait(20)
    conn.sendall(b"s" * SIZE)
    time.sleep(0.5)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


t = threading.Thread(target=server)
t.start()
cli = socket.create_connection(lst.getsockname(), timeout=20)
connected.set()
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        cli.getpeername()
        time.sleep(0.005)
    except OSError:
        break
try:
    cli.send(b"x", socket.MSG_NOSIGNAL)
    wrote = "ok"
except OSError as e:
    wrote = errno.errorcode.get(e.errno, str(e.errno))
got, end = 0, "EOF"
try:
    while True:
        chunk = cli.recv(65536)
        if not chunk:
            break
        got += len(chunk)
except OSError as e:
    end = errno.errorcode.get(e.errno, str(e.errno))
t.join()
print(f"write {wrote} read {got} end {end}")
