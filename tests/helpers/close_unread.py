#!/usr/bin/env python3
"""close_unread.py PORT CLOSER PACE: one end closes a connection while the
other still sends; the sender must learn of it, as TCP tells it with a
reset.

Both ends run in this process (a listener on 127.0.0.1:PORT and a client
to it), so one policy wrapping both roles puts layers under each.
CLOSER is the end that reads 1024 bytes and closes: "server" (the accepted
socket) or "client". The other end sends 16 KiB at a time, up to 8 MiB:
PACE "burst" sends 64 KiB before the closer reads (so bytes are still
unread when it closes), "trickle" sends 16 KiB every 2 ms (so most arrive
after the close).

stdout, one line: "sender: error after N bytes: ERRNAME" or
"sender: no error after N bytes". Exit status 0 either way, 1 on usage.
"""
import errno
import socket
import sys
import threading
import time

LIMIT = 8 << 20
CHUNK = 16 << 10


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in ("server", "client") or \
            sys.argv[3] not in ("burst", "trickle"):
        print(__doc__, file=sys.stderr)
        return 1
    port, closer, pace = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4)
    port = listener.getsockname()[1]  # PORT 0: any free one
    client = socket.create_connection(("127.0.0.1", port), timeout=20)
    accepted, _ = listener.accept()
    accepted.settimeout(20)
    listener.close()
    reader, sender = (accepted, client) if closer == "server" else (client, accepted)
    may_read = threading.Event()

    def read_then_close():
        may_read.wait(20)
        got = 0
        while got < 1024:
            data = reader.recv(1024 - got)
            if not data:
                break
            got += len(data)
        reader.close()

    closing = threading.Thread(target=read_then_close)
    closing.start()
    sent = 0
    chunk = b"x" * CHUNK
    try:
        while sent < LIMIT:
            sent += sender.send(chunk)
            if pace == "trickle":
                may_read.set()
                time.sleep(0.002)
            elif sent >= 64 << 10:
                may_read.set()
        print(f"sender: no error after {sent} bytes")
    except OSError as e:
        print(f"sender: error after {sent} bytes: {errno.errorcode.get(e.errno, e.errno)}")
    may_read.set()
    closing.join(20)
    sender.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
