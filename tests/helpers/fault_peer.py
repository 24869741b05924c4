#!/usr/bin/env python3
"""fault_peer.py server|client PORT: a TLS peer (0, 1 or 2 nested layers,
Python's ssl module) that misbehaves at a chosen moment.

  server  listen on 127.0.0.1:PORT (0: the kernel picks; "port N" is
          printed when ready) and serve --count connections, each in a
          thread of its own;
  client  connect to 127.0.0.1:PORT --count times, one after the other.

Layers are built as the demo PKI's (--certs DIR): layer 1 is the outer
server certificate / outer CA, layer 2 the inner one; a client verifies
"localhost". --layers 0 is a plain TCP peer.

--at says when the fault happens:
  hs1, hs2  during the handshake of layer 1 or 2: a server waits for the
            client's first handshake bytes of that layer, a client sends
            them and waits for the server's first answer (a client sends
            only --partial bytes of them instead when --partial is given:
            --partial 0 with --fault garbage sends garbage in place of the
            ClientHello);
  data      every layer up: (with --hold FILE, first wait until FILE
            exists, reading nothing meanwhile) read --expect plaintext
            bytes (or to the peer's EOF), send the bytes of --send FILE
            ("{k}" in FILE is replaced by the connection's number), then
            act.
--fault is what happens then:
  rst       SO_LINGER 0 and close: a TCP RST;
  fin       TCP FIN without any close_notify (truncation), then wait for
            the other side to close;
  garbage   bytes that are no TLS record (in place of the answer of that
            layer), then wait for the other side to close;
  stall     nothing more is sent; wait for the other side to close;
  trickle   (client, hs1/hs2, with --partial) the rest of the hello, one
            byte every --gap seconds (slowloris), then wait for the other
            side to close;
  torn      (data) 17 KiB more are sealed in every layer, but only the
            first half of their ciphertext is sent, then FIN: the last
            record is cut in two;
  outer     close_notify on layer 1 only (none inside it), then FIN;
  clean     the control: close_notify on every layer, innermost first, then
            FIN, then wait for the other side to close.

Everything is recorded in --record DIR for connection K (1, 2, ...):
  conn-K.raw    every byte received on the TCP connection;
  conn-K.plain  the plaintext received through every layer;
  conn-K.sum    "BYTES SHA256" of all the plaintext received (written
                just before conn-K.end);
  conn-K.end    how the other side ended, once known: "eof", "ECONNRESET"
                (or another errno name), or "none" after our own RST.
--keep N keeps only the first N bytes in conn-K.raw and conn-K.plain (for
bulk transfers; conn-K.sum still covers everything).
stdout gets "conn K acting" when the fault is about to happen and
"conn K done END" at the end. Waits are bounded (--wait seconds, 30)."""
import argparse
import errno
import hashlib
import os
import select
import socket
import ssl
import struct
import sys
import threading
import time

GARBAGE = b"\x00\x01garbage, not a TLS record\r\n" * 8


class Ended(Exception):
    """The other side closed (or reset) the TCP connection."""


