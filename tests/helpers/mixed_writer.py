#!/usr/bin/env python3
"""mixed_writer.py connect PORT BYTES SEED | listen PORT BYTES SEED:
connect to 127.0.0.1:PORT (or listen there, print "port N" and accept
one connection), send BYTES (a seeded random 1 MiB block, repeated)
using a seeded random mix of the calls a program can
write with: send(), write() on the descriptor, sendmsg() with two buffers,
send() with MSG_MORE, and sendall() of large pieces; sizes from 1 byte to
256 KiB. Then shutdown(SHUT_WR), wait for the peer's EOF, and print the
SHA-256 of what was sent. nestls takes some of these on its direct path
(the program's own thread) and the rest through the socketpair: the peer
must get them in order."""
import hashlib
import os
import random
import socket
import sys


def main():
    mode, port, total, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    block = rng.randbytes(1 << 20)
    sha = hashlib.sha256()
    if mode == "listen":
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(1)
        print("port", srv.getsockname()[1], flush=True)
        s, _ = srv.accept()
        srv.close()
    else:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.settimeout(None)  # a blocking descriptor, as os.write needs
    sent = 0
    while sent < total:
        size = min(total - sent, rng.choice([1, 7, 100, 1500, 16384, 65536, 100000, 262144]))
        start = sent % len(block)
        data = (block[start:] + block)[:size]
        how = rng.randrange(5)
        if how == 0:
            n = s.send(data)
        elif how == 1:
            n = os.write(s.fileno(), data)
        elif how == 2:
            half = size // 2
            n = s.sendmsg([data[:half], data[half:]])
        elif how == 3:
            n = s.send(data, socket.MSG_MORE)
        else:
            s.sendall(data)
            n = size
        sha.update(data[:n])
        sent += n
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    s.close()
    print(sent, sha.hexdigest(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
