#!/usr/bin/env bats
# Revocation (`crl:` on a layer), against real peers: the CRLs are made by
# `openssl ca` from its own database (-revoke, then -gencrl) and signed by
# the demo CAs; the peers are openssl s_server, s_client and stunnel.
# A client layer checks the server's certificate, a server layer with
# client_ca checks the client's; a revoked one fails the handshake at
# that layer with "certificate revoked", and nothing the program wrote
# reaches the wire.

load helpers/common
load helpers/peers
load helpers/pki

setup() {
    need_build
    need_cmd openssl curl tcpdump
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    MARKER=$(new_marker)
}

# crl_client_policy CRL LAYER...: client_policy, with crl: CRL on the
# last layer.
crl_client_policy() {
    local crl=$1
    shift
    client_policy client.yaml "$PORT" "$@"
    printf '        crl: %s\n' "$PWD/$crl" >>client.yaml
}

# curl_refused LAYER REASON: a wrapped curl to s_server on PORT fails;
# nestls names LAYER and REASON (a regex); the marker in its URL never
# crossed the wire.
curl_refused() {
    capture_start "$PORT"
    run --separate-stderr nestls_run "$POLICY" curl -s "http://127.0.0.1:$PORT/$MARKER"
    capture_stop 2
    assert_failure
    assert_log "$stderr" "^nestls\[$(run_pid)\] error: rule 'client': client $ADDR -> $IP4:$PORT layer $1: $2"
    assert_not_on_wire "$MARKER"
}

@test "client: a CRL listing the server's certificate refuses it at layer 1 ('certificate revoked'); no plaintext leaves" {
    make_crl crl outer outer-server
    start_s_server tls "$PORT" outer-server -www
    crl_client_policy crl.pem outer
    curl_refused 1 "certificate verify failed: certificate revoked \(the server's certificate is listed in this layer's 'crl'\)$"
}

@test "client: a CRL that lists other certificates lets the server's through; curl gets its page" {
    make_crl crl outer outer-client wrongname-server
    start_s_server tls "$PORT" outer-server -www
    crl_client_policy crl.pem outer
    run --separate-stderr nestls_run "$POLICY" curl -sS "http://127.0.0.1:$PORT/"
    assert_success
    assert_output --partial "s_server -accept 127.0.0.1:$PORT"
}

@test "client: the inner layer's CRL refuses a revoked inner server at layer 2, behind a good outer layer" {
    PORT2=$(free_port)
    make_crl crl inner inner-server
    start_s_server inner "$PORT2" inner-server -www
    start_stunnel_server outer "$PORT" "$PORT2"
    crl_client_policy crl.pem outer inner
    curl_refused 2 "certificate verify failed: certificate revoked"
}

@test "client: a CRL past its next update refuses every server ('CRL has expired'), as does a CRL from another CA" {
    CRL_DATES="-crl_lastupdate $(date -u -d '3 days ago' +%Y%m%d%H%M%SZ) -crl_nextupdate $(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" \
        make_crl stale outer wrongname-server
    start_s_server tls "$PORT" outer-server -www
    crl_client_policy stale.pem outer
    curl_refused 1 "certificate verify failed: CRL has expired \(this layer's 'crl' is past its next update"

    make_crl other inner inner-server
    crl_client_policy other.pem outer
    curl_refused 1 "certificate verify failed: unable to get certificate CRL \(this layer's 'crl' holds no CRL from the CA of the server's certificate\)$"
}

# s_client_line ARGS...: one line through openssl s_client to PORT, with
# the given options; its output in $output.
s_client_line() {
    run bash -c 'echo "$0" | timeout 20 openssl s_client -connect "127.0.0.1:$1" -quiet "${@:2}" 2>&1' \
        "$MARKER" "$PORT" "$@"
}

@test "server: a client certificate in the layer's CRL is refused at layer 1; the program never sees the client; a good one is served" {
    make_crl crl outer outer-client
    server_policy server.yaml "$PORT" outer-mtls
    printf '        crl: %s\n' "$PWD/crl.pem" >>server.yaml
    nestls_bg echo "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    local first=$BG_PID
    wait_for_port "$PORT"
    s_client_line -cert "$CERTS/outer-client.pem" -key "$CERTS/outer-client.key" -CAfile "$CERTS/outer-ca.pem"
    refute_output --partial "$MARKER"
    assert_output --partial "certificate revoked"
    wait_for_match echo.err "layer 1: certificate verify failed: certificate revoked \(the client's certificate is listed in this layer's 'crl'\)"

    # The same server with a CRL that lists only another certificate.
    stop_bg "$first"
    make_crl other outer wrongname-server
    sed -i "s|crl: .*|crl: $PWD/other.pem|" server.yaml
    nestls_bg echo2 "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
    s_client_line -cert "$CERTS/outer-client.pem" -key "$CERTS/outer-client.key" -CAfile "$CERTS/outer-ca.pem"
    assert_output --partial "$MARKER"
}

@test "check and explain show the CRL of each layer, in text and JSON" {
    make_crl crl outer outer-server
    crl_client_policy crl.pem outer
    run "$NESTLS" check "$POLICY"
    assert_success
    assert_output --partial "revoked:     the server's certificate must not be in CRL $PWD/crl.pem"
    run "$NESTLS" check --json "$POLICY"
    assert_success
    [[ $(python3 -c 'import json,sys; print(json.load(sys.stdin)["policies"][0]["rules"][0]["layers"][0]["crl"])' <<<"$output") == "$PWD/crl.pem" ]]
}
