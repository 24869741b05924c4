"""The paths the benchmark compares: how each is started, where its client
connects, which processes are on it, and what its own logs must show for
each measurement (proof.py reads them). Every path carries the same
plaintext programs at its ends (nlbench serve and an nlbench client),
except the in-process row, where those programs speak TLS themselves.

Every TLS endpoint allows only TLS 1.3, the suite proof.SUITE and the group
proof.GROUP, with the ECDSA P-256 certificates of certs/ (layer L uses the
outer PKI when L is odd, the inner PKI when even); every client verifies
the chain and the name 'localhost' and sends it as SNI."""

import os
import time

import procs
import proof
from proof import GROUP, SUITE, pki
from procs import BenchError, Proc, wait_until

ROTATION_PORTS = 300  # > nestls's 256-entry session table: see NestlsPath
PADDING = 512         # bytes: "nestls N padded" pads its outer layer to this


class Path:
    kind = ""
    layers = 0         # TLS layers between the two programs
    resumable = False  # has a "with session resumption" connection rate

    def __init__(self, cfg):
        self.cfg = cfg
        self.procs = []

    @property
    def name(self):
        return f"{self.kind} {self.layers}" if self.layers else self.kind

    # Filled by start():
    port = None          # where the client connects
    full_ports = None    # ports for the full-handshake connection rate
    resume_port = None   # port for the resumed connection rate
    probe_port = None    # the server side's entry, for proof.nested_probe
    client_prefix = []   # e.g. nestls run -p POLICY --
    client_args = []     # e.g. --tls --ca ...
    resume_args = []     # what the client adds for the resumed rate

    def roots(self):
        """The long-lived processes on the path (clients come and go)."""
        return [p.pid for p in self.procs]

    def spawn(self, name, argv, env=None):
        proc = Proc(name, argv, self.cfg.logdir, env=env)
        self.procs.append(proc)
        return proc

    def start_server(self, argv, listen=1):
        server = self.spawn("server", argv + ["--listen", str(listen)])
        ports = [int(l.split()[1]) for l in server.wait_line("port ", listen)]
        server.wait_line("ready")
        return ports

    def wait_ports(self, ports):
        for port in ports:
            wait_until(f"a listener on port {port} ({self.name})",
                       lambda: procs.listening(port) or self._died())

    def _died(self):
        for p in self.procs:
            if not p.alive():
                raise BenchError(f"{self.name}: {p.name} exited: {p.errors()[-800:]}")
        return False

    def client(self, sub, *args):
        return (self.client_prefix + [self.cfg.nlbench, sub] + [str(a) for a in args] +
                self.client_args)

    def stop(self):
        for p in self.procs:
            p.stop()
        self.procs = []

    # Evidence, around each measurement (see proof.py).
    def before_client(self):
        """Called before a measuring client starts."""

    def after_client(self, client_err, conns, full_rate=False):
        """Called once the client is done and the path has settled: checks
        that the path's own logs saw `conns` connections, layer by layer;
        returns the share of TLS layers that resumed (None: nothing tells)
        and a list of log lines that report trouble."""
        return None, []


class PlainPath(Path):
    kind = "plain TCP"

    def start(self):
        self.port, = self.start_server([self.cfg.nlbench, "serve"])
        self.full_ports = [self.port]
        self.probe_port = self.port


class OpenSSLPath(Path):
    """nlbench speaks TLS itself on both ends: OpenSSL with no relay."""
    kind = "in-process OpenSSL"
    layers = 1
    resumable = True

    @property
    def name(self):
        return self.kind

    def start(self):
        c = self.cfg.certs
        self.port, = self.start_server([self.cfg.nlbench, "serve", "--tls", "--cert",
                                        f"{c}/outer-server.pem", "--key", f"{c}/outer-server.key"])
        self.full_ports = [self.port]
        self.resume_port = self.probe_port = self.port
        self.client_args = ["--tls", "--ca", f"{c}/outer-ca.pem", "--name", "localhost"]
        self.resume_args = ["--resume"]


