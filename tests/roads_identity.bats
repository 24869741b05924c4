#!/usr/bin/env bats
# Every name used to match a rule or verify a certificate is the one this
# program resolved for this connection (DESIGN §6).
#
# A second name for 127.0.0.1 ($OTHER, in /etc/hosts for this suite) with a
# certificate valid for it alone plays the later, unrelated lookup. It must
# never be verified in place of the name the connection is for, nor let a
# rule that names the first one be dodged. A name nestls does not see
# leaves the address to decide, with one log line, and `nestls explain`
# says so. tests/helpers/names_client.c (and .py) resolve several names
# and connect to the first: to its getaddrinfo result itself (C), or to a
# copy (Python, C -c).

load helpers/common
load helpers/peers
load helpers/names

setup_file() {
    other_name_add
}

teardown_file() {
    other_name_remove
}

setup() {
    need_build
    need_cmd openssl python3 curl
    [[ -x $TESTBIN/names_client ]] || fail "$TESTBIN/names_client is missing (make $TESTBIN/names_client)"
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    MARKER=$(new_marker)
    OTHER_RE=${OTHER//./\\.}
}

# policy ADDRESSES [PORTS]: rule 'client', one layer trusting the outer CA,
# for client connections to ADDRESSES (a YAML list's inside) on PORTS
# ($PORT); a handshake gives up after 2 s. Sets POLICY.
policy() {
    write_policy client.yaml <<EOF
version: 1
settings:
  handshake_timeout_ms: 2000
rules:
  - name: client
    match:
      role: client
      address: [$1]
      port: [${2:-$PORT}]
    layers:
      - ca: $CERTS/outer-ca.pem
EOF
}

# A peer that shows which name the client sent: with SNI "localhost" it
# presents outer-server (localhost, 127.0.0.1); otherwise wrongname-server,
# which neither name nor the address verifies. Reverses each line.
start_localhost_only_peer() {
    start_s_server tls "$PORT" wrongname-server -rev -servername localhost \
        -cert2 "$CERTS/outer-server.pem" -key2 "$CERTS/outer-server.key"
}

# assert_tls_only K: connection K of the sink began with a TLS handshake
# record and never held the marker.
assert_tls_only() {
    wait_for_file "sink/conn-$1.done"
    [[ $(head -c 2 "sink/conn-$1.bin" | od -An -tx1 | tr -d ' ') == 1603 ]] ||
        fail "connection $1: no ClientHello: $(head -c 16 "sink/conn-$1.bin" | od -An -c)"
    ! grep -qF -- "$MARKER" "sink/conn-$1.bin" || fail "connection $1: the marker reached the peer in clear"
}

@test "C: resolving localhost, then another name, then connecting to localhost's result verifies localhost: the other name's certificate is refused" {
    start_s_server_other tls "$PORT" -rev
    policy 127.0.0.1
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/names_client" "$PORT" localhost "$OTHER" <<<"$MARKER"
    assert_failure 3
    assert_log "$stderr" "^names_client: connect: EACCES \("
    assert_log "$stderr" "^nestls\[$(run_pid)\] error: rule 'client': client $ADDR -> $IP4:$PORT layer 1: certificate verify failed: hostname mismatch \(wanted localhost\)$"
}

@test "Python: the same lookups with a copied address trust neither name: the address is verified, the other name's certificate refused, one line says why" {
    start_s_server_other tls "$PORT" -rev
    policy 127.0.0.1
    run --separate-stderr nestls_run "$POLICY" python3 "$HELPERS/names_client.py" "$PORT" localhost "$OTHER" <<<"$MARKER"
    assert_failure 3
    assert_log "$stderr" "^names_client.py: connect: EACCES \("
    assert_log "$stderr" "^nestls\[$(run_pid)\] warn: rule 'client': client -> $IP4:$PORT: names '$OTHER_RE' and 'localhost' both resolve to this address; which one this connection is for is unknown, so the address itself is verified \(set server_name in the layer to choose\)$"
    assert_log "$stderr" "error: rule 'client': client $ADDR -> $IP4:$PORT layer 1: certificate verify failed: IP address mismatch \(wanted 127\.0\.0\.1; no host name known for this connection; set server_name in the layer\)$"
    assert_equal "$(grep -c 'both resolve' <<<"$stderr")" 1
}

@test "a rule for 'address: [localhost]' still wraps after another name is resolved to that address (C and Python): only TLS reaches the peer" {
    start_bg sink python3 "$HELPERS/sink.py" sink
    PORT=$(port_of sink)
    policy localhost
    # The sink never answers: each handshake gives up after 2 s.
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/names_client" "$PORT" localhost "$OTHER" <<<"$MARKER"
    assert_failure 3
    assert_log "$stderr" "^names_client: connect: ETIMEDOUT \("
    assert_tls_only 1
    run --separate-stderr nestls_run "$POLICY" python3 "$HELPERS/names_client.py" "$PORT" localhost "$OTHER" <<<"$MARKER"
    assert_failure 3
    assert_log "$stderr" "^names_client.py: connect: ETIMEDOUT \("
    assert_tls_only 2
}

# verified_as_localhost CMD...: CMD, a names_client run under the policy,
# gets the marker back reversed through a layer that sent SNI localhost.
verified_as_localhost() {
    run --separate-stderr nestls_run "$POLICY" "$@" <<<"$MARKER"
    assert_ok
    assert_output "$(rev <<<"$MARKER")"
    assert_log "$stderr" "info: rule 'client': client $ADDR -> $IP4:$PORT up in [0-9.]+ ms: layer 1 $(layer_re localhost)$"
}

@test "a client verifies the name it resolved itself (SNI localhost), also while another of its threads resolves another name to the same address" {
    start_localhost_only_peer
    policy 127.0.0.1
    verified_as_localhost "$TESTBIN/names_client" "$PORT" localhost
    verified_as_localhost python3 "$HELPERS/names_client.py" "$PORT" localhost
    verified_as_localhost "$TESTBIN/names_client" -c -t "$PORT" localhost "$OTHER"
}

@test "a name nestls does not see: a rule by name does not match, the address alone decides, and one log line says why" {
    start_bg sink python3 "$HELPERS/sink.py" sink
    PORT=$(port_of sink)
    policy localhost
    # connected by its address: the rule names localhost only, so plaintext
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/names_client" "$PORT" 127.0.0.1 <<<"$MARKER"
    assert_ok
    assert_log "$stderr" "^nestls\[$(run_pid)\] warn: client -> $IP4:$PORT: no host name is known for this address \(the program did not resolve it through getaddrinfo or gethostbyname\), so rule 'client' \(address localhost\) does not match; by the address alone, the default action passes it through in plaintext$"
    assert_equal "$(grep -c 'no host name is known' <<<"$stderr")" 1
}

@test "curl: localhost, which curl answers itself, is decided and verified by address (logged); a name its resolver thread looks up still matches its rule and is verified" {
    make_file file.bin 64K
    local port2
    port2=$(free_port)
    write_policy client.yaml <<EOF
version: 1
rules:
  - name: by-name
    match: {role: client, address: [localhost, $OTHER], port: [$PORT, $port2]}
    layers:
      - ca: $CERTS/outer-ca.pem
  - name: by-address
    match: {role: client, address: [127.0.0.1], port: [$PORT, $port2]}
    layers:
      - ca: $CERTS/outer-ca.pem
EOF
    start_s_server tls "$PORT" outer-server -WWW # names localhost and 127.0.0.1
    run --separate-stderr nestls_run "$POLICY" curl -sS --max-time 30 -o got.bin "http://localhost:$PORT/file.bin"
    assert_ok
    assert_equal "$(sha256 got.bin)" "$(sha256 file.bin)"
    assert_log "$stderr" "info: client -> $IP4:$PORT: no host name is known for this address .*, so rule 'by-name' \(address localhost\) does not match; by the address alone, rule 'by-address' wraps it, verifying the address itself$"
    assert_log "$stderr" "info: rule 'by-address': client $ADDR -> $IP4:$PORT up in "

    # The other name's certificate names nothing else: verified by name.
    start_s_server_other tls2 "$port2" -WWW
    run --separate-stderr nestls_run "$POLICY" curl -sS --max-time 30 -o got2.bin "http://$OTHER:$port2/file.bin"
    assert_ok
    assert_equal "$(sha256 got2.bin)" "$(sha256 file.bin)"
    assert_log "$stderr" "info: rule 'by-name': client $ADDR -> $IP4:$port2 up in [0-9.]+ ms: layer 1 $(layer_re "$OTHER_RE")$"
    refute_log "$stderr" "no host name is known|resolve to this address"
}

@test "explain: a rule by name is promised only to programs that resolve the name through libc; what the address alone gets is shown beside it" {
    policy localhost
    run "$NESTLS" explain "$POLICY" client "localhost:$PORT"
    assert_success
    assert_output --partial 'the host name counts only for a program that resolves it through libc'
    assert_output --partial 'curl answers "localhost"'
    assert_output --regexp "resolved through libc, as localhost:.match: +rule 1 \"client\" .*action: +wrap in 1 TLS layer.*server name: +localhost .*by the address 127\.0\.0\.1 alone \(curl, or a name nestls does not see\):.match: +no rule matches.action: +passthrough \(the default action\)"

    # A name no rule needs the address of is not resolved (explain works
    # without DNS): the outcome by the address alone is left to
    # `explain IP:PORT`, and said so.
    run "$NESTLS" explain "$POLICY" client "$OTHER:$PORT"
    assert_success
    refute_output --partial 'curl answers'
    assert_output --regexp "resolved through libc, as $OTHER_RE:.match: +no rule matches"
    assert_output --partial "by the address alone: not shown, as $OTHER was not resolved"
}
