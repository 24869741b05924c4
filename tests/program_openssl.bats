#!/usr/bin/env bats
# A program that uses OpenSSL itself, inside the layers nestls adds: its
# OpenSSL state is its own. OpenSSL's error queue is per thread, and
# nestls's direct write runs the onion on the program's thread
# (engine/direct.c): it must leave the program's queued errors alone.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
}

@test "a program's own TLS verification failure keeps its reason under nestls (40 rounds, both roles wrapped)" {
    write_policy both.yaml <<'EOF'
version: 1
rules:
  - name: loopback
    match: {address: 127.0.0.1}
    layers:
      - ca: @CERTS@/outer-ca.pem
        cert: @CERTS@/outer-server.pem
        key: @CERTS@/outer-server.key
EOF
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 "$HELPERS/own_tls_errors.py" 40
    assert_ok
    assert_output "{'SSLCertVerificationError': 40}"
}
