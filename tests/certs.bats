#!/usr/bin/env bats
# The demo PKI from certs/generate.sh (make certs): two independent CAs,
# server and client certificates under each, and the broken material the
# failure tests rely on (expired, wrong name, unknown CA, mismatched key).
# The repository's certs/ is only read here; generation itself is tried on
# a copy of the script in the test's own directory.

load helpers/common

setup() {
    need_cmd openssl
    [[ -f $CERTS/outer-ca.pem ]] || fail "no certificates in $CERTS: run make certs"
}

# verify CA CERT [openssl verify options...]
verify() {
    local ca=$1 cert=$2
    shift 2
    openssl verify -CAfile "$CERTS/$ca.pem" "$@" "$CERTS/$cert.pem" 2>&1
}

pubkey_of_cert() { openssl x509 -noout -pubkey -in "$1"; }
pubkey_of_key() { openssl pkey -pubout -in "$1"; }

@test "outer server and client certificates verify against the outer CA only" {
    local c
    for c in outer-server outer-client; do
        run verify outer-ca "$c"
        assert_success
        assert_output "$CERTS/$c.pem: OK"
        run verify inner-ca "$c"
        assert_failure
        assert_output --partial 'unable to get local issuer certificate'
    done
}

@test "inner server and client certificates verify against the inner CA only" {
    local c
    for c in inner-server inner-client; do
        run verify inner-ca "$c"
        assert_success
        assert_output "$CERTS/$c.pem: OK"
        run verify outer-ca "$c"
        assert_failure
        assert_output --partial 'unable to get local issuer certificate'
    done
}

@test "server certificates are for TLS servers and client certificates for TLS clients" {
    run verify outer-ca outer-server -purpose sslserver
    assert_success
    run verify inner-ca inner-server -purpose sslserver
    assert_success
    run verify outer-ca outer-client -purpose sslclient
    assert_success
    run verify inner-ca inner-client -purpose sslclient
    assert_success
    # and not the other way round
    run verify outer-ca outer-client -purpose sslserver
    assert_failure
    run verify outer-ca outer-server -purpose sslclient
    assert_failure
}

@test "server certificates name localhost, 127.0.0.1 and ::1" {
    local c
    for c in outer-server inner-server unknown-server expired-server; do
        run openssl x509 -noout -ext subjectAltName -in "$CERTS/$c.pem"
        assert_success
        assert_output --partial 'DNS:localhost'
        assert_output --partial 'IP Address:127.0.0.1'
        assert_output --partial 'IP Address:0:0:0:0:0:0:0:1'
    done
    run verify outer-ca outer-server -verify_hostname localhost
    assert_success
    run verify outer-ca outer-server -verify_ip 127.0.0.1
    assert_success
    run verify inner-ca inner-server -verify_ip ::1
    assert_success
}

@test "expired-server is signed by the outer CA but has expired" {
    run verify outer-ca expired-server
    assert_failure
    assert_output --partial 'certificate has expired'
    # expired and nothing else: the chain itself is good
    run verify outer-ca expired-server -no_check_time
    assert_success
}

@test "wrongname-server is valid for the outer CA but does not name localhost" {
    run verify outer-ca wrongname-server
    assert_success
    run openssl x509 -noout -subject -ext subjectAltName -in "$CERTS/wrongname-server.pem"
    refute_output --partial localhost
    refute_output --partial 127.0.0.1
    run verify outer-ca wrongname-server -verify_hostname localhost
    assert_failure
    assert_output --partial 'hostname mismatch'
}

@test "unknown-server is trusted by neither the outer nor the inner CA, only by its own" {
    run verify outer-ca unknown-server
    assert_failure
    assert_output --partial 'unable to get local issuer certificate'
    run verify inner-ca unknown-server
    assert_failure
    assert_output --partial 'unable to get local issuer certificate'
    run verify unknown-ca unknown-server
    assert_success
}

@test "the three CAs are distinct" {
    local a b c
    a=$(openssl x509 -noout -fingerprint -sha256 -in "$CERTS/outer-ca.pem")
    b=$(openssl x509 -noout -fingerprint -sha256 -in "$CERTS/inner-ca.pem")
    c=$(openssl x509 -noout -fingerprint -sha256 -in "$CERTS/unknown-ca.pem")
    [[ $a != "$b" && $a != "$c" && $b != "$c" ]] || fail "two CAs are the same certificate"
}

