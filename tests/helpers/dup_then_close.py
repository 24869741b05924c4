#!/usr/bin/env python3
"""dup_then_close.py PORT: a non-blocking connect to 127.0.0.1:PORT (a
peer that stalls the handshake), then dup() the socket and close the
original. The copy still stands for the connection: it must not look
connected (writable) while no layer is up. Prints what poll() said within
1.5 s and "ok"."""
import os
import select
import socket
import sys

s = socket.socket()
s.setblocking(False)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except BlockingIOError:
    pass
copy = os.dup(s.fileno())
s.close()
p = select.poll()
p.register(copy, select.POLLOUT)
events = p.poll(1500)
print("writable before the layers are up" if events else "not writable while the layers are not up",
      flush=True)
os.close(copy)
print("ok")
