#!/usr/bin/env bats
# Client role, one layer: plaintext HTTP clients under nestls talk to
# openssl s_server. With no server_name in the policy, the name the program
# resolved (localhost) is the SNI and the name the certificate is checked
# against.
#
# curl answers "localhost" itself (RFC 6761) and never asks getaddrinfo, so
# for curl the library knows only the address, and checks the certificate's
# IP entry. The tests about the resolved name use fetch.py, which resolves
# through getaddrinfo like most programs.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd curl openssl
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    make_file file.bin 2M
}

# one_layer_policy [SETTING...]: rule 'to-s-server', one layer trusting the
# outer CA for 127.0.0.1:$PORT, plus each SETTING ("server_name: localhost").
one_layer_policy() {
    local line
    write_policy client.yaml < <(
        cat <<'EOF'
version: 1
rules:
  - name: to-s-server
    match:
      role: client
      address: [127.0.0.1]
      port: [@PORT@]
    layers:
      - ca: @CERTS@/outer-ca.pem
EOF
        for line in "$@"; do echo "        $line"; done
    )
}

@test "a wrapped plaintext curl gets a file intact from openssl s_server over one layer" {
    start_s_server tls "$PORT" outer-server -WWW
    one_layer_policy
    run --separate-stderr nestls_run "$POLICY" curl -sS --max-time 30 -o got.bin \
        "http://localhost:$PORT/file.bin"
    assert_ok
    assert_equal "$(sha256 got.bin)" "$(sha256 file.bin)"
}

@test "the wrapped client logs one line up (layer, version, cipher, peer) and one closed" {
    start_s_server tls "$PORT" outer-server -WWW
    one_layer_policy
    run --separate-stderr nestls_run "$POLICY" curl -sS --max-time 30 -o got.bin \
        "http://localhost:$PORT/file.bin"
    assert_ok
    local pid
    pid=$(run_pid)
    assert_log "$stderr" \
        "^nestls\[$pid\] info: rule 'to-s-server': client $ADDR -> $IP4:$PORT up in [0-9.]+ ms: layer 1 $(layer_re localhost)$"
    assert_log "$stderr" \
        "^nestls\[$pid\] info: rule 'to-s-server': client $ADDR -> $IP4:$PORT closed: sent [0-9]+ B, received [0-9]+ B in [0-9.]+ s \(clean\)$"
    # received: the file and s_server's short header
    local received
    received=$(sed -n 's/.* closed: sent [0-9]* B, received \([0-9]*\) B.*/\1/p' <<<"$stderr")
    ((received > 2097152 && received < 2097152 + 1024)) || fail "closed line says received $received B"
}

@test "with no server_name, the name the program resolved is sent as SNI" {
    # s_server shows wrongname-server (valid for no name used here) unless
    # the client's SNI is "localhost", which selects outer-server instead.
    start_s_server tls "$PORT" wrongname-server -WWW -servername localhost \
        -cert2 "$CERTS/outer-server.pem" -key2 "$CERTS/outer-server.key"
    one_layer_policy
    run --separate-stderr nestls_run "$POLICY" python3 "$HELPERS/fetch.py" \
        "http://localhost:$PORT/file.bin" got.bin
    assert_ok
    assert_equal "$(sha256 got.bin)" "$(sha256 file.bin)"
}

@test "server_name in the policy is the SNI and the verified name, even for a program that connects by IP" {
    start_s_server tls "$PORT" wrongname-server -WWW -servername localhost \
        -cert2 "$CERTS/outer-server.pem" -key2 "$CERTS/outer-server.key"
    one_layer_policy "server_name: localhost"
    run --separate-stderr nestls_run "$POLICY" curl -sS --max-time 30 -o got.bin \
        "http://127.0.0.1:$PORT/file.bin"
    assert_ok
    assert_equal "$(sha256 got.bin)" "$(sha256 file.bin)"
}

@test "a program that connects by IP gets the certificate checked against that IP" {
    start_s_server tls "$PORT" outer-server -WWW # its certificate names IP 127.0.0.1
    one_layer_policy
    run --separate-stderr nestls_run "$POLICY" curl -sS --max-time 30 -o got.bin \
        "http://127.0.0.1:$PORT/file.bin"
    assert_ok
    assert_equal "$(sha256 got.bin)" "$(sha256 file.bin)"
}

@test "a connection no rule matches is left plain (default passthrough) beside a wrapped one" {
    start_s_server tls "$PORT" outer-server -WWW
    one_layer_policy
    local plain
    plain=$(free_port)
    mkdir www && cp file.bin www/
    serve_http http "$plain" www
    run --separate-stderr nestls_run "$POLICY" sh -c \
        "curl -sS --max-time 30 -o got-tls.bin http://localhost:$PORT/file.bin &&
         curl -sS --max-time 30 -o got-plain.bin http://127.0.0.1:$plain/file.bin"
    assert_ok
    assert_equal "$(sha256 got-tls.bin)" "$(sha256 file.bin)"
    assert_equal "$(sha256 got-plain.bin)" "$(sha256 file.bin)"
    refute_log "$stderr" ":$plain "
}
