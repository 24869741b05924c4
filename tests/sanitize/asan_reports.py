#!/usr/bin/env python3
"""Judge the sanitizer logs of a make test-asan run.

Usage: asan_reports.py DIR [--full-unwind]

DIR holds ASan/UBSan log_path files, one per process (PREFIX.PROGRAM.PID).
Exit status 1 when any of these is found:
  - an error report (ASan, UBSan, or a sanitizer that could not work);
  - a leak allocated through nestls code (src/, libnestls.so, the command),
    or through the repository's test programs (tests/);
  - with ASan's default fast unwinder: a leak allocated inside OpenSSL or
    libyaml. Those libraries have no frame pointers, so the stack stops
    there and cannot show whether nestls asked for the memory; rerun with
    ASAN_FULL_UNWIND=1 to see the whole stack (--full-unwind), which then
    decides by the frames alone.
Other leaks are the wrapped programs' own (python, bash, curl...): counted
per program, never failed on.

One exception to "through nestls code": a hook that only forwards a call
to libc (getaddrinfo) and hands libc's allocation to the program. When the
innermost nestls frame is such a hook, called straight from the program and
directly calling libc's function of the same name, the memory is the
program's to free.
"""
import os
import re
import sys

NESTLS = re.compile(r"(^|[\s(/])src/(hooks|engine|policy|common|cli)/\w+\.[ch]:\d+"
                    r"|libnestls\.so\+0x|/build-asan/nestls\+0x")
TESTS = re.compile(r"(^|[\s(/])tests/\w+/\w+\.[ch]:\d+|/build-asan/tests/")
TLSLIBS = re.compile(r"libssl\.so|libcrypto\.so|libyaml")
FRAME = re.compile(r"^\s*#(\d+) 0x[0-9a-f]+ (?:in (\S+) )?(.*)$")
ERROR = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)"
                   r"|runtime error:|Sanitizer CHECK failed")


def program_of(path):
    parts = os.path.basename(path).split(".")
    return ".".join(parts[1:-1]) or "?"


def leak_blocks(lines):
    """Yield the frames (function, rest) of each leak record."""
    frames = None
    for line in lines + [""]:
        if re.search(r"(Direct|Indirect) leak of", line):
            frames = []
        elif frames is not None:
            m = FRAME.match(line)
            if m:
                frames.append((m.group(2) or "", m.group(3)))
            elif not line.strip():
                yield frames
                frames = None


def forwarded(frames, hit):
    """True when frames[hit] is a hook handing back libc's allocation."""
    func = frames[hit][0]
    if hit == 0 or any(NESTLS.search(f[1]) for f in frames[hit + 1:]):
        return False
    inner = frames[hit - 1][0]
    return re.fullmatch(r"(__GI_|__libc_|__)?" + re.escape(func) + r"(64)?", inner) is not None


def classify(frames, full_unwind):
    for i, (_, where) in enumerate(frames):
        if NESTLS.search(where):
            if not forwarded(frames, i):
                return "nestls"
            break
    if any(TESTS.search(w) for _, w in frames):
        return "tests"
    if not full_unwind and any(TLSLIBS.search(w) for _, w in frames):
        return "unattributed"
    return "other"


def main():
    folder = sys.argv[1]
    full_unwind = "--full-unwind" in sys.argv[2:]
    errors, counts, others, bad = 0, {"nestls": 0, "tests": 0, "unattributed": 0}, {}, []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
        failed = False
        for line in lines:
            if ERROR.search(line) and "detected memory leaks" not in line:
                errors += 1
                failed = True
                break
        for frames in leak_blocks(lines):
            kind = classify(frames, full_unwind)
            if kind == "other":
                others[program_of(path)] = others.get(program_of(path), 0) + 1
            else:
                counts[kind] += 1
                failed = True
        if failed:
            bad.append(path)

    for path in bad:
        print(f"--- {path}")
        with open(path, errors="replace") as f:
            print("".join(f.readlines()[:150]), end="")
    print(f"test-asan: {errors} sanitizer error report(s); leaks: {counts['nestls']} through "
          f"nestls code, {counts['tests']} in the test programs, {counts['unattributed']} "
          f"inside OpenSSL/libyaml with a cut stack"
          + ("" if full_unwind else " (ASAN_FULL_UNWIND=1 attributes these)"))
    if others:
        listed = ", ".join(f"{p} {n}" for p, n in sorted(others.items()))
        print(f"test-asan: not counted, the wrapped programs' own leaks: {listed}")
    return 1 if errors or any(counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
