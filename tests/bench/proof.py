"""Evidence that each path is what its name says, gathered while the
benchmark runs (nothing here is timed):

- nested_probe: our own client, written with Python's ssl module on memory
  BIOs (independent of nlbench, nestls and stunnel), runs exactly N nested
  TLS handshakes against the path's server side and gets an echo back.
  With one layer fewer, its plaintext would reach a TLS server; with one
  more, its ClientHello would reach the plaintext server: either fails. So
  an echo proves the server side peels exactly N layers, and every client
  that gets through the same server (every measurement) wraps exactly N.
- suite_probe: openssl s_client offers other suites and groups first and
  reports what the outermost server picked.
- LogCursor, nestls_log, StunnelServices: what nestls and stunnel
  themselves log for each measurement (paths.py decides what must hold):
  connections established and closed, every layer with the benchmark's
  suite, bytes each stunnel service sent into TLS, which layers resumed,
  and anything that did not end cleanly.

Layer L (1 = outermost) uses the outer PKI when L is odd, the inner PKI
when even, on every path."""

import os
import re
import socket
import ssl
import subprocess

from procs import BenchError

SUITE = "TLS_AES_128_GCM_SHA256"
GROUP = "P-256"
GROUP_NAMES = ("P-256", "prime256v1", "secp256r1")  # how tools print it


def pki(layer):
    return "outer" if layer % 2 == 1 else "inner"


class _Onion:
    """N client TLS layers on one socket, outermost first. Layer i's
    transport is layer i-1's plaintext (the socket for i = 0)."""

    def __init__(self, sock):
        self.sock = sock
        self.layers = []  # (SSLObject, incoming BIO, outgoing BIO)
        self.plain = bytearray()  # what the innermost layer decrypted

    def add(self, ca):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(ca)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
        self.layers.append((obj, inc, out))
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._pull()
        self._flush()
        return obj.version(), obj.cipher()[0]

    def _flush(self):
        """Innermost first: each layer's output is the next outer layer's
        plaintext, the outermost's goes to the socket."""
        for i in range(len(self.layers) - 1, -1, -1):
            data = self.layers[i][2].read()
            if data:
                if i == 0:
                    self.sock.sendall(data)
                else:
                    self.layers[i - 1][0].write(data)

    def _pull(self):
        data = self.sock.recv(65536)
        if not data:
            raise BenchError("the server closed the connection")
        self.layers[0][1].write(data)
        for i, (obj, _, _) in enumerate(self.layers):
            if not _handshaken(obj):
                break  # the layer being set up: do_handshake reads its BIO
            while True:
                try:
                    got = obj.read(65536)
                except ssl.SSLWantReadError:
                    break
                if not got:
                    break
                if i + 1 < len(self.layers):
                    self.layers[i + 1][1].write(got)
                else:
                    self.plain += got

    def send(self, data):
        if self.layers:
            self.layers[-1][0].write(data)
            self._flush()
        else:
            self.sock.sendall(data)

    def recv_exactly(self, n):
        while len(self.plain) < n:
            if self.layers:
                self._pull()
            else:
                got = self.sock.recv(65536)
                if not got:
                    raise BenchError("the server closed the connection")
                self.plain += got
        out, self.plain = bytes(self.plain[:n]), self.plain[n:]
        return out

    def close(self):
        """close_notify innermost first, as a careful client does (nestls
        would otherwise log a truncation), then the TCP FIN."""
        for obj, _, _ in reversed(self.layers):
            try:
                obj.unwrap()
            except (ssl.SSLWantReadError, ssl.SSLError):
                pass
            self._flush()
        self.sock.shutdown(socket.SHUT_WR)
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        self.sock.close()


def _handshaken(obj):
    try:
        return obj.version() is not None
    except ValueError:
        return False


