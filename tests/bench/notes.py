"""The "How it was measured" part of the report: the method, and the
evidence gathered in this run (what the probes saw, how many TLS layers
resumed, log lines reporting trouble), so a reader can judge the table
without the logs."""

import os
import statistics

import paths


def _pct(x):
    return f"{x * 100:.1f}%"


def resumption(runs, names):
    """'path: X in the full-handshake rate, Y in the resumed rate' where
    some log or client told which layers resumed."""
    out = []
    for name in names:
        full = [r[name]["resumed_shares"].get("connrate-full") for r in runs if name in r]
        res = [r[name]["resumed_shares"].get("connrate-resumed") for r in runs if name in r]
        full = [x for x in full if x is not None]
        res = [x for x in res if x is not None]
        if full or res:
            out.append(f"{name}: {_pct(max(full)) if full else 'n/a'} at most in the "
                       f"full-handshake rate, {_pct(min(res)) if res else 'n/a'} at least "
                       "in the resumed rate")
    return "; ".join(out) if out else "none measured"


def trouble(runs, names):
    lines = []
    for name in names:
        found = [t for r in runs if name in r for t in r[name]["trouble"]]
        if found:
            lines.append(f"{name}: {len(found)} line(s), e.g. `{found[0][:300]}`")
    return "; ".join(lines) if lines else "none"


def socat_pss(runs):
    vals = [r["socat 1"]["pss_kib_per_conn"] for r in runs if "socat 1" in r]
    return f"{statistics.median(vals):,.0f} KiB" if vals else "n/a"


def method(cfg, runs, proofs, failures, seconds):
    mib = cfg.bulk_bytes >> 20
    names = sorted({n for r in runs for n in r})
    probe = "; ".join(
        f"{k}: {len(v.get('layers', []))} layer(s)"
        + (f", outermost picked {v['outermost']}" if "outermost" in v else "")
        for k, v in proofs.items())
    notes = [
        f"bulk: one connection sends {mib} MiB (after connection set-up) of a pseudo-random "
        "stream with a prime period; the server compares every byte with what was sent and "
        "answers with the count received and the count that matched; the clock stops at "
        "that answer, and the run fails unless both equal what was sent.",
        f"RTT: one byte (a counter, checked on return) echoed, {cfg.rounds} round trips after "
        f"100 unmeasured ones (or {cfg.rtt_seconds:g} s), client and server using epoll, "
        "TCP_NODELAY everywhere (stunnel's default, socat's nodelay, nestls applies the "
        "program's setting to its TCP socket).",
        "connection rate: one client process connects (TCP, then every handshake), sends 1 "
        "byte, reads it back, closes, one connection after the other for "
        f"{cfg.rate_seconds:g} s. \"resumed\": the client offers its previous session "
        "(in-process: SSL_set_session; stunnel: its default client session cache; nginx: "
        "proxy_ssl_session_reuse on; haproxy: its default server-line session reuse; nestls: "
        "its per-process session table, always on). \"full\": in-process without a session; "
        "stunnel with sessionResume = no, nginx with proxy_ssl_session_reuse off, haproxy "
        "with no-ssl-reuse (a second client chain each); nestls has no switch, so "
        f"its client cycles over {paths.ROTATION_PORTS} listening ports of the server, more "
        "than its 256-entry session table holds. socat forks per connection (a new SSL_CTX "
        "each time) and plain TCP has no TLS: no resumed rate (n/a).",
        "share of TLS layers that resumed, from the nestls client log (\"resumed\" per "
        "layer), the stunnel client log (a full handshake logs the certificate it "
        "verified), the nginx and haproxy server-side access logs ($ssl_session_reused, "
        "ssl_fc_is_resumed per layer) and the in-process client: " + resumption(runs, names) + ".",
        f"memory: RSS (/proc/PID/smaps_rollup) of every process on the path (client, relays "
        f"and their children, server), growth from 1 to {cfg.mem_conns + 1} open "
        f"connections, each idle for {cfg.idle_seconds:g} s, divided by {cfg.mem_conns}. "
        "Kernel socket buffers are not included. socat forks two processes per connection "
        "and RSS counts their shared pages once per child; by PSS (shared pages divided "
        f"among the processes sharing them) socat's figure is {socat_pss(runs)} per "
        "connection. For single processes (nestls, stunnel, nginx, haproxy) PSS and RSS growth agree.",
        "CPU: utime+stime from /proc/PID/stat of every long-lived process on the path (all "
        "threads, and reaped children) across the bulk transfer, plus the client's "
        "getrusage (all its threads: under nestls, the engine too), divided by the GiB "
        "moved.",
        "proof of each path, before measuring, every run: a Python client (ssl module, "
        "memory BIOs) ran exactly the stated number of nested TLS handshakes to the path's "
        "server side, verified every layer as TLSv1.3 " + cfg.suite + ", and got its bytes "
        "echoed (with one layer more or fewer that fails); openssl s_client, offering "
        "AES-256, ChaCha20 and X25519 first, saw the outermost server pick the benchmark's "
        "suite and group. " + probe + ".",
        "proof during measuring: after every client, the nestls client and server logs "
        "had one 'up' line per connection listing exactly the path's layers (each "
        f"TLSv1.3 {cfg.suite}); every stunnel service of the chain, on both sides, "
        "logged every connection (so each connection crossed every hop), and each client "
        "service sent more bytes into TLS than the one inside it (it carries that one's "
        "records: the layers nest); likewise every nginx and haproxy service of the chain, "
        "on both sides, logged every connection in its access log, each service received "
        "more plaintext than the one inside it on both sides, and every server-side layer "
        f"logged TLSv1.3 {cfg.suite}. nestls log lines above info, closes not 'clean', "
        "stunnel warnings and errors, nginx error-log lines (level warn and above), haproxy "
        "log lines other than the per-connection ones and abnormal ends: " + trouble(runs, names) + ".",
        "the server (nlbench serve) is one epoll thread; the clients are one thread; stunnel "
        "(threads), nginx (one process, master_process off), haproxy (nbthread 1) and "
        "socat (fork) run with their defaults besides the TLS settings (haproxy 2.6's "
        "client side takes the group from OPENSSL_CONF, as socat does); "
        "stunnel logs at its default level 5, nestls at its default 'info', socat at its "
        "default (errors only).",
        f"the machine has {os.cpu_count()} cores and may be shared (see the load average "
        "above). During bulk a relayed path keeps 4 threads busy (the 2 programs, nestls's "
        "engine or a relay thread on each side; a stunnel chain of N, 2 + 2N), the "
        "in-process path 2: on 2 cores the relayed paths compete for CPU with themselves. "
        "Spreads are wide; ratios are taken within each run, and targets are judged on "
        "the median ratio.",
        f"wall time of this run: {seconds:.0f} s.",
    ]
    if failures:
        notes.append("**FAILURES**: " + " | ".join(failures))
    return notes
