#!/usr/bin/env bats
# Every road a program can take to the wire, under a client rule that
# wraps the peer's port in two layers: the data arrives (the echo comes
# back through the layers) and the marker is never on the wire in clear.
# The side roads: TCP Fast Open through sendto/sendmsg/sendmmsg, MPTCP,
# syscall(), glibc's second names (__connect), a socket shared by dup() or
# fork() before connect, a socket bound before connect.
# (tests/helpers/roads.c takes each road; README "Threat model" lists them.)

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3 tcpdump
    cd "$BATS_TEST_TMPDIR"
    wrapped_echo outer inner
    MARKER=$(new_marker)
}

# take ROAD: run tests/helpers/roads ROAD under the client policy with the
# wire captured; output in $output, stderr in $stderr.
take() {
    capture_start "$PORT"
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- "$TESTBIN/roads" "$1" "$PORT" "$MARKER"
    capture_stop 2
}

@test "TFO: sendto(MSG_FASTOPEN) with an address connects through the layers, never in clear" {
    take tfo-sendto
    assert_ok
    assert_output "sendto: ${#MARKER}
echo: $MARKER"
    assert_not_on_wire "$MARKER"
}

@test "TFO: sendmsg(MSG_FASTOPEN) with msg_name connects through the layers" {
    take tfo-sendmsg
    assert_ok
    assert_output "sendmsg: ${#MARKER}
echo: $MARKER"
    assert_not_on_wire "$MARKER"
}

@test "TFO: sendmmsg(MSG_FASTOPEN) connects with its first message and sends both inside" {
    take tfo-sendmmsg
    assert_ok
    assert_output "sendmmsg: 2
echo: $MARKER"
    assert_not_on_wire "$MARKER"
}

