#!/usr/bin/env bats
# The nestls command: check, explain, run's refusals, --help/--version.
# Every policy error a person sees names FILE:LINE:COL of the value at fault.

load helpers/common

setup() {
    need_cli
    # Policies are checked by their name relative to the test directory, so
    # error lines start "nestls: policy.yaml:LINE:COL: ".
    cd "$BATS_TEST_TMPDIR"
}

# check_fails_at LINE COL REGEX: `nestls check policy.yaml` exits 1 with
# exactly one stderr line "nestls: policy.yaml:LINE:COL: ..." matching REGEX.
check_fails_at() {
    run --separate-stderr "$NESTLS" check policy.yaml
    assert_failure 1
    [[ $(wc -l <<<"$stderr") -eq 1 ]] || fail "expected one stderr line, got: $stderr"
    [[ $stderr =~ ^nestls:\ policy\.yaml:$1:$2:\ $3 ]] ||
        fail "stderr does not match 'nestls: policy.yaml:$1:$2: $3': $stderr"
    assert_output '' # nothing on stdout for an invalid policy
}

# ------------------------------------------------------------------ check

@test "check: every example policy in policy/ is valid and its summary names each rule" {
    local f names name n=0
    for f in "$REPO"/policy/*.yaml; do
        n=$((n + 1))
        run --separate-stderr "$NESTLS" check "$f"
        [[ $status -eq 0 ]] || fail "$f: exit $status: $stderr"
        assert_line "$f: ok"
        names=$(sed -n 's/^  - name: *\([^ #]*\).*/\1/p' "$f")
        [[ -n $names ]] || fail "$f: no rule names found to look for"
        for name in $names; do
            assert_line --regexp "^rule [0-9]+ \"$name\""
        done
    done
    ((n >= 5)) || fail "expected at least 5 example policies, found $n"
}

@test "check: example policies are valid from any working directory (paths are relative to the policy)" {
    cd /
    run "$NESTLS" check "$REPO"/policy/*.yaml
    assert_success
}

@test "check: a misspelled key is reported at its line and column with a suggestion" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: typo
    match:
      role: client
    layers:
      - servr_name: localhost
        ca: @CERTS@/outer-ca.pem
EOF
    check_fails_at 7 9 "unknown key 'servr_name'.*did you mean 'server_name'"
}

@test "check: a CIDR with a bad prefix is reported at the address" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: bad-cidr
    match:
      role: client
      address:
        - 127.0.0.1
        - 10.0.0.0/33
    layers:
      - ca: @CERTS@/outer-ca.pem
EOF
    check_fails_at 8 11 ".*'10\.0\.0\.0/33'"
}

@test "check: more than 8 layers is reported at the ninth" {
    {
        printf 'version: 1\nrules:\n  - name: deep\n    match:\n      role: client\n    layers:\n'
        for i in 1 2 3 4 5 6 7 8 9; do printf '      - ca: @CERTS@/outer-ca.pem\n'; done
    } | write_policy policy.yaml
    check_fails_at 15 9 ".*at most 8"
}

@test "check: exactly 8 layers is accepted" {
    {
        printf 'version: 1\nrules:\n  - name: deep\n    match:\n      role: client\n    layers:\n'
        for i in 1 2 3 4 5 6 7 8; do printf '      - ca: @CERTS@/outer-ca.pem\n'; done
    } | write_policy policy.yaml
    run "$NESTLS" check policy.yaml
    assert_success
    assert_output --partial 'wrap in 8 TLS layers'
}

@test "check: verify: false without insecure: true is refused at the verify value" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: unverified
    match:
      role: client
    layers:
      - ca: @CERTS@/outer-ca.pem
        verify: false
EOF
    check_fails_at 8 17 ".*insecure"
}

@test "check: verify: false with insecure: true is accepted and flagged INSECURE" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: unverified
    match:
      role: client
    layers:
      - verify: false
        insecure: true
EOF
    run "$NESTLS" check policy.yaml
    assert_success
    assert_output --partial INSECURE
}

@test "check: a missing certificate file is reported at the cert value, naming the file" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: server
    match:
      role: server
    layers:
      - cert: @CERTS@/no-such-cert.pem
        key: @CERTS@/outer-server.key
EOF
    check_fails_at 7 15 ".*no-such-cert\.pem.*No such file"
}

@test "check: a key that does not belong to its certificate is refused" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: server
    match:
      role: server
    layers:
      - cert: @CERTS@/mismatch.pem
        key: @CERTS@/mismatch.key
EOF
    check_fails_at 8 14 ".*(match|belong)"
}

@test "check: a relative certificate path is resolved against the policy's directory" {
    mkdir -p conf && cp "$CERTS/outer-ca.pem" conf/ca.pem
    write_policy conf/policy.yaml <<'EOF'
version: 1
rules:
  - name: relative
    match:
      role: client
    layers:
      - ca: ca.pem
EOF
    cd /
    run "$NESTLS" check "$BATS_TEST_TMPDIR/conf/policy.yaml"
    assert_success
    assert_output --partial "$BATS_TEST_TMPDIR/conf/ca.pem"
}

@test "check: a missing policy file is reported by name, exit 1" {
    run --separate-stderr "$NESTLS" check no-such-policy.yaml
    assert_failure 1
    [[ $stderr =~ ^nestls:\ .*no-such-policy\.yaml.*No\ such\ file ]] || fail "stderr: $stderr"
}

@test "check: with several files, one invalid file fails the run but the others are still shown" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: typo
    match:
      rol: client
EOF
    run --separate-stderr "$NESTLS" check "$REPO/policy/client-one-layer.yaml" policy.yaml
    assert_failure 1
    assert_line "$REPO/policy/client-one-layer.yaml: ok"
    [[ $stderr =~ ^nestls:\ policy\.yaml:5:7:\ .*unknown\ key\ \'rol\' ]] || fail "stderr: $stderr"
}

# ---------------------------------------------------------------- explain

@test "explain: a loopback client connection matches the two-layer rule" {
    run "$NESTLS" explain "$REPO/policy/client-two-layer.yaml" client 127.0.0.1:9000
    assert_success
    assert_output --regexp 'match: +rule 1 "loopback-two-layers"'
    assert_output --partial 'wrap in 2 TLS layers'
    # outermost first: the outer CA on layer 1, the inner CA on layer 2
    assert_output --regexp 'layer 1 \(outermost\).*trusts: +[^ ]*/outer-ca\.pem.*layer 2 \(innermost\).*trusts: +[^ ]*/inner-ca\.pem'

}

