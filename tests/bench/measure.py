"""The measurements on one started path. Each returns plain numbers; the
driver keeps them per run and the report turns them into statistics.
Every measuring client is followed by the path's own evidence
(paths.Path.after_client): as many connections logged as were made, with
the right layers, and any log line reporting trouble is kept.

Order on a fresh path: memory first (so the heaps have not yet grown and
shrunk with bulk buffers, which would hide growth), then round trips,
connection rates, bulk, and the concurrency curve."""

import os
import subprocess
import time

import procs
from procs import BenchError, Proc, wait_until

GIB = 1 << 30


def settle(path, seconds=10.0):
    """Wait until the path has no per-connection processes left (socat
    forks one per connection on each side), so one test's closing does not
    run into the next one's clock, and its children's CPU time has been
    collected by their parent."""
    try:
        wait_until(f"{path.name} to close its connections",
                   lambda: procs.descendants(path.roots()) == 0, seconds)
    except BenchError:
        pass  # measured anyway; a stray child only costs it a little


class Evidence:
    """What the path's logs said across one path's measurements."""

    def __init__(self):
        self.shares = {}   # test name -> resumed share of TLS layers
        self.trouble = []  # log lines reporting anything but success

    def take(self, test, path, client_err, conns, full_rate=False):
        share, trouble = path.after_client(client_err, conns, full_rate)
        if share is not None:
            self.shares[test] = share
        self.trouble += [f"{test}: {line}" for line in trouble]


def run_client(path, cfg, ev, test, argv, timeout, full_rate=False):
    err = os.path.join(cfg.logdir, f"{test}.err")
    path.before_client()
    v = procs.run_client(argv, timeout, err_path=err)
    settle(path)
    ev.take(test, path, err, int(v["conns"]), full_rate)
    return v


def memory(path, cfg, ev):
    """RSS growth of every process on the path (client, relays and their
    children, server) per idle established connection, in KiB, and the
    same for PSS. One connection is opened first so that one-time costs
    (engine thread, first handshake, lazy OpenSSL tables) do not count."""
    n = cfg.mem_conns
    path.before_client()
    hold = Proc("hold", path.client("hold", "--port", path.port), cfg.logdir, stdin=True)
    try:
        hold.wait_line("ready")
        hold.send("open 1")
        hold.wait_line("held 1")
        time.sleep(cfg.idle_seconds)  # the definition of idle, not a wait for readiness
        before = procs.memory_kib(path.roots() + [hold.pid])
        hold.send(f"open {n}")
        hold.wait_line(f"held {n + 1}", seconds=120)
        time.sleep(cfg.idle_seconds)
        after = procs.memory_kib(path.roots() + [hold.pid])
        hold.p.stdin.close()
        try:
            hold.p.wait(30)
        except subprocess.TimeoutExpired:
            raise BenchError("the hold client did not close its connections within 30 s")
    finally:
        hold.stop()
    settle(path)
    ev.take("hold", path, hold.err_path, n + 1)
    return (after[0] - before[0]) / n, (after[1] - before[1]) / n


def pingpong(path, cfg, ev, conns, rounds, seconds):
    v = run_client(path, cfg, ev, f"pingpong-{conns}",
                   path.client("pingpong", "--port", path.port, "--conns", conns,
                               "--rounds", rounds, "--seconds", seconds),
                   seconds + 60 + conns * 0.1)
    return v["rtt_med_us"], v["rtt_p99_us"]


def connrate(path, cfg, ev, resumed):
    """Sequential connections per second (one client process)."""
    if resumed:
        ports, extra = [path.resume_port], path.resume_args
    else:
        ports, extra = path.full_ports, []
    where = ["--port", ports[0]]
    if len(ports) > 1:
        ports_file = os.path.join(cfg.logdir, "rotation-ports")
        with open(ports_file, "w") as f:
            f.write("\n".join(str(p) for p in ports) + "\n")
        where = ["--ports-file", ports_file]
    test = f"connrate-{'resumed' if resumed else 'full'}"
    v = run_client(path, cfg, ev, test,
                   path.client("connrate", *where, "--seconds", cfg.rate_seconds, *extra),
                   cfg.rate_seconds + 60, full_rate=not resumed)
    if path.kind == "in-process OpenSSL":  # no log: the client counts
        ev.shares[test] = v["resumed"] / v["conns"]
    return v["rate"]


def bulk(path, cfg, ev, conns, nbytes):
    """Delivered MB/s (10^6 bytes; the sink checked every byte), and CPU
    seconds per GiB summed over the client and every long-lived process on
    the path."""
    settle(path)
    roots = path.roots()
    before = procs.cpu_seconds(roots)
    v = run_client(path, cfg, ev, f"bulk-{conns}",
                   path.client("bulk", "--port", path.port, "--conns", conns,
                               "--bytes", nbytes),
                   120 + conns * 0.1)
    if v["checked"] != nbytes:
        raise BenchError(f"bulk: {v['checked']:.0f} of {nbytes} bytes checked at the sink")
    cpu = v["cpu_s"] + procs.cpu_seconds(roots) - before
    return v["mbps"], cpu / (nbytes / GIB)


def measure_path(path, cfg, curve):
    """Every figure of one path in one run, as a dict."""
    ev = Evidence()
    r = {}
    r["kib_per_conn"], r["pss_kib_per_conn"] = memory(path, cfg, ev)
    r["rtt_med"], r["rtt_p99"] = pingpong(path, cfg, ev, 1, cfg.rounds, cfg.rtt_seconds)
    r["rate_full"] = connrate(path, cfg, ev, False)
    if path.resumable:
        r["rate_resumed"] = connrate(path, cfg, ev, True)
    r["mbps"], r["cpu_per_gib"] = bulk(path, cfg, ev, 1, cfg.bulk_bytes)
    if curve:
        for n in cfg.curve_levels:
            r[f"curve_mbps_{n}"], _ = bulk(path, cfg, ev, n, cfg.curve_bytes)
            r[f"curve_rtt_med_{n}"], r[f"curve_rtt_p99_{n}"] = pingpong(
                path, cfg, ev, n, cfg.curve_rounds, cfg.rtt_seconds)
    r["resumed_shares"] = ev.shares
    r["trouble"] = ev.trouble
    return r
