#!/usr/bin/env python3
"""small_buffers.py: a program that shrinks its socket buffers (4 KiB
SO_RCVBUF on its listener, 4 KiB SO_SNDBUF on its client socket) and counts
on blocking early: the client writes without the server reading until no
byte has been taken for a whole second (bounded: 30 s). Prints the bytes
taken, in KiB, and the SO_RCVBUF the accepted socket reports:
  taken_kib N accepted_rcvbuf M
Bare TCP takes about 12 KiB here and the accepted socket inherits 8192
(the kernel doubles what is set). asyncio's sendfile tests rely on the
bound: a peer that closes after 1 KiB must make a 256 KiB send fail."""
import socket
import time

lst = socket.socket()
lst.bind(("127.0.0.1", 0))
lst.listen()
lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # after listen, as asyncio's tests do
cli = socket.create_connection(lst.getsockname(), timeout=20)
cli.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
srv, _ = lst.accept()
cli.setblocking(False)
taken, chunk = 0, b"x" * 65536
last_progress = time.monotonic()
end = last_progress + 30
while time.monotonic() < end and time.monotonic() - last_progress < 1.0:
    try:
        taken += cli.send(chunk)
        last_progress = time.monotonic()
    except BlockingIOError:
        time.sleep(0.02)
print(f"taken_kib {taken // 1024} accepted_rcvbuf "
      f"{srv.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)}")
