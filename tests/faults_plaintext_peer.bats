#!/usr/bin/env bats
# Fault injection: a plaintext peer on a wrapped port — the commonest
# misconfiguration. Client role: a wrapped program (curl, tcpclient) talks
# to a plain HTTP server (python3 -m http.server). Server role: plain
# clients (curl http://, and one that waits for the server to speak first)
# talk to a wrapped server (fault_greeter.py, which writes its marker the
# moment it accepts). Two layers.
# What must happen: a clear error naming layer 1; the program gets an
# error, never the peer's bytes; the peer never gets the program's bytes
# in plaintext (its own log or recording, and a capture of the wire).

load helpers/common
load helpers/peers
load helpers/fault_lib

setup() {
    need_build
    need_cmd python3 tcpdump curl
    cd "$BATS_TEST_TMPDIR"
    MARKER=$(new_marker)
    PORT=$(free_port)
}

# A plain http.server on $PORT, its log in http.err; a client policy for it.
plain_http_server() {
    mkdir -p www
    echo "plain page" >www/index.html
    serve_http http "$PORT" "$BATS_TEST_TMPDIR/www"
    client_policy client.yaml "$PORT" outer inner
}

# The plain server answered the TLS ClientHello it got as a bad HTTP
# request (so nestls had HTTP in front of it), and never saw the marker.
# Its complaint depends on where the hello's random bytes hold a line
# break ("Bad request version", "Bad HTTP/0.9 request type"...): any 400.
assert_http_server_saw_only_hellos() {
    wait_for_count http.err 'code 400, message Bad ' "$1"
    refute_log "$(cat http.err)" "$MARKER"
    refute_log "$(cat http.err)" '" 200 '
}

@test "client: a wrapped curl to a plain HTTP server fails to connect (exit 7) with EPROTO at layer 1; the server never sees the request" {
    plain_http_server
    capture_start "$PORT"
    run --separate-stderr nestls_run "$POLICY" curl -sS -o got "http://127.0.0.1:$PORT/$MARKER"
    assert_failure 7
    assert_output ''
    [[ ! -e got ]] || fail "curl wrote $(stat -c %s got) bytes of the plain server's answer"
    assert_log "$stderr" "^curl: \(7\) Failed to connect to 127\.0\.0\.1 port $PORT "
    assert_log "$stderr" "^nestls\[$(run_pid)\] error: rule 'client': client $ADDR -> $IP4:$PORT layer 1: wrong version number \\(the peer does not speak TLS here\\)$"
    assert_http_server_saw_only_hellos 1
    capture_stop 1
    assert_not_on_wire "$MARKER"
}

@test "client: a wrapped tcpclient sending an HTTP request to a plain HTTP server (blocking, and written early) gets EPROTO, not the server's answer" {
    plain_http_server
    capture_start "$PORT"
    local mode pid
    for mode in blocking -n; do
        if [[ $mode == -n ]]; then
            run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" -n 127.0.0.1 "$PORT" \
                < <(printf 'GET /%s HTTP/1.0\r\n\r\n' "$MARKER")
        else
            run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" \
                < <(printf 'GET /%s HTTP/1.0\r\n\r\n' "$MARKER")
        fi
        assert_failure 3
        assert_output '' # not a byte of "HTTP/1.0 400 ..." reached the program
        pid=$(run_pid)
        assert_log "$stderr" '^tcpclient: connect: EPROTO \('
        [[ $mode == blocking ]] || assert_log "$stderr" '^tcpclient: read after failure: ECONNRESET \('
        assert_log "$stderr" "^nestls\[$pid\] error: rule 'client': client $ADDR -> $IP4:$PORT layer 1: wrong version number \\(the peer does not speak TLS here\\)$"
    done
    assert_http_server_saw_only_hellos 2
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

# assert_no_connection_reached_greeter: the wrapped greeter's accept()
# never returned a connection (the handshakes run before it does).
assert_no_connection_reached_greeter() {
    local left
    left=$(ls greeter 2>/dev/null | grep -c '^conn-') || true
    assert_equal "$left" 0
}

@test "server: plain curl http:// to the wrapped server is dropped at layer 1 ('http request'): empty reply for curl; the program never sees it" {
    server_policy server.yaml "$PORT" outer inner
    start_greeter "$POLICY"
    capture_start "$PORT"
    run --separate-stderr curl -sS -m 20 -o got "http://127.0.0.1:$PORT/index.html"
    # 52: empty reply; 56: reset while receiving. Either way: no bytes.
    [[ $status == @(52|56) ]] || fail "curl exit $status: $stderr"
    [[ ! -s got ]] || fail "curl received $(stat -c %s got) bytes"
    wait_for_match greeter.err \
        "^nestls\[$SERVER_PID\] info: rule 'server': server $IP4:$PORT <- $ADDR layer 1: http request \\(the peer does not speak TLS here\\)$"
    assert_no_connection_reached_greeter
    capture_stop 1
    assert_not_on_wire "$MARKER"
}

@test "server: a plain client that waits for the server to speak first gets nothing, then the close at handshake_timeout_ms" {
    server_policy server.yaml "$PORT" outer inner
    sed -i 's/^rules:/settings:\n  handshake_timeout_ms: 1000\nrules:/' "$POLICY"
    start_greeter "$POLICY"
    capture_start "$PORT"
    local t0 ms
    t0=$(date +%s%N)
    # --layers 0: a plain TCP client; it reads until a byte arrives or the end.
    run_fault_client data clean --layers 0 --expect 1 --wait 20
    ms=$(elapsed_ms "$t0")
    assert_success
    [[ $(peer_end 1) == @(eof|ECONNRESET) ]] || fail "the client's connection ended as '$(peer_end 1)'"
    assert_equal "$(peer_sum 1)" "0 $EMPTY_SHA"
    ((ms >= 1000 && ms < 4000)) || fail "closed after $ms ms, not at the 1000 ms timeout"
    wait_for_match greeter.err \
        "^nestls\[$SERVER_PID\] info: rule 'server': server $IP4:$PORT <- $ADDR layer 1: handshake timed out after 1000 ms$"
    assert_no_connection_reached_greeter
    capture_stop 1
    # Not one byte crossed, either way: the greeting waited, then was dropped.
    assert_equal "$(capture_count 'tcp[tcpflags] & tcp-push != 0')" 0
    run grep -a -c -F -- "$MARKER" "$CAPTURE"
    assert_output 0
}
