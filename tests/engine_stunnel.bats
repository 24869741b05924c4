#!/usr/bin/env bats
# Two layers against an independent implementation: stunnel terminates (or
# originates) each layer separately, so the onion's order — outermost on
# the wire, innermost next to the program — must be exactly right.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd curl python3 stunnel
    cd "$BATS_TEST_TMPDIR"
    mkdir www
    make_file www/file.bin 5M
}

@test "a wrapped two-layer curl gets a file through two stunnel servers (outer, then inner) to a plain http.server" {
    # curl (nestls: outer+inner) -> PORT stunnel outer -> PORT2 stunnel inner -> PORT3 http.server
    start_stunnel_chain
    client_policy client.yaml "$PORT" outer inner

    run --separate-stderr nestls_run "$POLICY" curl -sS --max-time 60 -o got.bin \
        "http://localhost:$PORT/file.bin"
    assert_ok
    assert_equal "$(sha256 got.bin)" "$(sha256 www/file.bin)"
    assert_log "$stderr" \
        "^nestls\[$(run_pid)\] info: rule 'client': client $ADDR -> $IP4:$PORT up in [0-9.]+ ms: layer 1 $(layer_re localhost); layer 2 $(layer_re localhost)$"
}

@test "the outer layer's client certificate satisfies a stunnel that requires one" {
    PORT=$(free_port) PORT2=$(free_port)
    serve_http http "$PORT2" www
    start_stunnel outer <<'EOF'
[outer]
accept = 127.0.0.1:@PORT@
connect = 127.0.0.1:@PORT2@
cert = @CERTS@/outer-server.pem
key = @CERTS@/outer-server.key
CAfile = @CERTS@/outer-ca.pem
verifyChain = yes
EOF
    wait_for_port "$PORT"

    client_policy with-cert.yaml "$PORT" outer-mtls
    run --separate-stderr nestls_run "$POLICY" curl -sS --max-time 60 -o got.bin \
        "http://localhost:$PORT/file.bin"
    assert_ok
    assert_equal "$(sha256 got.bin)" "$(sha256 www/file.bin)"

    # Control: without the certificate the same stunnel turns the client away.
    client_policy without-cert.yaml "$PORT" outer
    run --separate-stderr nestls_run "$POLICY" curl -sS --max-time 60 -o none.bin \
        "http://localhost:$PORT/file.bin"
    assert_failure
    [[ ! -s none.bin ]] || fail "a body arrived without a client certificate"
}

@test "plain curl through two stunnel clients (inner, then outer) gets a file from a wrapped two-layer http.server with mTLS" {
    # curl -> PORT3 stunnel inner client -> PORT2 stunnel outer client (client cert) -> PORT http.server (nestls)
    PORT=$(free_port) PORT2=$(free_port) PORT3=$(free_port)
    server_policy server.yaml "$PORT" outer-mtls inner
    serve_http http "$PORT" www "$POLICY"
    local server_pid=$BG_PID
    start_stunnel outer <<'EOF'
[outer]
client = yes
accept = 127.0.0.1:@PORT2@
connect = 127.0.0.1:@PORT@
CAfile = @CERTS@/outer-ca.pem
verifyChain = yes
checkHost = localhost
sni = localhost
cert = @CERTS@/outer-client.pem
key = @CERTS@/outer-client.key
EOF
    wait_for_port "$PORT2"
    start_stunnel inner <<'EOF'
[inner]
client = yes
accept = 127.0.0.1:@PORT3@
connect = 127.0.0.1:@PORT2@
CAfile = @CERTS@/inner-ca.pem
verifyChain = yes
checkHost = localhost
sni = localhost
EOF
    wait_for_port "$PORT3"

    run curl -sS --max-time 60 -o got.bin "http://127.0.0.1:$PORT3/file.bin"
    assert_ok
    assert_equal "$(sha256 got.bin)" "$(sha256 www/file.bin)"
    # The server saw the outer layer's client certificate, none on the inner.
    wait_for_match http.err \
        "^nestls\[$server_pid\] info: rule 'server': server $IP4:$PORT <- $ADDR up in [0-9.]+ ms: layer 1 $(layer_re nestls-client-outer); layer 2 TLSv1\.3 TLS_[A-Z0-9_]+ sni [^ ]+ peer \"-\" verified - alpn -$"
}
