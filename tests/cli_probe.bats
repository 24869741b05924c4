#!/usr/bin/env bats
# nestls probe: the client side of every layer, each inside the one before,
# against real peers (stunnel chains, openssl s_server), reported layer by
# layer. Exit status 0 only when every layer is up and verified.

load helpers/common
load helpers/peers
load helpers/pki

setup() {
    need_cli
    need_cmd openssl stunnel python3
    cd "$BATS_TEST_TMPDIR"
}

# section N: the lines of the last output from "layer N (" up to the next
# layer or the result line.
section() {
    awk -v n="$1" '/^layer [0-9]+ \(/ { on = ($2 == n) } /^result:/ { on = 0 } on' <<<"$output"
}

# ------------------------------------------------------------ two layers

@test "probe -p reports both layers of a two-layer stunnel chain and exits 0" {
    start_stunnel_chain
    client_policy client.yaml "$PORT" outer inner
    run --separate-stderr "$NESTLS" probe -p "$POLICY" "127.0.0.1:$PORT"
    assert_ok
    assert_line --regexp "^probe: +127\.0\.0\.1 port $PORT, connected to 127\.0\.0\.1 in [0-9.]+ ms$"
    assert_line --regexp '^layers: +rule 1 "client" at .*/client\.yaml:3, outermost first$'
    assert_line 'layer 1 (outermost): up, verified'
    assert_line 'layer 2 (innermost): up, verified'
    assert_line 'result:   every layer verified (2)'
    # Each layer shows its own peer: the outer CA's certificate outside,
    # the inner CA's inside (the onion's order).
    local one two
    one=$(section 1) two=$(section 2)
    [[ $one =~ issuer:\ +CN=nestls\ demo\ outer\ CA ]] || fail "layer 1: $one"
    [[ $two =~ issuer:\ +CN=nestls\ demo\ inner\ CA ]] || fail "layer 2: $two"
    for s in "$one" "$two"; do
        [[ $s =~ protocol:\ +TLSv1\.[23] ]] || fail "no protocol: $s"
        [[ $s =~ cipher:\ +[A-Z0-9_-]+ ]] || fail "no cipher: $s"
        [[ $s =~ group:\ +[A-Za-z0-9_-]+ ]] || fail "no group: $s"
        [[ $s =~ verify:\ +ok,\ chain\ and\ IP\ address\ 127\.0\.0\.1 ]] || fail "no verify: $s"
        [[ $s =~ san:\ +DNS:localhost,\ IP:127\.0\.0\.1 ]] || fail "no SANs: $s"
        [[ $s =~ not\ after:\ +20[0-9]{2}-[0-9]{2}-[0-9]{2}T ]] || fail "no expiry: $s"
        [[ $s =~ resumed:\ +no ]] || fail "no resumption line: $s"
        [[ $s =~ ocsp:\ +none ]] || fail "no OCSP line: $s"
        [[ $s =~ handshake:\ +[0-9.]+\ ms ]] || fail "no time: $s"
    done
    assert_equal "$stderr" ''
}

@test "probe --layer takes the stack from the command line; a name is verified and sent as SNI" {
    start_stunnel_chain
    run --separate-stderr "$NESTLS" probe --layer "ca=$CERTS/outer-ca.pem" \
        --layer "ca=$CERTS/inner-ca.pem" "localhost:$PORT"
    assert_ok
    assert_line 'layers:   2 from --layer, outermost first'
    assert_equal "$(grep -c '^  sni: *localhost$' <<<"$output")" 2
    assert_equal "$(grep -c '^  verify: *ok, chain and host name localhost$' <<<"$output")" 2
}

# The hint the library's log gives for this failure, which probe gives too.
H=" (the server's certificate is not from a CA in this layer's 'ca')"

