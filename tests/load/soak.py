#!/usr/bin/env python3
"""soak.py --seconds S: the soak run of `make soak` (tests/load/README.md).

A wrapped echo server (echo_hub.py) and a wrapped client (soak_client.py),
both under `nestls run`, two layers each way (mTLS outside), on 127.0.0.1.
The client mixes short connections and long ones (periodic small echoes,
large transfers) for S seconds; this script watches both processes:

  - a progress line about every 10 s;
  - RSS (VmRSS) and descriptor count of both processes every --sample-every
    seconds;
  - the descriptor count of each process when quiet (no connection) just
    before the load and again after it: "start" and "end";
  - RSS after the warm-up: "start" is the highest sample of the first
    window after the warm-up, "end" the highest of the last window (each
    window a fifth of the samples after the warm-up, at least 3), so the
    comparison is between like moments of the same traffic mix;
  - one summary line at the end (the samples go to samples.csv in --out).

It fails (exit status 1) when any exchange failed (client), any connection
ended in an error (server), nestls logged a warning or an error, a
process's quiet descriptor count at the end is above the one at the start,
or RSS grew by more than --rss-tolerance percent after the warm-up.
Every wait is bounded; both processes are stopped by PID at the end (or on
any error). Logs and policies are kept in --out (default build/soak)."""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_policies(out, certs, port, log_level):
    settings = "settings:\n  log_level: %s\n" % log_level
    server = """version: 1
%srules:
  - name: soak-server
    match: {role: server, address: [127.0.0.1], port: [%d]}
    layers:
      - {cert: %s/outer-server.pem, key: %s/outer-server.key, client_ca: %s/outer-ca.pem}
      - {cert: %s/inner-server.pem, key: %s/inner-server.key}
""" % (settings, port, certs, certs, certs, certs, certs)
    client = """version: 1
%srules:
  - name: soak-client
    match: {role: client, address: [127.0.0.1], port: [%d]}
    layers:
      - {ca: %s/outer-ca.pem, cert: %s/outer-client.pem, key: %s/outer-client.key}
      - {ca: %s/inner-ca.pem}
""" % (settings, port, certs, certs, certs, certs)
    paths = []
    for name, text in (("server.yaml", server), ("client.yaml", client)):
        path = os.path.join(out, name)
        with open(path, "w") as f:
            f.write(text)
        paths.append(path)
    return paths


