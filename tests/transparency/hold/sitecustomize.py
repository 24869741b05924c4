"""Way (c) of make test-transparency: hold one wrapped connection for the
whole life of the test process, so nestls's engine thread runs throughout.

transparency.py puts this directory on PYTHONPATH and sets
NL_TR_HOLD=HOST:PORT (an `openssl s_server -rev` that the policy wraps)
and NL_TR_HOLD_STATUS=FILE. At start-up this opens a plain TCP connection
(nestls wraps it in TLS), sends one line and checks that the peer's
reversed copy comes back, and keeps the socket referenced. At exit the
same check runs again, proving that the connection lived through every
test. Each check appends one line to FILE ("up PID", "ok PID", or
"broken PID: why"), which transparency.py reads.

The three variables are taken out of the environment at once, so the
tests and every child they start see the environment of a bare run (and
no child connects); this directory leaves sys.path again. Debian's own
sitecustomize, which this one shadows, is run afterwards.
"""

import atexit
import os
import socket
import sys

_HOLD = os.environ.pop("NL_TR_HOLD", None)
_STATUS = os.environ.pop("NL_TR_HOLD_STATUS", None)
_here = os.path.dirname(os.path.abspath(__file__))
if os.environ.get("PYTHONPATH") == _here:
    del os.environ["PYTHONPATH"]

held = None  # the socket, referenced for the life of the process


def _note(text):
    if _STATUS:
        with open(_STATUS, "a") as f:
            f.write(f"{text} {os.getpid()}\n")


def _round_trip(sock, word):
    """Send WORD, expect it back reversed (s_server -rev); bounded by the
    socket's timeout."""
    sock.sendall(word.encode() + b"\n")
    want = word[::-1].encode() + b"\n"
    got = b""
    while not got.endswith(b"\n") and len(got) < 4096:
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    if got != want:
        raise OSError(f"peer answered {got!r}, expected {want!r}")


def _check_at_exit(pid):
    if os.getpid() != pid:  # a forked child exiting normally: not ours
        return
    try:
        held.settimeout(10)
        _round_trip(held, f"nestls-hold-bye-{pid}")
        _note("ok")
    except OSError as exc:
        _note(f"broken at exit ({exc}):")


if _HOLD:
    host, _, port = _HOLD.rpartition(":")
    try:
        held = socket.create_connection((host, int(port)), timeout=10)
        _round_trip(held, f"nestls-hold-hello-{os.getpid()}")
        held.settimeout(None)
        _note("up")
        atexit.register(_check_at_exit, os.getpid())
    except OSError as exc:
        _note(f"broken at start ({exc}):")
        held = None


def _chain():
    """Run the next sitecustomize on sys.path (Debian's), as Python would
    have without this one."""
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == _here:
            continue
        path = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(path):
            with open(path) as f:
                code = compile(f.read(), path, "exec")
            exec(code, {"__name__": "sitecustomize", "__file__": path})
            return


_chain()
# sys.path as in a bare run.
sys.path[:] = [p for p in sys.path if not p or os.path.abspath(p) != _here]
