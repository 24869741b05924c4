#!/usr/bin/env bats
# Server role, one layer: a plaintext python http.server under nestls
# serves HTTPS to an ordinary TLS client (curl).

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd curl python3
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    write_policy server.yaml <<'EOF'
version: 1
rules:
  - name: https-server
    match:
      role: server
      address: [127.0.0.1]
      port: [@PORT@]
    layers:
      - cert: @CERTS@/outer-server.pem
        key: @CERTS@/outer-server.key
EOF
    mkdir www
    make_file www/file.bin 3M
    serve_http http "$PORT" www "$POLICY"
}

@test "curl over https gets a file intact from a plaintext http.server wrapped in one layer" {
    run curl -sS --max-time 30 --cacert "$CERTS/outer-ca.pem" -o got.bin \
        "https://localhost:$PORT/file.bin"
    assert_success
    assert_equal "$(sha256 got.bin)" "$(sha256 www/file.bin)"
}

@test "the wrapped server logs the connection up (layer 1, no client certificate) and closed cleanly" {
    run curl -sS --max-time 30 --cacert "$CERTS/outer-ca.pem" -o got.bin \
        "https://localhost:$PORT/file.bin"
    assert_success
    wait_for_match http.err \
        "^nestls\[$BG_PID\] info: rule 'https-server': server $IP4:$PORT <- $ADDR up in [0-9.]+ ms: layer 1 TLSv1\.3 TLS_[A-Z0-9_]+ sni [^ ]+ peer \"-\" verified - alpn -$"
    wait_for_match http.err \
        "^nestls\[$BG_PID\] info: rule 'https-server': server $IP4:$PORT <- $ADDR closed: sent [0-9]+ B, received [0-9]+ B in [0-9.]+ s \(clean\)$"
    # It sent the file and the response headers: more than the file, less
    # than the file plus one kilobyte.
    local sent
    sent=$(sed -n 's/.* closed: sent \([0-9]*\) B.*/\1/p' http.err)
    ((sent > 3145728 && sent < 3145728 + 1024)) || fail "closed line says sent $sent B"
}

@test "the wrapped server's program sees the TCP peer's address, not a socketpair's" {
    run curl -sS --max-time 30 --cacert "$CERTS/outer-ca.pem" -o got.bin \
        "https://localhost:$PORT/file.bin"
    assert_success
    # http.server logs client_address[0], which comes from accept().
    wait_for_match http.err '^127\.0\.0\.1 - - \[.*\] "GET /file\.bin HTTP/1\.1" 200 '
}

@test "the wrapped server presents the outer-server certificate: a client trusting only the inner CA refuses it" {
    run curl -sS --max-time 30 --cacert "$CERTS/inner-ca.pem" -o got.bin \
        "https://localhost:$PORT/file.bin"
    assert_failure 60 # peer certificate cannot be authenticated
    [[ ! -s got.bin ]] || fail "a body arrived"
    # and the server logs that the client dropped the handshake at layer 1:
    # by its alert, or, when curl's close overtakes a slow server (seen
    # under ASan), by the reset that follows it
    wait_for_match http.err "^nestls\[$BG_PID\] info: rule 'https-server': server $IP4:$PORT <- $ADDR (layer 1: tlsv1 alert unknown ca \(the client does not trust this layer's 'cert'\)|TCP: Connection reset by peer \(during the handshake of layer 1\))$"
}

@test "a plaintext client on the wrapped port gets no plaintext answer" {
    run curl -sS --max-time 30 -o got.bin "http://127.0.0.1:$PORT/file.bin"
    assert_failure
    if [[ -s got.bin ]]; then
        run grep -c -a -F 'HTTP/1.' got.bin
        assert_output 0
    fi
    # OpenSSL recognises the plaintext HTTP request for what it is
    wait_for_match http.err "^nestls\[$BG_PID\] info: rule 'https-server': server $IP4:$PORT <- $ADDR layer 1: http request \\(the peer does not speak TLS here\\)$"
}
