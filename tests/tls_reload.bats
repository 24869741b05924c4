#!/usr/bin/env bats
# Reload without restart: a wrapped program keeps running while the files
# its layers read are replaced. New connections use the new material,
# established ones carry on, invalid material is refused with one line
# and the old stays. The replacements are made as tools make them: a new
# file written beside the old, then renamed over it.
#
# step_client.py (wrapped) holds one connection open across the change
# and makes a second one after it; both go to a wrapped echo server.

load helpers/common
load helpers/peers
load helpers/pki

setup() {
    need_build
    need_cmd openssl python3
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    mkdir -p files
    cp "$CERTS/outer-server.pem" files/server.pem
    install -m 0600 "$CERTS/outer-server.key" files/server.key
    cp "$CERTS/outer-ca.pem" files/ca.pem
}

# renewed_cert NAME: files/NAME.pem and .key, a new certificate for
# localhost and 127.0.0.1 from the outer CA, subject CN=renewed.localhost.
renewed_cert() {
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj /CN=renewed.localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth \
        -CA "$CERTS/outer-ca.pem" -CAkey "$CERTS/outer-ca.key" \
        -keyout "files/$1.key" -out "files/$1.pem" 2>/dev/null || fail "openssl could not make $1"
    chmod 0600 "files/$1.key"
}

# replace SRC DST: SRC renamed over DST, as cert tools do.
replace() {
    mv -f "files/$1" "files/$2"
}

# echo_server [SETTINGS]: a wrapped echo server on PORT whose layer reads
# files/server.pem and .key; SETTINGS go under settings:.
echo_server() {
    write_policy server.yaml < <(
        printf 'version: 1\nsettings: {log_level: info%s}\nrules:\n' "${1:+, $1}"
        printf '  - name: web\n    match: {role: server, address: [127.0.0.1], port: [%s]}\n' "$PORT"
        printf '    layers:\n      - {cert: %s/files/server.pem, key: %s/files/server.key}\n' "$PWD" "$PWD"
    )
    nestls_bg echo "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
}

# step_client CA: step_client.py under a client policy for PORT trusting
# files/CA, started as "step" in the background.
step_client() {
    write_policy client.yaml < <(
        printf 'version: 1\nsettings: {log_level: info}\nrules:\n'
        printf '  - name: cli\n    match: {role: client, address: [127.0.0.1], port: [%s]}\n' "$PORT"
        printf '    layers:\n      - {ca: %s/files/%s}\n' "$PWD" "$1"
    )
    nestls_bg step "$POLICY" python3 "$HELPERS/step_client.py" "$PORT" "$PWD/go"
    wait_for_match step.out '^1: one$'
}

@test "server: a renewed certificate renamed over the old one is used by the next connection; the open one carries on; one info line" {
    echo_server
    step_client ca.pem
    assert_log "$(cat step.err)" 'peer "CN=localhost" verified 127\.0\.0\.1'
    renewed_cert renewed
    replace renewed.key server.key
    replace renewed.pem server.pem
    wait_for_match echo.err "info: rule 'web' layer 1: reloaded: certificate \"CN=renewed\.localhost\" valid until 20[0-9-]+T"
    touch go
    wait_for_exit "$BG_PID" 30
    assert_equal "$(cat step.out)" "1: one
2: two
1 again: three"
    assert_log "$(cat step.err)" 'peer "CN=renewed\.localhost" verified 127\.0\.0\.1'
    [[ $(grep -c "reloaded" echo.err) == 1 ]] || fail "not one reload line: $(grep reloaded echo.err)"
}

