#!/usr/bin/env python3
"""initfirst.py SRC DST: copy a shared library, marked DF_1_INITFIRST.

make asan uses it on clang's shared ASan runtime (build-asan/rt/), which
make test-asan preloads first into every program the suites wrap.

Why: a preloaded ASan runtime is otherwise initialised by the first call it
intercepts, whenever that comes. In curl, that call is a malloc inside
newlocale(), made by libp11-kit's constructor while glibc holds its locale
lock; ASan's start-up then calls dlerror() -> dcgettext(), which takes and
drops the same lock, and curl deadlocks in setlocale() at the start of main
(also with no nestls at all: LD_PRELOAD=<runtime> curl ... hangs).
glibc runs the initialiser of the object flagged DF_1_INITFIRST before
every other one, so ASan is up before anyone holds that lock. The copy
keeps the runtime's soname, so libraries that link the runtime (such as
build-asan/libnestls.so) use this preloaded copy, never a second one.
"""
import struct
import sys

DT_FLAGS_1 = 0x6FFFFFFB
DF_1_INITFIRST = 0x20
PT_DYNAMIC = 2


def main():
    src, dst = sys.argv[1], sys.argv[2]
    data = bytearray(open(src, "rb").read())
    if data[:6] != b"\x7fELF\x02\x01":
        sys.exit(f"initfirst: {src} is not a 64-bit little-endian ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type != PT_DYNAMIC:
            continue
        for off in range(p_offset, p_offset + p_filesz, 16):
            tag, val = struct.unpack_from("<qQ", data, off)
            if tag == DT_FLAGS_1:
                struct.pack_into("<qQ", data, off, tag, val | DF_1_INITFIRST)
                with open(dst, "wb") as out:
                    out.write(data)
                return 0
    sys.exit(f"initfirst: {src} has no DT_FLAGS_1 entry to mark")


if __name__ == "__main__":
    sys.exit(main())
