#!/usr/bin/env python3
"""shut_then_write.py PORT [default-sigpipe]: shutdown(SHUT_WR) on a
connection to an echo server on 127.0.0.1:PORT, then try to send more, as
a program may by mistake. A TCP socket answers EPIPE (Python:
BrokenPipeError), and SIGPIPE when the signal is not ignored (Python
ignores it unless told otherwise: with "default-sigpipe" this process
dies of it). Reading goes on: the echo of what was sent before, then EOF.
Prints what happened."""
import signal
import socket
import sys

port = int(sys.argv[1])
if len(sys.argv) > 2:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"before\n")
s.shutdown(socket.SHUT_WR)
try:
    s.send(b"after\n")
    print("send after SHUT_WR: accepted", flush=True)
except BrokenPipeError:
    print("send after SHUT_WR: BrokenPipeError", flush=True)
got = b""
while True:
    chunk = s.recv(100)
    if not chunk:
        break
    got += chunk
print("then read:", got.decode().strip(), "and EOF", flush=True)