def nested_probe(port, layers, certs):
    """Exactly `layers` TLS layers to 127.0.0.1:port, then an echo through
    them. Returns what each layer negotiated, e.g. ['TLSv1.3 TLS_AES_...'];
    raises BenchError if anything differs from the benchmark's settings."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    onion = _Onion(sock)
    try:
        seen = []
        for layer in range(1, layers + 1):
            try:
                version, cipher = onion.add(os.path.join(certs, f"{pki(layer)}-ca.pem"))
            except (ssl.SSLError, OSError) as e:
                raise BenchError(f"layer {layer} of {layers}: {e}")
            if version != "TLSv1.3" or cipher != SUITE:
                raise BenchError(f"layer {layer} negotiated {version} {cipher}")
            seen.append(f"{version} {cipher}")
        message = b"E" + os.urandom(64)
        onion.send(message)
        if onion.recv_exactly(len(message)) != message:
            raise BenchError("the echo through the layers differs from what was sent")
        onion.close()
        return seen
    except (ssl.SSLError, OSError) as e:
        raise BenchError(f"{layers}-layer echo: {e}")
    finally:
        sock.close()


def suite_probe(port):
    """What the outermost server picks when the client prefers AES-256,
    ChaCha20 and X25519: '<suite> <group>' as openssl s_client says."""
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief",
         "-ciphersuites", f"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:{SUITE}",
         "-groups", "X25519:P-256"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=20)
    suite = re.search(r"Ciphersuite: (\S+)", r.stdout)
    # "Server Temp Key: X25519, 253 bits" or "... ECDH, prime256v1, 256 bits"
    key = re.search(r"(?:Server|Peer) Temp Key: (?:ECDH, )?([^,\s]+)", r.stdout)
    got = f"{suite.group(1) if suite else '?'} {key.group(1) if key else '?'}"
    if not suite or suite.group(1) != SUITE or not key or key.group(1) not in GROUP_NAMES:
        raise BenchError(f"outermost server on port {port} picked {got}")
    return got


class LogCursor:
    """The complete lines a long-lived process logged since the last mark
    (a line being written while we read is left for the next window)."""

    def __init__(self, path):
        self.path = path
        self.offset = 0

    def _complete(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        return data[:data.rfind(b"\n") + 1]

    def mark(self):
        self.offset += len(self._complete())

    def new_text(self):
        return self._complete().decode(errors="replace")


NESTLS_UP = re.compile(r" up in [0-9.]+ ms: (.*)$")
NESTLS_LAYER = re.compile(r"layer (\d+) (\S+) (\S+) (?:sni .*? )?peer .*? alpn \S+( resumed)?(?:;|$)")


def nestls_log(text, layers, who):
    """Connections nestls logged as up, the resumed share of their layers,
    and what did not go well (anything above info, closes not 'clean')."""
    ups = resumed = 0
    trouble = []
    for line in text.splitlines():
        m = NESTLS_UP.search(line)
        if m:
            found = NESTLS_LAYER.findall(m.group(1))
            if [int(f[0]) for f in found] != list(range(1, layers + 1)) or \
                    any(f[1] != "TLSv1.3" or f[2] != SUITE for f in found):
                raise BenchError(f"{who}: expected {layers} TLSv1.3 {SUITE} layers: {line}")
            ups += 1
            resumed += sum(1 for f in found if f[3])
        elif " closed: " in line and not line.rstrip().endswith("(clean)"):
            trouble.append(line.strip())
        elif " info: " not in line and line.strip():
            trouble.append(line.strip())
    return ups, (resumed / (ups * layers) if ups else None), trouble


STUNNEL_LINE = re.compile(r"LOG(\d)\[(\w+)\]: (.*)$")
STUNNEL_CLOSED = re.compile(r"Connection closed: (\d+) byte\(s\) sent to TLS")


class StunnelServices:
    """Per stunnel service, from its log: connections accepted, how many
    of them verified a certificate (a full handshake: a resumed TLS 1.3
    session does not verify again), how many closed, and the bytes they
    sent into TLS. Lines of one connection share its [id]."""

    def __init__(self, text):
        service_of = {}
        self.accepted, self.full, self.closed, self.to_tls = {}, {}, {}, {}
        self.trouble = []  # warnings and errors (levels 0-4)
        for line in text.splitlines():
            m = STUNNEL_LINE.search(line)
            if not m:
                continue
            level, cid, msg = m.groups()
            if int(level) <= 4:
                self.trouble.append(line.strip())
            s = re.match(r"Service \[(\S+)\] accepted connection", msg)
            if s:
                service_of[cid] = s.group(1)
                _add(self.accepted, s.group(1), 1)
                continue
            name = service_of.get(cid)
            if name is None:
                continue
            if msg.startswith("Certificate accepted at depth=0"):
                _add(self.full, name, 1)
            c = STUNNEL_CLOSED.match(msg)
            if c:
                _add(self.closed, name, 1)
                _add(self.to_tls, name, int(c.group(1)))


def _add(d, key, n):
    d[key] = d.get(key, 0) + n


class RelayLog:
    """Lines 'nlb key=value ...' that nginx and haproxy write per finished
    connection and service (paths.RelayChainPath sets their formats), by
    service; any other non-empty line, and any connection whose status is
    not the relay's normal end (nginx 200, haproxy '--'), is trouble."""

    def __init__(self, text):
        self.by_service = {}
        self.trouble = []
        for line in text.splitlines():
            if not line.startswith("nlb "):
                if line.strip():
                    self.trouble.append(line.strip())
                continue
            fields = dict(f.partition("=")[::2] for f in line.split()[1:])
            self.by_service.setdefault(fields.get("service"), []).append(fields)
            if fields.get("status") not in ("200", "--"):
                self.trouble.append(line.strip())

    def lines(self, service):
        return self.by_service.get(service, [])

    def count(self, service):
        return len(self.lines(service))

    def total(self, service, key):
        return sum(int(l.get(key, 0)) for l in self.lines(service))
