#!/usr/bin/env bats
# Every message names what failed (TCP, or layer N) and, where the policy
# holds one, the fix (issue 12, item 2):
#  - a refused TCP connect is TCP's, not layer 1's;
#  - a certificate that does not carry the IP address connected to, when
#    no host name is known, says so and to set server_name (and doing so
#    works);
#  - a tab in the policy's indentation is named as such, FILE:LINE:COL;
#  - a key written at the wrong indentation says where it belongs.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd openssl
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
}

# check_says LINE COL TEXT: `nestls check policy.yaml` exits 1 with exactly
# one stderr line, "nestls: policy.yaml:LINE:COL: TEXT" (TEXT literal).
check_says() {
    run --separate-stderr "$NESTLS" check policy.yaml
    assert_failure 1
    assert_equal "$stderr" "nestls: policy.yaml:$1:$2: $3"
}

@test "a refused TCP connect is said to be TCP's, not a layer's" {
    client_policy client.yaml "$PORT" outer # nothing listens on PORT
    # Non-blocking: the engine finishes the TCP connect, and says why not.
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" -n 127.0.0.1 "$PORT" <<<"hello"
    assert_failure 3
    assert_log "$stderr" '^tcpclient: connect: ECONNREFUSED \('
    assert_log "$stderr" "^nestls\[$(run_pid)\] error: rule 'client': client $ADDR -> $IP4:$PORT TCP connect: Connection refused$"
    refute_log "$stderr" "layer"
}

@test "an IP address mismatch says no host name is known and to set server_name; setting it works" {
    # wrongname-server's certificate names wrong.example only, no address.
    start_s_server tls "$PORT" wrongname-server -www
    client_policy client.yaml "$PORT" outer
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" </dev/null
    assert_failure 3
    assert_log "$stderr" '^tcpclient: connect: EACCES \('
    assert_log "$stderr" "^nestls\[$(run_pid)\] error: rule 'client': client $ADDR -> $IP4:$PORT layer 1: certificate verify failed: IP address mismatch \(wanted 127\.0\.0\.1; no host name known for this connection; set server_name in the layer\)$"

    printf '        server_name: wrong.example\n' >>"$POLICY"
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" \
        <<<$'GET / HTTP/1.0\r\n'
    assert_ok
    assert_line --index 0 --regexp '^HTTP/1\.0 200 ok'
}

@test "a hostname mismatch with server_name set names the name wanted, and no server_name hint" {
    start_s_server tls "$PORT" wrongname-server -www
    client_policy client.yaml "$PORT" outer
    printf '        server_name: localhost\n' >>"$POLICY"
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" </dev/null
    assert_failure 3
    assert_log "$stderr" "layer 1: certificate verify failed: hostname mismatch \(wanted localhost\)$"
}

@test "a tab in the policy's indentation: one line, FILE:LINE:COL, saying tabs are not allowed" {
    printf 'version: 1\nsettings:\n\tlog_level: debug\n' >policy.yaml
    check_says 3 1 "tab characters are not allowed for indentation in YAML: indent with spaces"
    printf 'version: 1\nrules:\n  - name: a\n    layers:\n      -\tca: system\n' >policy.yaml
    check_says 5 8 "tab characters are not allowed for indentation in YAML: indent with spaces"
    # The library says the same before main, and the program never runs.
    printf 'version: 1\nsettings:\n\tlog_level: debug\n' >policy.yaml
    run --separate-stderr env NESTLS_POLICY=policy.yaml \
        LD_PRELOAD="${PRELOAD_FIRST:+$PRELOAD_FIRST }$LIB" sh -c 'echo ran'
    assert_failure 78
    assert_output ''
    [[ $stderr =~ ^nestls\[[0-9]+\]\ error:\ policy\.yaml:3:1:\ tab\ characters\ are\ not\ allowed\ for\ indentation\ in\ YAML:\ indent\ with\ spaces$ ]] ||
        fail "stderr: $stderr"
}

@test "a key at the wrong indentation says where it belongs" {
    printf 'version: 1\nrules:\n  - name: db\n    ca: x.pem\n    layers:\n      - ca: system\n' >policy.yaml
    check_says 4 5 "misplaced key 'ca' in rule 'db': 'ca' belongs inside a layer (under 'layers:')"
    printf 'version: 1\nlog_level: debug\n' >policy.yaml
    check_says 2 1 "misplaced key 'log_level' at top level: 'log_level' belongs under 'settings:'"
    printf 'version: 1\nrules:\n  - name: db\n    port: 5432\n    action: deny\n' >policy.yaml
    check_says 4 5 "misplaced key 'port' in rule 'db': 'port' belongs under 'match:' in a rule"
    printf 'version: 1\nsettings:\n  rules: []\n' >policy.yaml
    check_says 3 3 "misplaced key 'rules' in settings: 'rules' belongs at the top level (not indented)"
    printf 'version: 1\nrules:\n  - layers:\n      - ca: system\n        action: deny\n' >policy.yaml
    check_says 5 9 "misplaced key 'action' in layer 1 of rule 1: 'action' belongs in a rule (an entry under 'rules:')"
    # A misspelling is still a misspelling.
    printf 'version: 1\nrules:\n  - layers:\n      - ca: system\n        servr_name: x\n' >policy.yaml
    check_says 5 9 "unknown key 'servr_name' in layer 1 of rule 1 (did you mean 'server_name'?)"
}
