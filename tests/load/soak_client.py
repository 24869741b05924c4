#!/usr/bin/env python3
"""soak_client.py HOST PORT --seconds S [options]: the client side of the
soak (tests/load/soak.py starts it under nestls): short and long echo
connections mixed, every reply checked byte for byte.

  short workers (--short): connect, one small echo (1 B to 4 KiB), close;
      again and again.
  long workers (--long): a connection held 20-60 s, with a small echo about
      every second and a large transfer (1-4 MiB, sent and read back at the
      same time) about every 10 s; then closed and opened again.
Every close is a half-close first (shutdown SHUT_WR), after which the
server's EOF must come with no byte more: a reset or stray data fails.

Phases, so the caller can measure a quiet process before and after:
  1. one short exchange (starts the engine), then "primed" on stdout, then
     wait for --go-file (at most 60 s);
  2. the load for S seconds, a "progress ..." line every second;
  3. every connection closed, "finished ..." printed, then wait for
     --exit-file (at most 120 s); exit status 0 only if nothing failed.
Each exchange is one verified echo (short, small or large); a failure is
any exchange that did not get exactly its bytes back, or a connection that
did not open or close cleanly. The first 20 failures are printed."""
import argparse
import os
import random
import socket
import sys
import threading
import time

IO_TIMEOUT = 30.0  # no single socket operation may block longer


def pattern(seed, size):
    """Deterministic bytes of a given seed (cheap: a repeated random block)."""
    block = random.Random(repr(seed)).randbytes(4096)
    reps = size // len(block) + 1
    return (block * reps)[:size]


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.short = self.small = self.large = 0
        self.failures = 0
        self.bytes = 0
        self.long_open = 0
        self.messages = []

    def ok(self, kind, nbytes):
        with self.lock:
            setattr(self, kind, getattr(self, kind) + 1)
            self.bytes += nbytes

    def fail(self, what):
        with self.lock:
            self.failures += 1
            if len(self.messages) < 20:
                self.messages.append(what)
                print("FAIL %s" % what, flush=True)

    def line(self):
        with self.lock:
            return ("exchanges=%d short=%d small=%d large=%d failures=%d bytes=%d long_open=%d"
                    % (self.short + self.small + self.large, self.short, self.small,
                       self.large, self.failures, self.bytes, self.long_open))


class Broken(Exception):
    pass


