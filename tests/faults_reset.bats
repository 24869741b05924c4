#!/usr/bin/env bats
# Fault injection: the peer resets the TCP connection (SO_LINGER 0 close,
# an RST) during layer 1's handshake, during layer 2's, and mid-transfer,
# in both roles; the program is wrapped in two layers.
# What the program must see: a reset is a TCP failure, so a connect()
# during the handshakes fails with the kernel's ECONNRESET (tests/CONTRACT.md:
# TCP failures keep the kernel's errno), and an established connection
# gives ECONNRESET/EPIPE, never a clean EOF. And the peer never receives a
# byte of the program's data in plaintext.

load helpers/common
load helpers/peers
load helpers/fault_lib

setup() {
    need_build
    need_cmd python3 tcpdump
    cd "$BATS_TEST_TMPDIR"
    MARKER=$(new_marker)
}

# client_refused LAYER: a wrapped tcpclient, blocking and then non-blocking
# (its marker written before the layers are up), is refused with
# ECONNRESET at LAYER; the peer got no plaintext from either.
client_refused() {
    local layer=$1 pid mode
    for mode in blocking -n; do
        if [[ $mode == -n ]]; then
            run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" -n 127.0.0.1 "$PORT" <<<"$MARKER"
        else
            run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <<<"$MARKER"
        fi
        assert_failure 3
        assert_output ''
        pid=$(run_pid)
        assert_log "$stderr" '^tcpclient: connect: ECONNRESET \('
        [[ $mode == blocking ]] || assert_log "$stderr" '^tcpclient: read after failure: ECONNRESET \('
        assert_log "$stderr" "^nestls\[$pid\] error: rule 'client': client $ADDR -> $IP4:$PORT TCP: Connection reset by peer \\(during the handshake of layer $layer\\)$"
    done
    assert_equal "$(peer_end 1)" none
    assert_equal "$(peer_end 2)" none
    refute_peer_got "$MARKER" 1
    refute_peer_got "$MARKER" 2
}

