#!/usr/bin/env bats
# Quiet when healthy, clear when asked (issue 12, item 2).
#  - At the default level (warn) a healthy run writes nothing into the
#    program's stderr: a `run cmd; assert_output` sees only the program.
#  - Warnings and errors still reach stderr, each once: a load-time warning
#    is not repeated by the library after `nestls run`, nor by every process
#    of the tree, nor per layer that names the same file.
#  - NESTLS_LOG=error (what `nestls run -q` sets) silences warnings.
#  - -v (NESTLS_LOG=debug) logs each decision and, once every layer is up,
#    one line with each layer's version, suite, SNI, peer, the name or
#    address verified, ALPN and resumption.
#  - log_file takes every line; nothing is opened while nothing is logged.
# Real peers: openssl s_server, python's http.server for plaintext.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd curl python3 openssl
    cd "$BATS_TEST_TMPDIR"
    unset NESTLS_LOG # these tests are about the default level and its settings
    PORT=$(free_port)
}

# loose_key_policy FILE PORT: a client rule for 127.0.0.1:PORT whose two
# layers both show outer-client.pem with loose.key, a copy of its key that
# others can read (mode 0644): the loader warns about it.
loose_key_policy() {
    cp "$CERTS/outer-client.key" loose.key
    chmod 0644 loose.key
    local layer="{ca: $CERTS/outer-ca.pem, cert: $CERTS/outer-client.pem, key: loose.key}"
    write_policy "$1" <<EOF
version: 1
rules:
  - name: client
    match: {role: client, address: [127.0.0.1], port: [$2]}
    layers:
      - $layer
      - $layer
EOF
}

# nestls_lines TEXT: the lines of TEXT that nestls wrote.
nestls_lines() {
    grep -E '^nestls\[[0-9]+\] ' <<<"$1" || true
}

@test "a healthy run prints nothing into the program's stderr: a wrapped connection, a passthrough, a child" {
    start_s_server tls "$PORT" outer-server -www
    mkdir www
    echo plain >www/file.txt
    local plain
    plain=$(free_port)
    serve_http plain "$plain" www
    client_policy client.yaml "$PORT" outer
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- sh -c '
        curl -sS --max-time 10 -o /dev/null -w "%{http_code}\n" "http://127.0.0.1:$1/"
        curl -sS --max-time 10 "http://127.0.0.1:$2/file.txt"' sh "$PORT" "$plain"
    assert_ok
    assert_output "200
plain"
    assert_equal "$stderr" ""
}

@test "-v logs each decision and, once every layer is up, each layer's version, suite, SNI, peer, name verified, ALPN and resumption" {
    start_s_server tls "$PORT" outer-server -www -alpn nestls-test
    write_policy client.yaml <<EOF
version: 1
rules:
  - name: client
    match: {role: client, address: [127.0.0.1], port: [$PORT]}
    layers:
      - ca: $CERTS/outer-ca.pem
        alpn: [nestls-test]
EOF
    # Two connections to "localhost" from one process (resolved with
    # getaddrinfo, so the name is known): the second resumes.
    run --separate-stderr "$NESTLS" run -v -p "$POLICY" -- python3 -c '
import socket, sys
for i in range(2):
    family, kind, proto, _, addr = socket.getaddrinfo(
        "localhost", int(sys.argv[1]), socket.AF_INET, socket.SOCK_STREAM)[0]
    s = socket.socket(family, kind, proto)
    s.connect(addr)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.0 200 ok"), data[:40]
print("2 fetched")' "$PORT"
    assert_ok
    assert_output "2 fetched"
    assert_log "$stderr" "debug: rule 'client': client -> $IP4:$PORT wrapped \(host name 'localhost'\)$"
    local up
    up=$(grep -E " up in " <<<"$stderr")
    assert_equal "$(wc -l <<<"$up")" 2
    local layer="layer 1 TLSv1\.3 TLS_[A-Z0-9_]+ sni localhost peer \"CN=localhost\" verified localhost alpn nestls-test"
    assert_log "$(sed -n 1p <<<"$up")" "rule 'client': client $ADDR -> $IP4:$PORT up in [0-9.]+ ms: $layer$"
    assert_log "$(sed -n 2p <<<"$up")" "rule 'client': client $ADDR -> $IP4:$PORT up in [0-9.]+ ms: $layer resumed$"
}