@test "probe exits 1 naming layer 2 when the inner layer trusts the wrong CA" {
    start_stunnel_chain
    run --separate-stderr "$NESTLS" probe --layer "ca=$CERTS/outer-ca.pem" \
        --layer "ca=$CERTS/outer-ca.pem" "127.0.0.1:$PORT"
    assert_failure 1
    assert_equal "$stderr" \
        "nestls: layer 2: certificate verify failed: unable to get local issuer certificate$H"
    assert_line 'layer 1 (outermost): up, verified'
    assert_line "layer 2 (innermost): FAILED: certificate verify failed: unable to get local issuer certificate$H"
    # The chain the failing peer showed is still reported.
    [[ $(section 2) =~ issuer:\ +CN=nestls\ demo\ inner\ CA ]] || fail "$(section 2)"
    assert_line "result:   layer 2: certificate verify failed: unable to get local issuer certificate$H"
}

@test "probe exits 1 naming layer 1 when the outer CA is wrong, and layer 2 never starts" {
    start_stunnel_chain
    client_policy client.yaml "$PORT" inner inner
    run --separate-stderr "$NESTLS" probe -p "$POLICY" "127.0.0.1:$PORT"
    assert_failure 1
    [[ $stderr == "nestls: layer 1: certificate verify failed: unable to get local issuer certificate$H" ]] ||
        fail "stderr: $stderr"
    assert_line 'layer 2 (innermost): not started'
}

@test "probe: a layer whose peer goes away during the handshake is named (inner peer down)" {
    # stunnel accepts the outer layer, then cannot reach its backend.
    PORT=$(free_port) PORT2=$(free_port)
    start_stunnel_server outer "$PORT" "$PORT2"
    run --separate-stderr "$NESTLS" probe --timeout 5000 --layer "ca=$CERTS/outer-ca.pem" \
        --layer "ca=$CERTS/inner-ca.pem" "127.0.0.1:$PORT"
    assert_failure 1
    [[ $stderr =~ ^nestls:\ layer\ 2:\ the\ peer\ (closed|reset)\  ]] || fail "stderr: $stderr"
    assert_line 'layer 1 (outermost): up, verified'
}

# ------------------------------------------------------------ one layer

@test "probe names the wanted host on a hostname mismatch" {
    PORT=$(free_port)
    start_s_server tls "$PORT" wrongname-server -WWW
    run --separate-stderr "$NESTLS" probe \
        --layer "ca=$CERTS/outer-ca.pem,server_name=localhost" "127.0.0.1:$PORT"
    assert_failure 1
    assert_equal "$stderr" 'nestls: layer 1: certificate verify failed: hostname mismatch (wanted localhost)'
    assert_line --regexp '^ +san: +DNS:wrong\.example$'
}

@test "probe reports an expired certificate as the verification failure" {
    PORT=$(free_port)
    start_s_server tls "$PORT" expired-server -WWW
    run --separate-stderr "$NESTLS" probe --layer "ca=$CERTS/outer-ca.pem" "localhost:$PORT"
    assert_failure 1
    assert_equal "$stderr" 'nestls: layer 1: certificate verify failed: certificate has expired'
}

@test "probe shows the ALPN protocol the server chose" {
    PORT=$(free_port)
    start_s_server tls "$PORT" outer-server -WWW -alpn h2
    run --separate-stderr "$NESTLS" probe \
        --layer "ca=$CERTS/outer-ca.pem,alpn=h2,alpn=http/1.1" "localhost:$PORT"
    assert_ok
    assert_line --regexp '^  alpn: +h2$'
    # Control: without ALPN offered, none is chosen.
    run --separate-stderr "$NESTLS" probe --layer "ca=$CERTS/outer-ca.pem" "localhost:$PORT"
    assert_ok
    assert_line --regexp '^  alpn: +none$'
}

@test "probe honours the layer's versions: max_version=TLSv1.2 negotiates TLSv1.2" {
    PORT=$(free_port)
    start_s_server tls "$PORT" outer-server -WWW
    run --separate-stderr "$NESTLS" probe \
        --layer "ca=$CERTS/outer-ca.pem,max_version=TLSv1.2" "localhost:$PORT"
    assert_ok
    assert_line --regexp '^  protocol: +TLSv1\.2$'
    assert_line --regexp '^  cipher: +ECDHE-'
}

