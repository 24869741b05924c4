#!/usr/bin/env python3
"""hold_clients.py HOST PORT [--conns 1000] [--bytes 4096] [--parallel 250]
[--hold-file F] [--timeout 60]: open many echo connections, hold them all
open at once, check every reply byte for byte.

One epoll loop (selectors), non-blocking connects:
 1. open: at most --parallel connections are connecting or in their first
    echo at a time; connection i sends its own bytes (different from every
    other connection's) and must get exactly them back. No connection is
    closed in this phase, so when the last one is verified all --conns are
    open at the same time: the client then prints "holding N".
 2. hold: until --hold-file exists (the caller measures meanwhile). A held
    connection that turns readable (data, EOF or error) fails.
 3. echo again on every connection at once, with new bytes of its own.
 4. close: shutdown(SHUT_WR) on each, then the server's EOF must follow
    with no byte more (a reset or stray data fails).
Prints one line per failing connection, then
  "N of N connections held at once and echoed their own bytes"
and "self hwm_kib=K fds_max=F" (this process's peak RSS and descriptors);
exit status 0 only when every connection passed every phase. Every phase
ends after --timeout seconds at most."""
import argparse
import errno
import hashlib
import os
import selectors
import socket
import sys
import time


def payload(i, rnd, size):
    out = bytearray()
    block = 0
    while len(out) < size:
        out += hashlib.sha256(b"conn %d round %d block %d" % (i, rnd, block)).digest()
        block += 1
    return bytes(out[:size])


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def vm_hwm_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


class Conn:
    __slots__ = ("i", "sock", "state", "want", "got", "sent", "events", "error")

    def __init__(self, i):
        self.i = i
        self.sock = None
        self.state = "new"
        self.want = b""
        self.got = bytearray()
        self.sent = 0
        self.events = 0
        self.error = None


