#!/usr/bin/env bats
# A program closes a wrapped connection while its peer still sends. TCP
# tells the sender with a reset: at once when bytes were left unread at
# the close, or when the next bytes reach the closed socket. Under nestls
# the engine must do the same (engine/conn.c: reset_by_program,
# data_after_close): a clean close_notify and FIN instead would let the
# sender go on writing megabytes into a connection nobody reads, and
# report success (CPython's test_sendfile "close_peer_in_the_middle"
# tests, way d of make test-transparency).
#
# close_unread.py runs both ends in one process; the policy wraps both
# roles on 127.0.0.1 in two layers. The sender stops at 8 MiB.

load helpers/common
load helpers/peers

HELPER=${BATS_TEST_DIRNAME}/helpers/close_unread.py

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
    write_policy both.yaml <<'EOF'
version: 1
rules:
  - name: loopback
    match: {address: 127.0.0.1}
    layers:
      - {ca: @CERTS@/outer-ca.pem, cert: @CERTS@/outer-server.pem, key: @CERTS@/outer-server.key}
      - {ca: @CERTS@/inner-ca.pem, cert: @CERTS@/inner-server.pem, key: @CERTS@/inner-server.key}
EOF
}

# sender_told CLOSER PACE: bare and wrapped, the sender's send fails
# (EPIPE or ECONNRESET) before its 8 MiB are gone; the wrapped closer's
# engine says why it reset.
sender_told() {
    local closer=$1 pace=$2
    run python3 "$HELPER" 0 "$closer" "$pace"
    assert_ok
    assert_output --regexp '^sender: error after [0-9]+ bytes: (EPIPE|ECONNRESET)$'
    run --separate-stderr nestls_run "$POLICY" python3 "$HELPER" 0 "$closer" "$pace"
    assert_ok
    assert_output --regexp '^sender: error after [0-9]+ bytes: (EPIPE|ECONNRESET)$'
    local role=server
    [[ $closer == server ]] || role=client
    assert_log "$stderr" "^nestls\[[0-9]+\] info: rule 'loopback': $role .*(closed: sent [0-9]+ B, received [0-9]+ B in [0-9.]+ s \(reset: the program closed its end with bytes unread\)|: data arrived after the program closed its end: reset, as TCP does)$"
}

@test "the server program closes with the client's bytes unread: the client's send fails, as over TCP" {
    sender_told server burst
}

@test "the server program closes, then the client's bytes arrive: the client's send fails, as over TCP" {
    sender_told server trickle
}

@test "the client program closes with the server's bytes unread: the server's send fails, as over TCP" {
    sender_told client burst
}

@test "the client program closes, then the server's bytes arrive: the server's send fails, as over TCP" {
    sender_told client trickle
}

@test "20 rounds each way: every sender learns of the close; none writes its 8 MiB into the void" {
    local round closer pace
    for ((round = 1; round <= 20; round++)); do
        for closer in server client; do
            pace=burst
            ((round % 2)) || pace=trickle
            run --separate-stderr nestls_run "$POLICY" python3 "$HELPER" 0 "$closer" "$pace"
            assert_ok
            [[ $output =~ ^sender:\ error\ after\ [0-9]+\ bytes:\ (EPIPE|ECONNRESET)$ ]] ||
                fail "round $round, the $closer closes ($pace): $output"
        done
    done
}

# linger_zero: the client sets SO_LINGER {1, 0}, sends a byte and closes;
# the accepted end reads the byte, then an error or EOF, then asks
# getpeername. Prints what it saw.
linger_zero() {
    python3 -c '
import socket, struct, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.create_connection(l.getsockname(), timeout=10)
a, _ = l.accept(); a.settimeout(10)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.send(b"x"); c.close()
got = b""
try:
    while True:
        d = a.recv(100)
        if not d:
            print("read", got, "then EOF"); break
        got += d
except OSError as e:
    print("read", got, "then", type(e).__name__)
time.sleep(0.2)
try:
    a.getpeername(); print("getpeername: an address")
except OSError as e:
    print("getpeername:", e.strerror)'
}

@test "SO_LINGER {1, 0} then close: the peer reads the bytes sent, then ECONNRESET and no peer, as over TCP" {
    run linger_zero
    assert_ok
    assert_output "read b'x' then ConnectionResetError
getpeername: Transport endpoint is not connected"
    run --separate-stderr nestls_run "$POLICY" bash -c "$(declare -f linger_zero); linger_zero"
    assert_ok
    assert_output "read b'x' then ConnectionResetError
getpeername: Transport endpoint is not connected"
}
