#!/usr/bin/env python3
"""lowlimit_fds.py PORT: with RLIMIT_NOFILE at 64 (nestls's own descriptors
then sit from 32 up), make a wrapped connection to an echo server on
127.0.0.1:PORT, non-blocking as many clients do, wait for it, echo, then
open files until the numbers nestls used during the handshake are handed
out again, and close every one of them: each close must succeed (a number
nestls once used must not stay "nestls's" after it let go of it).
Prints "closed N files, 0 failed" and "ok"."""
import os
import resource
import select
import socket
import sys

resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
port = int(sys.argv[1])
s = socket.socket()
s.setblocking(False)
try:
    s.connect(("127.0.0.1", port))
except BlockingIOError:
    pass
select.select([], [s], [], 10)
s.setblocking(True)
s.sendall(b"hello\n")
assert s.recv(100) == b"hello\n"
files = []
while True:
    try:
        files.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        break
failed = 0
for fd in files:
    try:
        os.close(fd)
    except OSError as e:
        failed += 1
        print("close(%d): %s" % (fd, e.strerror), flush=True)
print("closed %d files, %d failed" % (len(files), failed), flush=True)
if failed == 0:
    print("ok")