class Client:
    def __init__(self, args):
        self.args = args
        self.sel = selectors.DefaultSelector()
        self.conns = [Conn(i) for i in range(args.conns)]
        self.failed = []
        self.fds_max = 0

    def watch(self, c, events):
        if events == c.events:
            return
        if c.events == 0:
            self.sel.register(c.sock, events, c)
        elif events == 0:
            self.sel.unregister(c.sock)
        else:
            self.sel.modify(c.sock, events, c)
        c.events = events

    def fail(self, c, why):
        c.error = "connection %d (%s): %s" % (c.i, c.state, why)
        c.state = "failed"
        self.failed.append(c)
        if c.sock is not None:
            self.watch(c, 0)
            c.sock.close()
            c.sock = None

    def start_echo(self, c, rnd):
        c.state = "echo%d" % rnd
        c.want = payload(c.i, rnd, self.args.bytes)
        c.got = bytearray()
        c.sent = 0
        self.watch(c, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def step_echo(self, c, mask):
        """Move bytes; True when the echo is complete and verified."""
        if mask & selectors.EVENT_WRITE and c.sent < len(c.want):
            try:
                c.sent += c.sock.send(c.want[c.sent:c.sent + 65536])
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                self.fail(c, "send: %s" % e)
                return False
        if mask & selectors.EVENT_READ:
            try:
                data = c.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError as e:
                self.fail(c, "recv after %d of %d bytes: %s" % (len(c.got), len(c.want), e))
                return False
            if data == b"":
                self.fail(c, "EOF after %d of %d bytes" % (len(c.got), len(c.want)))
                return False
            if data:
                c.got += data
        if len(c.got) >= len(c.want):
            if bytes(c.got) != c.want:
                first = next(k for k in range(len(c.want)) if k >= len(c.got) or c.got[k] != c.want[k])
                self.fail(c, "%d bytes back, differing from what was sent at byte %d"
                          % (len(c.got), first))
                return False
            return True
        events = selectors.EVENT_READ
        if c.sent < len(c.want):
            events |= selectors.EVENT_WRITE
        self.watch(c, events)
        return False

    def connect(self, c):
        try:
            c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as e:
            self.fail(c, "socket: %s" % e)
            return
        c.sock.setblocking(False)
        rc = c.sock.connect_ex((self.args.host, self.args.port))
        if rc not in (0, errno.EINPROGRESS):
            self.fail(c, "connect: %s" % os.strerror(rc))
            return
        c.state = "connecting"
        self.watch(c, selectors.EVENT_WRITE)

    def run_phase(self, name, step, done):
        """Dispatch events to step(c, mask) until done() or the timeout."""
        deadline = time.monotonic() + self.args.timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                stuck = [c for c in self.conns if c.state not in ("held", "closed", "failed")]
                for c in stuck:
                    self.fail(c, "no progress in %s within %g s" % (name, self.args.timeout))
                return
            for key, mask in self.sel.select(min(left, 1.0)):
                step(key.data, mask)

    def phase_open(self):
        n = len(self.conns)
        nxt = 0
        in_flight = 0

        def refill():
            nonlocal nxt, in_flight
            while nxt < n and in_flight < self.args.parallel:
                c = self.conns[nxt]
                nxt += 1
                self.connect(c)
                if c.state == "connecting":
                    in_flight += 1

        def step(c, mask):
            nonlocal in_flight
            if c.state == "connecting":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self.fail(c, "connect: %s" % os.strerror(err))
                    in_flight -= 1
                else:
                    self.start_echo(c, 1)
                    return
            elif c.state == "echo1":
                if self.step_echo(c, mask):
                    c.state = "held"
                    self.watch(c, selectors.EVENT_READ)  # anything now is a failure
                    in_flight -= 1
                elif c.state == "failed":
                    in_flight -= 1
            elif c.state == "held":
                self.fail(c, "readable while held: %s" % self.peek(c))
            refill()

        refill()
        self.run_phase("open", step, lambda: nxt >= n and in_flight == 0)

    def peek(self, c):
        try:
            data = c.sock.recv(1)
            return "EOF" if data == b"" else "unexpected data"
        except OSError as e:
            return str(e)

    def phase_hold(self):
        deadline = time.monotonic() + self.args.timeout
        while self.args.hold_file and not os.path.exists(self.args.hold_file):
            if time.monotonic() > deadline:
                print("hold: %s did not appear within %g s; going on" % (
                    self.args.hold_file, self.args.timeout), flush=True)
                break
            for key, _mask in self.sel.select(0.02):
                self.fail(key.data, "readable while held: %s" % self.peek(key.data))

    def phase_echo2(self):
        live = [c for c in self.conns if c.state == "held"]
        for c in live:
            self.start_echo(c, 2)

        def step(c, mask):
            if c.state == "echo2" and self.step_echo(c, mask):
                c.state = "held"
                self.watch(c, 0)

        self.run_phase("echo2", step, lambda: all(c.state != "echo2" for c in live))

    def phase_close(self):
        live = [c for c in self.conns if c.state == "held"]
        for c in live:
            c.state = "closing"
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError as e:
                self.fail(c, "shutdown: %s" % e)
                continue
            self.watch(c, selectors.EVENT_READ)

        def step(c, mask):
            if c.state != "closing":
                return
            why = self.peek(c)
            if why != "EOF":
                self.fail(c, "after our EOF: %s" % why)
                return
            self.watch(c, 0)
            c.sock.close()
            c.sock = None
            c.state = "closed"

        self.run_phase("close", step, lambda: all(c.state != "closing" for c in live))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--bytes", type=int, default=4096)
    ap.add_argument("--parallel", type=int, default=250)
    ap.add_argument("--hold-file", default=None)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    cl = Client(args)
    t0 = time.monotonic()
    cl.phase_open()
    held = sum(1 for c in cl.conns if c.state == "held")
    cl.fds_max = fd_count()
    t_open = time.monotonic() - t0
    print("opened %d in %.1f s" % (held, t_open), flush=True)
    if held == args.conns:
        print("holding %d" % held, flush=True)
    cl.phase_hold()
    t1 = time.monotonic()
    cl.phase_echo2()
    t_echo = time.monotonic() - t1
    t2 = time.monotonic()
    cl.phase_close()
    t_close = time.monotonic() - t2
    print("echo again %.2f s, close %.2f s" % (t_echo, t_close), flush=True)

    for c in cl.failed:
        print(c.error)
    ok = sum(1 for c in cl.conns if c.state == "closed")
    print("%d of %d connections held at once and echoed their own bytes" % (
        ok if held == args.conns else 0, args.conns))
    print("self hwm_kib=%d fds_max=%d" % (vm_hwm_kib(), cl.fds_max), flush=True)
    return 0 if ok == args.conns and held == args.conns else 1


if __name__ == "__main__":
    sys.exit(main())
