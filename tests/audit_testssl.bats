#!/usr/bin/env bats
# External audit: testssl.sh (and sslscan) against a server that nestls
# wraps with its DEFAULT settings: one server layer, certs/outer-server.pem,
# no version, cipher or group options. Nothing HIGH or CRITICAL, no SSLv2,
# SSLv3, TLS 1.0 or 1.1, forward-secret suites only.
#
# The scanners talk to 127.0.0.1 only: testssl.sh runs with --nodns none,
# without --phone-out (no CRL or OCSP fetch), and with NXCONNECT pointing
# its probes of the local openssl at loopback (by default they connect to
# "invalid.", a DNS query).

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    write_policy server.yaml <<'EOF'
version: 1
rules:
  - name: audited
    match:
      role: server
      address: [127.0.0.1]
      port: [@PORT@]
    layers:
      - cert: @CERTS@/outer-server.pem
        key: @CERTS@/outer-server.key
EOF
    nestls_bg server "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
}

# figure TEXT...: lines in the TAP output (bats shows fd 3).
figure() {
    local line
    for line in "$@"; do
        printf '# %s\n' "$line" >&3
    done
}

@test "testssl.sh finds nothing HIGH or CRITICAL, no protocol below TLS 1.2, forward-secret suites only" {
    need_cmd testssl
    local started=$SECONDS
    # -p protocols, -s cipher categories, -f forward secrecy, -P server
    # preferences, -S server defaults, -U vulnerabilities, -e each cipher.
    # Left out: client simulation (-c) and HTTP headers (-h, not HTTP).
    # --add-ca: the chain is judged against the demo CA.
    run env NXCONNECT=127.0.0.1:0 timeout 280 testssl --quiet --color 0 --warnings batch \
        --nodns none --add-ca "$CERTS/outer-ca.pem" --connect-timeout 5 --openssl-timeout 10 \
        -p -s -f -P -S -U -e --jsonfile "$BATS_TEST_TMPDIR/testssl.json" "127.0.0.1:$PORT"
    local took=$((SECONDS - started)) scan_output=$output
    ((status != 124)) || fail "testssl.sh did not finish within 280 s"
    [[ -s testssl.json ]] || fail "testssl.sh wrote no findings (status $status):
$scan_output"
    run python3 "$REPO/tests/audit/testssl_findings.py" testssl.json
    figure "testssl.sh run time: ${took} s" "${lines[@]}"
    assert_ok
}

@test "sslscan agrees: TLS 1.2 and 1.3 only, every accepted suite forward secret" {
    need_cmd sslscan
    run timeout 120 sslscan --no-colour "127.0.0.1:$PORT"
    assert_ok
    assert_line --regexp '^SSLv2 +disabled$'
    assert_line --regexp '^SSLv3 +disabled$'
    assert_line --regexp '^TLSv1\.0 +disabled$'
    assert_line --regexp '^TLSv1\.1 +disabled$'
    assert_line --regexp '^TLSv1\.2 +enabled$'
    assert_line --regexp '^TLSv1\.3 +enabled$'
    # "Accepted  TLSv1.2  256 bits  ECDHE-ECDSA-AES256-GCM-SHA384 Curve 25519 DHE 253"
    local -a accepted
    mapfile -t accepted < <(grep -E '^(Preferred|Accepted) ' <<<"$output")
    ((${#accepted[@]} > 0)) || fail "sslscan listed no accepted cipher"
    figure "sslscan accepts:" "${accepted[@]}"
    local line
    for line in "${accepted[@]}"; do
        # TLS 1.3 suites are always (EC)DHE; a TLS 1.2 one must say so.
        [[ $line =~ ^(Preferred|Accepted)\ +TLSv1\.3\  ||
            $line =~ ^(Preferred|Accepted)\ +TLSv1\.2\ +[0-9]+\ bits\ +(ECDHE|DHE)- ]] ||
            fail "not TLS 1.3 and not a forward-secret TLS 1.2 suite: $line"
    done
}
