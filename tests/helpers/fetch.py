#!/usr/bin/env python3
"""fetch.py URL OUTFILE: a plain HTTP GET that writes the body to OUTFILE.

Unlike curl, which answers "localhost" itself (RFC 6761) without asking the
system resolver, this resolves every host name with getaddrinfo(3), as most
programs do, so a preloaded library sees the name. Exit status 0 for a 200
response, 1 otherwise (the reason on stderr)."""
import sys
import urllib.request


def main():
    if len(sys.argv) != 3:
        print("usage: fetch.py URL OUTFILE", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=60) as resp, \
                open(sys.argv[2], "wb") as out:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                out.write(chunk)
            return 0 if resp.status == 200 else 1
    except Exception as e:  # noqa: BLE001 - the reason is the output
        print("fetch.py: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
