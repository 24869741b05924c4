#!/usr/bin/env python3
"""reconnect.py: connect a non-blocking socket while nothing listens, then
listen (accepting in a thread) and connect the same socket again, as
asyncio's retry loops do. Linux reports the first failure once (as the
next connect's result, or SO_ERROR) and then lets the socket connect
again. Prints each attempt's result; "attempt N -> ok" ends it."""
import errno
import select
import socket
import threading

lst = socket.socket()
lst.bind(("127.0.0.1", 0))
addr = lst.getsockname()
s = socket.socket()
s.setblocking(False)
print("first:", errno.errorcode.get(s.connect_ex(addr), "ok"))
lst.listen(1)
threading.Thread(target=lambda: lst.accept(), daemon=True).start()
for i in range(1, 6):
    rc = s.connect_ex(addr)
    if rc in (errno.EINPROGRESS, errno.EALREADY):
        select.select([], [s], [], 10)
        rc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    print("attempt", i, "->", errno.errorcode.get(rc, "ok"))
    if rc in (0, errno.EISCONN):
        break
