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
    loopback_policy 1
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 "$HELPERS/own_tls_errors.py" 40
    assert_ok
    assert_output "{'SSLCertVerificationError': 40}"
}

@test "a program's server-side TLS failure still sends its alert under nestls (40 rounds, both roles wrapped in two layers)" {
    # The server's own error sits in its thread's OpenSSL queue when it
    # writes the alert: nestls's direct write must neither clear it nor
    # read it as a failure of a layer (which cut the connection). Two
    # layers, because then the direct write also reads between layers,
    # where "no more records yet" is a want that SSL_get_error() turns
    # into a failure when the queue holds an older error.
    loopback_policy 2
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 "$HELPERS/own_tls_errors.py" 40 server
    assert_ok
    assert_output "{'SSLError': 40}"
}
