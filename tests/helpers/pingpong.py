#!/usr/bin/env python3
"""pingpong.py serve|connect PORT ROUNDS SIZE [recv|poll|epoll]: round
trips over one connection. Each end waits for the next message in a
blocking recv() (the default), or on a non-blocking socket in poll() or
epoll_wait() (select.poll, select.epoll). Before its first round the
client in poll and epoll modes waits 200 ms for input that cannot have
come yet, and fails unless the wait ends empty after 200 ms.

serve:   accepts one connection on 127.0.0.1:PORT, prints "port PORT",
         and sends back each SIZE-byte message it receives.
connect: sends ROUNDS messages of SIZE bytes (a different pattern each
         round), checks that each comes back unchanged.

At the end each prints "rounds N switches S": S is how many times the
process's nestls engine thread (named nestls-engine) was switched out
during the rounds (voluntary and involuntary), or -1 without one. An
engine that is woken for every message switches at least once a round;
one whose work the reading thread does itself barely at all."""
import os
import select
import socket
import sys
import time


def engine_switches():
    for tid in os.listdir("/proc/self/task"):
        base = f"/proc/self/task/{tid}"
        with open(f"{base}/comm") as f:
            if f.read().strip() != "nestls-engine":
                continue
        total = 0
        with open(f"{base}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        return total
    return -1


class Waiter:
    """Waits until the socket is readable, the way the mode says."""

    def __init__(self, sock, mode):
        self.mode = mode
        if mode == "recv":
            return
        sock.setblocking(False)
        self.poller = select.poll() if mode == "poll" else select.epoll()
        self.poller.register(sock.fileno(), select.POLLIN if mode == "poll" else select.EPOLLIN)

    def wait(self, timeout=None):
        if self.mode == "recv":
            return True
        if self.mode == "poll":
            return bool(self.poller.poll(None if timeout is None else timeout * 1000))
        return bool(self.poller.poll(-1 if timeout is None else timeout))


def recv_exactly(sock, size, waiter):
    parts, got = [], 0
    while got < size:
        if not waiter.wait():
            sys.exit("pingpong: a wait with no timeout ended empty")
        try:
            part = sock.recv(size - got)
        except BlockingIOError:
            continue
        if not part:
            sys.exit(f"pingpong: EOF after {got} of {size} bytes")
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def rounds(sock, count, size, serving, waiter):
    if not serving and waiter.mode != "recv":
        start = time.monotonic()
        if waiter.wait(0.2):
            sys.exit("pingpong: input before anything was sent")
        if time.monotonic() - start < 0.19:
            sys.exit(f"pingpong: a 200 ms wait ended after {time.monotonic() - start:.3f} s")
    before = None
    for n in range(count):
        if n == 1:  # the handshakes and the first round are behind us
            before = engine_switches()
        if serving:
            sock.sendall(recv_exactly(sock, size, waiter))
            continue
        message = bytes((n + i) % 251 for i in range(size))
        sock.sendall(message)
        if recv_exactly(sock, size, waiter) != message:
            sys.exit(f"pingpong: round {n} came back changed")
    after = engine_switches()
    switches = -1 if before is None or before < 0 else after - before
    print(f"rounds {count} switches {switches}", flush=True)


def main():
    mode, port, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    wait_mode = sys.argv[5] if len(sys.argv) > 5 else "recv"
    if mode == "serve":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(1)
        print(f"port {port}", flush=True)
        sock, _ = listener.accept()
    else:
        sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rounds(sock, count, size, mode == "serve", Waiter(sock, wait_mode))
    sock.close()


main()