@test "-v on a connection to an address: no SNI is sent and the address is what is verified" {
    start_s_server tls "$PORT" outer-server -www
    client_policy client.yaml "$PORT" outer
    run --separate-stderr "$NESTLS" run -v -p "$POLICY" -- \
        curl -sS --max-time 10 -o /dev/null -w "%{http_code}\n" "http://127.0.0.1:$PORT/"
    assert_ok
    assert_output 200
    assert_log "$stderr" "debug: rule 'client': client -> $IP4:$PORT wrapped \(no host name: the address is verified\)$"
    assert_log "$stderr" "up in [0-9.]+ ms: layer 1 TLSv1\.3 TLS_[A-Z0-9_]+ sni - peer \"CN=localhost\" verified 127\.0\.0\.1 alpn -$"
}

@test "a load-time warning is said once: not again by the library after nestls run, not per process, not per layer" {
    loose_key_policy client.yaml "$PORT"
    local warning="warn: key file $BATS_TEST_TMPDIR/loose\.key is readable by others \(mode 644\): chmod 600 it$"
    # bash, sh and python children and grandchildren, all preloaded.
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- \
        bash -c 'sh -c "sh -c true; true"; python3 -c "import subprocess; subprocess.run([\"true\"])"; echo ran'
    assert_ok
    assert_output ran
    assert_equal "$(nestls_lines "$stderr" | wc -l)" 1
    assert_log "$stderr" "^nestls\[[0-9]+\] $warning"
    # Preloaded without the command: the library says it, once.
    run --separate-stderr env NESTLS_POLICY="$POLICY" \
        LD_PRELOAD="${PRELOAD_FIRST:+$PRELOAD_FIRST }$LIB" sh -c 'sh -c true; echo ran'
    assert_ok
    assert_equal "$(nestls_lines "$stderr" | wc -l)" 1
    assert_log "$stderr" "^nestls\[[0-9]+\] $warning"
    # nestls check says it too, once.
    run --separate-stderr "$NESTLS" check "$POLICY"
    assert_ok
    assert_equal "$(nestls_lines "$stderr" | wc -l)" 1
    assert_log "$stderr" "$warning"
}

@test "NESTLS_LOG=error silences warnings; a failed connection's error is still said, once" {
    start_s_server tls "$PORT" unknown-server -www
    loose_key_policy client.yaml "$PORT"
    local failure="error: rule 'client': client $ADDR -> $IP4:$PORT layer 1: certificate verify failed: unable to get local issuer certificate"
    # The default level: the warning, then the error.
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" </dev/null
    assert_failure 3
    assert_log "$stderr" '^tcpclient: connect: EACCES \('
    assert_equal "$(nestls_lines "$stderr" | wc -l)" 2
    assert_log "$stderr" "^nestls\[[0-9]+\] warn: key file .*loose\.key is readable by others"
    assert_log "$stderr" "^nestls\[[0-9]+\] $failure"
    # At error: the error alone.
    NESTLS_LOG=error run --separate-stderr "$NESTLS" run -p "$POLICY" -- \
        "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" </dev/null
    assert_failure 3
    assert_equal "$(nestls_lines "$stderr" | wc -l)" 1
    assert_log "$stderr" "^nestls\[[0-9]+\] $failure"
}

@test "log_file: nothing is opened while nothing is logged; then every line goes there, none to stderr" {
    start_s_server tls "$PORT" outer-server -www
    client_policy client.yaml "$PORT" outer
    printf 'settings:\n  log_file: nestls.log\n' >>"$POLICY"
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- \
        curl -sS --max-time 10 -o /dev/null -w "%{http_code}\n" "http://127.0.0.1:$PORT/"
    assert_ok
    assert_output 200
    assert_equal "$stderr" ""
    [[ ! -e nestls.log ]] || fail "the log file was created with nothing to say: $(cat nestls.log)"

    run --separate-stderr "$NESTLS" run -v -p "$POLICY" -- \
        curl -sS --max-time 10 -o /dev/null -w "%{http_code}\n" "http://127.0.0.1:$PORT/"
    assert_ok
    assert_output 200
    assert_equal "$stderr" ""
    assert_equal "$(stat -c %a nestls.log)" 600
    local text
    text=$(cat nestls.log)
    assert_log "$text" "debug: rule 'client': client -> $IP4:$PORT wrapped"
    assert_log "$text" "info: rule 'client': client $ADDR -> $IP4:$PORT up in "
    assert_log "$text" "info: rule 'client': client $ADDR -> $IP4:$PORT closed: "
}
