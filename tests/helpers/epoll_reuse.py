#!/usr/bin/env python3
"""epoll_reuse.py PORT: epoll bookkeeping across a closed epoll descriptor.

A socket is registered in an epoll instance before connect (nestls moves
such registrations to the new socket at connect). That epoll instance is
closed and a new one takes the same number. The connect to 127.0.0.1:PORT
(wrapped) must not register the socket in the new instance, which never
asked for it: its poll stays empty. Then the socket echoes.
Prints one line per step and "ok"."""
import select
import socket
import sys

port = int(sys.argv[1])
s = socket.socket()
old = select.epoll()
number = old.fileno()
old.register(s.fileno(), select.EPOLLIN | select.EPOLLOUT)
old.close()
new = select.epoll()
print("same number" if new.fileno() == number else "another number", flush=True)
s.connect(("127.0.0.1", port))
events = new.poll(0.2)
print("new epoll sees", len(events), "events", flush=True)
s.sendall(b"ping\n")
got = b""
while not got.endswith(b"\n"):
    got += s.recv(100)
print("echo", got.decode().strip(), flush=True)
print("ok")
