#!/usr/bin/env python3
"""What a program can observe of its listening socket, for
tests/server_before_accept.bats. Plain Python sockets: it knows nothing of
TLS; run it under nestls with a policy that wraps its listener (and, for
"self", its own client connections too).

  listen_probe.py self PORT             connect to our own listener, then accept
  listen_probe.py facts PORT            the listener's name and options, as JSON
  listen_probe.py quiet PORT SECONDS    poll the listener: print "ready" when
                                        accept would return, "quiet" if not
  listen_probe.py nonblock PORT         accept on a non-blocking listener with
                                        nothing ready: prints the errno name
  listen_probe.py rebind PORT           close the listener, bind the port again
  listen_probe.py shutdown PORT         shutdown(SHUT_RD) from a thread wakes
                                        a blocked accept: prints its errno name
  listen_probe.py prefork PORT N COUNT  N children accept COUNT echo connections
                                        in all; each prints "child PID served K"
  listen_probe.py daemon PORT COUNT     listen, fork, the parent exits at once
                                        ("daemon PID"); the child echoes COUNT
                                        (PROBE_TERM_FLAG set: SIGTERM only sets
                                        a flag, as nginx's handler does, and
                                        the parent leaves by libc's exit)
  listen_probe.py clone PORT            accept on a copy made with fcntl(F_DUPFD_CLOEXEC)
  listen_probe.py childopts PORT        a forked child accepts and sets TCP_NODELAY,
                                        SO_KEEPALIVE: prints what it reads back
  listen_probe.py emfile PORT           accept at the descriptor limit, then again
  listen_probe.py execworker PORT COUNT a forked worker accepts COUNT; the parent execs
  listen_probe.py slow PORT SECONDS COUNT  accept nothing for SECONDS, then echo COUNT
  listen_probe.py echo PORT COUNT       accept COUNT connections, echo a line on
                                        each; prints "accepted" for each
Each prints "listening" once its listener is up (the test waits for it).
With PROBE_RAW_LISTEN set, the listener is made with syscall(SYS_listen).
"""
import ctypes
import errno
import fcntl
import json
import os
import resource
import select
import signal
import socket
import sys
import threading
import time


def listener(port, host="127.0.0.1", blocking=True):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    if os.environ.get("PROBE_RAW_LISTEN"):  # syscall(SYS_listen), not listen()
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(50, s.fileno(), 64) != 0:  # SYS_listen on x86_64
            raise OSError(ctypes.get_errno(), "syscall(SYS_listen)")
    else:
        s.listen(64)
    s.setblocking(blocking)
    print("listening", flush=True)
    return s


def echo_one(conn):
    with conn:
        f = conn.makefile("rb")
        line = f.readline()
        conn.sendall(line)


