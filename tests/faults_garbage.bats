#!/usr/bin/env bats
# Fault injection: garbage where a handshake message belongs. The peer
# (fault_peer.py, two layers) sends bytes that are no TLS record in place
# of its ServerHello (client role) or of its ClientHello (server role), on
# layer 1, or on layer 2 inside a good layer 1.
# What the program must see: a TLS failure, never bytes. A client's
# connect() fails with EPROTO (tests/CONTRACT.md: garbage is "any other TLS
# failure"); a server's program never accepts the connection. One log line
# names the layer and OpenSSL's reason, and the program's marker never
# leaves in plaintext (the peer's TCP bytes and a capture of the wire).

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
# (its marker written before the layers are up), fails with EPROTO at
# LAYER; the peer got nothing from either, not even decrypted.
client_refused() {
    local layer=$1 pid mode k
    for mode in blocking -n; do
        if [[ $mode == -n ]]; then
            run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" -n 127.0.0.1 "$PORT" <<<"$MARKER"
        else
            run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <<<"$MARKER"
        fi
        assert_failure 3
        assert_output ''
        pid=$(run_pid)
        assert_log "$stderr" '^tcpclient: connect: EPROTO \('
        if [[ $mode == -n ]]; then
            assert_log "$stderr" "^tcpclient: early write: $((${#MARKER} + 1)) bytes$"
            assert_log "$stderr" '^tcpclient: read after failure: ECONNRESET \('
        fi
        assert_log "$stderr" "^nestls\[$pid\] error: rule 'client': client $ADDR -> $IP4:$PORT layer $layer: wrong version number \\(the peer does not speak TLS here\\)$"
    done
    for k in 1 2; do
        [[ $(peer_end "$k") == @(eof|ECONNRESET) ]] || fail "connection $k ended as '$(peer_end "$k")'"
        assert_equal "$(peer_sum "$k")" "0 $EMPTY_SHA"
        refute_peer_got "$MARKER" "$k"
    done
}

@test "client: garbage instead of the ServerHello on layer 1: connect fails with EPROTO at layer 1; no plaintext left" {
    start_fault_server hs1 garbage --count 2
    capture_start "$PORT"
    client_refused 1
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "client: garbage instead of the ServerHello on layer 2 (layer 1 up): connect fails with EPROTO at layer 2; no plaintext left" {
    start_fault_server hs2 garbage --count 2
    capture_start "$PORT"
    client_refused 2
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

# server_refuses AT LAYER: a fault client sends garbage instead of its
# ClientHello of LAYER (AT: hs1 or hs2) to the wrapped greeter: dropped at
# LAYER before the program's accept ever returns it (the program never
# hears of it), its greeting never left in plaintext; then a good client
# is served as usual, as the program's first connection.
server_refuses() {
    local at=$1 layer=$2
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer inner
    start_greeter "$POLICY"
    capture_start "$PORT"
    run_fault_client "$at" garbage --partial 0
    assert_success
    wait_for_match greeter.err \
        "^nestls\[$SERVER_PID\] info: rule 'server': server $IP4:$PORT <- $ADDR layer $layer: wrong version number \\(the peer does not speak TLS here\\)$"
    assert_equal "$(peer_sum 1)" "0 $EMPTY_SHA"
    refute_peer_got "$MARKER" 1
    refute_log "$(cat greeter.err)" ' up in '

    # The engine goes on: the next client gets the greeting, decrypted.
    run_fault_client data clean --expect $((${#MARKER} + 1)) --record "$BATS_TEST_TMPDIR/good"
    assert_success
    assert_equal "$(cat good/conn-1.plain)" "$MARKER"
    assert_equal "$(cat good/conn-1.end)" eof
    assert_equal "$(greeter_end 1)" "0 $EMPTY_SHA eof"
    [[ ! -e greeter/conn-2.done ]] || fail "the program saw a second connection: $(cat greeter/conn-2.done)"
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "server: garbage instead of the ClientHello on layer 1: dropped at layer 1; the program never sees it, its greeting never left" {
    server_refuses hs1 1
}

@test "server: garbage instead of the ClientHello on layer 2 (layer 1 up): dropped at layer 2; the program never sees it, its greeting never left" {
    server_refuses hs2 2
}