@test "client: RST during layer 1's handshake fails connect with ECONNRESET at layer 1; no plaintext reached the peer" {
    start_fault_server hs1 rst --count 2
    capture_start "$PORT"
    client_refused 1
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "client: RST during layer 2's handshake (layer 1 up) fails connect with ECONNRESET at layer 2; no plaintext reached the peer" {
    start_fault_server hs2 rst --count 2
    capture_start "$PORT"
    client_refused 2
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "client: RST while the program writes 16 MiB: its write fails (EPIPE or ECONNRESET), not a success; the peer decrypted the marker, the wire never held it" {
    start_fault_server data rst --count 1 --expect 1048576
    capture_start "$PORT"
    { echo "$MARKER"; "$TESTBIN/pattern" 16M; } >input
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <input
    assert_failure 4
    assert_log "$stderr" '^tcpclient: write: (EPIPE|ECONNRESET) \('
    assert_log "$stderr" "^nestls\[$(run_pid)\] error: rule 'client': client $ADDR -> $IP4:$PORT TCP: Connection reset by peer$"
    assert_log "$stderr" "^nestls\[$(run_pid)\] info: rule 'client': client $ADDR -> $IP4:$PORT closed: .* \(error\)$"
    grep -q -a -F -- "$MARKER" peer/conn-1.plain || fail "the peer did not decrypt the marker"
    refute_peer_got "$MARKER" 1
    capture_stop 1
    assert_not_on_wire "$MARKER"
}

@test "client: RST while the program reads: it gets a prefix of the peer's bytes, then ECONNRESET, never a clean EOF" {
    "$TESTBIN/pattern" 1M >data
    start_fault_server data rst --count 1 --expect $((${#MARKER} + 1)) --send data
    capture_start "$PORT"
    run --separate-stderr nestls_run "$POLICY" sh -c \
        "'$TESTBIN/tcpclient' 127.0.0.1 $PORT >got; echo \"exit \$?\" >&2" <<<"$MARKER"
    assert_log "$stderr" '^exit 4$'
    assert_log "$stderr" '^tcpclient: read: ECONNRESET \('
    local n
    n=$(stat -c %s got)
    assert_equal "$(head -c "$n" data | sha256)" "$(sha256 got)" # a prefix, intact
    refute_peer_got "$MARKER" 1
    capture_stop 1
    assert_not_on_wire "$MARKER"
}

# server_dropped LAYER: the wrapped server logged the reset at LAYER; its
# program never accepted the connection, so its greeting never reached
# the peer.
server_dropped() {
    wait_for_match greeter.err \
        "^nestls\[$SERVER_PID\] info: rule 'server': server $IP4:$PORT <- $ADDR TCP: Connection reset by peer \\(during the handshake of layer $1\\)$"
    # Its handshake never finished: the program's accept never returned it.
    assert_equal "$(ls greeter 2>/dev/null | grep -c '^conn-')" 0
    refute_peer_got "$MARKER" 1
    refute_log "$(cat greeter.err)" ' up in '
}

@test "server: RST during layer 1's handshake: dropped at layer 1; the program never sees it, its greeting never left" {
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer inner
    start_greeter "$POLICY"
    capture_start "$PORT"
    run_fault_client hs1 rst
    assert_success
    server_dropped 1
    capture_stop 1
    assert_not_on_wire "$MARKER"
}

@test "server: RST during layer 2's handshake (layer 1 up): dropped at layer 2; the program never sees it, its greeting never left" {
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer inner
    start_greeter "$POLICY"
    capture_start "$PORT"
    run_fault_client hs2 rst
    assert_success
    server_dropped 2
    capture_stop 1
    assert_not_on_wire "$MARKER"
}

@test "server: RST mid-transfer: the program reads a prefix of the client's bytes, then ECONNRESET, never a clean EOF" {
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer inner
    start_greeter "$POLICY"
    "$TESTBIN/pattern" 1M >data
    capture_start "$PORT"
    run_fault_client data rst --expect $((${#MARKER} + 1)) --send data
    assert_success
    local end n
    end=$(greeter_end 1)
    [[ $end == *" error ECONNRESET" ]] || fail "the program saw '$end', not ECONNRESET"
    n=${end%% *}
    assert_equal "$n $(head -c "$n" data | sha256) error ECONNRESET" "$end"
    assert_equal "$(head -c $((${#MARKER} + 1)) peer/conn-1.plain)" "$MARKER" # it crossed, encrypted
    refute_peer_got "$MARKER" 1
    wait_for_match greeter.err \
        "^nestls\[$SERVER_PID\] info: rule 'server': server $IP4:$PORT <- $ADDR closed: .* \(error\)$"
    capture_stop 1
    assert_not_on_wire "$MARKER"
}

# reset_seen MODE: reset_visibility.py's 30 rounds, both roles wrapped in
# two layers on loopback.
reset_seen() {
    loopback_policy 2
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- timeout 120 python3 "$HELPERS/reset_visibility.py" "$1" 30
    assert_ok
    assert_output "{'ENOTCONN, bytes, ECONNRESET': 30}"
}

@test "bytes a server sends just before its reset reach the client first, and getpeername() says ENOTCONN once the server's close() returned (30 rounds)" {
    # Before: the data was lost (Nagle held the last record behind an
    # unacknowledged session ticket, and the client's engine took the
    # reset before reading what came ahead of it), and getpeername()
    # answered for a connection already reset.
    reset_seen to-client
}

@test "bytes a client sends just before its reset reach the server first, and getpeername() says ENOTCONN once the client's close() returned (30 rounds)" {
    # Before: the reset left some time after close() returned (the
    # engine thread sent it), and the server found the connection still
    # there in 25 of 30 rounds.
    reset_seen to-server
}

@test "a client that polls getpeername() until the server's reset shows reads the bytes sent before it at once, without EAGAIN (30 rounds)" {
    # getpeername() can see the reset on the TCP socket before the engine
    # thread has delivered what came ahead of it: it delivers them first
    # (before: EAGAIN on the first recv() in most rounds).
    reset_seen to-client-spin
}

@test "a server that polls getpeername() until the client's reset shows reads the bytes sent before it at once, without EAGAIN (30 rounds)" {
    reset_seen to-server-spin
}

@test "a client that writes after the server's reset gets EPIPE and still reads all 300 KiB that had reached it, then ECONNRESET" {
    # Bytes the engine holds for the program when the reset comes are
    # still the program's to read, even when it writes first (the write
    # fails, as on the reset TCP socket). Before: 233 KiB of 300 read.
    loopback_policy 2
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- timeout 60 python3 "$HELPERS/write_after_reset.py"
    assert_ok
    assert_output "write EPIPE read 307200 end ECONNRESET"
}