class NestlsPath(Path):
    """Both programs under `nestls run`. nestls resumes on its own (each
    client layer keeps the last session per server name and address, in a
    256-entry table) and has no switch to turn that off, so the
    full-handshake rate cycles over ROTATION_PORTS listening ports of the
    same server: every lookup then misses. The client's log proves it (no
    layer says 'resumed'), and the resumed rate proves the opposite."""
    kind = "nestls"
    resumable = True

    def __init__(self, cfg, layers, padded=False):
        super().__init__(cfg)
        self.layers = layers
        self.padded = padded  # the outer layer pads its records (PADDING bytes)

    @property
    def name(self):
        return f"nestls {self.layers}" + (" padded" if self.padded else "")

    def start(self):
        n, cfg = self.layers, self.cfg
        tag = f"{n}-padded" if self.padded else n
        ports = self.start_server([cfg.nestls, "run", "-p", cfg.policy("server", tag), "--",
                                   cfg.nlbench, "serve"], listen=1 + ROTATION_PORTS)
        self.port = self.resume_port = self.probe_port = ports[0]
        self.full_ports = ports[1:]
        self.client_prefix = [cfg.nestls, "run", "-p", cfg.policy("client", tag), "--"]
        self.server_log = proof.LogCursor(self.procs[0].err_path)

    def before_client(self):
        self.server_log.mark()

    def after_client(self, client_err, conns, full_rate=False):
        with open(client_err, errors="replace") as f:
            ups, share, trouble = proof.nestls_log(f.read(), self.layers, "nestls client")
        s_ups, _, s_trouble = proof.nestls_log(self.server_log.new_text(), self.layers,
                                               "nestls server")
        if ups != conns or s_ups != conns:
            raise BenchError(f"{conns} connections, but the nestls client logged {ups} up "
                             f"and the server {s_ups}")
        return share, trouble + s_trouble


def write_policies(cfg):
    """build/bench/policies/{client,server}-N.yaml for every nestls path."""
    os.makedirs(os.path.join(cfg.bench_dir, "policies"), exist_ok=True)
    tls = (f"        min_version: TLSv1.3\n        ciphersuites: {SUITE}\n"
           f"        groups: {GROUP}")
    # log_level info: two lines per connection, which the proofs count
    # (nestls is quiet by default; stunnel logs at its level 5 here too).
    head = ["version: 1", "settings:", "  log_level: info", "rules:"]
    variants = [(n, False) for n in cfg.nestls_layers] + [(n, True) for n in cfg.padded_layers]
    for n, padded in variants:
        server = head + ["  - name: bench-server", "    match:",
                         "      role: server", "      address: [127.0.0.1]", "    layers:"]
        client = head + ["  - name: bench-client", "    match:",
                         "      role: client", "      address: [127.0.0.1]", "    layers:"]
        for layer in range(1, n + 1):
            p = pki(layer)
            # The outer layer pads what it carries (the inner layers' records).
            pad = f"\n        padding: {PADDING}" if padded and layer == 1 else ""
            server.append(f"      - cert: {cfg.certs}/{p}-server.pem\n"
                          f"        key: {cfg.certs}/{p}-server.key\n" + tls + pad)
            client.append(f"      - ca: {cfg.certs}/{p}-ca.pem\n"
                          f"        server_name: localhost\n" + tls + pad)
        for role, lines in (("server", server), ("client", client)):
            with open(cfg.policy(role, f"{n}-padded" if padded else n), "w") as f:
                f.write("\n".join(lines) + "\n")