def connect(addr):
    s = socket.create_connection(addr, timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def echo(s, data, buf):
    """Send data and read it back at the same time; Broken unless identical.
    Reads go into buf (the worker's own) and data may be a memoryview of a
    block made once: the test programs allocate nothing per transfer, so
    their own memory stays flat and what the soak measures is nestls's."""
    sender_error = []

    def send_all():
        try:
            s.sendall(data)
        except OSError as e:
            sender_error.append(e)

    sender = None
    if len(data) > 65536:  # big: write from a second thread while reading here
        sender = threading.Thread(target=send_all)
        sender.start()
    else:
        send_all()
    got = 0
    try:
        view = memoryview(data)
        into = memoryview(buf)
        while got < len(data):
            n = s.recv_into(into, min(len(buf), len(data) - got))
            if n == 0:
                raise Broken("EOF after %d of %d bytes" % (got, len(data)))
            if into[:n] != view[got:got + n]:
                raise Broken("bytes %d..%d of %d differ from what was sent"
                             % (got, got + n, len(data)))
            got += n
    except OSError as e:
        raise Broken("%s after %d of %d bytes" % (e, got, len(data)))
    finally:
        if sender is not None:
            sender.join(IO_TIMEOUT)
    if sender_error:
        raise Broken("send: %s" % sender_error[0])


def close_cleanly(s):
    """Half-close, then the peer's EOF and nothing else."""
    try:
        s.shutdown(socket.SHUT_WR)
        rest = s.recv(1)
    except OSError as e:
        raise Broken("closing: %s" % e)
    finally:
        s.close()
    if rest:
        raise Broken("closing: stray data after our EOF")


def short_worker(wid, addr, stop, counters):
    rnd = random.Random(1000 + wid)
    buf = bytearray(1 << 16)
    n = 0
    while not stop.is_set():
        n += 1
        data = pattern((wid, n), rnd.randint(1, 4096))
        try:
            s = connect(addr)
        except OSError as e:
            counters.fail("short %d.%d: connect: %s" % (wid, n, e))
            stop.wait(0.1)
            continue
        try:
            echo(s, data, buf)
            close_cleanly(s)
            counters.ok("short", len(data))
        except Broken as e:
            s.close()
            counters.fail("short %d.%d: %s" % (wid, n, e))


def long_worker(wid, addr, stop, counters):
    rnd = random.Random(2000 + wid)
    life = 0
    # Large payloads are made once per worker, not per transfer.
    large = memoryview(pattern(("large", wid), (4 << 20) + 4096))
    buf = bytearray(1 << 18)
    while not stop.is_set():
        life += 1
        try:
            s = connect(addr)
        except OSError as e:
            counters.fail("long %d.%d: connect: %s" % (wid, life, e))
            stop.wait(0.5)
            continue
        with counters.lock:
            counters.long_open += 1
        ends = time.monotonic() + rnd.uniform(20, 60)
        next_large = time.monotonic() + rnd.uniform(2, 10)
        k = 0
        try:
            while not stop.is_set() and time.monotonic() < ends:
                k += 1
                if time.monotonic() >= next_large:
                    size = rnd.randint(1 << 20, 4 << 20)
                    start = rnd.randrange(0, 4096)
                    data = large[start:start + size]
                    echo(s, data, buf)
                    counters.ok("large", len(data))
                    next_large = time.monotonic() + rnd.uniform(5, 15)
                else:
                    data = pattern((wid, life, k), rnd.randint(1, 2048))
                    echo(s, data, buf)
                    counters.ok("small", len(data))
                stop.wait(rnd.uniform(0.5, 1.5))
            close_cleanly(s)
        except Broken as e:
            s.close()
            counters.fail("long %d.%d: %s" % (wid, life, e))
        finally:
            with counters.lock:
                counters.long_open -= 1


def wait_for_file(path, seconds):
    end = time.monotonic() + seconds
    while path and not os.path.exists(path):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--short", type=int, default=4)
    ap.add_argument("--long", type=int, default=8)
    ap.add_argument("--go-file")
    ap.add_argument("--exit-file")
    args = ap.parse_args()
    addr = (args.host, args.port)
    counters = Counters()

    # 1. prime: the engine of both processes starts here, not mid-measure.
    try:
        s = connect(addr)
        echo(s, b"prime", bytearray(64))
        close_cleanly(s)
        print("primed", flush=True)
    except (OSError, Broken) as e:
        print("FAIL prime: %s" % e, flush=True)
        return 1
    if not wait_for_file(args.go_file, 60):
        print("FAIL no go file within 60 s", flush=True)
        return 1

    # 2. load
    stop = threading.Event()
    workers = [threading.Thread(target=short_worker, args=(i, addr, stop, counters))
               for i in range(args.short)]
    workers += [threading.Thread(target=long_worker, args=(i, addr, stop, counters))
                for i in range(args.long)]
    for w in workers:
        w.start()
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= args.seconds:
            break
        time.sleep(min(1.0, args.seconds - elapsed))
        print("progress t=%.1f %s" % (time.monotonic() - started, counters.line()), flush=True)

    # 3. drain: each worker finishes its exchange and closes cleanly.
    stop.set()
    for w in workers:
        w.join(IO_TIMEOUT * 3)
    hung = sum(1 for w in workers if w.is_alive())
    if hung:
        counters.fail("%d worker(s) still busy %d s after the end" % (hung, IO_TIMEOUT * 3))
    print("finished t=%.1f %s" % (time.monotonic() - started, counters.line()), flush=True)
    wait_for_file(args.exit_file, 120)
    return 0 if counters.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
