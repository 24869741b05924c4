#!/usr/bin/env python3
"""subprocess_client.py PORT ROUNDS STREAM_MIB: a Python program that
starts children the way Python does (vfork-style, on Linux with 3.11)
while it holds wrapped connections to an echo server on 127.0.0.1:PORT.

1. connect and echo a line;
2. ROUNDS times: subprocess.run by absolute path, by bare name (PATH is
   searched: failed exec tries first), with captured output, and a child
   that does not exist at all; meanwhile a thread streams STREAM_MIB MiB
   through a second wrapped connection and compares the echo's SHA-256;
3. then a new connection echoes, and so does the first one.
Prints one line per step and "ok" at the end; exits 1 on any mismatch."""
import hashlib
import os
import socket
import subprocess
import sys
import threading


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def echo_line(s, text):
    s.sendall(text.encode() + b"\n")
    got = b""
    while not got.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("EOF waiting for the echo of " + text)
        got += chunk
    if got.decode().strip() != text:
        raise SystemExit("wrong echo: %r" % got)
    print("echo", text, flush=True)


def stream(port, mib, result):
    s = connect(port)
    data = os.urandom(1 << 20)
    want = hashlib.sha256()
    got = hashlib.sha256()
    received = [0]

    def reader():
        while received[0] < mib << 20:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got.update(chunk)
            received[0] += len(chunk)

    r = threading.Thread(target=reader)
    r.start()
    for _ in range(mib):
        s.sendall(data)
        want.update(data)
    r.join()
    s.close()
    result.append(received[0] == mib << 20 and got.digest() == want.digest())


def main():
    port, rounds, mib = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    first = connect(port)
    echo_line(first, "first")
    result = []
    streamer = threading.Thread(target=stream, args=(port, mib, result))
    streamer.start()
    for k in range(rounds):
        subprocess.run(["/usr/bin/true"], check=True)
        subprocess.run(["true"], check=True)
        out = subprocess.run(["echo", "child %d" % k], capture_output=True, check=True)
        if out.stdout.decode().strip() != "child %d" % k:
            raise SystemExit("captured %r" % out.stdout)
        try:
            subprocess.run(["nestls-no-such-program"])
            raise SystemExit("a missing program ran")
        except FileNotFoundError:
            pass
    print("children", rounds * 4, flush=True)
    streamer.join()
    print("stream", "ok" if result == [True] else "MISMATCH", flush=True)
    second = connect(port)
    echo_line(second, "second")
    echo_line(first, "first again")
    if result != [True]:
        return 1
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
