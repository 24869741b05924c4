#!/usr/bin/env bats
# Proof that the layers are really nested and that no plaintext crosses:
#  - look inside the outer layer (stunnel takes it off) and find TLS again;
#  - capture the loopback wire and find no marker, while the programs at
#    both ends did exchange it; a control capture of a plain connection
#    shows the same method does see a marker.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3 stunnel tcpdump
    cd "$BATS_TEST_TMPDIR"
    MARKER=$(new_marker)
}

@test "inside the outer layer the stream is TLS again: what the outer layer carries starts with a TLS record and never holds the marker" {
    # tcpclient (nestls: outer+inner) -> PORT stunnel (takes off outer) -> relay (records)
    #   -> PORT3 echo server (nestls: inner only)
    PORT=$(free_port) PORT3=$(free_port)
    server_policy server.yaml "$PORT3" inner
    nestls_bg echo "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT3"
    wait_for_port "$PORT3"
    start_bg relay python3 "$HELPERS/relay.py" "$BATS_TEST_TMPDIR/relay" --to "$PORT3"
    PORT2=$(port_of relay)
    start_stunnel_server outer "$PORT" "$PORT2"
    client_policy client.yaml "$PORT" outer inner

    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <<<"$MARKER"
    assert_ok
    assert_output "$MARKER" # the echo came back through both layers

    wait_for_file relay/conn-1.up
    wait_for_file relay/conn-1.down
    # client to server: a TLS handshake record (0x16, version 0x03 0x0N) first
    run od -An -tx1 -N2 relay/conn-1.up
    assert_output ' 16 03'
    run od -An -tx1 -N2 relay/conn-1.down
    assert_output ' 16 03'
    run grep -c -a -F -- "$MARKER" relay/conn-1.up relay/conn-1.down
    assert_output "relay/conn-1.up:0
relay/conn-1.down:0"
}

@test "the loopback wire between two wrapped programs holds no plaintext, though they exchanged the marker" {
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer-mtls inner
    nestls_bg echo "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
    client_policy client.yaml "$PORT" outer-mtls inner
    capture_start "$PORT"

    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <<<"$MARKER"
    assert_ok
    assert_output "$MARKER"

    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "control: the same capture of an unwrapped connection does show the marker" {
    PORT=$(free_port)
    start_bg echo python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
    capture_start "$PORT"

    run "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <<<"$MARKER"
    assert_success
    assert_output "$MARKER"

    capture_stop 2
    assert_on_wire "$MARKER"
}
