"""Turning the runs into the report: statistics (median, min, max over
runs), ratios computed within each run, the targets of the performance
issue, the markdown text, and the layers plot (gnuplot)."""

import os
import statistics
import subprocess

METRICS = [  # key, column title, decimals
    ("mbps", "bulk MB/s", 0),
    ("rtt_med", "RTT median µs", 1),
    ("rtt_p99", "RTT p99 µs", 1),
    ("rate_full", "conn/s full handshake", 0),
    ("rate_resumed", "conn/s resumed", 0),
    ("kib_per_conn", "KiB RSS per idle conn", 1),
    ("cpu_per_gib", "CPU s per GiB", 2),
]


LOWER_IS_BETTER = {"rtt_med", "rtt_p99", "kib_per_conn", "cpu_per_gib"}
PEERS = ("stunnel", "nginx", "haproxy")  # the relay chains nestls is compared with


def peer_layers(cfg):
    """Depths at which at least one peer chain is configured."""
    return sorted({n for kind in PEERS for n in getattr(cfg, f"{kind}_layers")})


def with_best_peers(runs, cfg):
    """The runs with a pseudo-path 'best peer N' added to each: for every
    metric, the best value any peer chain of depth N (stunnel, nginx,
    haproxy) measured in that run (highest MB/s and conn/s, lowest RTT,
    memory and CPU), and under 'best_of' which peer that was."""
    out = []
    for r in runs:
        r = dict(r)
        for n in peer_layers(cfg):
            best, who = {}, {}
            for key, _, _ in METRICS:
                got = [(r[f"{k} {n}"][key], f"{k} {n}") for k in PEERS
                       if r.get(f"{k} {n}", {}).get(key) is not None]
                if got:
                    pick = min(got) if key in LOWER_IS_BETTER else max(got)
                    best[key], who[key] = pick
            if best:
                r[f"best peer {n}"] = dict(best, best_of=who)
        out.append(r)
    return out


def best_peer_table(runs, cfg):
    """Which peer chain was best at each depth, per metric: how many runs."""
    rows = []
    for n in peer_layers(cfg):
        row = [f"{n} layer{'s' * (n > 1)}"]
        for key, _, _ in METRICS:
            counts = {}
            for r in runs:
                who = r.get(f"best peer {n}", {}).get("best_of", {}).get(key)
                if who:
                    counts[who.split()[0]] = counts.get(who.split()[0], 0) + 1
            row.append(", ".join(f"{k} ({v}/{len(runs)})" for k, v in
                                 sorted(counts.items(), key=lambda kv: -kv[1])) or "n/a")
        rows.append(row)
    return table(["depth"] + [t for _, t, _ in METRICS], rows)


def num(x, decimals):
    return f"{x:,.{decimals}f}"


