#!/usr/bin/env bats
# Failures: each is refused at the right layer, with the errno of
# tests/CONTRACT.md and one log line
#   nestls[PID] error: rule 'client': client A -> B layer K: REASON
# and not one plaintext byte leaves: the client writes a marker (the
# non-blocking client even before its connection is up), and the capture
# of the wire never holds it.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd openssl python3 tcpdump
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    MARKER=$(new_marker)
}

# expect_refused ERRNO LAYER REASON [HOST]: a wrapped tcpclient to
# HOST:$PORT (127.0.0.1), once blocking and once non-blocking with the
# marker written before the connection is up, is refused:
#  - blocking: connect() fails with ERRNO;
#  - non-blocking: the early write is accepted (it waits in the socket),
#    SO_ERROR gives ERRNO, and a read afterwards gives ECONNRESET;
#  - each time nestls logs "layer LAYER: REASON" (REASON a regex).
expect_refused() {
    local errno=$1 layer=$2 reason=$3 host=${4:-127.0.0.1} pid
    local line="rule 'client': client $ADDR -> $IP4:$PORT layer $layer: $reason$"

    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" "$host" "$PORT" <<<"$MARKER"
    assert_failure 3
    assert_output ''
    pid=$(run_pid)
    assert_log "$stderr" "^tcpclient: connect: $errno \("
    assert_log "$stderr" "^nestls\[$pid\] error: $line"

    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" -n "$host" "$PORT" <<<"$MARKER"
    assert_failure 3
    assert_output ''
    pid=$(run_pid)
    assert_log "$stderr" "^tcpclient: early write: $((${#MARKER} + 1)) bytes$"
    assert_log "$stderr" "^tcpclient: connect: $errno \("
    assert_log "$stderr" "^tcpclient: read after failure: ECONNRESET \("
    assert_log "$stderr" "^nestls\[$pid\] error: $line"
}

# A client policy for $PORT with one layer trusting the outer CA plus the
# given settings (e.g. "min_version: TLSv1.3").
one_layer_with() {
    local setting
    write_policy client.yaml < <(
        printf 'version: 1\nrules:\n  - name: client\n    match:\n'
        printf '      role: client\n      address: [127.0.0.1]\n      port: [%s]\n' "$PORT"
        printf '    layers:\n      - ca: %s/outer-ca.pem\n' "$CERTS"
        for setting in "$@"; do printf '        %s\n' "$setting"; done
    )
}