class Onion:
    """Nested SSLObjects over memory BIOs on one TCP socket; layer 0 is on
    the wire. Records what it receives."""

    def __init__(self, sock, ctxs, server_side, record, keep=None):
        self.sock = sock
        self.layers = []
        for ctx in ctxs:
            inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = ctx.wrap_bio(inc, out, server_side=server_side,
                               server_hostname=None if server_side else "localhost")
            self.layers.append({"obj": obj, "inc": inc, "out": out, "up": False})
        self.raw = open(record + ".raw", "wb")
        self.plain = open(record + ".plain", "wb")
        self.plain_count = 0
        self.plain_eof = False
        self.raw_count = 0
        self.keep = keep
        self.digest = hashlib.sha256()

    def flush(self, hold=False):
        """Move every layer's pending output outward, onto the wire (or,
        with hold, return the bytes that would go onto the wire)."""
        held = b""
        for i in reversed(range(len(self.layers))):
            data = self.layers[i]["out"].read()
            if not data:
                continue
            if i > 0:
                self.layers[i - 1]["obj"].write(data)
            elif hold:
                held += data
            else:
                self.sock.sendall(data)
        return held

    def send_at(self, depth, data):
        """Send data as the payload of layer `depth` (0: raw TCP)."""
        if not data:
            return
        if depth == 0:
            self.sock.sendall(data)
        else:
            self.layers[depth - 1]["obj"].write(data)
            self.flush()

    def feed(self):
        """One recv from the socket, peeled as far as the layers that are up."""
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            raise Ended("timeout")
        except OSError as e:
            raise Ended(errno.errorcode.get(e.errno, str(e.errno)))
        if not data:
            raise Ended("eof")
        self._record(self.raw, self.raw_count, data)
        self.raw_count += len(data)
        if not self.layers:
            self._plaintext(data)
            return
        self.layers[0]["inc"].write(data)
        self.peel()

    def peel(self):
        """Pass what the layers that are up have decrypted inward."""
        for i, layer in enumerate(self.layers):
            if not layer["up"]:
                break
            while True:
                try:
                    chunk = layer["obj"].read(1 << 16)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    chunk = b""
                if not chunk:  # close_notify on this layer
                    if i == len(self.layers) - 1:
                        self.plain_eof = True
                    break
                if i + 1 < len(self.layers):
                    self.layers[i + 1]["inc"].write(chunk)
                else:
                    self._plaintext(chunk)
        self.flush()  # e.g. TLS 1.3 key updates or alerts

    def _record(self, f, count, data):
        if self.keep is not None:
            data = data[: max(0, self.keep - count)]
        if data:
            f.write(data)
            f.flush()

    def _plaintext(self, data):
        self._record(self.plain, self.plain_count, data)
        self.digest.update(data)
        self.plain_count += len(data)

    def handshake(self, i):
        layer = self.layers[i]
        while True:
            try:
                layer["obj"].do_handshake()
                layer["up"] = True
                self.flush()
                self.peel()  # bytes that came with the last handshake message
                return
            except ssl.SSLWantReadError:
                pass
            self.flush()
            self.feed()

    def first_step(self, i, server_side, partial):
        """The first half of layer i's handshake: a server receives the
        client's first bytes; a client sends its hello (or `partial` bytes
        of it) and, unless partial, receives the server's first answer."""
        layer = self.layers[i]
        if server_side:
            while layer["inc"].pending == 0:
                self.feed()
            return
        try:
            layer["obj"].do_handshake()
        except ssl.SSLWantReadError:
            pass
        if partial is None:
            self.flush()
            while layer["inc"].pending == 0:
                self.feed()
        else:
            hello = layer["out"].read()
            self.send_at(i, hello[:partial])
            return hello[partial:]

    def close_notify(self, outer_only=False):
        for layer in reversed(self.layers[:1] if outer_only else self.layers):
            try:
                layer["obj"].unwrap()
            except (ssl.SSLWantReadError, ssl.SSLError):
                pass
            self.flush()


def contexts(args, server_side):
    ctxs = []
    for name in ["outer", "inner"][: args.layers]:
        if server_side:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(args.certs, name + "-server.pem"),
                                os.path.join(args.certs, name + "-server.key"))
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(os.path.join(args.certs, name + "-ca.pem"))
        ctxs.append(ctx)
    return ctxs


def wait_end(onion):
    """Keep reading (and recording) until the other side ends."""
    while True:
        onion.feed()