@test "check and explain show a rule's starttls; a bad value lists the valid ones at its line" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: mail
    match: {role: client, port: [25]}
    starttls: smtp
    layers:
      - ca: @CERTS@/outer-ca.pem
EOF
    run "$NESTLS" check policy.yaml
    assert_success
    assert_output --regexp 'rule 1 "mail".*action: +wrap in 1 TLS layer.*starttls: smtp \(its plaintext prelude on the wire before layer 1\)'
    run "$NESTLS" explain policy.yaml client 127.0.0.1:25
    assert_success
    assert_output --partial 'starttls: smtp (its plaintext prelude'
    sed -i 's/starttls: smtp/starttls: smtps/' policy.yaml
    check_fails_at 5 15 "rule 'mail': bad value 'smtps' for 'starttls': expected smtp, imap, pop3, ftp or postgres$"
    printf 'version: 1\nrules:\n  - name: no\n    action: passthrough\n    starttls: ftp\n' >policy.yaml
    check_fails_at 5 5 "rule 'no': 'starttls' has no effect with action: passthrough"
}

@test "explain: a client connection by host name uses that name for SNI and verification" {
    run "$NESTLS" explain "$REPO/policy/client-one-layer.yaml" client localhost:8443
    assert_success
    assert_output --regexp 'match: +rule 1 "loopback-tls"'
    assert_output --regexp 'server name: +localhost'
}

@test "explain: an address no rule matches gets the default action, passthrough" {
    run "$NESTLS" explain "$REPO/policy/client-two-layer.yaml" client 192.0.2.10:443
    assert_success
    assert_output --regexp 'match: +no rule matches'
    assert_output --regexp 'action: +passthrough'
}