@test "server: a broken replacement is refused with one error line naming the file; connections keep the old certificate; the fixed file is then taken" {
    echo_server
    echo "not a certificate" >files/broken.pem
    replace broken.pem server.pem
    wait_for_match echo.err "error: reload: .*server\.yaml:[0-9]+:[0-9]+: layer 1 of rule 'web': no certificate in 'cert' file '$PWD/files/server\.pem'.*; the files in use stay in use"
    run bash -c 'timeout 20 openssl s_client -connect "127.0.0.1:$0" -CAfile "$1" </dev/null 2>&1' "$PORT" "$CERTS/outer-ca.pem"
    assert_output --regexp 'subject=CN ?= ?localhost'
    assert_output --partial "Verify return code: 0 (ok)"
    # A key that does not match the certificate is refused too.
    renewed_cert renewed
    replace renewed.pem server.pem
    wait_for_match echo.err "error: reload: .*key '$PWD/files/server\.key' does not match cert"
    replace renewed.key server.key
    wait_for_match echo.err "reloaded: certificate \"CN=renewed\.localhost\""
    run bash -c 'timeout 20 openssl s_client -connect "127.0.0.1:$0" -CAfile "$1" </dev/null 2>&1' "$PORT" "$CERTS/outer-ca.pem"
    assert_output --regexp 'subject=CN ?= ?renewed\.localhost'
    [[ $(grep -c "error: reload" echo.err) == 2 ]] || fail "not one line per failure: $(grep 'error: reload' echo.err)"
}

@test "client: a CA file replaced by another CA's: the next connection is refused by the new trust, the open one carries on" {
    echo_server
    step_client ca.pem
    cp "$CERTS/inner-ca.pem" files/ca.new
    replace ca.new ca.pem
    wait_for_match step.err "info: rule 'cli' layer 1: reloaded \(no certificate of its own"
    touch go
    wait_for_exit "$BG_PID" 30
    assert_equal "$(cat step.out)" "1: one
2: error PermissionError
1 again: three"
    assert_log "$(cat step.err)" "layer 1: certificate verify failed: unable to get local issuer certificate"
}

@test "reload: off: replaced files are not taken up; check says so" {
    echo_server "reload: off"
    step_client ca.pem
    renewed_cert renewed
    replace renewed.key server.key
    replace renewed.pem server.pem
    sleep 1 # a reload would have happened within 250 ms
    touch go
    wait_for_exit "$BG_PID" 30
    refute_log "$(cat echo.err)" "reload"
    assert_log "$(cat step.out)" "^2: two$"
    refute_log "$(cat step.err)" 'renewed'
    run "$NESTLS" check server.yaml
    assert_output --partial "reload:               off - changed files need a restart"
}

@test "client: a renewed CRL that now lists the server's certificate refuses the next connection" {
    echo_server
    make_crl empty outer wrongname-server
    cp empty.pem files/crl.pem
    write_policy client.yaml < <(
        printf 'version: 1\nsettings: {log_level: info}\nrules:\n'
        printf '  - name: cli\n    match: {role: client, address: [127.0.0.1], port: [%s]}\n' "$PORT"
        printf '    layers:\n      - {ca: %s/files/ca.pem, crl: %s/files/crl.pem}\n' "$PWD" "$PWD"
    )
    nestls_bg step "$POLICY" python3 "$HELPERS/step_client.py" "$PORT" "$PWD/go"
    wait_for_match step.out '^1: one$'
    make_crl revoking outer outer-server
    cp revoking.pem files/crl.new
    replace crl.new crl.pem
    wait_for_match step.err "info: rule 'cli' layer 1: reloaded"
    touch go
    wait_for_exit "$BG_PID" 30
    assert_log "$(cat step.out)" "^2: error PermissionError$"
    assert_log "$(cat step.err)" "layer 1: certificate verify failed: certificate revoked"
}

@test "server: a new OCSP staple renamed over the old one is stapled from the next connection" {
    ca_mark good outer valid outer-server
    ocsp_response good outer outer-server files/staple.der
    ca_mark bad outer revoke outer-server
    ocsp_response bad outer outer-server revoked.der
    write_policy server.yaml < <(
        printf 'version: 1\nsettings: {log_level: info}\nrules:\n'
        printf '  - name: web\n    match: {role: server, address: [127.0.0.1], port: [%s]}\n' "$PORT"
        printf '    layers:\n      - {cert: %s/files/server.pem, key: %s/files/server.key, ocsp_staple: %s/files/staple.der}\n' "$PWD" "$PWD" "$PWD"
    )
    nestls_bg echo "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
    run bash -c 'timeout 20 openssl s_client -connect "127.0.0.1:$0" -status -CAfile "$1" </dev/null 2>&1' "$PORT" "$CERTS/outer-ca.pem"
    assert_output --partial "Cert Status: good"
    cp revoked.der files/staple.new
    replace staple.new staple.der
    wait_for_match echo.err "info: rule 'web' layer 1: reloaded"
    run bash -c 'timeout 20 openssl s_client -connect "127.0.0.1:$0" -status -CAfile "$1" </dev/null 2>&1' "$PORT" "$CERTS/outer-ca.pem"
    assert_output --partial "Cert Status: revoked"
}