class StunnelPath(Path):
    """A chain of `layers` stunnel services on each side, one stunnel
    process per side (threads, its default model). The program's
    connection enters the innermost client service, whose TLS goes out as
    plaintext into the next service outwards, and so on: layer L's records
    travel inside layer L-1's. The server side peels them in the same
    order. The client side holds two chains: A with stunnel's defaults (it
    caches and resumes sessions) and B with sessionResume = no; everything
    but the full-handshake rate uses chain A."""
    kind = "stunnel"
    resumable = True

    def __init__(self, cfg, layers):
        super().__init__(cfg)
        self.layers = layers

    def conf(self, name, services):
        path = os.path.join(self.cfg.logdir, name + ".conf")
        head = ["foreground = yes", f"pid = {os.path.join(self.cfg.logdir, name + '.pid')}",
                "syslog = no", ""]
        with open(path, "w") as f:
            f.write("\n".join(head + services) + "\n")
        return path

    def tls_opts(self):
        return ["sslVersionMin = TLSv1.3", f"ciphersuites = {SUITE}", f"curves = {GROUP}"]

    def start(self):
        n, c = self.layers, self.cfg.certs
        program, = self.start_server([self.cfg.nlbench, "serve"])
        # server side: s[1] is the outermost layer's listener
        s = {layer: procs.free_port() for layer in range(1, n + 1)}
        services = []
        for layer in range(1, n + 1):
            nxt = s[layer + 1] if layer < n else program
            services += [f"[server-{layer}]", f"accept = 127.0.0.1:{s[layer]}",
                         f"connect = 127.0.0.1:{nxt}",
                         f"cert = {c}/{pki(layer)}-server.pem",
                         f"key = {c}/{pki(layer)}-server.key"] + self.tls_opts() + [""]
        server = self.spawn("stunnel-server", ["stunnel", self.conf("stunnel-server", services)])
        self.wait_ports(s.values())
        # client side: the program connects to the innermost layer's listener
        entry, services, listeners = {}, [], []
        for chain, extra in (("A", []), ("B", ["sessionResume = no"])):
            a = {layer: procs.free_port() for layer in range(1, n + 1)}
            for layer in range(n, 0, -1):
                nxt = a[layer - 1] if layer > 1 else s[1]
                services += [f"[client-{chain}{layer}]", "client = yes",
                             f"accept = 127.0.0.1:{a[layer]}", f"connect = 127.0.0.1:{nxt}",
                             f"CAfile = {c}/{pki(layer)}-ca.pem", "verifyChain = yes",
                             "checkHost = localhost", "sni = localhost"] + \
                    self.tls_opts() + extra + [""]
            entry[chain] = a[n]
            listeners += a.values()
        client = self.spawn("stunnel-client", ["stunnel", self.conf("stunnel-client", services)])
        self.wait_ports(listeners)
        self.port = self.resume_port = entry["A"]
        self.full_ports = [entry["B"]]
        self.probe_port = s[1]
        self.logs = [proof.LogCursor(p.err_path) for p in (client, server)]

    def before_client(self):
        for log in self.logs:
            log.mark()

    def after_client(self, client_err, conns, full_rate=False):
        """Every service of the chain used, and of the server side, must
        have accepted each connection: the chain really is traversed hop by
        hop. Each client service outwards must have sent more bytes into
        TLS than the one inside it (it carries that one's records plus its
        own overhead): the layers nest. Resumption: a full handshake logs
        the certificate it verified."""
        chain = [f"client-{'B' if full_rate else 'A'}{k}" for k in range(1, self.layers + 1)]

        def all_closed():  # stunnel logs a close once both of its sockets are done
            c = proof.StunnelServices(self.logs[0].new_text())
            return c if all(c.closed.get(name, 0) >= conns for name in chain) else None
        c = wait_until("stunnel to log every close", all_closed, seconds=10)
        s = proof.StunnelServices(self.logs[1].new_text())
        for k, name in enumerate(chain, 1):
            got = (c.accepted.get(name, 0), s.accepted.get(f"server-{k}", 0))
            if got != (conns, conns):
                raise BenchError(f"{conns} connections, but stunnel's layer {k} services "
                                 f"accepted {got[0]} (client side) and {got[1]} (server side)")
        sent = [c.to_tls.get(name, 0) for name in chain]
        if any(outer <= inner for outer, inner in zip(sent, sent[1:])):
            raise BenchError(f"stunnel client services {', '.join(chain)} sent {sent} bytes "
                             "into TLS: outer layers should carry more than inner ones")
        fulls = sum(c.full.get(name, 0) for name in chain)
        return 1 - fulls / (conns * self.layers), c.trouble + s.trouble


