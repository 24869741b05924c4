#!/usr/bin/env bats
# The read side's direct path (src/hooks/read.c, src/engine/direct_read.c):
# a program thread blocked in read()/recv() on a wrapped socket waits for
# the TCP input itself and runs the connection in its own thread, so the
# engine thread is not woken for every message. Signals, a longjmp out of
# the wait, and every byte's order must be as without it.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
}

# pingpong WAIT LAYERS...: 2,000 round trips of 1 KiB between a wrapped
# client and a wrapped server, each waiting for the next message in a
# blocking recv(), in poll() or in epoll_wait() (WAIT); each prints how
# often its engine thread switched.
pingpong() {
    local wait=$1
    shift
    server_policy server.yaml "$PORT" "$@"
    local server_policy=$POLICY
    client_policy client.yaml "$PORT" "$@"
    nestls_bg pong "$server_policy" python3 "$HELPERS/pingpong.py" serve "$PORT" 2000 1024 "$wait"
    wait_for_port "$PORT"
    run --separate-stderr nestls_run "$POLICY" timeout 120 \
        python3 "$HELPERS/pingpong.py" connect "$PORT" 2000 1024 "$wait"
    assert_ok
    wait_for_match pong.out '^rounds 2000 '
    echo "# $wait, layers $*: client: $output; server: $(grep '^rounds' pong.out)" >&3
    local client_switches server_switches
    client_switches=$(sed -n 's/^rounds 2000 switches //p' <<<"$output")
    server_switches=$(sed -n 's/^rounds 2000 switches //p' pong.out)
    # Woken for every message, each engine would switch 2,000 times or
    # more (it does, with this path taken out). The program threads do the
    # work; the engines look in every 200 ms. The server waits long for
    # each message, so its engine sleeps through nearly all of them. The
    # client waits a moment after it sends, and the answer sometimes beats
    # it to its wait (up to a third of the rounds in Python's poll loop):
    # the engine then takes that one.
    ((server_switches >= 0 && server_switches < 500)) || fail "server engine switched $server_switches times"
    ((client_switches >= 0 && client_switches < 1800)) || fail "client engine switched $client_switches times"
}

@test "blocking recv(), 1 layer: 2,000 round trips decrypted by the program threads, the engines stay asleep" {
    pingpong recv outer
}

@test "poll(), 3 layers: the same, every message checked, and a 200 ms poll with nothing to read waits 200 ms" {
    pingpong poll outer inner outer
}

@test "epoll_wait(), 2 layers: the same, and a 200 ms epoll_wait with nothing to read waits 200 ms" {
    pingpong epoll outer inner
}

echo_server_wrapped() {
    server_policy server.yaml "$PORT" outer
    nestls_bg echo "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
    client_policy client.yaml "$PORT" outer
}

@test "a signal whose handler has SA_RESTART does not end a waiting read: it returns the bytes" {
    echo_server_wrapped
    run --separate-stderr nestls_run "$POLICY" timeout 30 "$BUILD/tests/readwait" restart "$PORT"
    assert_ok
    assert_output "read 5 signals 1"
}

@test "a signal whose handler has no SA_RESTART ends a waiting read with EINTR, as the kernel's would" {
    echo_server_wrapped
    run --separate-stderr nestls_run "$POLICY" timeout 30 "$BUILD/tests/readwait" interrupt "$PORT"
    assert_ok
    assert_output "read -1 EINTR, then 5"
}

@test "a handler that longjmps out of a waiting read: the engine takes the input back, select() sees the echo" {
    echo_server_wrapped
    run --separate-stderr nestls_run "$POLICY" timeout 30 "$BUILD/tests/readwait" longjmp "$PORT"
    assert_ok
    assert_output "select 1 read 5"
}

