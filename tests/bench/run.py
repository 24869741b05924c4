#!/usr/bin/env python3
"""`make bench`: nestls side by side with plain TCP, in-process OpenSSL,
stunnel and socat on loopback, in one run with the paths interleaved
(every run starts each path afresh, in an order rotated from run to run).
Writes build/bench/results.md (also printed), results.json and layers.png.
tests/bench/README.md says what each path and figure is.

usage: run.py --build DIR [--quick] [--runs N] [--only NAME,...]"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import measure  # noqa: E402
import notes  # noqa: E402
import paths  # noqa: E402
import procs  # noqa: E402
import proof  # noqa: E402
import report  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Config:
    def __init__(self, build, quick, runs):
        self.quick = quick
        self.runs = runs or 3
        self.build = os.path.abspath(build)
        self.bench_dir = os.path.join(self.build, "bench")
        self.nlbench = os.path.join(self.bench_dir, "nlbench")
        self.nestls = os.path.join(self.build, "nestls")
        self.certs = os.path.join(REPO, "certs")
        self.socat_openssl_conf = os.path.join(self.bench_dir, "openssl-socat.cnf")
        self.logdir = self.bench_dir
        self.suite, self.group = proof.SUITE, proof.GROUP
        self.nestls_layers = [1, 2, 3, 8]
        self.padded_layers = [2]  # the outer layer padded: what hiding sizes costs
        self.stunnel_layers = [1, 2, 3]
        self.nginx_layers = [1, 2, 3]
        self.haproxy_layers = [1, 2, 3]
        self.curve_paths = ["plain TCP", "nestls 1", "stunnel 1"]
        self.curve_levels = [1, 10, 100, 1000]
        self.mem_conns = 200
        mib = 1 << 20
        if quick:  # a check that everything works, within 2 minutes with the build
            self.bulk_bytes, self.rounds, self.rtt_seconds = 64 * mib, 2000, 1.0
            # idle: longer than nestls waits before trimming a quiet connection (200 ms)
            self.rate_seconds, self.idle_seconds = 0.3, 0.5
            self.curve_bytes, self.curve_rounds = 16 * mib, 1000
            self.mem_conns = 50
        else:
            self.bulk_bytes, self.rounds, self.rtt_seconds = 512 * mib, 20000, 3.0
            self.rate_seconds, self.idle_seconds = 2.0, 1.0
            self.curve_bytes, self.curve_rounds = 256 * mib, 20000

    def policy(self, role, layers):
        return os.path.join(self.bench_dir, "policies", f"{role}-{layers}.yaml")


def command_line(argv):
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def first_line(text, prefix):
    return next((l for l in text.splitlines() if l.startswith(prefix)), "?")


def machine_info(cfg):
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    commit = command_line(["git", "-C", REPO, "describe", "--always", "--dirty"])
    return [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", f"{model}, {os.cpu_count()} cores"),
        ("memory", f"{mem_gib:.0f} GiB"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("OpenSSL", command_line(["openssl", "version"])),
        ("stunnel", first_line(command_line(["stunnel", "-version"]), "stunnel ")),
        ("socat", first_line(command_line(["socat", "-V"]), "socat version")),
        ("nginx", command_line(["nginx", "-v"])),
        ("haproxy", first_line(command_line(["haproxy", "-v"]), "HAProxy version")),
        ("nestls", f"{command_line([cfg.nestls, '--version'])}, commit {commit}"),
        ("load", "load average %.2f %.2f %.2f at the end (other work on the machine shows "
                 "here)" % os.getloadavg()),
    ]


def brief(name, r):
    def f(key, fmt):
        return format(r[key], fmt) if r.get(key) is not None else "n/a"
    return (f"{name:20s} {f('mbps', '7.0f')} MB/s  rtt {f('rtt_med', '6.1f')}/"
            f"{f('rtt_p99', '.1f')} µs  conn/s {f('rate_full', '.0f')}/"
            f"{f('rate_resumed', '.0f')}  {f('kib_per_conn', '.1f')} KiB/conn  "
            f"{f('cpu_per_gib', '.2f')} CPU s/GiB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--only", help="comma-separated path names (debugging)")
    args = ap.parse_args()
    cfg = Config(args.build, args.quick, args.runs)
    t_start = time.monotonic()

    # Each wrapped connection takes 3 descriptors in each nestls process.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 4 * max(cfg.curve_levels) + 1000:
        sys.exit(f"bench: RLIMIT_NOFILE hard limit {hard} is too low for "
                 f"{max(cfg.curve_levels)} connections")

    logs = os.path.join(cfg.bench_dir, "logs")
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs)
    paths.write_policies(cfg)
    paths.write_socat_conf(cfg)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    all_paths = paths.all_paths(cfg)
    if args.only:
        wanted = set(args.only.split(","))
        all_paths = [p for p in all_paths if p.name in wanted]
    names = [p.name for p in all_paths]
    runs, proofs, failures = [], {}, []
    try:
        for run in range(cfg.runs):
            results = {}
            order = all_paths[run % len(all_paths):] + all_paths[:run % len(all_paths)]
            for path in order:
                cfg.logdir = os.path.join(logs, f"run{run + 1}", path.name.replace(" ", "-"))
                os.makedirs(cfg.logdir)
                t_path = time.monotonic()
                try:
                    path.start()
                    prove(path, cfg, proofs, first_run=run == 0)
                    results[path.name] = r = measure.measure_path(
                        path, cfg, path.name in cfg.curve_paths)
                    print(f"[run {run + 1}/{cfg.runs}] {brief(path.name, r)}  "
                          f"({time.monotonic() - t_path:.0f} s)", file=sys.stderr)
                except procs.BenchError as e:
                    failures.append(f"run {run + 1}, {path.name}: {e}")
                    print(f"[run {run + 1}/{cfg.runs}] {path.name}: FAILED: {e}", file=sys.stderr)
                finally:
                    path.stop()
            runs.append(results)
    finally:
        procs.stop_all()

    machine = machine_info(cfg)
    method = notes.method(cfg, runs, proofs, failures, time.monotonic() - t_start)
    text = report.render(runs, names, cfg, machine, method)
    with open(os.path.join(cfg.bench_dir, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(cfg.bench_dir, "results.json"), "w") as f:
        json.dump({"machine": machine, "runs": runs, "proofs": proofs, "failures": failures},
                  f, indent=1)
    png = os.path.join(cfg.bench_dir, "layers.png")
    report.plot(runs, cfg, png, f"{machine[1][1]}, {machine[3][1]}, {machine[0][1]}")
    print(text)
    print(f"bench: wrote {cfg.bench_dir}/results.md and {png} "
          f"in {time.monotonic() - t_start:.0f} s", file=sys.stderr)
    return 1 if failures else 0


def prove(path, cfg, proofs, first_run):
    """Before measuring: our own N-layer client gets an echo through the
    path's server side (every run: cheap, and it proves each fresh start),
    and in the first run openssl s_client checks what the outermost server
    picks. A failure fails the path for this run."""
    seen = proof.nested_probe(path.probe_port, path.layers, cfg.certs)
    entry = proofs.setdefault(path.name, {})
    entry["layers"] = seen
    if first_run and path.layers:
        entry["outermost"] = proof.suite_probe(path.probe_port)


if __name__ == "__main__":
    sys.exit(main())