@test "explain: deny-by-default refuses what no rule names and lets DNS pass" {
    run "$NESTLS" explain "$REPO/policy/deny-by-default.yaml" client 192.0.2.10:80
    assert_success
    assert_output --regexp 'match: +no rule matches'
    assert_output --regexp 'action: +deny'
    run "$NESTLS" explain "$REPO/policy/deny-by-default.yaml" client 192.0.2.10:53
    assert_success
    assert_output --regexp 'match: +rule 1 "dns"'
    assert_output --regexp 'action: +passthrough'
}

@test "explain: the server role matches the local address that accepted" {
    run "$NESTLS" explain "$REPO/policy/demo.yaml" server 127.0.0.1:9000
    assert_success
    assert_output --regexp 'match: +rule 1 "demo-server"'
    assert_output --regexp 'layer 1 \(outermost\).*certificate: +[^ ]*/outer-server\.pem.*mTLS required.*layer 2 \(innermost\).*certificate: +[^ ]*/inner-server\.pem'

    run "$NESTLS" explain "$REPO/policy/demo.yaml" client 127.0.0.1:9000
    assert_output --regexp 'match: +rule 2 "demo-client"'
}

@test "explain: a program rule matches only that program" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: psql-only
    match:
      role: client
      program: psql
    layers:
      - ca: @CERTS@/outer-ca.pem
EOF
    run "$NESTLS" explain policy.yaml client 10.1.2.3:5432 --program psql
    assert_success
    assert_output --regexp 'match: +rule 1 "psql-only"'
    run "$NESTLS" explain policy.yaml client 10.1.2.3:5432 --program curl
    assert_success
    assert_output --regexp 'match: +no rule matches'
}

@test "explain: a rule naming the host decides without resolving it (no DNS needed)" {
    # example.internal resolves nowhere: explain used to stop at "cannot
    # resolve". The first rule that can match names the host, so the
    # decision by name does not depend on the address.
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: internal
    match:
      role: client
      address: ["*.internal"]
      port: 443
    layers:
      - ca: @CERTS@/outer-ca.pem
  - name: lan
    match:
      role: client
      address: [10.0.0.0/8]
    layers:
      - ca: @CERTS@/inner-ca.pem
EOF
    run --separate-stderr "$NESTLS" explain -p policy.yaml client example.internal:443
    assert_success
    assert_line --regexp '^query: +client connects to example\.internal port 443 \(not resolved'
    assert_output --regexp 'match: +rule 1 "internal"'
    assert_output --regexp 'server name: +example\.internal \(the host name; SNI and verification\)'
    assert_output --partial 'by the address alone: not shown'
    assert_equal "$stderr" ''
}

@test "explain: when an earlier rule matches by address, the name is resolved, and failing that says why, exit 1" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: lan
    match:
      role: client
      address: [10.0.0.0/8]
    layers:
      - ca: @CERTS@/inner-ca.pem
  - name: internal
    match:
      role: client
      address: ["*.internal"]
    layers:
      - ca: @CERTS@/outer-ca.pem
EOF
    run --separate-stderr "$NESTLS" explain -p policy.yaml client no-such-host.internal:443
    assert_failure 1
    [[ $stderr =~ ^nestls:\ explain:\ cannot\ resolve\ no-such-host\.internal:.*rule\ 1\ \"lan\" ]] ||
        fail "stderr: $stderr"
    # A name that resolves (localhost, from /etc/hosts) is resolved, and the
    # query says why.
    run --separate-stderr "$NESTLS" explain -p policy.yaml client localhost:443
    assert_success
    assert_output --regexp 'localhost resolved to (127\.0\.0\.1|::1): rule 1 "lan" matches by address'
}

@test "explain: a role other than client or server is a usage error, exit 2" {
    run --separate-stderr "$NESTLS" explain "$REPO/policy/demo.yaml" peer 127.0.0.1:9000
    assert_failure 2
    [[ $stderr =~ ^nestls:\ .*client\ or\ server ]] || fail "stderr: $stderr"
}

@test "explain: an invalid policy is reported at FILE:LINE:COL, exit 1" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: typo
    match:
      role: client
    layers:
      - servr_name: localhost
EOF
    run --separate-stderr "$NESTLS" explain policy.yaml client 127.0.0.1:9000
    assert_failure 1
    [[ $stderr =~ ^nestls:\ policy\.yaml:7:9:\ .*servr_name ]] || fail "stderr: $stderr"
}

# ------------------------------------------------------------ run's refusals