def spread(values, decimals):
    """'median (min–max)' of the values that exist; 'n/a' if none."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    if len(vals) == 1:
        return num(med, decimals)
    return f"{num(med, decimals)} ({num(min(vals), decimals)}–{num(max(vals), decimals)})"


def series(runs, path, key):
    return [r.get(path, {}).get(key) for r in runs]


def ratios(runs, path, ref, key):
    """nestls/ref per run (both measured in that run)."""
    out = []
    for r in runs:
        a, b = r.get(path, {}).get(key), r.get(ref, {}).get(key)
        out.append(a / b if a is not None and b else None)
    return out


def med(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main_table(runs, names):
    rows = [[name] + [spread(series(runs, name, k), d) for k, _, d in METRICS] for name in names]
    return table(["path"] + [t for _, t, _ in METRICS], rows)


def ratio_table(runs, cfg):
    rows = []
    for n in cfg.nestls_layers:
        refs = [f"stunnel {n}"] if n in cfg.stunnel_layers else []
        refs += [f"best peer {n}"] if n in peer_layers(cfg) else []
        for ref in refs + ["in-process OpenSSL"]:
            rows.append([f"nestls {n} / {ref}"] +
                        [spread(ratios(runs, f"nestls {n}", ref, k), 2) for k, _, _ in METRICS])
    for n in cfg.padded_layers:  # what padding the outer layer costs
        rows.append([f"nestls {n} padded / nestls {n}"] +
                    [spread(ratios(runs, f"nestls {n} padded", f"nestls {n}", k), 2)
                     for k, _, _ in METRICS])
    return table(["ratio (same run)"] + [t for _, t, _ in METRICS], rows)


def fmt(x, decimals):
    return "n/a" if x is None else num(x, decimals)


def targets(runs, cfg):
    """The targets of the performance issue, each judged on the median of
    the per-run ratios (both sides measured in the same run): rows of
    (target, nestls median, reference median, ratio spread, met?)."""
    out = []

    def check(text, path, ref, key, bound, higher_is_better, decimals, per=1):
        rs = ratios(runs, path, ref, key)
        m = med(rs)

        def ok(x):
            return x >= bound if higher_is_better else x <= bound
        met = None if m is None else ok(m)
        runs_met = f"{sum(1 for x in rs if x is not None and ok(x))}/" \
                   f"{sum(1 for x in rs if x is not None)}"
        mine, theirs = med(series(runs, path, key)), med(series(runs, ref, key))
        out.append((text, fmt(mine and mine / per, decimals), fmt(theirs and theirs / per,
                                                                    decimals),
                    spread(rs, 2), met, runs_met))

    # The targets of #17 (which replaced #14's stunnel-only ones): against
    # in-process OpenSSL, and against the best peer chain of the same depth
    # in the same run (stunnel, nginx, haproxy: the best for that metric).
    ipo = "in-process OpenSSL"
    check("bulk, 1 layer ≥ 0.9× in-process OpenSSL (MB/s)", "nestls 1", ipo, "mbps", 0.9, True, 0)
    check("bulk, 1 layer ≥ 1.8× the best peer (MB/s)", "nestls 1", "best peer 1", "mbps", 1.8,
          True, 0)
    for n in (2, 3):
        check(f"bulk, {n} layers ≥ 2× the best peer (MB/s)", f"nestls {n}", f"best peer {n}",
              "mbps", 2, True, 0)
    check("RTT median, 1 layer ≤ 1.3× in-process OpenSSL (µs)", "nestls 1", ipo, "rtt_med", 1.3,
          False, 1)
    check("RTT median, 1 layer ≤ 0.7× the best peer (µs)", "nestls 1", "best peer 1", "rtt_med",
          0.7, False, 1)
    check("RTT p99, 3 layers ≤ 0.6× the best peer (µs)", "nestls 3", "best peer 3", "rtt_p99",
          0.6, False, 1)
    check("new connections/s with resumption, 1 layer ≥ 0.95× in-process OpenSSL", "nestls 1",
          ipo, "rate_resumed", 0.95, True, 0)
    check("new connections/s with resumption, 1 layer ≥ 1.5× nginx", "nestls 1", "nginx 1",
          "rate_resumed", 1.5, True, 0)
    check("CPU seconds per GiB, 1 layer ≤ 1.2× in-process OpenSSL", "nestls 1", ipo,
          "cpu_per_gib", 1.2, False, 2)
    for n in peer_layers(cfg):
        if n in cfg.nestls_layers:
            check(f"idle memory per connection per layer ≤ 0.25× the best peer's, {n} layer"
                  f"{'s' * (n > 1)} (KiB)", f"nestls {n}", f"best peer {n}", "kib_per_conn",
                  0.25, False, 1, per=n)
    # 1 -> 1,000 connections is judged from the concurrency curve (below),
    # whose levels are not per-run ratios of two paths.
    return out


def target_table(runs, cfg):
    rows = [[t, a, b, m, "n/a" if ok is None else ("**pass**" if ok else "**FAIL**"), n]
            for t, a, b, m, ok, n in targets(runs, cfg)]
    return table(["target", "nestls (median)", "reference (median)",
                  "ratio per run: median (min–max)", "pass/fail (median)",
                  "runs that pass"], rows)


def curve_table(runs, cfg):
    rows = []
    for n in cfg.curve_levels:
        row = [str(n)]
        for path in cfg.curve_paths:
            row.append(spread(series(runs, path, f"curve_mbps_{n}"), 0))
        for path in cfg.curve_paths:
            row.append(spread(series(runs, path, f"curve_rtt_med_{n}"), 0) + " / " +
                       fmt(med(series(runs, path, f"curve_rtt_p99_{n}")), 0))
        rows.append(row)
    head = (["concurrent connections"] + [f"{p} MB/s" for p in cfg.curve_paths] +
            [f"{p} RTT µs, median / p99" for p in cfg.curve_paths])
    return table(head, rows)


def render(runs, names, cfg, machine, notes):
    runs = with_best_peers(runs, cfg)
    parts = [
        f"# nestls benchmark ({'QUICK' if cfg.quick else 'full'} run)", "",
        "| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in machine] + [
        "",
        f"Every TLS path: TLS 1.3 only, suite **{cfg.suite}**, group {cfg.group}, ECDSA P-256 "
        "certificates from certs/ (layer 1 outer PKI, 2 inner, then alternating), server "
        "name verified. Loopback, one connection unless stated. Each cell: median (min–max) "
        f"over {cfg.runs} interleaved runs. MB = 10^6 bytes.", "",
        "## Paths", "",
        "plain TCP: no TLS. in-process OpenSSL: the two programs speak TLS themselves (1 "
        "layer, no relay). nestls N: both programs run under `nestls run` with N layers. "
        "stunnel N, nginx N, haproxy N: a chain of N relay services on each side (one "
        "relay process per side), each layer's TLS carried inside the next one out. socat 1: socat OPENSSL on "
        "each side, a fork per connection. Memory and CPU count every process on the path, "
        "the two programs included (tests/bench/README.md).", "",
        main_table(runs, names), "",
        "## nestls as a ratio to the references (computed within each run)", "",
        "Above 1 means more: better for MB/s and conn/s, worse for RTT, KiB and CPU.", "",
        ratio_table(runs, cfg), "",
        "\"best peer N\": for each metric, the best of stunnel N, nginx N and haproxy N "
        "in that run (highest MB/s and conn/s, lowest RTT, KiB and CPU). Which peer that "
        "was (in how many runs):", "",
        best_peer_table(runs, cfg), "",
        "## Targets of the performance issue", "",
        "Judged on the median of the per-run ratios; nestls and reference columns are "
        "medians over the runs (memory: KiB per connection divided by the layer count).", "",
        target_table(runs, cfg), "",
        "## Concurrency curve", "",
        f"Bulk: {cfg.curve_bytes >> 20} MiB spread evenly over the connections, all sending "
        "at once; round trips: every connection keeps one byte in flight, so at N "
        "connections the RTT includes waiting behind the other N-1. Cells: median "
        "(min–max) over the runs; p99: median over the runs. Not a target: reported.", "",
        curve_table(runs, cfg), "",
        "## How it was measured", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(parts)


def plot(runs, cfg, out_png, machine_line):
    """build/bench/layers.png: throughput and RTT against the number of
    layers, nestls and the stunnel, nginx and haproxy chains, with plain TCP and in-process
    OpenSSL as reference lines; bars are min–max over the runs."""
    d = cfg.bench_dir

    def write(name, kind, layers):
        with open(os.path.join(d, name), "w") as f:
            for n in layers:
                row = [n]
                for key in ("mbps", "rtt_med"):
                    vals = [v for v in series(runs, f"{kind} {n}", key) if v is not None]
                    row += [statistics.median(vals), min(vals), max(vals)] if vals else ["?"] * 3
                f.write(" ".join(str(x) for x in row) + "\n")

    write("layers-nestls.dat", "nestls", cfg.nestls_layers)
    write("layers-stunnel.dat", "stunnel", cfg.stunnel_layers)
    write("layers-nginx.dat", "nginx", cfg.nginx_layers)
    write("layers-haproxy.dat", "haproxy", cfg.haproxy_layers)
    refs = ("plain TCP", "in-process OpenSSL")
    ref_mbps = {p: med(series(runs, p, "mbps")) or 0 for p in refs}
    ref_rtt = {p: med(series(runs, p, "rtt_med")) or 0 for p in refs}
    script = f"""