class Proc:
    """A wrapped process in its own session, output to files in out/."""

    def __init__(self, name, out, argv):
        self.name = name
        self.out_path = os.path.join(out, name + ".out")
        self.err_path = os.path.join(out, name + ".err")
        with open(self.out_path, "w") as o, open(self.err_path, "w") as e:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                          start_new_session=True)
        self.pid = self.popen.pid  # nestls run execs the program: same PID

    def lines(self):
        with open(self.out_path, errors="replace") as f:
            return f.read().splitlines()

    def alive(self):
        """Running (not exited). Never reaps: while the PID is unreaped its
        process group id cannot be reused, so stop() may signal the group."""
        if self.popen.returncode is not None:
            return False
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return info is None

    def rss_kib(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def fds(self):
        try:
            return len(os.listdir("/proc/%d/fd" % self.pid))
        except OSError:
            return None

    def stop(self, sig=signal.SIGTERM, wait=10.0):
        """Signal the process group (its PID) unless the process has exited,
        wait up to wait seconds, KILL what is left of the group, reap.
        Returns the exit status (negative: killed by that signal)."""
        if self.popen.returncode is None:
            if self.alive():
                try:
                    os.killpg(self.pid, sig)
                except ProcessLookupError:
                    pass
                wait_until(lambda: not self.alive(), wait)
            try:  # still unreaped, so the group id is still ours
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait()
        return self.popen.returncode


def wait_until(pred, seconds, step=0.05):
    end = time.monotonic() + seconds
    while True:
        r = pred()
        if r:
            return r
        if time.monotonic() > end:
            return None
        time.sleep(step)


def last_match(proc, regex):
    for line in reversed(proc.lines()):
        m = re.match(regex, line)
        if m:
            return m
    return None


def settled_fds(procs, seconds, below=None):
    """Each process's descriptor count once it holds still (two equal
    samples 0.5 s apart) and, with below, is at most below[i]; the last
    counts seen when that does not happen within seconds."""
    end = time.monotonic() + seconds
    prev = [p.fds() for p in procs]
    while True:
        time.sleep(0.5)
        cur = [p.fds() for p in procs]
        steady = cur == prev and None not in cur
        if steady and (below is None or all(c <= b for c, b in zip(cur, below))):
            return cur
        if time.monotonic() > end:
            return cur
        prev = cur


def mib(kib):
    return "%.1f" % (kib / 1024.0) if kib is not None else "?"


def nestls_complaints(path):
    pat = re.compile(r"^nestls\[\d+\] (warn|error): ")
    with open(path, errors="replace") as f:
        return [line.rstrip("\n") for line in f if pat.match(line)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--certs", default=os.path.join(REPO, "certs"))
    ap.add_argument("--out", default=None, help="logs and policies (default BUILD/soak)")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds before RSS counts (default: a fifth of the run, 10 to 30 s)")
    ap.add_argument("--sample-every", type=float, default=2.0)
    ap.add_argument("--progress-every", type=float, default=10.0)
    ap.add_argument("--rss-tolerance", type=float, default=10.0, help="percent")
    ap.add_argument("--short", type=int, default=4, help="short-connection workers")
    ap.add_argument("--long", type=int, default=8, help="long connections")
    ap.add_argument("--log-level", default="warn",
                    help="nestls log level of both processes (info logs every connection)")
    ap.add_argument("--no-wrap", action="store_true",
                    help="control run: the same programs in plain TCP, without nestls, to "
                         "tell the drift of the test programs from nestls's")
    args = ap.parse_args()
    if args.seconds < 20:
        ap.error("--seconds must be at least 20 (warm-up, then two windows to compare)")
    warmup = args.warmup if args.warmup is not None else min(30.0, max(10.0, args.seconds / 5))
    out = args.out or os.path.join(args.build, "soak")
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        os.unlink(os.path.join(out, name))
    nestls = os.path.join(args.build, "nestls")
    for f in (nestls, os.path.join(args.build, "libnestls.so"),
              os.path.join(args.certs, "outer-server.pem")):
        if not os.path.exists(f):
            print("soak: %s is missing (make all certs)" % f)
            return 1

    port = free_port()
    server_yaml, client_yaml = write_policies(out, args.certs, port, args.log_level)
    go_file = os.path.join(out, "go")
    exit_file = os.path.join(out, "exit")
    print("soak: %g s (warm-up %g s), %d short workers, %d long connections, "
          "%s on 127.0.0.1:%d; logs in %s"
          % (args.seconds, warmup, args.short, args.long,
             "PLAIN TCP, no nestls (control run)" if args.no_wrap
             else "two layers (mTLS outside)", port, out), flush=True)

    procs = []
    reasons = []
    try:
        wrap_server = [] if args.no_wrap else [nestls, "run", "-p", server_yaml, "--"]
        wrap_client = [] if args.no_wrap else [nestls, "run", "-p", client_yaml, "--"]
        server = Proc("server", out, wrap_server + [
            "python3", os.path.join(HERE, "echo_hub.py"), "--port", str(port)])
        procs.append(server)
        if not wait_until(lambda: last_match(server, r"^port \d+$") or not server.alive(), 15) \
                or not server.alive():
            print("soak: the server did not start; see %s" % server.err_path)
            return 1
        client = Proc("client", out, wrap_client + [
            "python3",
            os.path.join(HERE, "soak_client.py"), "127.0.0.1", str(port),
            "--seconds", str(args.seconds), "--short", str(args.short), "--long", str(args.long),
            "--go-file", go_file, "--exit-file", exit_file])
        procs.append(client)
        if not wait_until(lambda: last_match(client, r"^(primed|FAIL)") or not client.alive(), 30) \
                or not last_match(client, r"^primed$"):
            print("soak: the client could not make its first exchange; see %s"
                  % client.err_path)
            return 1

        # Quiet before: both engines started, no connection open.
        fd_start = settled_fds(procs, 10)
        open(go_file, "w").close()
        t0 = time.monotonic()
        samples = []  # (t, server rss, server fds, client rss, client fds)
        next_sample = next_progress = 0.0
        seen_fail_lines = 0
        deadline = args.seconds + 150  # the drain may take up to 90 s (3 x I/O timeout)
        while True:
            t = time.monotonic() - t0
            finished = last_match(client, r"^finished ")
            if finished or not client.alive() or t > deadline:
                break
            if t >= next_sample:
                samples.append((t, server.rss_kib(), server.fds(), client.rss_kib(), client.fds()))
                next_sample += args.sample_every
            fails = [ln for ln in client.lines() if ln.startswith("FAIL")]
            for ln in fails[seen_fail_lines:]:
                print("soak: client: %s" % ln, flush=True)
            seen_fail_lines = len(fails)
            if t >= next_progress and samples:
                p = last_match(client, r"^progress t=\S+ (.*)$")
                _, srss, sfds, crss, cfds = samples[-1]
                print("soak [%4.0f/%g s] %s | server %s MiB %s fds | client %s MiB %s fds"
                      % (t, args.seconds, p.group(1) if p else "(no progress yet)",
                         mib(srss), sfds, mib(crss), cfds), flush=True)
                next_progress += args.progress_every
            time.sleep(0.1)
        load_seconds = time.monotonic() - t0
        with open(os.path.join(out, "samples.csv"), "w") as f:
            f.write("t,server_rss_kib,server_fds,client_rss_kib,client_fds\n")
            for smp in samples:
                f.write("%.1f,%s,%s,%s,%s\n" % smp)
        if not finished:
            reasons.append("the client did not finish in time" if client.alive()
                           else "the client exited before finishing")

        # Quiet after: every connection closed (engines linger for the
        # peer's FIN up to linger_ms); at most what it was before.
        fd_end = settled_fds(procs, 15, below=fd_start)
        open(exit_file, "w").close()
        if wait_until(lambda: not client.alive(), 130) is None:
            reasons.append("the client did not exit")
        client_rc = client.stop()
        server.stop(signal.SIGTERM)
        for ln in [ln for ln in client.lines() if ln.startswith("FAIL")][seen_fail_lines:]:
            print("soak: client: %s" % ln)

        m = last_match(client, r"^finished t=\S+ exchanges=(\d+) short=(\d+) small=(\d+) "
                               r"large=(\d+) failures=(\d+) bytes=(\d+)")
        exchanges, short, small, large, failures, nbytes = (
            [int(x) for x in m.groups()] if m else [0, 0, 0, 0, -1, 0])
        sm = last_match(server, r"^stats open=(\d+) peak=(\d+) accepted=(\d+) closed=(\d+) "
                                r"errors=(\d+) bytes=(\d+)$")
        s_open, s_peak, s_accepted, _, s_errors, _ = (
            [int(x) for x in sm.groups()] if sm else [-1, -1, -1, -1, -1, -1])
        complaints = nestls_complaints(server.err_path) + nestls_complaints(client.err_path)

        # RSS windows after the warm-up (load samples only).
        after = [s for s in samples if s[0] >= warmup]
        window = max(3, len(after) // 5)
        report = {}
        for name, ri, fi, idx in (("server", 1, 2, 0), ("client", 3, 4, 1)):
            rss_all = [s[ri] for s in samples if s[ri] is not None]
            fds_all = [s[fi] for s in samples if s[fi] is not None]
            rss_after = [s[ri] for s in after if s[ri] is not None]
            if len(rss_after) >= 2 * window:
                start, end = max(rss_after[:window]), max(rss_after[-window:])
                growth = 100.0 * (end - start) / start
            else:
                start = end = growth = None
            report[name] = dict(rss_start=start, rss_end=end, rss_max=max(rss_all, default=None),
                                growth=growth, fd_start=fd_start[idx], fd_end=fd_end[idx],
                                fd_max=max(fds_all, default=None))

        if failures != 0:
            reasons.append("%s failed exchange(s)" % ("?" if failures < 0 else failures))
        if client_rc != 0:
            reasons.append("client exit status %s" % client_rc)
        if exchanges == 0:
            reasons.append("no exchange at all")
        if s_errors != 0:
            reasons.append("server: %s connection(s) ended in an error"
                           % ("?" if s_errors < 0 else s_errors))
        if s_open != 0:
            reasons.append("server: %s connection(s) still open at the end" % s_open)
        if complaints:
            reasons.append("nestls logged %d warning(s)/error(s), first: %s"
                           % (len(complaints), complaints[0]))
        for name, r in report.items():
            if r["fd_start"] is None or r["fd_end"] is None or r["fd_end"] > r["fd_start"]:
                reasons.append("%s: %s fds when quiet at the end, %s at the start"
                               % (name, r["fd_end"], r["fd_start"]))
            if r["growth"] is None:
                reasons.append("%s: too few RSS samples after the warm-up" % name)
            elif r["growth"] > args.rss_tolerance:
                reasons.append("%s: RSS grew %.1f%% after the warm-up (tolerance %g%%)"
                               % (name, r["growth"], args.rss_tolerance))

        def part(name):
            r = report[name]
            growth = "%+.1f%%" % r["growth"] if r["growth"] is not None else "?"
            return ("%s rss start %s end %s max %s MiB (%s), fds start %s end %s max %s"
                    % (name, mib(r["rss_start"]), mib(r["rss_end"]), mib(r["rss_max"]), growth,
                       r["fd_start"], r["fd_end"], r["fd_max"]))

        print("soak summary: %.0f s, %d exchanges (%d short, %d small, %d large, %.1f MiB), "
              "%s failures, server peak %d open of %d accepted, %d server errors, "
              "%d nestls warnings | %s | %s | tolerance %g%% RSS | %s"
              % (load_seconds, exchanges, short, small, large, nbytes / 1048576.0,
                 failures if failures >= 0 else "?", s_peak, s_accepted, max(s_errors, 0),
                 len(complaints), part("server"), part("client"), args.rss_tolerance,
                 "PASS" if not reasons else "FAIL"))
        for r in reasons:
            print("soak: FAIL: %s" % r)
        return 0 if not reasons else 1
    finally:
        for p in procs:
            p.stop(signal.SIGKILL, 1.0)


if __name__ == "__main__":
    sys.exit(main())