def serve_one(sock, k, args, server_side):
    record = os.path.join(args.record, "conn-%d" % k)
    onion = Onion(sock, contexts(args, server_side), server_side, record, args.keep)
    end = "none"
    rest = b""
    try:
        if args.at in ("hs1", "hs2"):
            depth = 1 if args.at == "hs1" else 2
            for i in range(depth - 1):
                onion.handshake(i)
            rest = onion.first_step(depth - 1, server_side, args.partial)
        else:
            for i in range(args.layers):
                onion.handshake(i)
            if args.hold:
                hold(args.hold, args.wait)
            while onion.plain_count < args.expect and not onion.plain_eof:
                onion.feed()
            if args.send:
                with open(args.send.replace("{k}", str(k)), "rb") as f:
                    onion.send_at(args.layers, f.read())
            depth = args.layers + 1
        print("conn %d acting" % k, flush=True)
        if args.fault == "rst":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            if args.fault == "garbage":
                onion.send_at(depth - 1, GARBAGE)
            elif args.fault == "fin":
                sock.shutdown(socket.SHUT_WR)
            elif args.fault == "torn":
                onion.layers[-1]["obj"].write(GARBAGE * 64)
                wire = onion.flush(hold=True)
                sock.sendall(wire[: len(wire) // 2])
                sock.shutdown(socket.SHUT_WR)
            elif args.fault == "outer":
                onion.close_notify(outer_only=True)
                sock.shutdown(socket.SHUT_WR)
            elif args.fault == "trickle":
                trickle(onion, depth - 1, rest or b"", args.gap)
            elif args.fault == "clean":
                onion.close_notify()
                sock.shutdown(socket.SHUT_WR)
            wait_end(onion)
    except Ended as e:
        end = str(e)
    except ssl.SSLError as e:
        end = "tls " + (e.reason or str(e))
        wait_quietly(sock)
    finally:
        sock.close()
    with open(record + ".sum", "w") as f:
        f.write("%d %s\n" % (onion.plain_count, onion.digest.hexdigest()))
    with open(record + ".end.tmp", "w") as f:
        f.write(end + "\n")
    os.rename(record + ".end.tmp", record + ".end")
    print("conn %d done %s" % (k, end), flush=True)


def trickle(onion, depth, data, gap):
    """Send data one byte every gap seconds as the payload of layer depth,
    noticing the other side's close meanwhile."""
    for b in data:
        if select.select([onion.sock], [], [], gap)[0]:
            onion.feed()  # raises Ended once the other side has closed
        try:
            onion.send_at(depth, bytes([b]))
        except OSError as e:
            raise Ended(errno.errorcode.get(e.errno, str(e.errno)))


def hold(path, wait):
    """Read nothing until path exists (bounded by wait seconds)."""
    deadline = time.monotonic() + wait
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


def wait_quietly(sock):
    """After a TLS error of our own: wait for the other side to close."""
    try:
        while sock.recv(1 << 16):
            pass
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("role", choices=["server", "client"])
    ap.add_argument("port", type=int)
    ap.add_argument("--layers", type=int, choices=[0, 1, 2], default=2)
    ap.add_argument("--at", choices=["hs1", "hs2", "data"], required=True)
    ap.add_argument("--fault", choices=["rst", "fin", "torn", "outer", "garbage", "stall", "trickle", "clean"], required=True)
    ap.add_argument("--partial", type=int, help="client, hs1/hs2: send only this many hello bytes")
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--send", help="data: a file whose bytes are sent before the fault")
    ap.add_argument("--count", type=int, default=1000000)
    ap.add_argument("--certs", required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--wait", type=float, default=30.0)
    ap.add_argument("--gap", type=float, default=0.5, help="trickle: seconds between bytes")
    ap.add_argument("--hold", help="data: read nothing until this file exists")
    ap.add_argument("--keep", type=int, help="record only the first N bytes in .raw and .plain")
    args = ap.parse_args()
    os.makedirs(args.record, exist_ok=True)

    if args.role == "client":
        for k in range(1, args.count + 1):
            sock = socket.create_connection(("127.0.0.1", args.port), timeout=args.wait)
            print("conn %d connected" % k, flush=True)
            serve_one(sock, k, args, server_side=False)
        return 0
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(16)
    print("port %d" % srv.getsockname()[1], flush=True)
    threads = []
    for k in range(1, args.count + 1):  # each connection in a thread of its own
        sock, _ = srv.accept()
        sock.settimeout(args.wait)
        t = threading.Thread(target=serve_one, args=(sock, k, args, True), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