set terminal pngcairo size 1400,620 font "Sans,11" noenhanced
set output "{out_png}"
set datafile missing "?"
set multiplot layout 1,2 title "nestls vs stunnel, nginx and haproxy chains by number of TLS layers ({cfg.suite}, loopback)\\n{machine_line}"
set xlabel "TLS layers"
set xrange [0.5:8.5]
set xtics 1
set grid
set key bmargin center horizontal maxrows 2
set bmargin 7
set yrange [0:*]
set ylabel "bulk throughput, MB/s (median; bars: min-max)"
plot "{d}/layers-nestls.dat" using 1:2:3:4 with yerrorlines lw 2 pt 7 ps 1.3 title "nestls (both ends)", \\
     "{d}/layers-stunnel.dat" using 1:2:3:4 with yerrorlines lw 2 pt 5 ps 1.3 title "stunnel chain", \\
     "{d}/layers-nginx.dat" using 1:2:3:4 with yerrorlines lw 2 pt 9 ps 1.3 title "nginx chain", \\
     "{d}/layers-haproxy.dat" using 1:2:3:4 with yerrorlines lw 2 pt 11 ps 1.3 title "haproxy chain", \\
     {ref_mbps["plain TCP"]} with lines dt 2 lw 1.5 title "plain TCP", \\
     {ref_mbps["in-process OpenSSL"]} with lines dt 4 lw 1.5 title "in-process OpenSSL, 1 layer"
set ylabel "1-byte round trip, median µs (bars: min-max)"
plot "{d}/layers-nestls.dat" using 1:5:6:7 with yerrorlines lw 2 pt 7 ps 1.3 title "nestls (both ends)", \\
     "{d}/layers-stunnel.dat" using 1:5:6:7 with yerrorlines lw 2 pt 5 ps 1.3 title "stunnel chain", \\
     "{d}/layers-nginx.dat" using 1:5:6:7 with yerrorlines lw 2 pt 9 ps 1.3 title "nginx chain", \\
     "{d}/layers-haproxy.dat" using 1:5:6:7 with yerrorlines lw 2 pt 11 ps 1.3 title "haproxy chain", \\
     {ref_rtt["plain TCP"]} with lines dt 2 lw 1.5 title "plain TCP", \\
     {ref_rtt["in-process OpenSSL"]} with lines dt 4 lw 1.5 title "in-process OpenSSL, 1 layer"
unset multiplot
"""
    with open(os.path.join(d, "layers.gp"), "w") as f:
        f.write(script)
    subprocess.run(["gnuplot", os.path.join(d, "layers.gp")], check=True)