@test "client: CRLs alternating between listing the server and not, 8 times: every era that lists it refuses, resumption never skips the check" {
    # A session made under one CRL must not be resumed under another: the
    # session cache once keyed contexts by address, which a reload reuses.
    echo_server
    make_crl good outer wrongname-server
    make_crl bad outer outer-server
    make_crl bad2 outer outer-server outer-client
    cp good.pem files/crl.pem
    write_policy client.yaml < <(
        printf 'version: 1\nsettings: {log_level: info}\nrules:\n'
        printf '  - name: cli\n    match: {role: client, address: [127.0.0.1], port: [%s]}\n' "$PORT"
        printf '    layers:\n      - {ca: %s/files/ca.pem, crl: %s/files/crl.pem}\n' "$PWD" "$PWD"
    )
    nestls_bg era "$POLICY" python3 "$HELPERS/era_client.py" "$PORT" "$PWD" 9
    local pid=$BG_PID k crl reloads=0
    touch go-1
    wait_for_match era.out '^1: '
    for ((k = 2; k <= 9; k++)); do
        # Some eras take two reloads: freed contexts' addresses then come
        # back in eras of the other kind.
        for crl in $( ((k % 2)) && echo good || { ((k % 4)) && echo bad || echo bad2 bad; }); do
            cp "$crl.pem" files/crl.new
            replace crl.new crl.pem
            reloads=$((reloads + 1))
            wait_for_count era.err "reloaded" "$reloads"
        done
        touch "go-$k"
        wait_for_match era.out "^$k: "
    done
    wait_for_exit "$pid" 30
    for ((k = 1; k <= 9; k++)); do
        if ((k % 2)); then
            assert_log "$(cat era.out)" "^$k: ok$"
        else
            assert_log "$(cat era.out)" "^$k: error PermissionError$"
        fi
    done
}

@test "server: a policy read through links a ConfigMap update swaps (..data), then a certificate renewal: the renewal is taken" {
    mkdir -p cfg/..v1
    write_policy cfg/..v1/policy.yaml < <(
        printf 'version: 1\nsettings: {log_level: info}\nrules:\n'
        printf '  - name: web\n    match: {role: server, address: [127.0.0.1], port: [%s]}\n' "$PORT"
        printf '    layers:\n      - {cert: %s/files/server.pem, key: %s/files/server.key}\n' "$PWD" "$PWD"
    )
    ln -s ..v1 cfg/..data
    ln -s ..data/policy.yaml cfg/policy.yaml
    nestls_bg echo cfg/policy.yaml python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
    # The update: the same text in a new directory, the link swapped, the old one gone.
    mkdir cfg/..v2 && cp cfg/..v1/policy.yaml cfg/..v2/
    ln -s ..v2 cfg/..data.new && mv -T cfg/..data.new cfg/..data && rm -rf cfg/..v1
    renewed_cert renewed
    replace renewed.key server.key
    replace renewed.pem server.pem
    wait_for_match echo.err "reloaded: certificate \"CN=renewed\.localhost\""
    refute_log "$(cat echo.err)" "error: reload"
}

@test "server: the certificates' directory deleted, then made again later, is watched again: a later renewal is taken" {
    echo_server
    rm -rf files
    # The watch is gone with the directory: said once, retried every second.
    wait_for_match echo.err "warn: reload: cannot watch $PWD/files: No such file or directory; trying again every 1000 ms"
    mkdir files
    cp "$CERTS/outer-server.pem" files/server.pem
    install -m 0600 "$CERTS/outer-server.key" files/server.key
    renewed_cert renewed
    replace renewed.key server.key
    replace renewed.pem server.pem
    wait_for_match echo.err "reloaded: certificate \"CN=renewed\.localhost\""
}
