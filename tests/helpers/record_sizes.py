#!/usr/bin/env python3
"""record_sizes.py FILE...: the TLS records in byte streams relay.py saved.

Each FILE holds one direction of one connection as it crossed the wire
(conn-K.up or conn-K.down). Prints one line per FILE: the records in
order as TYPE:LENGTH (22 handshake, 20 change_cipher_spec, 21 alert,
23 application data; LENGTH without the 5-byte header), space separated.
What a passive observer of the outer layer sees of a connection; exits 1
when a stream does not parse as TLS records."""
import sys


def records(data):
    out, i = [], 0
    while i < len(data):
        if i + 5 > len(data):
            raise ValueError("%d stray bytes at the end" % (len(data) - i))
        kind, length = data[i], int.from_bytes(data[i + 3:i + 5], "big")
        if kind not in (20, 21, 22, 23) or data[i + 1] != 3:
            raise ValueError("no TLS record header at byte %d" % i)
        out.append("%d:%d" % (kind, length))
        i += 5 + length
    if i != len(data):
        raise ValueError("the last record is cut short")
    return out


def main():
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            try:
                print(" ".join(records(f.read())))
            except ValueError as e:
                print("record_sizes: %s: %s" % (path, e), file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