class RelayChainPath(Path):
    """What nginx N and haproxy N share with the stunnel chain: N relay
    services on each side, one relay process per side. Server side: service
    server-1 (outermost) terminates layer 1 and passes its plaintext to
    server-2, ..., server-N to the program. Client side: the program
    connects to the innermost client service; its TLS (layer N) goes out as
    plaintext into the next service outwards, and so on to server-1. Two
    client chains: A resumes sessions (the relay's default), B does not;
    everything but the full-handshake rate uses chain A.

    Subclasses write the relay's configuration (conf()) and log one line
    per finished connection and service in proof.RelayLog's form."""
    resumable = True
    log_ext = ".log"

    def __init__(self, cfg, layers):
        super().__init__(cfg)
        self.layers = layers

    def client_env(self):
        return None

    def client_next(self, chain, layer, a, s):
        """Where client service {chain}{layer} connects: the next service
        outwards, or the server side's outermost listener."""
        return a[layer - 1] if layer > 1 else s[1]

    def start(self):
        n = self.layers
        program, = self.start_server([self.cfg.nlbench, "serve"])
        s = {layer: procs.free_port() for layer in range(1, n + 1)}
        server = [(f"server-{layer}", layer, s[layer], s[layer + 1] if layer < n else program)
                  for layer in range(1, n + 1)]
        proc = self.spawn(f"{self.kind}-server", self.conf("server", server))
        self.wait_ports(s.values())
        client, entry, listeners = [], {}, []
        for chain in ("A", "B"):
            a = {layer: procs.free_port() for layer in range(1, n + 1)}
            client += [(f"client-{chain}{layer}", layer, a[layer],
                        self.client_next(chain, layer, a, s)) for layer in range(n, 0, -1)]
            entry[chain] = a[n]
            listeners += a.values()
        cproc = self.spawn(f"{self.kind}-client", self.conf("client", client),
                           env=self.client_env())
        self.wait_ports(listeners)
        self.port = self.resume_port = entry["A"]
        self.full_ports = [entry["B"]]
        self.probe_port = s[1]
        self.logs = {side: proof.LogCursor(self.log_path(side, p))
                     for side, p in (("client", cproc), ("server", proc))}
        self.errs = [proof.LogCursor(p.err_path) for p in (cproc, proc)]

    def before_client(self):
        # The relays log a connection once both its sides are closed, which
        # can be a moment after the previous client has gone: a line that
        # came after the mark would be counted for the next client. So
        # first wait (5 s at most) until the logs have been still 0.3 s.
        logs = list(self.logs.values()) + self.errs
        sizes, still_since, deadline = None, time.monotonic(), time.monotonic() + 5
        while time.monotonic() < deadline:
            now = [os.path.getsize(log.path) for log in logs]
            if now != sizes:
                sizes, still_since = now, time.monotonic()
            elif time.monotonic() - still_since >= 0.3:
                break
            time.sleep(0.05)
        for log in logs:
            log.mark()

    def after_client(self, client_err, conns, full_rate=False):
        """Every service of the chain used, and of the server side, must
        have logged each connection (so each crossed every hop), with status
        'ok' where the relay says so; each service outwards must have
        received more plaintext bytes than the one inside it (what it
        receives is the inner layer's records: the layers nest); every
        server-side layer must say TLSv1.3 and the benchmark's suite. The
        resumed share is the server side's count of resumed sessions over
        connections × layers."""
        n = self.layers
        chain = [f"client-{'B' if full_rate else 'A'}{k}" for k in range(1, n + 1)]
        servers = [f"server-{k}" for k in range(1, n + 1)]

        def read():
            return (proof.RelayLog(self.logs["client"].new_text()),
                    proof.RelayLog(self.logs["server"].new_text()))

        def all_logged():
            c, s = read()
            done = all(c.count(x) >= conns for x in chain) and \
                all(s.count(x) >= conns for x in servers)
            return (c, s) if done else None
        try:  # the relays log a connection once both of its sides are closed
            c, s = wait_until(f"{self.kind} to log every connection", all_logged, seconds=10)
        except BenchError:
            c, s = read()
        for k in range(1, n + 1):
            got = (c.count(chain[k - 1]), s.count(servers[k - 1]))
            if got != (conns, conns):
                raise BenchError(f"{conns} connections, but {self.name}'s layer {k} services "
                                 f"logged {got[0]} ({chain[k - 1]}) and {got[1]} "
                                 f"({servers[k - 1]})")
        for side, log, names in (("client", c, chain), ("server", s, servers)):
            got = [log.total(x, "in") for x in names]
            if any(outer <= inner for outer, inner in zip(got, got[1:])):
                raise BenchError(f"{self.name} {side} services {', '.join(names)} received "
                                 f"{got} bytes: outer layers should carry more than inner ones")
        for x in servers:
            bad = [l for l in s.lines(x) if l.get("proto") != "TLSv1.3" or
                   l.get("cipher") != SUITE]
            if bad:
                raise BenchError(f"{self.name} {x}: {len(bad)} connections not TLSv1.3 "
                                 f"{SUITE}, e.g. {bad[0]}")
        resumed = sum(1 for x in servers for l in s.lines(x)
                      if l.get("reused") in self.resumed_marks)
        trouble = c.trouble + s.trouble
        for err in self.errs:
            trouble += [l.strip() for l in err.new_text().splitlines() if l.strip()]
        return resumed / (conns * n), trouble