@test "run: with no policy (-p absent, NESTLS_POLICY unset) refuses clearly, exit 78, CMD never runs" {
    run --separate-stderr env -u NESTLS_POLICY "$NESTLS" run -- touch ran
    assert_failure 78
    [[ $stderr =~ ^nestls:\ .*policy.*(-p|NESTLS_POLICY) ]] || fail "stderr: $stderr"
    [[ ! -e ran ]] || fail "the command ran"
}

@test "run: an invalid policy stops before CMD with one line naming FILE:LINE:COL, exit 78" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: typo
    match:
      role: client
    layers:
      - servr_name: localhost
EOF
    run --separate-stderr "$NESTLS" run -p policy.yaml -- touch ran
    assert_failure 78
    [[ $(wc -l <<<"$stderr") -eq 1 ]] || fail "expected one line: $stderr"
    [[ $stderr =~ ^nestls:\ policy\.yaml:7:9:\ .*servr_name ]] || fail "stderr: $stderr"
    [[ ! -e ran ]] || fail "the command ran"
}

@test "run: a command that does not exist exits 127 with its name" {
    need_build
    run --separate-stderr "$NESTLS" run -p "$REPO/policy/client-one-layer.yaml" -- no-such-command-nestls
    assert_failure 127
    [[ $stderr =~ no-such-command-nestls ]] || fail "stderr: $stderr"
}

@test "run: no command is a usage error, exit 2" {
    run --separate-stderr "$NESTLS" run -p "$REPO/policy/client-one-layer.yaml"
    assert_failure 2
    [[ $stderr =~ ^nestls:\ run:\ no\ command ]] || fail "stderr: $stderr"
}

@test "run: the command's own options are not taken for nestls's" {
    need_build
    run --separate-stderr "$NESTLS" run -p "$REPO/policy/client-one-layer.yaml" -- sh -c 'echo "$0 $1"' -p -v
    assert_success
    assert_output '-p -v'
}

# ---------------------------------------------------------------- options

@test "-p FILE and --policy FILE name the policy for check, explain and probe alike" {
    local p=$REPO/policy/client-two-layer.yaml port
    run --separate-stderr "$NESTLS" check -p "$p"
    assert_success
    assert_line "$p: ok"
    run --separate-stderr "$NESTLS" check --policy "$p" "$REPO/policy/demo.yaml"
    assert_success
    assert_line "$p: ok"
    assert_line "$REPO/policy/demo.yaml: ok"
    run --separate-stderr "$NESTLS" explain -p "$p" client 127.0.0.1:9000
    assert_success
    assert_output --regexp 'match: +rule 1 "loopback-two-layers"'
    run --separate-stderr "$NESTLS" explain --policy="$p" client 127.0.0.1:9000
    assert_success
    assert_output --regexp 'match: +rule 1 "loopback-two-layers"'
    # probe takes the rule from the policy (then exit 1: nothing listens).
    port=$(free_port)
    run --separate-stderr "$NESTLS" probe -p "$p" "127.0.0.1:$port"
    assert_failure 1
    assert_line --regexp '^layers: +rule 1 "loopback-two-layers"'
    run --separate-stderr "$NESTLS" probe --policy "$p" "127.0.0.1:$port"
    assert_failure 1
    assert_line --regexp '^layers: +rule 1 "loopback-two-layers"'
}

@test "explain: -p FILE and a positional FILE too is one argument too many, exit 2" {
    run --separate-stderr "$NESTLS" explain -p "$REPO/policy/demo.yaml" "$REPO/policy/demo.yaml" \
        client 127.0.0.1:9000
    assert_failure 2
    [[ $stderr =~ ^nestls:\ explain:\ unexpected\ argument ]] || fail "stderr: $stderr"
}