def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "self":
        s = listener(port)
        c = socket.create_connection(("127.0.0.1", port), timeout=20)
        conn, peer = s.accept()
        c.sendall(b"ping\n")
        got = conn.recv(5)
        conn.sendall(b"pong\n")
        back = c.recv(5)
        print("accepted from", peer[0], got.decode().strip(), back.decode().strip())
        print("peer port matches:", peer[1] == c.getsockname()[1])
    elif cmd == "facts":
        s = listener(port)
        facts = {
            "sockname": list(s.getsockname()),
            "type": s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE),
            "domain": s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN),
            "protocol": s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL),
            "acceptconn": s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN),
            "reuseaddr": s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR),
        }
        try:
            s.getpeername()
            facts["peername"] = "connected"
        except OSError as e:
            facts["peername"] = errno.errorcode[e.errno]
        print(json.dumps(facts), flush=True)
        conn, peer = s.accept()
        facts = {"peer": list(peer), "peername": list(conn.getpeername()),
                 "sockname": list(conn.getsockname()),
                 "type": conn.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)}
        print(json.dumps(facts), flush=True)
        echo_one(conn)
    elif cmd == "quiet":
        s = listener(port)
        seconds = float(sys.argv[3])
        p = select.poll()
        p.register(s, select.POLLIN)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if p.poll(50):
                print("ready", flush=True)
                conn, _ = s.accept()
                echo_one(conn)
                return
        print("quiet", flush=True)
    elif cmd == "nonblock":
        s = listener(port, blocking=False)
        try:
            s.accept()
            print("accepted")
        except BlockingIOError as e:
            print(errno.errorcode[e.errno])
    elif cmd == "rebind":
        s = listener(port)
        s.close()
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port))
            t.listen(1)
            print("rebound")
        except OSError as e:
            print("rebind failed:", errno.errorcode[e.errno])
    elif cmd == "shutdown":
        s = listener(port)
        threading.Timer(0.5, lambda: s.shutdown(socket.SHUT_RD)).start()
        try:
            s.accept()
            print("accepted")
        except OSError as e:
            print(errno.errorcode[e.errno])
    elif cmd == "prefork":
        n, count = int(sys.argv[3]), int(sys.argv[4])
        s = listener(port)
        s.setblocking(False)
        kids = []
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                served = 0
                deadline = time.monotonic() + 120  # the stop file ends it sooner
                while time.monotonic() < deadline:
                    r, _, _ = select.select([s], [], [], 0.2)
                    if not r:
                        if os.path.exists(sys.argv[5]):
                            break
                        continue
                    try:
                        conn, _ = s.accept()
                    except BlockingIOError:
                        continue  # another child took it: the queue told the truth to both
                    conn.setblocking(True)
                    echo_one(conn)
                    served += 1
                # one write: the children share stdout, and print() may
                # write its pieces separately, interleaving their lines
                os.write(1, b"child %d served %d\n" % (os.getpid(), served))
                os._exit(0)
            kids.append(pid)
        s.close()  # the parent keeps serving the handshakes: it never accepts
        for pid in kids:
            os.waitpid(pid, 0)
    elif cmd == "daemon":
        # listen, then fork and let the parent exit (as a daemon does after
        # opening its sockets); the child echoes COUNT connections
        if os.environ.get("PROBE_TERM_FLAG"):
            signal.signal(signal.SIGTERM, lambda *_: None)
        s = listener(port)
        pid = os.fork()
        if pid != 0:
            print("daemon", pid, flush=True)
            if os.environ.get("PROBE_TERM_FLAG"):
                # libc's exit, as a C daemon leaves: Python's own exit
                # would first put every signal handler back to the default
                ctypes.CDLL(None).exit(0)
            sys.exit(0)
        for _ in range(int(sys.argv[3])):
            conn, _ = s.accept()
            echo_one(conn)
        print("daemon served", sys.argv[3], flush=True)
    elif cmd == "clone":
        # a copy made with fcntl(F_DUPFD_CLOEXEC), as Rust's try_clone does
        s = listener(port)
        copy = socket.socket(fileno=fcntl.fcntl(s.fileno(), fcntl.F_DUPFD_CLOEXEC, 3))
        print("copy", copy.family == socket.AF_INET, copy.getsockname()[1] == port, flush=True)
        conn, _ = copy.accept()
        print("accepted on the copy", flush=True)
        echo_one(conn)
    elif cmd == "childopts":
        # a forked child accepts and sets TCP options on the connection
        s = listener(port)
        pid = os.fork()
        if pid == 0:
            conn, _ = s.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            print("child options", conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                  conn.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), flush=True)
            echo_one(conn)
            os._exit(0)
        s.close()
        os.waitpid(pid, 0)
    elif cmd == "emfile":
        # accept fails with EMFILE once (no descriptor left); the ready
        # connection must still be there for the next accept
        s = listener(port)
        while not select.select([s], [], [], 20)[0]:
            pass
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
        filler = []
        try:
            while True:
                filler.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        try:
            s.accept()
            print("accept at the limit: accepted", flush=True)
        except OSError as e:
            print("accept at the limit:", errno.errorcode[e.errno], flush=True)
        for f in filler:
            os.close(f)
        s.settimeout(10)
        conn, _ = s.accept()
        print("then accepted", flush=True)
        echo_one(conn)
    elif cmd == "execworker":
        # a worker accepts COUNT; the parent that listened execs sleep
        s = listener(port)
        count = int(sys.argv[3])
        pid = os.fork()
        if pid == 0:
            for _ in range(count):
                conn, _ = s.accept()
                echo_one(conn)
            print("worker served", count, flush=True)
            os._exit(0)
        s.close()
        print("worker", pid, flush=True)
        os.execvp("sleep", ["sleep", "30"])
    elif cmd == "slow":
        # accept nothing for SECONDS while clients pile up, then echo COUNT
        s = listener(port)
        time.sleep(float(sys.argv[3]))
        for _ in range(int(sys.argv[4])):
            conn, _ = s.accept()
            echo_one(conn)
        print("served", sys.argv[4], flush=True)
    elif cmd == "echo":
        s = listener(port)
        for _ in range(int(sys.argv[3])):
            conn, _ = s.accept()
            print("accepted", flush=True)
            echo_one(conn)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