class NginxPath(RelayChainPath):
    """nginx's stream module, one nginx process per side (master_process
    off: a single process, one event loop). Server side: `listen ... ssl`;
    client side: `proxy_ssl on` with verification, SNI and
    proxy_ssl_session_reuse on (chain A) or off (chain B). An access log per
    side, one line per connection and service, unbuffered."""
    kind = "nginx"
    resumed_marks = ("r",)
    MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

    def log_path(self, side, proc):
        return os.path.join(self.cfg.logdir, f"nginx-{side}-access.log")

    def conf(self, side, services):
        c, d = self.cfg.certs, self.cfg.logdir
        path = os.path.join(d, f"nginx-{side}.conf")
        log = self.log_path(side, None)
        lines = [f"load_module {self.MODULE};", "daemon off;", "master_process off;",
                 f"pid {d}/nginx-{side}.pid;", "error_log stderr warn;",
                 "events { worker_connections 8192; }", "stream {"]
        for name, layer, listen, nxt in services:
            fmt = f"svc_{name.replace('-', '_')}"
            if side == "server":
                lines.append(f"  log_format {fmt} 'nlb service={name} port=$server_port "
                             "status=$status in=$bytes_received out=$bytes_sent "
                             "proto=$ssl_protocol cipher=$ssl_cipher sni=$ssl_server_name "
                             "reused=$ssl_session_reused';")
            else:
                lines.append(f"  log_format {fmt} 'nlb service={name} port=$server_port "
                             "status=$status in=$bytes_received out=$bytes_sent "
                             "up_out=$upstream_bytes_sent up_in=$upstream_bytes_received';")
        for name, layer, listen, nxt in services:
            fmt = f"svc_{name.replace('-', '_')}"
            p = pki(layer)
            if side == "server":
                tls = [f"listen 127.0.0.1:{listen} ssl;",
                       f"ssl_certificate {c}/{p}-server.pem;",
                       f"ssl_certificate_key {c}/{p}-server.key;",
                       "ssl_protocols TLSv1.3;", f"ssl_conf_command Ciphersuites {SUITE};",
                       f"ssl_ecdh_curve {GROUP};"]
            else:
                reuse = "on" if name.startswith("client-A") else "off"
                tls = [f"listen 127.0.0.1:{listen};", "proxy_ssl on;",
                       "proxy_ssl_protocols TLSv1.3;",
                       f"proxy_ssl_conf_command Ciphersuites {SUITE};",
                       f"proxy_ssl_conf_command Groups {GROUP};",
                       "proxy_ssl_verify on;", f"proxy_ssl_trusted_certificate {c}/{p}-ca.pem;",
                       "proxy_ssl_name localhost;", "proxy_ssl_server_name on;",
                       f"proxy_ssl_session_reuse {reuse};"]
            lines += [f"  server {{  # {name}, layer {layer}"] + [f"    {t}" for t in tls] + [
                f"    proxy_pass 127.0.0.1:{nxt};", f"    access_log {log} {fmt};", "  }"]
        lines.append("}")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return ["nginx", "-p", d, "-e", "stderr", "-c", path]