@test "unknown options are usage errors naming the option, exit 2, for every subcommand" {
    local cmd
    for cmd in run check explain probe; do
        run --separate-stderr "$NESTLS" "$cmd" --frobnicate "$REPO/policy/demo.yaml"
        assert_failure 2
        [[ ${stderr%%$'\n'*} == "nestls: $cmd: unknown option '--frobnicate'" ]] ||
            fail "$cmd: stderr: $stderr"
        run --separate-stderr "$NESTLS" "$cmd" -Z "$REPO/policy/demo.yaml"
        assert_failure 2
        [[ ${stderr%%$'\n'*} == "nestls: $cmd: unknown option '-Z'" ]] || fail "$cmd: stderr: $stderr"
    done
    # check no longer reads an option as a file name.
    run --separate-stderr "$NESTLS" check --json=yes "$REPO/policy/demo.yaml"
    assert_failure 2
    [[ $stderr =~ option\ \'--json\'\ takes\ no\ value ]] || fail "stderr: $stderr"
    run --separate-stderr "$NESTLS" check -p
    assert_failure 2
    [[ $stderr =~ option\ \'-p\'\ needs\ a\ value ]] || fail "stderr: $stderr"
}

@test "-- ends the options: check -- -zone.yaml reads a file named -zone.yaml" {
    sed "s#\.\./certs/#$CERTS/#" "$REPO/policy/client-one-layer.yaml" >./-zone.yaml
    run --separate-stderr "$NESTLS" check -- -zone.yaml
    assert_success
    assert_line -- '-zone.yaml: ok'
    # Control: without --, it is an (unknown) option.
    run --separate-stderr "$NESTLS" check -zone.yaml
    assert_failure 2
}

@test "run -q sets NESTLS_LOG=error, -v sets debug, and both together are a usage error" {
    need_build
    local p=$REPO/policy/client-one-layer.yaml
    run --separate-stderr env NESTLS_LOG=info "$NESTLS" run -q -p "$p" -- sh -c 'echo "$NESTLS_LOG"'
    assert_success
    assert_output error
    run --separate-stderr "$NESTLS" run --quiet -p "$p" -- sh -c 'echo "$NESTLS_LOG"'
    assert_success
    assert_output error
    run --separate-stderr "$NESTLS" run -v -p "$p" -- sh -c 'echo "$NESTLS_LOG"'
    assert_success
    assert_output debug
    run --separate-stderr "$NESTLS" run -q -v -p "$p" -- true
    assert_failure 2
    [[ $stderr =~ ^nestls:\ run:\ -v\ and\ -q ]] || fail "stderr: $stderr"
}

# -------------------------------------------------------- help and version

@test "--help prints usage naming every subcommand, exit 0" {
    run --separate-stderr "$NESTLS" --help
    assert_success
    assert_output --partial 'usage: nestls run'
    assert_output --partial 'nestls check [--json] [-p FILE]... [--] [FILE...]'
    assert_output --partial 'nestls explain [--json] [--program NAME] (-p FILE | FILE) client|server HOST:PORT'
    assert_output --partial 'nestls probe [--json]'
    assert_equal "$stderr" ''
}

@test "--version prints the version, exit 0" {
    run "$NESTLS" --version
    assert_success
    assert_output --regexp '^nestls [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "an unknown command is a usage error naming it, exit 2" {
    run --separate-stderr "$NESTLS" frobnicate
    assert_failure 2
    [[ $stderr =~ ^nestls:\ unknown\ command\ \'frobnicate\' ]] || fail "stderr: $stderr"
    assert_output ''
}

@test "no arguments at all is a usage error, exit 2" {
    run --separate-stderr "$NESTLS"
    assert_failure 2
    [[ $stderr =~ usage: ]] || fail "stderr: $stderr"
}

@test "nestls run puts libnestls.so first in LD_PRELOAD, except behind a sanitizer runtime" {
    # (the listed paths need not exist: ld.so skips them with a warning)
    # Under make test-asan, $NESTLS itself puts the ASan runtime first.
    run --separate-stderr env LD_PRELOAD=/opt/other.so "$NESTLS" run \
        -p "$REPO/policy/client-one-layer.yaml" -- sh -c 'echo "$LD_PRELOAD"'
    assert_success
    assert_output "${PRELOAD_FIRST:+$PRELOAD_FIRST }$LIB /opt/other.so"
    if [[ -z $PRELOAD_FIRST ]]; then
        run --separate-stderr env LD_PRELOAD="/usr/lib/libasan.so.8 /opt/other.so" "$NESTLS" run \
            -p "$REPO/policy/client-one-layer.yaml" -- sh -c 'echo "$LD_PRELOAD"'
        assert_success
        assert_output "/usr/lib/libasan.so.8 $LIB /opt/other.so"
    fi
}