@test "every certificate matches its key, except mismatch.pem and mismatch.key" {
    local c
    for c in outer-server inner-server outer-client inner-client unknown-server \
        expired-server wrongname-server outer-ca inner-ca unknown-ca; do
        [[ $(pubkey_of_cert "$CERTS/$c.pem") == "$(pubkey_of_key "$CERTS/$c.key")" ]] ||
            fail "$c.pem does not match $c.key"
    done
    local cert_pub key_pub
    cert_pub=$(pubkey_of_cert "$CERTS/mismatch.pem")
    key_pub=$(pubkey_of_key "$CERTS/mismatch.key")
    [[ -n $cert_pub && -n $key_pub ]] || fail "mismatch.pem or mismatch.key unreadable"
    [[ $cert_pub != "$key_pub" ]] || fail "mismatch.key matches mismatch.pem"
}

@test "private keys are readable by their owner only (mode 600)" {
    local k n=0
    for k in "$CERTS"/*.key; do
        n=$((n + 1))
        run stat -c %a "$k"
        assert_output 600
    done
    ((n == 11)) || fail "expected 11 keys, found $n"
}

@test "generate.sh makes the full set into its own directory, from any working directory" {
    mkdir "$BATS_TEST_TMPDIR/pki"
    cp "$REPO/certs/generate.sh" "$BATS_TEST_TMPDIR/pki/"
    cd /
    run bash "$BATS_TEST_TMPDIR/pki/generate.sh"
    assert_success
    local f
    for f in outer-ca inner-ca unknown-ca outer-server inner-server outer-client inner-client \
        unknown-server expired-server wrongname-server mismatch; do
        [[ -s $BATS_TEST_TMPDIR/pki/$f.pem && -s $BATS_TEST_TMPDIR/pki/$f.key ]] ||
            fail "$f.pem or $f.key not made"
    done
    # nothing but the certificates, keys and the script itself
    run bash -c "cd '$BATS_TEST_TMPDIR/pki' && ls | grep -Ev '\.(pem|key)$|^generate\.sh$'"
    assert_output ''
    run openssl verify -CAfile "$BATS_TEST_TMPDIR/pki/outer-ca.pem" "$BATS_TEST_TMPDIR/pki/outer-server.pem"
    assert_success
}

@test "generate.sh run again is idempotent: says up to date and changes no file" {
    mkdir "$BATS_TEST_TMPDIR/pki"
    cp "$REPO/certs/generate.sh" "$BATS_TEST_TMPDIR/pki/"
    run bash "$BATS_TEST_TMPDIR/pki/generate.sh"
    assert_success
    local before after
    before=$(cd "$BATS_TEST_TMPDIR/pki" && sha256sum ./*.pem ./*.key)
    run bash "$BATS_TEST_TMPDIR/pki/generate.sh"
    assert_success
    assert_output --partial 'up to date'
    after=$(cd "$BATS_TEST_TMPDIR/pki" && sha256sum ./*.pem ./*.key)
    assert_equal "$after" "$before"
}

@test "generate.sh remakes the set when a file is missing" {
    mkdir "$BATS_TEST_TMPDIR/pki"
    cp "$REPO/certs/generate.sh" "$BATS_TEST_TMPDIR/pki/"
    run bash "$BATS_TEST_TMPDIR/pki/generate.sh"
    assert_success
    rm "$BATS_TEST_TMPDIR/pki/inner-client.key"
    run bash "$BATS_TEST_TMPDIR/pki/generate.sh"
    assert_success
    refute_output --partial 'up to date'
    [[ -s $BATS_TEST_TMPDIR/pki/inner-client.key ]] || fail "inner-client.key not remade"
    # remade as one consistent set: the new leaf verifies against the new CA
    run openssl verify -CAfile "$BATS_TEST_TMPDIR/pki/inner-ca.pem" "$BATS_TEST_TMPDIR/pki/inner-client.pem"
    assert_success
    [[ $(pubkey_of_cert "$BATS_TEST_TMPDIR/pki/inner-client.pem") == \
        "$(pubkey_of_key "$BATS_TEST_TMPDIR/pki/inner-client.key")" ]] || fail "new pair does not match"
}