class HaproxyPath(RelayChainPath):
    """HAProxy in mode tcp, one process per side (-db: foreground), one
    thread (nbthread 1). Server side: `bind ... ssl crt`; client side:
    `server ... ssl verify required` with SNI and host check; chain B adds
    no-ssl-reuse. It logs one line per connection and listen section to
    its stdout. HAProxy 2.6 has no `curves` for server lines (only for
    bind): its client side takes the group, as socat does, from OpenSSL's
    configuration file (OPENSSL_CONF: the same file as socat's), so that
    it offers only P-256 rather than getting a HelloRetryRequest."""
    kind = "haproxy"
    resumed_marks = ("1",)

    def log_path(self, side, proc):
        return proc.out_path

    def conf(self, side, services):
        c, d = self.cfg.certs, self.cfg.logdir
        path = os.path.join(d, f"haproxy-{side}.cfg")
        tls = f"ssl-min-ver TLSv1.3 ciphersuites {SUITE}"
        lines = ["global", "  nbthread 1", "  maxconn 4096", "  log stdout format raw local0",
                 "defaults", "  mode tcp", "  log global", "  timeout connect 10s",
                 "  timeout client 10m", "  timeout server 10m", ""]
        for name, layer, listen, nxt in services:
            p = pki(layer)
            if side == "server":
                pem = os.path.join(d, f"{p}-server-with-key.pem")
                with open(pem, "w") as f:
                    for part in (f"{c}/{p}-server.pem", f"{c}/{p}-server.key"):
                        f.write(open(part).read())
                bind = f"  bind 127.0.0.1:{listen} ssl crt {pem} {tls} curves {GROUP}"
                server = f"  server s 127.0.0.1:{nxt}"
                fmt = (f"nlb service=%f port=%fp status=%ts in=%U out=%B "
                       "proto=%sslv cipher=%sslc sni=%[ssl_fc_sni] reused=%[ssl_fc_is_resumed]")
            else:
                bind = f"  bind 127.0.0.1:{listen}"
                reuse = "" if name.startswith("client-A") else " no-ssl-reuse"
                server = (f"  server s 127.0.0.1:{nxt} ssl verify required ca-file "
                          f"{c}/{p}-ca.pem sni str(localhost) verifyhost localhost {tls}{reuse}")
                fmt = "nlb service=%f port=%fp status=%ts in=%U out=%B"
            lines += [f"listen {name}", bind, f'  log-format "{fmt}"', server, ""]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return ["haproxy", "-db", "-f", path]

    def client_env(self):
        return dict(os.environ, OPENSSL_CONF=self.cfg.socat_openssl_conf)


class SocatPath(Path):
    """socat OPENSSL on each side, forking per connection (its only server
    mode), so a new SSL_CTX per connection: no resumption. socat 1.7 has no
    option for TLS 1.3 suites; OpenSSL's own configuration file
    (OPENSSL_CONF, system_default section) sets them. Its server side
    forces the P-256 group itself (hence the benchmark's group)."""
    kind = "socat"
    layers = 1

    def start(self):
        c = self.cfg.certs
        program, = self.start_server([self.cfg.nlbench, "serve"])
        env = dict(os.environ, OPENSSL_CONF=self.cfg.socat_openssl_conf)
        q, p = procs.free_port(), procs.free_port()
        self.spawn("socat-server", [
            "socat", "-t", "2",
            f"OPENSSL-LISTEN:{q},bind=127.0.0.1,reuseaddr,fork,nodelay,"
            f"cert={c}/outer-server.pem,key={c}/outer-server.key,verify=0,"
            "openssl-min-proto-version=TLS1.3",
            f"TCP:127.0.0.1:{program},nodelay"], env=env)
        self.spawn("socat-client", [
            "socat", "-t", "2",
            f"TCP-LISTEN:{p},bind=127.0.0.1,reuseaddr,fork,nodelay",
            f"OPENSSL:127.0.0.1:{q},nodelay,cafile={c}/outer-ca.pem,verify=1,"
            f"commonname=localhost,snihost=localhost,openssl-min-proto-version=TLS1.3"], env=env)
        self.wait_ports([q, p])
        self.port = p
        self.full_ports = [p]
        self.probe_port = q


def write_socat_conf(cfg):
    with open(cfg.socat_openssl_conf, "w") as f:
        f.write("# socat has no option for TLS 1.3 suites: OpenSSL's defaults for it.\n"
                "openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = sys\n"
                f"[sys]\nCiphersuites = {SUITE}\nGroups = {GROUP}\nMinProtocol = TLSv1.3\n")


def all_paths(cfg):
    paths = [PlainPath(cfg), OpenSSLPath(cfg)]
    paths += [NestlsPath(cfg, n) for n in cfg.nestls_layers]
    paths += [NestlsPath(cfg, n, padded=True) for n in cfg.padded_layers]
    paths += [StunnelPath(cfg, n) for n in cfg.stunnel_layers]
    paths += [NginxPath(cfg, n) for n in cfg.nginx_layers]
    paths += [HaproxyPath(cfg, n) for n in cfg.haproxy_layers]
    paths.append(SocatPath(cfg))
    return paths
