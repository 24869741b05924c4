#!/usr/bin/env python3
"""send_after_connect.py HOST PORT ROUNDS: a client whose socket has a
timeout (Python makes it non-blocking and polls: connect() returns once
the socket is writable) and that sends 5 KiB with send() right after
connect, as asyncio's test_server client does. A non-blocking send() may
return a short count, and such a program does not retry. Bare TCP takes
all 5 KiB every time. Prints "short N" (rounds whose send() took less)
and "echoed N" (rounds whose full echo came back)."""
import socket
import sys

host, port, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = b"1" * 5120 + b"\n"
short = echoed = 0
for _ in range(rounds):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, port))
    sent = s.send(data)
    if sent < len(data):
        short += 1
        s.sendall(data[sent:])  # the rest, so the echo can be checked
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    echoed += got == data
    s.close()
print(f"short {short} echoed {echoed}")