@test "TFO: a non-blocking sendto(MSG_FASTOPEN) answers EINPROGRESS, as the kernel without a cookie; the next send is wrapped" {
    take tfo-nonblock
    assert_ok
    assert_output "sendto: EINPROGRESS
poll: 1
send: ${#MARKER}
echo: $MARKER"
    assert_not_on_wire "$MARKER"
}

@test "TFO: TCP_FASTOPEN_CONNECT then connect keeps working, wrapped" {
    take tfo-connect
    assert_ok
    assert_output "setsockopt: 0
connect: 0
send: ${#MARKER}
echo: $MARKER"
    assert_not_on_wire "$MARKER"
}

@test "MPTCP: an IPPROTO_MPTCP socket is wrapped as TCP and still says it is MPTCP" {
    take mptcp
    assert_ok
    assert_output "connect: 0
protocol: 262
send: ${#MARKER}
echo: $MARKER"
    assert_not_on_wire "$MARKER"
}

@test "syscall(SYS_connect) and syscall(SYS_sendto) take the same hooks" {
    take syscall
    assert_ok
    assert_output "syscall connect: 0
syscall sendto: ${#MARKER}
echo: $MARKER"
    assert_not_on_wire "$MARKER"
}

@test "glibc's second name __connect takes the same hook" {
    take alias
    assert_ok
    assert_output "__connect: 0
send: ${#MARKER}
echo: $MARKER"
    assert_not_on_wire "$MARKER"
}

@test "sendto and sendmsg with an address on a connected wrapped socket: the address is ignored, as by TCP" {
    take addressed
    assert_ok
    half=$((${#MARKER} / 2))
    assert_output "connect: 0
sendto: $half
sendmsg: $((${#MARKER} - half))
echo: $MARKER"
    assert_not_on_wire "$MARKER"
}

@test "a dup() made before connect cannot write in clear: EPIPE, and the wrapped descriptor works" {
    take dup-before
    assert_ok
    assert_output "connect: 0
write on the copy: EPIPE
send: 5
echo: hello"
    assert_not_on_wire "$MARKER"
}

@test "a child forked before connect cannot write in clear on the inherited socket" {
    take fork-before
    assert_ok
    assert_output "connect: 0
send: 5
echo: hello
child write: EPIPE"
    assert_not_on_wire "$MARKER"
}

@test "a socket bound to a local port before connect keeps that port" {
    take bound
    assert_ok
    assert_output "bind: 0
connect: 0
local port kept: yes
send: ${#MARKER}
echo: $MARKER"
    assert_not_on_wire "$MARKER"
}

@test "python: sendto(MSG_FASTOPEN), socket.dup and os.fork before connect, MPTCP" {
    capture_start "$PORT"
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 - "$PORT" "$MARKER" <<'EOF'
import os, socket, sys
port, marker = int(sys.argv[1]), sys.argv[2].encode()
addr = ("127.0.0.1", port)

s = socket.socket()
s.sendto(marker, socket.MSG_FASTOPEN, addr)
print("tfo echo ok:", s.recv(100) == marker)
s.close()

s = socket.socket()
copy = s.dup()
s.connect(addr)
try:
    copy.send(marker)
    print("dup: sent in clear")
except OSError as e:
    print("dup:", type(e).__name__)
s.sendall(b"x"); print("dup echo ok:", s.recv(1) == b"x")
s.close(); copy.close()

s = socket.socket()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.read(r, 1)
    try:
        s.send(marker); os.write(1, b"fork child: sent in clear\n")
    except OSError as e:
        os.write(1, ("fork child: %s\n" % type(e).__name__).encode())
    os._exit(0)
s.connect(addr)
s.sendall(b"y"); print("fork echo ok:", s.recv(1) == b"y", flush=True)
os.write(w, b"g"); os.waitpid(pid, 0)
s.close()

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.connect(addr)
s.sendall(marker)
print("mptcp echo ok:", s.recv(100) == marker)
EOF
    capture_stop 8
    assert_ok
    assert_output "tfo echo ok: True
dup: BrokenPipeError
dup echo ok: True
fork echo ok: True
fork child: BrokenPipeError
mptcp echo ok: True"
    assert_not_on_wire "$MARKER"
}

@test "MPTCP in the server role: a program's MPTCP listener is wrapped" {
    local port
    port=$(free_port)
    server_policy mptcp-server.yaml "$port" outer
    nestls_bg mptcp "$POLICY" python3 -c '
import socket, sys
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1]))); l.listen()
c, _ = l.accept()
c.sendall(c.recv(100))
c.close()' "$port"
    wait_for_port "$port"
    client_policy mptcp-client.yaml "$port" outer
    capture_start "$port"
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- "$TESTBIN/roads" alias "$port" "$MARKER"
    capture_stop 2
    assert_ok
    assert_output "__connect: 0
send: ${#MARKER}
echo: $MARKER"
    assert_not_on_wire "$MARKER"
}

@test "a TFO send from a signal handler that interrupts nestls's own locked section is decided, never sent in clear" {
    # A deny rule: deciding takes no allocation, so the handler itself is
    # async-signal-safe (a wrap would allocate, as any TLS does).
    local sink pass
    start_bg sink python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink"
    sink=$(port_of sink)
    pass=$(free_port)
    write_policy deny.yaml <<EOF
version: 1
rules:
  - name: no-tfo
    match: {role: client, address: [127.0.0.1], port: [$sink]}
    action: deny
EOF
    capture_start "$sink"
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- "$TESTBIN/handler_tfo" 4 "$sink" "$pass" "$MARKER"
    capture_stop 0
    assert_ok
    assert_line "clear 0"
    run grep -a -c -F -- "$MARKER" "$CAPTURE"
    assert_output 0
}

@test "a dual-stack socket connecting to an IPv4-mapped address is wrapped and verified as the IPv4 address" {
    capture_start "$PORT"
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6)
s.connect(("::ffff:127.0.0.1", int(sys.argv[1])))
s.sendall(sys.argv[2].encode())
print(s.recv(200).decode())' "$PORT" "$MARKER"
    capture_stop 2
    assert_ok
    assert_output "$MARKER"
    assert_not_on_wire "$MARKER"
}

@test "options that shape the connection, set before connect, are the TCP socket's and read back as set" {
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
s.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 5)
s.connect(("127.0.0.1", int(sys.argv[1])))
print(s.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16).rstrip(b"\0").decode(),
      s.getsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY))
s.sendall(b"x"); print(s.recv(1).decode())' "$PORT"
    assert_ok
    assert_output "lo 5
x"
}

@test "a connect to 0.0.0.0 from a socket bound to an address is decided as that address, where Linux sends it" {
    local port
    port=$(free_port)
    write_policy deny2.yaml <<EOF
version: 1
rules:
  - name: no-127-0-0-2
    match: {role: client, address: [127.0.0.2], port: [$port]}
    action: deny
EOF
    start_bg listener python3 -c '
import socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.2", int(sys.argv[1]))); l.listen(); print("listening", flush=True)
c, _ = l.accept(); print("accepted", c.recv(100), flush=True)' "$port"
    wait_for_match "$BATS_TEST_TMPDIR/listener.out" listening
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.2", 0))
try:
    s.connect(("0.0.0.0", int(sys.argv[1]))); s.sendall(sys.argv[2].encode()); print("connected")
except OSError as e:
    print(type(e).__name__)' "$port" "$MARKER"
    assert_ok
    assert_output PermissionError
    run grep -c accepted "$BATS_TEST_TMPDIR/listener.out"
    assert_output 0
}
