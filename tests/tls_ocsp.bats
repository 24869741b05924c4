#!/usr/bin/env bats
# OCSP stapling. Responses come from a real responder (openssl ocsp
# -index -port) over an `openssl ca` database in which the demo server
# certificate is marked valid or revoked (helpers/pki.bash). A client
# layer with `ocsp: require` goes on only with a good, current staple
# signed for the server's certificate; `ocsp: prefer` refuses only a
# staple saying revoked. A server layer with `ocsp_staple` staples its
# file for clients that ask (openssl s_client -status, or a nestls layer).

load helpers/common
load helpers/peers
load helpers/pki

setup() {
    need_build
    need_cmd openssl curl
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    MARKER=$(new_marker)
    ca_mark good outer valid outer-server
    ocsp_response good outer outer-server good.der
    ca_mark revoked outer revoke outer-server
    ocsp_response revoked outer outer-server revoked.der
}

# ocsp_client MODE: a client policy for PORT, one outer layer, ocsp: MODE.
ocsp_client() {
    client_policy client.yaml "$PORT" outer
    printf '        ocsp: %s\n' "$1" >>client.yaml
}

# staple_server NAME [DER]: s_server on PORT stapling DER (none: no staple).
staple_server() {
    local status=()
    [[ -n ${2:-} ]] && status=(-status_file "$2")
    start_s_server "$1" "$PORT" outer-server -www "${status[@]}"
}

# through: a wrapped curl to PORT succeeds.
through() {
    run --separate-stderr nestls_run "$POLICY" curl -sS "http://127.0.0.1:$PORT/"
    assert_success
    assert_output --partial "s_server -accept 127.0.0.1:$PORT"
}

# refused REASON: a wrapped curl to PORT fails at layer 1 with REASON (a
# regex); the marker in its URL never crossed the wire.
refused() {
    capture_start "$PORT"
    run --separate-stderr nestls_run "$POLICY" curl -s "http://127.0.0.1:$PORT/$MARKER"
    capture_stop 2
    assert_failure
    assert_log "$stderr" "^nestls\[$(run_pid)\] error: rule 'client': client $ADDR -> $IP4:$PORT layer 1: $1"
    assert_not_on_wire "$MARKER"
}

@test "ocsp: require: a good staple goes through; a revoked one and none are refused at layer 1, saying which" {
    need_cmd tcpdump
    ocsp_client require
    staple_server good good.der
    through
    stop_bg "$BG_PID"
    PORT=$(free_port) && ocsp_client require
    staple_server revoked revoked.der
    refused "the server's stapled OCSP response: revoked, revoked at 20[0-9-]+T[0-9:]+Z \(ocsp: require\)$"
    stop_bg "$BG_PID"
    PORT=$(free_port) && ocsp_client require
    staple_server none
    refused "the server stapled no OCSP response \(ocsp: require\)$"
}

@test "ocsp: prefer: a good staple and none go through, a revoked one is refused; ocsp: off ignores even a revoked one" {
    need_cmd tcpdump
    ocsp_client prefer
    staple_server good good.der
    through
    stop_bg "$BG_PID"
    PORT=$(free_port) && ocsp_client prefer
    staple_server none
    through
    stop_bg "$BG_PID"
    PORT=$(free_port) && ocsp_client prefer
    staple_server revoked revoked.der
    refused "the server's stapled OCSP response: revoked, revoked at .* \(ocsp: prefer\)$"
    ocsp_client off
    through
}

@test "ocsp: require refuses a staple for another certificate (the inner CA's responder on the outer server)" {
    ca_mark inner inner valid inner-server
    ocsp_response inner inner inner-server other.der
    ocsp_client require
    staple_server other other.der
    run --separate-stderr nestls_run "$POLICY" curl -s "http://127.0.0.1:$PORT/"
    assert_failure
    assert_log "$stderr" "layer 1: the server's stapled OCSP response: unusable, the response does not cover the peer's certificate \(ocsp: require\)$"
}

