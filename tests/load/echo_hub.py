#!/usr/bin/env python3
"""echo_hub.py [--port N] [--host H] [--stats-every S]: a single-threaded
echo server for many connections at once, that counts them.

One epoll loop (selectors) serves every connection: each byte received is
sent back; a connection whose replies pile up (more than 1 MiB unsent) is
not read until they drain, so a client that does not read cannot grow the
server. After the client's EOF the server sends what is left and closes.

Prints "port N" on stdout when listening, then a stats line
  stats open=O peak=P accepted=A closed=C errors=E bytes=B
on SIGUSR1, every --stats-every seconds (0: never), and on SIGTERM (then
exits 0). open is the number of connections open at this moment, peak the
most ever open at once; errors counts connections that ended with an error
(ECONNRESET, ...) instead of an EOF."""
import argparse
import selectors
import signal
import socket
import sys
import time

READ_SIZE = 1 << 16
HIGH_WATER = 1 << 20  # unsent bytes above which a connection is not read


class Stats:
    def __init__(self):
        self.open = self.peak = self.accepted = self.closed = self.errors = self.bytes = 0

    def line(self):
        return "stats open=%d peak=%d accepted=%d closed=%d errors=%d bytes=%d" % (
            self.open, self.peak, self.accepted, self.closed, self.errors, self.bytes)


class Conn:
    __slots__ = ("sock", "out", "eof", "events")

    def __init__(self, sock):
        self.sock = sock
        self.out = bytearray()
        self.eof = False
        self.events = selectors.EVENT_READ


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--stats-every", type=float, default=0.0)
    args = ap.parse_args()

    stats = Stats()
    sel = selectors.DefaultSelector()

    class Stop(Exception):
        pass

    def report(*_):
        print(stats.line(), flush=True)

    def terminate(*_):
        raise Stop()  # a flag alone would not end a select() without timeout

    signal.signal(signal.SIGUSR1, report)
    signal.signal(signal.SIGTERM, terminate)

    lsock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.host, args.port))
    lsock.listen(4096)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, None)
    print("port %d" % lsock.getsockname()[1], flush=True)

    def set_events(c):
        want = 0
        if not c.eof and len(c.out) < HIGH_WATER:
            want |= selectors.EVENT_READ
        if c.out:
            want |= selectors.EVENT_WRITE
        if want != c.events:
            if want:
                sel.modify(c.sock, want, c) if c.events else sel.register(c.sock, want, c)
            else:
                sel.unregister(c.sock)
            c.events = want

    def finish(c, failed):
        if c.events:
            sel.unregister(c.sock)
        c.sock.close()
        stats.open -= 1
        stats.closed += 1
        if failed:
            stats.errors += 1

    def accept_all():
        for _ in range(256):  # bounded per wake-up; the rest wait for the next one
            try:
                s, _addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and friends: say so, keep serving
                print("accept: %s" % e, file=sys.stderr, flush=True)
                return
            s.setblocking(False)
            c = Conn(s)
            sel.register(s, selectors.EVENT_READ, c)
            stats.accepted += 1
            stats.open += 1
            stats.peak = max(stats.peak, stats.open)

    def serve(c, mask):
        if mask & selectors.EVENT_READ:
            try:
                data = c.sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                finish(c, True)
                return
            if data == b"":
                c.eof = True
            elif data:
                stats.bytes += len(data)
                c.out += data
        if c.out:
            try:
                n = c.sock.send(c.out)
                del c.out[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                finish(c, True)
                return
        if c.eof and not c.out:
            finish(c, False)
            return
        set_events(c)

    next_stats = time.monotonic() + args.stats_every if args.stats_every > 0 else None
    try:
        while True:
            timeout = None if next_stats is None else max(0.0, next_stats - time.monotonic())
            for key, mask in sel.select(timeout):
                if key.data is None:
                    accept_all()
                else:
                    serve(key.data, mask)
            if next_stats is not None and time.monotonic() >= next_stats:
                report()
                next_stats += args.stats_every
    except Stop:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