@test "unknown CA: refused at layer 1 with EACCES, 'unable to get local issuer certificate', no marker on the wire" {
    start_s_server tls "$PORT" unknown-server -www
    client_policy client.yaml "$PORT" outer
    capture_start "$PORT"
    expect_refused EACCES 1 "certificate verify failed: unable to get local issuer certificate \\(the server's certificate is not from a CA in this layer's 'ca'\\)"
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "wrong host name: refused at layer 1 with EACCES, 'hostname mismatch (wanted localhost)', no marker on the wire" {
    start_s_server tls "$PORT" wrongname-server -www
    client_policy client.yaml "$PORT" outer
    capture_start "$PORT"
    expect_refused EACCES 1 'certificate verify failed: hostname mismatch \(wanted localhost\)' localhost
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "expired certificate: refused at layer 1 with EACCES, 'certificate has expired', no marker on the wire" {
    start_s_server tls "$PORT" expired-server -www
    client_policy client.yaml "$PORT" outer
    capture_start "$PORT"
    expect_refused EACCES 1 'certificate verify failed: certificate has expired'
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "TLS version mismatch (min TLSv1.3 against a TLSv1.2-only server): EPROTO at layer 1, 'tlsv1 alert protocol version'" {
    start_s_server tls "$PORT" outer-server -www -tls1_2
    one_layer_with "min_version: TLSv1.3"
    capture_start "$PORT"
    expect_refused EPROTO 1 'tlsv1 alert protocol version \(no TLS version both sides allow: see min_version and max_version\)'
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "cipher mismatch (TLS 1.2, disjoint cipher lists): EPROTO at layer 1, 'sslv3 alert handshake failure'" {
    start_s_server tls "$PORT" outer-server -www -tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305
    one_layer_with "max_version: TLSv1.2" "ciphers: ECDHE-ECDSA-AES256-GCM-SHA384"
    capture_start "$PORT"
    expect_refused EPROTO 1 'sslv3 alert handshake failure \(often no cipher, group or TLS version both sides allow\)'
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "inner layer from an unknown CA behind a good outer layer: refused at layer 2 with EACCES" {
    # tcpclient (nestls: outer+inner) -> PORT stunnel (outer, good) -> PORT2 s_server (unknown CA)
    PORT2=$(free_port)
    start_s_server inner "$PORT2" unknown-server -www
    start_stunnel_server outer "$PORT" "$PORT2"
    client_policy client.yaml "$PORT" outer inner
    capture_start "$PORT"
    expect_refused EACCES 2 "certificate verify failed: unable to get local issuer certificate \\(the server's certificate is not from a CA in this layer's 'ca'\\)"
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "handshake timeout: a server that never answers fails connect with ETIMEDOUT after handshake_timeout_ms; it saw only a ClientHello" {
    start_bg sink python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink" --port "$PORT"
    wait_for_port "$PORT"
    write_policy client.yaml <<'EOF'
version: 1
settings:
  handshake_timeout_ms: 300
rules:
  - name: client
    match:
      role: client
      address: [127.0.0.1]
      port: [@PORT@]
    layers:
      - ca: @CERTS@/outer-ca.pem
EOF
    local t0 t1
    t0=$(date +%s%N)
    expect_refused ETIMEDOUT 1 'handshake timed out after 300 ms'
    t1=$(date +%s%N)
    # two attempts of 300 ms each, plus start-up: well under 10 s (the default)
    (((t1 - t0) / 1000000 < 5000)) || fail "took $(((t1 - t0) / 1000000)) ms"
    wait_for_file sink/conn-2.done
    local k
    for k in 1 2; do
        run od -An -tx1 -N3 "sink/conn-$k.bin"
        assert_output ' 16 03 01' # a TLS handshake record: the ClientHello
        run grep -c -a -F -- "$MARKER" "sink/conn-$k.bin"
        assert_output 0
    done
}

@test "TCP refused: connect fails with ECONNREFUSED, as the kernel gave it" {
    client_policy client.yaml "$PORT" outer # nothing listens on PORT
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <<<"$MARKER"
    assert_failure 3
    assert_log "$stderr" '^tcpclient: connect: ECONNREFUSED \('
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" -n 127.0.0.1 "$PORT" <<<"$MARKER"
    assert_failure 3
    assert_log "$stderr" '^tcpclient: connect: ECONNREFUSED \('
}

@test "a deny rule refuses connect with EPERM and a warning; the listener sees no connection" {
    start_bg sink python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink" --port "$PORT"
    wait_for_port "$PORT"
    write_policy client.yaml <<'EOF'
version: 1
rules:
  - name: no-port
    match:
      role: client
      port: [@PORT@]
    action: deny
EOF
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <<<"$MARKER"
    assert_failure 3
    assert_log "$stderr" '^tcpclient: connect: EPERM \('
    # (no local address: the connection was never made)
    assert_log "$stderr" "^nestls\[$(run_pid)\] warn: rule 'no-port': client ([^ ]+ )?-> $IP4:$PORT denied$"
    [[ ! -e sink/accepted.log ]] || fail "the listener saw a connection: $(cat sink/accepted.log)"
}

@test "default_action deny refuses what no rule names with EPERM; the listener sees no connection" {
    start_bg sink python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink" --port "$PORT"
    wait_for_port "$PORT"
    write_policy client.yaml <<'EOF'
version: 1
settings:
  default_action: deny
rules:
  - name: elsewhere
    match:
      address: [192.0.2.0/24]
    action: passthrough
EOF
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" -n 127.0.0.1 "$PORT" <<<"$MARKER"
    assert_failure 3
    assert_log "$stderr" '^tcpclient: connect: EPERM \('
    assert_log "$stderr" "^nestls\[$(run_pid)\] warn: default action: client ([^ ]+ )?-> $IP4:$PORT denied$"
    [[ ! -e sink/accepted.log ]] || fail "the listener saw a connection: $(cat sink/accepted.log)"
}

@test "missing client certificate, server side: the wrapped server drops the client at layer 1 and its program gets no byte" {
    server_policy server.yaml "$PORT" outer-mtls
    nestls_bg sink "$POLICY" python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink" --port "$PORT"
    local server_pid=$BG_PID
    wait_for_port "$PORT"

    run bash -c "echo '$MARKER' | timeout 20 openssl s_client -connect 127.0.0.1:$PORT \
        -CAfile '$CERTS/outer-ca.pem' -quiet"
    wait_for_match sink.err \
        "^nestls\[$server_pid\] info: rule 'server': server $IP4:$PORT <- $ADDR layer 1: peer did not return a certificate \\(this layer's 'client_ca' requires a client certificate\\)$"
    # Whatever the program saw of the connection, it received nothing.
    if [[ -e sink/accepted.log ]]; then
        wait_for_file sink/conn-1.done
        run cat sink/conn-1.done
        assert_output --regexp '^0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 '
    fi
}

@test "missing client certificate, client side (TLS 1.3 rejects after the handshake): logged at layer 1, the program gets an error, never a clean EOF" {
    start_s_server tls "$PORT" outer-server -www -Verify 1 -CAfile "$CERTS/outer-ca.pem"
    client_policy client.yaml "$PORT" outer
    local mode pid
    for mode in blocking -n; do
        if [[ $mode == -n ]]; then
            run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" -n 127.0.0.1 "$PORT" <<<"$MARKER"
        else
            run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <<<"$MARKER"
        fi
        pid=$(run_pid)
        # Depending on when the server's alert lands, the program's write
        # (EPIPE) or its read (ECONNRESET) fails; a clean EOF would pass a
        # refused connection off as a finished one.
        [[ $status -eq 4 ]] || fail "$mode: exit $status, expected 4 (I/O error): $stderr"
        assert_log "$stderr" '^tcpclient: (write: EPIPE|read: ECONNRESET) \('
        assert_log "$stderr" "^nestls\[$pid\] error: rule 'client': client $ADDR -> $IP4:$PORT layer 1: tlsv13 alert certificate required \\(the server wants a client certificate: set 'cert' and 'key' in this layer\\)$"
        assert_output ''
    done
}

@test "cipher mismatch, server side: the wrapped server logs 'no shared cipher' at layer 1 and its program gets no byte" {
    write_policy server.yaml <<'EOF'
version: 1
rules:
  - name: server
    match:
      role: server
      port: [@PORT@]
    layers:
      - cert: @CERTS@/outer-server.pem
        key: @CERTS@/outer-server.key
        max_version: TLSv1.2
        ciphers: ECDHE-ECDSA-AES256-GCM-SHA384
EOF
    nestls_bg sink "$POLICY" python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink" --port "$PORT"
    local server_pid=$BG_PID
    wait_for_port "$PORT"

    run bash -c "echo '$MARKER' | timeout 20 openssl s_client -connect 127.0.0.1:$PORT -tls1_2 \
        -cipher ECDHE-ECDSA-CHACHA20-POLY1305 -CAfile '$CERTS/outer-ca.pem' -quiet"
    assert_failure
    wait_for_match sink.err \
        "^nestls\[$server_pid\] info: rule 'server': server $IP4:$PORT <- $ADDR layer 1: no shared cipher \\(see ciphers, ciphersuites and groups of this layer\\)$"
    if [[ -e sink/accepted.log ]]; then
        wait_for_file sink/conn-1.done
        run cat sink/conn-1.done
        assert_output --regexp '^0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 '
    fi
}