# staple_policy DER: a wrapped echo server on PORT whose one layer staples DER.
staple_policy() {
    server_policy server.yaml "$PORT" outer
    printf '        ocsp_staple: %s\n' "$PWD/$1" >>server.yaml
    nestls_bg echo "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
}

@test "server: ocsp_staple is stapled for s_client -status, and a nestls client with ocsp: require accepts it" {
    staple_policy good.der
    run bash -c 'echo "$0" | timeout 20 openssl s_client -connect "127.0.0.1:$1" -status -CAfile "$2" -quiet 2>&1; timeout 20 openssl s_client -connect "127.0.0.1:$1" -status -CAfile "$2" </dev/null 2>&1' \
        "$MARKER" "$PORT" "$CERTS/outer-ca.pem"
    assert_output --partial "$MARKER"
    assert_output --partial "OCSP Response Status: successful"
    assert_output --partial "Cert Status: good"

    client_policy client.yaml "$PORT" outer
    printf '        ocsp: require\n' >>client.yaml
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <<<"$MARKER"
    assert_success
    assert_output "$MARKER"
}

@test "server: a layer stapling a revoked response is refused by a nestls client with ocsp: prefer; the server logs the client's refusal" {
    staple_policy revoked.der
    client_policy client.yaml "$PORT" outer
    printf '        ocsp: prefer\n' >>client.yaml
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <<<"$MARKER"
    assert_failure
    refute_output --partial "$MARKER"
    assert_log "$stderr" "layer 1: the server's stapled OCSP response: revoked"
    wait_for_match echo.err "layer 1: .*\(the client refused this layer's 'ocsp_staple'\)"
}

@test "check shows ocsp and ocsp_staple, in text and JSON" {
    server_policy server.yaml "$PORT" outer
    printf '        ocsp_staple: %s\n' "$PWD/good.der" >>server.yaml
    run "$NESTLS" check "$POLICY"
    assert_success
    assert_output --partial "staples:     OCSP response $PWD/good.der"
    ocsp_client require
    run "$NESTLS" check "$POLICY"
    assert_success
    assert_output --partial "ocsp:        required"
    run "$NESTLS" check --json "$POLICY"
    [[ $(python3 -c 'import json,sys; l=json.load(sys.stdin)["policies"][0]["rules"][0]["layers"][0]; print(l["ocsp"], l["ocsp_staple"])' <<<"$output") == "require None" ]]
}

@test "ocsp: require in a long-running client: its second connection resumes the session (no staple is sent on resumption) and goes through" {
    staple_policy good.der
    client_policy client.yaml "$PORT" outer
    printf '        ocsp: require\n' >>client.yaml
    nestls_bg step "$POLICY" python3 "$HELPERS/step_client.py" "$PORT" "$PWD/go"
    local pid=$BG_PID
    wait_for_match step.out '^1: one$'
    touch go
    wait_for_exit "$pid" 30
    assert_equal "$(cat step.out)" "1: one
2: two
1 again: three"
    assert_log "$(cat step.err)" " resumed$"
}

@test "ocsp: require: a staple without a next update is taken while fresh, and refused once its this update is over 7 days old" {
    need_cmd python3
    python3 "$HELPERS/ocsp_no_next.py" "$CERTS/outer-server.pem" "$CERTS/outer-ca.pem" \
        "$CERTS/outer-ca.key" 1 fresh.der
    python3 "$HELPERS/ocsp_no_next.py" "$CERTS/outer-server.pem" "$CERTS/outer-ca.pem" \
        "$CERTS/outer-ca.key" 8 old.der
    ocsp_client require
    staple_server fresh fresh.der
    through
    stop_bg "$BG_PID"
    PORT=$(free_port) && ocsp_client require
    staple_server old old.der
    run --separate-stderr nestls_run "$POLICY" curl -s "http://127.0.0.1:$PORT/"
    assert_failure
    assert_log "$stderr" "layer 1: the server's stapled OCSP response: unusable, says good, but is outside its validity \(this update 20[0-9-]+T[0-9:]+Z, next update \?\) \(ocsp: require\)$"
}