@test "32 MiB read by blocking recv() of mixed sizes (1 B to 64 KiB) through 3 layers: every byte in order" {
    server_policy server.yaml "$PORT" outer inner outer
    nestls_bg writer "$POLICY" python3 "$HELPERS/mixed_writer.py" listen "$PORT" 33554432 5
    wait_for_port "$PORT"
    client_policy client.yaml "$PORT" outer inner outer
    run --separate-stderr nestls_run "$POLICY" timeout 120 python3 -c '
import hashlib, random, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
rng, sha, total = random.Random(7), hashlib.sha256(), 0
while True:
    data = s.recv(rng.choice((1, 7, 512, 4096, 16385, 65536)))
    if not data:
        break
    sha.update(data)
    total += len(data)
print(total, sha.hexdigest())' "$PORT"
    assert_ok
    wait_for_match writer.out '^33554432 '
    assert_output "$(awk '/^33554432 / { print $1, $2 }' writer.out)"
}

@test "reader threads cancelled at random moments, 1,000 times: the engine's lock is never left held" {
    # AddressSanitizer cannot follow the unwinding of a cancelled thread
    # through instrumented frames: its own thread teardown then reports a
    # stack-buffer-overflow in sigaltstack (a false report, in the ASan
    # runtime). make test runs this test on the release build.
    [[ ${NESTLS_BUILD:-} != */build-asan ]] || skip "AddressSanitizer misreads pthread_cancel's unwinding"
    echo_server_wrapped
    run --separate-stderr nestls_run "$POLICY" timeout 120 "$BUILD/tests/waitstress" cancel "$PORT" 1000
    assert_ok
    assert_output "cancelled 1000"
}

@test "a thread with a 64 KiB stack waiting in read(): the usual wait, no overflow" {
    echo_server_wrapped
    run --separate-stderr nestls_run "$POLICY" timeout 30 "$BUILD/tests/waitstress" smallstack "$PORT"
    assert_ok
    assert_output "read 5 on a small stack"
}

@test "a socket closed with bytes unread while another thread waits in epoll_wait: the reset leaves at once" {
    # The waiting thread's ppoll held the TCP socket: its reset left only
    # when that wait ended (3 s later).
    python3 -c '
import socket, ssl, sys, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2] + "/outer-server.pem", sys.argv[2] + "/outer-server.key")
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(1)
print("port", sys.argv[1], flush=True)
s = ctx.wrap_socket(ls.accept()[0], server_side=True)
s.sendall(b"x" * 100)
s.settimeout(20)
try:
    what = "EOF" if s.recv(100) == b"" else "data"
except Exception as e:
    what = type(e).__name__
print("end at %.3f %s" % (time.monotonic(), what), flush=True)' "$PORT" "$CERTS" >peer.out 2>peer.err &
    local peer=$!
    wait_for_port "$PORT"
    client_policy client.yaml "$PORT" outer
    run --separate-stderr nestls_run "$POLICY" timeout 30 "$BUILD/tests/waitstress" closereset "$PORT"
    assert_ok
    wait_for_match peer.out '^end at '
    kill "$peer" 2>/dev/null || true
    local closed ended
    closed=$(sed -n 's/^closed at //p' <<<"$output")
    ended=$(sed -n 's/^end at \([0-9.]*\) .*/\1/p' peer.out)
    echo "# closed at $closed, the peer saw the end at $ended ($(grep '^end' peer.out))" >&3
    python3 -c 'import sys; sys.exit(0 if float(sys.argv[2]) - float(sys.argv[1]) < 1.0 else 1)' "$closed" "$ended" ||
        fail "the peer saw the end $(python3 -c 'import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 3))' "$closed" "$ended") s after the close"
}

@test "SO_RCVLOWAT is the kernel's: a blocking recv() with 5 bytes there waits for 10" {
    echo_server_wrapped
    run --separate-stderr nestls_run "$POLICY" timeout 30 python3 -c '
import socket, sys, threading, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 10)
s.sendall(b"12345")
threading.Timer(0.3, lambda: s.sendall(b"67890")).start()
time.sleep(0.1)  # the first 5 bytes are there before the recv, and the rest is not
print(s.recv(100).decode())' "$PORT"
    assert_ok
    assert_output "1234567890"
}
