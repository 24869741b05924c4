#!/usr/bin/env python3
"""onion_seeds.py DIR: write the seed scripts of fuzz_onion into DIR.

Each seed is one script in fuzz_onion.c's format, for every layer count
(1-3) and variant (TLS 1.3, TLS 1.2, mixed with mTLS): a complete exchange
(handshake, writes both ways, reads, orderly close), the same with one
corrupted byte after the handshake, and one with the wire cut in 7-byte
chunks. The fuzzer starts from these instead of from nothing, so its
mutations begin with scripts that reach the data phase."""
import os
import struct
import sys

CLIENT, SERVER = 0x00, 0x80  # top bit of an op: which side acts
WRITE, SHUTTLE, PUMP, READ, CORRUPT, CLOSE, TRIM, QUERY = range(8)
ALL = 0x40  # close: every layer; read: peek


def op(kind, side=CLIENT, flag=0, *args):
    out = bytes([kind | side | flag])
    for size, value in args:
        out += struct.pack(">H", value) if size == 2 else bytes([value])
    return out


def steps(chunk, rounds):
    """Both sides pump, then move their output across, rounds times."""
    s = b""
    for _ in range(rounds):
        s += op(PUMP, CLIENT) + op(SHUTTLE, CLIENT, 0, (2, chunk - 1), (1, 7))
        s += op(PUMP, SERVER) + op(SHUTTLE, SERVER, 0, (2, chunk - 1), (1, 7))
    return s


def handshake(chunk=65535, rounds=8):
    return steps(chunk, rounds)


def exchange(chunk=65535):
    s = op(WRITE, CLIENT, 0, (2, 4999)) + op(WRITE, SERVER, 0, (2, 2999))
    for _ in range(4):
        s += steps(chunk, 1 if chunk > 100 else 40)
        s += op(READ, SERVER, 0, (2, 1023)) + op(READ, CLIENT, ALL, (2, 511))
    return s


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    for layers in range(3):
        for variant in range(3):
            head = bytes([layers, variant]) + struct.pack(">H", 1000 + 10 * layers + variant)
            seeds = {
                "exchange": handshake() + exchange() + op(CLOSE, CLIENT, ALL) + op(QUERY, SERVER),
                "corrupt": handshake() + op(CORRUPT, CLIENT, 0, (2, 40), (1, 0), (1, 1))
                + exchange() + op(CLOSE, SERVER, ALL),
                "chunks97": handshake(97, 40) + exchange(97) + op(TRIM, CLIENT) + op(CLOSE, CLIENT),
            }
            for name, script in seeds.items():
                path = os.path.join(folder, f"{name}-{layers + 1}layers-v{variant}")
                with open(path, "wb") as f:
                    f.write(head + script)


if __name__ == "__main__":
    main()