# ocsp_response STATUS: a DER OCSP response for outer-server.pem, signed by
# the outer CA, saying STATUS (V: good, R: revoked), into ocsp-STATUS.der.
ocsp_response() {
    local cert=$CERTS/outer-server.pem serial end subject revoked=
    serial=$(openssl x509 -in "$cert" -noout -serial) && serial=${serial#serial=}
    end=$(openssl x509 -in "$cert" -noout -enddate) && end=$(date -u -d "${end#notAfter=}" +%y%m%d%H%M%SZ)
    subject=$(openssl x509 -in "$cert" -noout -subject -nameopt compat) && subject=${subject#subject=}
    [[ $1 == V ]] || revoked=$(date -u -d '1 hour ago' +%y%m%d%H%M%SZ)
    printf '%s\t%s\t%s\t%s\tunknown\t%s\n' "$1" "$end" "$revoked" "$serial" "$subject" >"index-$1.txt"
    openssl ocsp -issuer "$CERTS/outer-ca.pem" -cert "$cert" -no_nonce -reqout "req-$1.der"
    openssl ocsp -index "index-$1.txt" -rsigner "$CERTS/outer-ca.pem" -rkey "$CERTS/outer-ca.key" \
        -CA "$CERTS/outer-ca.pem" -reqin "req-$1.der" -respout "ocsp-$1.der" -ndays 1 >/dev/null
    [[ -s ocsp-$1.der ]]
}

@test "probe shows a stapled OCSP response: good, and revoked" {
    ocsp_response V
    ocsp_response R
    PORT=$(free_port)
    start_s_server good "$PORT" outer-server -WWW -status_file ocsp-V.der
    run --separate-stderr "$NESTLS" probe --layer "ca=$CERTS/outer-ca.pem" "localhost:$PORT"
    assert_ok
    assert_line --regexp '^  ocsp: +good: this update 20'
    PORT=$(free_port)
    start_s_server revoked "$PORT" outer-server -WWW -status_file ocsp-R.der
    run --separate-stderr "$NESTLS" probe --layer "ca=$CERTS/outer-ca.pem" "localhost:$PORT"
    assert_line --regexp '^  ocsp: +revoked: revoked at 20'
}

@test "probe: a layer with verify off is up but not verified, exit 1" {
    PORT=$(free_port)
    start_s_server tls "$PORT" unknown-server -WWW
    run --separate-stderr "$NESTLS" probe --layer verify=off "127.0.0.1:$PORT"
    assert_failure 1
    assert_line 'layer 1 (only layer): up, NOT verified'
    assert_line --regexp '^  verify: +off '
    assert_equal "$stderr" 'nestls: layer 1: not verified (verify is off)'
}

# ----------------------------------------------------- failures before TLS

@test "probe: a refused TCP connection is reported as TCP, not as a layer, exit 1" {
    PORT=$(free_port) # nothing listens there
    run --separate-stderr "$NESTLS" probe --layer "ca=$CERTS/outer-ca.pem" "127.0.0.1:$PORT"
    assert_failure 1
    assert_equal "$stderr" "nestls: TCP connect to 127.0.0.1 port $PORT: Connection refused"
    assert_line 'layer 1 (only layer): not started'
}

@test "probe: a peer that never answers times out within --timeout, naming the layer" {
    start_bg mute python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print("port", s.getsockname()[1], flush=True); time.sleep(60)'
    PORT=$(port_of mute)
    SECONDS=0
    run --separate-stderr "$NESTLS" probe --timeout 300 --layer "ca=$CERTS/outer-ca.pem" "127.0.0.1:$PORT"
    assert_failure 1
    assert_equal "$stderr" 'nestls: layer 1: handshake timed out after 300 ms'
    ((SECONDS < 5)) || fail "took $SECONDS s"
}

@test "probe -p: a target no rule wraps is refused without a handshake, exit 1" {
    client_policy client.yaml 9 outer
    run --separate-stderr "$NESTLS" probe -p "$POLICY" 127.0.0.1:10
    assert_failure 1
    [[ $stderr =~ ^nestls:\ no\ layers\ to\ probe:\ no\ rule\ matches.*passthrough ]] || fail "$stderr"
}

@test "probe -p: an invalid policy exits 78 with its FILE:LINE:COL" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: typo
    match:
      role: client
    layers:
      - servr_name: localhost
EOF
    run --separate-stderr "$NESTLS" probe -p policy.yaml 127.0.0.1:9
    assert_failure 78
    [[ $stderr =~ ^nestls:\ policy\.yaml:7:9:\ .*servr_name ]] || fail "stderr: $stderr"
}

@test "probe --layer: what the policy loader rejects exits 78 naming the --layer" {
    run --separate-stderr "$NESTLS" probe --layer "ca=$CERTS/outer-ca.pem" \
        --layer ca=no-such-ca.pem 127.0.0.1:9
    assert_failure 78
    [[ $stderr =~ ^nestls:\ --layer\ 2:\ .*no-such-ca\.pem.*No\ such\ file ]] || fail "stderr: $stderr"
}

@test "probe usage errors exit 2 with one line naming the problem" {
    run --separate-stderr "$NESTLS" probe --layer sni=x 127.0.0.1:9
    assert_failure 2
    [[ $stderr =~ ^nestls:\ probe:\ --layer\ 1:\ unknown\ key\ \'sni\' ]] || fail "$stderr"
    run --separate-stderr "$NESTLS" probe --layer verify=maybe 127.0.0.1:9
    assert_failure 2
    run --separate-stderr "$NESTLS" probe -p x.yaml --layer ca=system 127.0.0.1:9
    assert_failure 2
    [[ $stderr =~ -p\ and\ --layer ]] || fail "$stderr"
    run --separate-stderr "$NESTLS" probe 127.0.0.1:9
    assert_failure 2
    run --separate-stderr "$NESTLS" probe --layer ca=system
    assert_failure 2
    [[ $stderr =~ no\ HOST:PORT ]] || fail "$stderr"
    run --separate-stderr "$NESTLS" probe --layer ca=system 127.0.0.1
    assert_failure 2
    run --separate-stderr "$NESTLS" probe --timeout 0 --layer ca=system 127.0.0.1:9
    assert_failure 2
}

@test "probe --layer crl= and ocsp=: a revoked server and a missing staple fail the layer with the library's words" {
    PORT=$(free_port)
    make_crl crl outer outer-server
    start_s_server tls "$PORT" outer-server -WWW
    run --separate-stderr "$NESTLS" probe --layer "ca=$CERTS/outer-ca.pem,crl=crl.pem" "127.0.0.1:$PORT"
    assert_failure 1
    assert_equal "$stderr" "nestls: layer 1: certificate verify failed: certificate revoked (the server's certificate is listed in this layer's 'crl')"
    run --separate-stderr "$NESTLS" probe --layer "ca=$CERTS/outer-ca.pem,ocsp=require" "127.0.0.1:$PORT"
    assert_failure 1
    assert_equal "$stderr" "nestls: layer 1: the server stapled no OCSP response (ocsp: require)"
    run --separate-stderr "$NESTLS" probe --layer "ca=$CERTS/outer-ca.pem,min_version=TLSv1.3,padding=256" "127.0.0.1:$PORT"
    assert_success
}

@test "probe -p on a rule with starttls says it does not speak the prelude, exit 1" {
    PORT=$(free_port)
    start_s_server tls "$PORT" outer-server -WWW
    client_policy client.yaml "$PORT" outer
    sed -i 's/^    layers:$/    starttls: smtp\n    layers:/' client.yaml
    run --separate-stderr "$NESTLS" probe -p "$POLICY" "127.0.0.1:$PORT"
    assert_failure 1
    assert_equal "$stderr" "nestls: rule 'client' has starttls: smtp, whose plaintext prelude probe does not speak (openssl s_client -starttls smtp shows the outer layer)"
}
