#!/usr/bin/env bats
# A server layer with several certificates (certs:), chosen by the name
# the client sends (SNI), and sni: require. Peers: openssl s_client (which
# prints the certificate it got) and curl wrapped by nestls (whose layer
# verifies the name it asked for). Two demo certificates from the outer
# CA: outer-server (localhost, 127.0.0.1) and wrongname-server
# (wrong.example).

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd openssl python3 curl
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    mkdir -p www && echo "sni page" >www/page.txt
}

# sni_server [LAYER SETTING...]: a wrapped http.server on PORT whose one
# layer holds both certificates: localhost first (the default), then
# wrong.example for its own names and any name under .example.
sni_server() {
    write_policy server.yaml < <(
        printf 'version: 1\nrules:\n  - name: server\n    match: {role: server, address: [127.0.0.1], port: [%s]}\n' "$PORT"
        printf '    layers:\n      - certs:\n'
        printf '          - {cert: %s/outer-server.pem, key: %s/outer-server.key}\n' "$CERTS" "$CERTS"
        printf '          - {cert: %s/wrongname-server.pem, key: %s/wrongname-server.key, names: [wrong.example, "*.example"]}\n' "$CERTS" "$CERTS"
        local setting
        for setting in "$@"; do printf '        %s\n' "$setting"; done
    )
    serve_http web "$PORT" www "$POLICY"
}

# s_client_subject NAME|-: the subject of the certificate s_client gets
# when it sends NAME as SNI ("-": no SNI at all), or its error lines.
s_client_subject() {
    local sni=(-servername "$1")
    [[ $1 == - ]] && sni=(-noservername)
    run bash -c 'timeout 20 openssl s_client -connect "127.0.0.1:$0" "${@}" </dev/null 2>&1' \
        "$PORT" "${sni[@]}" -CAfile "$CERTS/outer-ca.pem"
}

@test "two names, two certificates: s_client gets the one for the name it sends, the first without a match; the log names the certificate" {
    sni_server
    s_client_subject localhost
    assert_output --regexp 'subject=CN ?= ?localhost'
    s_client_subject wrong.example
    assert_output --regexp 'subject=CN ?= ?wrong\.example'
    s_client_subject WRONG.Example. # case and a root dot do not matter
    assert_output --regexp 'subject=CN ?= ?wrong\.example'
    s_client_subject other.example
    assert_output --regexp 'subject=CN ?= ?wrong\.example'
    s_client_subject unrelated.test
    assert_output --regexp 'subject=CN ?= ?localhost'
    s_client_subject -
    assert_output --regexp 'subject=CN ?= ?localhost'
    wait_for_match web.err "sni wrong\.example peer \"-\" verified - alpn - cert \"CN=wrong\.example\""
    wait_for_match web.err "sni localhost peer \"-\" verified - alpn - cert \"CN=localhost\""
}

@test "a wrapped curl whose layer asks for wrong.example verifies the certificate SNI chose; asking for localhost, the other" {
    sni_server
    local name
    for name in wrong.example localhost; do
        write_policy client.yaml < <(
            printf 'version: 1\nrules:\n  - name: client\n    match: {role: client, address: [127.0.0.1], port: [%s]}\n' "$PORT"
            printf '    layers:\n      - {ca: %s/outer-ca.pem, server_name: %s}\n' "$CERTS" "$name"
        )
        run --separate-stderr nestls_run "$POLICY" curl -sS "http://127.0.0.1:$PORT/page.txt"
        assert_success
        assert_output "sni page"
        assert_log "$stderr" "peer \"CN=$name\" verified $name"
    done
}

@test "sni: require refuses a client whose name no certificate is for, and one that sends none, with unrecognized_name; names that match are served" {
    sni_server "sni: require"
    s_client_subject unrelated.test
    assert_output --partial "unrecognized name"
    refute_output --regexp 'subject=CN'
    wait_for_match web.err "layer 1: the client asked for 'unrelated\.test', which no certificate of this layer is for \(sni: require\)"
    s_client_subject -
    assert_output --partial "unrecognized name"
    wait_for_match web.err "layer 1: the client sent no server name \(sni: require\)"
    s_client_subject other.example
    assert_output --regexp 'subject=CN ?= ?wrong\.example'
    s_client_subject localhost.
    assert_output --regexp 'subject=CN ?= ?localhost'
}

@test "check shows each certificate with its names, and sni: require, in text and JSON" {
    sni_server "sni: require"
    run "$NESTLS" check "$POLICY"
    assert_success
    assert_output --partial "certificate: $CERTS/outer-server.pem (key $CERTS/outer-server.key) for the names in the certificate; the default"
    assert_output --partial "certificate: $CERTS/wrongname-server.pem (key $CERTS/wrongname-server.key) for wrong.example, *.example"
    assert_output --partial "sni:         required"
    run "$NESTLS" check --json "$POLICY"
    assert_success
    [[ $(python3 -c 'import json,sys; l=json.load(sys.stdin)["policies"][0]["rules"][0]["layers"][0]; print(len(l["certs"]), l["certs"][1]["names"], l["sni_required"])' <<<"$output") == "2 ['wrong.example', '*.example'] True" ]]
}
