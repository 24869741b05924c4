#!/usr/bin/env bats
# STARTTLS on the outermost layer (rule key `starttls:`), with real peers:
#  - client role: a plaintext client program, wrapped, talks to a server
#    that speaks the real prelude (tests/helpers/starttls_server.py, TLS by
#    Python's ssl module) or to a real PostgreSQL with ssl=on and only
#    hostssl entries; the program gets a greeting of nestls's (never the
#    server's pre-TLS bytes, which anyone on the path could have written),
#    its marker arrives inside TLS and is never on the wire in clear;
#  - server role: a plaintext line server, wrapped, is reached by
#    `openssl s_client -starttls PROTO` verifying against the outer CA;
#    the program's own greeting never reaches the client;
#  - failures: a refused STARTTLS (454), bytes injected after the answer,
#    a server that never greets: connect() fails, one error line, no
#    marker in clear.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd openssl python3 tcpdump
    cd "$BATS_TEST_TMPDIR"
    MARKER=$(new_marker)
}

# starttls_client_policy PORT PROTO [SETTING...]: rule 'mail' wrapping
# client connections to 127.0.0.1:PORT in one layer trusting the outer CA,
# after the PROTO prelude. Sets POLICY.
starttls_client_policy() {
    local port=$1 proto=$2 setting
    shift 2
    write_policy client.yaml < <(
        printf 'version: 1\n'
        for setting in "$@"; do printf '%s\n' "$setting"; done
        printf 'rules:\n  - name: mail\n    match:\n'
        printf '      role: client\n      address: [127.0.0.1]\n      port: [%s]\n' "$port"
        printf '    starttls: %s\n' "$proto"
        printf '    layers:\n      - ca: %s/outer-ca.pem\n' "$CERTS"
    )
}

# starttls_server_policy PORT PROTO: rule 'mailsrv' wrapping connections
# accepted on 127.0.0.1:PORT in one layer (outer-server.pem), after the
# PROTO prelude. Sets POLICY.
starttls_server_policy() {
    write_policy server.yaml < <(
        printf 'version: 1\nrules:\n  - name: mailsrv\n    match:\n'
        printf '      role: server\n      address: [127.0.0.1]\n      port: [%s]\n' "$1"
        printf '    starttls: %s\n' "$2"
        printf '    layers:\n      - cert: %s/outer-server.pem\n' "$CERTS"
        printf '        key: %s/outer-server.key\n' "$CERTS"
    )
}

# start_starttls_server PROTO [ARGS...]: the STARTTLS server as "tls",
# waited for. Sets PORT.
start_starttls_server() {
    local proto=$1
    shift
    start_bg tls python3 "$HELPERS/starttls_server.py" tls "$proto" \
        --cert "$CERTS/outer-server.pem" --key "$CERTS/outer-server.key" "$@"
    PORT=$(port_of tls)
}

# The greetings the program gets from nestls, as Python's repr shows them
# (the server's own, sent before TLS, are not passed on).
declare -gA GREETING=(
    [smtp]="b\"220 nestls.invalid ESMTP STARTTLS done (the server's greeting is not passed on)\\r\\n\""
    [imap]="b\"* OK nestls: STARTTLS done (the server's greeting is not passed on)\\r\\n\""
    [pop3]="b\"+OK nestls: STLS done (the server's greeting is not passed on)\\r\\n\""
    [ftp]="b\"220 nestls: AUTH TLS done (the server's greeting is not passed on)\\r\\n\""
)
# A word of each greeting, to see the prelude in clear on the wire.
declare -gA GREETING_WORD=([smtp]=mx.test [imap]=imap.test [pop3]=pop3.test [ftp]=ftp.test)

# client_role PROTO: a wrapped plaintext client gets nestls's greeting
# (the server's never reaches it), and its marker line arrives inside TLS
# and comes back.
client_role() {
    local proto=$1
    start_starttls_server "$proto"
    starttls_client_policy "$PORT" "$proto"
    capture_start "$PORT"
    run --separate-stderr nestls_run "$POLICY" python3 "$HELPERS/starttls_client.py" \
        "$proto" 127.0.0.1 "$PORT" "$MARKER"
    assert_success
    assert_line --index 0 "greeting: ${GREETING[$proto]}"
    refute_output --partial "${GREETING_WORD[$proto]}"
    assert_line --index 1 "reply: echo: $MARKER"
    assert_log "$stderr" "rule 'mail': client $ADDR -> $IP4:$PORT up in .*: layer 1 $(layer_re localhost)"
    refute_log "$stderr" 'nestls\[[0-9]+\] (error|warn)'
    wait_for_match tls.out "^tls-received: $MARKER\$"
    # The prelude was there, in clear, and nothing of the program's was.
    assert_log "$(cat tls.out)" "tls-up"
    capture_stop 1
    assert_not_on_wire "$MARKER"
    assert_on_wire "${GREETING_WORD[$proto]}"
}

@test "client role, smtp: the program reads nestls's 220 greeting, not the server's pre-TLS one; its line goes inside TLS" {
    client_role smtp
    # EHLO names the client (RFC 5321), then STARTTLS, in this order.
    run grep '^prelude-received: ' tls.out
    assert_line --index 0 --regexp '^prelude-received: EHLO [^ ]+$'
    assert_line --index 1 'prelude-received: STARTTLS'
}

@test "client role, imap: '* OK' greeting to the program, a001 STARTTLS answered after an untagged line" {
    client_role imap
    assert_log "$(cat tls.out)" 'prelude-received: a001 STARTTLS'
}

@test "client role, pop3: '+OK' greeting to the program, STLS" {
    client_role pop3
    assert_log "$(cat tls.out)" 'prelude-received: STLS'
}

@test "client role, ftp: multi-line 220 greeting to the program, AUTH TLS answered 234" {
    client_role ftp
    assert_log "$(cat tls.out)" 'prelude-received: AUTH TLS'
}

# expect_starttls_refused ERRNO REASON: a wrapped tcpclient to $PORT,
# blocking and then non-blocking with the marker written before the
# connection is up, fails with ERRNO and exactly one error line ending in
# REASON (a regex); the marker never reaches the server.
expect_starttls_refused() {
    local errno=$1 reason=$2 pid
    local line="^nestls\[[0-9]+\] error: rule 'mail': client $ADDR -> $IP4:$PORT $reason\$"
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <<<"$MARKER"
    assert_failure 3
    assert_output ''
    pid=$(run_pid)
    assert_log "$stderr" "^tcpclient: connect: $errno \("
    assert_log "$stderr" "$line"
    assert_equal "$(grep -c "nestls\[$pid\] error:" <<<"$stderr")" 1

    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" -n 127.0.0.1 "$PORT" <<<"$MARKER"
    assert_failure 3
    assert_output ''
    assert_log "$stderr" "^tcpclient: early write: $((${#MARKER} + 1)) bytes$"
    assert_log "$stderr" "^tcpclient: connect: $errno \("
    assert_log "$stderr" "^tcpclient: read after failure: ECONNRESET \("
    assert_log "$stderr" "$line"
}

@test "smtp server answers STARTTLS with 454: connect fails EPROTO, one line quoting the reply, marker never sent" {
    start_starttls_server smtp --refuse "454 4.7.0 TLS not available due to temporary reason"
    starttls_client_policy "$PORT" smtp
    capture_start "$PORT"
    expect_starttls_refused EPROTO \
        "starttls smtp: server answered '454 4\.7\.0 TLS not available due to temporary reason'"
    assert_equal "$(grep -c '^refused$' tls.out)" 2
    refute_log "$(cat tls.out)" 'plaintext-after-refusal'
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "plaintext injected after the server's STARTTLS answer is refused (CVE-2011-0411), never taken as TLS" {
    start_starttls_server smtp --extra
    starttls_client_policy "$PORT" smtp
    capture_start "$PORT"
    expect_starttls_refused EPROTO \
        "starttls smtp: the server sent 22 more bytes after its answer, before TLS \('extra plaintext line'\): refused, they would pass for bytes from inside TLS"
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "a server that never greets: ETIMEDOUT after handshake_timeout_ms, named as the starttls step" {
    # A plaintext line server without a greeting (its postgres mode) stays
    # silent until it gets a line.
    start_bg silent python3 "$HELPERS/starttls_server.py" plain postgres
    PORT=$(port_of silent)
    starttls_client_policy "$PORT" smtp 'settings:' '  handshake_timeout_ms: 400'
    expect_starttls_refused ETIMEDOUT "starttls smtp: not done after 400 ms \(handshake_timeout_ms\)"
    refute_log "$(cat silent.out)" 'plain-received'
}

# server_role PROTO: a wrapped plaintext server behind the PROTO prelude;
# openssl s_client -starttls PROTO verifies it against the outer CA, and
# its marker line comes back echoed inside TLS. The program's greeting
# (plain.example) is dropped: the client never sees it.
server_role() {
    local proto=$1
    PORT=$(free_port)
    starttls_server_policy "$PORT" "$proto"
    nestls_bg plain "$POLICY" python3 "$HELPERS/starttls_server.py" plain "$proto" --port "$PORT"
    wait_for_port "$PORT"
    capture_start "$PORT"
    echo "$MARKER" >line.txt
    run timeout 20 openssl s_client -starttls "$proto" -connect "127.0.0.1:$PORT" \
        -CAfile "$CERTS/outer-ca.pem" -verify_return_error -ign_eof <line.txt
    assert_success
    assert_output --partial "echo: $MARKER"
    assert_line --partial 'Verify return code: 0 (ok)'
    refute_output --partial 'plain.example'
    wait_for_match plain.out "^plain-received: b'$MARKER\\\\n'\$"
    assert_log "$(cat plain.err)" "rule 'mailsrv': server $IP4:$PORT <- $ADDR up in "
    capture_stop 1
    assert_not_on_wire "$MARKER"
}

@test "server role, smtp: openssl s_client -starttls smtp reaches the wrapped plaintext server, its greeting dropped" {
    server_role smtp
    assert_on_wire "ESMTP nestls"
    assert_on_wire "250 STARTTLS"
}

@test "server role, imap: s_client -starttls imap (CAPABILITY, STARTTLS)" {
    server_role imap
    assert_on_wire "OK Begin TLS negotiation now"
}

@test "server role, pop3: s_client -starttls pop3 (STLS)" {
    server_role pop3
    assert_on_wire "+OK Begin TLS"
}

@test "server role, ftp: s_client -starttls ftp (AUTH TLS), the program's multi-line 220 dropped" {
    server_role ftp
    assert_on_wire "234 AUTH TLS successful"
}

@test "server role, postgres: s_client -starttls postgres (SSLRequest answered 'S')" {
    server_role postgres
}

@test "server role, smtp: a plaintext client is answered 530 and never reaches the program" {
    PORT=$(free_port)
    starttls_server_policy "$PORT" smtp
    nestls_bg plain "$POLICY" python3 "$HELPERS/starttls_server.py" plain smtp --port "$PORT"
    wait_for_port "$PORT"
    run timeout 20 "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" \
        < <(printf 'EHLO plain.client\r\nMAIL FROM:<%s@example.com>\r\nQUIT\r\n' "$MARKER")
    assert_success
    assert_line --regexp '^220 [^ ]+ ESMTP nestls'
    assert_line --regexp '^250 STARTTLS'
    assert_line --regexp '^530 Must issue a STARTTLS command first'
    assert_line --regexp '^221 '
    refute_output --partial 'plain.example'
    refute_log "$(cat plain.out)" 'plain-received'
}

# --------------------------------------------------------------- postgres

PGBIN=/usr/lib/postgresql/15/bin

# A real PostgreSQL with ssl=on whose pg_hba.conf has only hostssl entries
# for TCP: a plaintext session is refused, so a query that runs proves TLS.
start_postgres_ssl() {
    need_cmd psql runuser
    [[ -x $PGBIN/postgres ]] || fail "postgresql 15 is not installed (make deps)"
    PGDIR=$(mktemp -d /tmp/nestls-pg.XXXXXX)
    echo "$PGDIR" >"$BATS_TEST_TMPDIR/pgdir"
    cp "$CERTS"/outer-server.pem "$CERTS"/outer-server.key "$PGDIR"/
    chmod 755 "$PGDIR"
    chmod 600 "$PGDIR/outer-server.key"
    chown -R postgres "$PGDIR"
    PORT=$(free_port)
    runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" --auth=trust -U postgres >initdb.log 2>&1 ||
        fail "initdb: $(tail -3 initdb.log)"
    runuser -u postgres -- sh -c 'printf "local all all trust\nhostssl all all 127.0.0.1/32 trust\n" >"$0"' \
        "$PGDIR/data/pg_hba.conf"
    start_bg postgres runuser -u postgres -- "$PGBIN/postgres" -D "$PGDIR/data" \
        -c listen_addresses=127.0.0.1 -p "$PORT" -k "$PGDIR" -c ssl=on \
        -c ssl_cert_file="$PGDIR/outer-server.pem" -c ssl_key_file="$PGDIR/outer-server.key"
    wait_for_match postgres.err 'ready to accept connections' 30
    CONN="host=127.0.0.1 port=$PORT user=postgres dbname=postgres sslmode=disable gssencmode=disable"
}

@test "client role, postgres: psql with sslmode=disable runs a query through TLS on a hostssl-only postgres" {
    start_postgres_ssl
    # Control: unwrapped, the plaintext session is refused by pg_hba.
    run psql "$CONN" -X -q -t -A -c "select 1"
    assert_failure
    assert_output --partial 'no encryption'

    starttls_client_policy "$PORT" postgres
    capture_start "$PORT"
    run --separate-stderr nestls_run "$POLICY" psql "$CONN" -X -q -t -A \
        -c "select ssl, '$MARKER' from pg_stat_ssl where pid = pg_backend_pid()"
    assert_success
    assert_output "t|$MARKER"
    assert_log "$stderr" "rule 'mail': client $ADDR -> $IP4:$PORT up in .*: layer 1 $(layer_re localhost)"
    capture_stop 1
    assert_not_on_wire "$MARKER"
}

teardown() {
    nl_teardown
    [[ ! -f $BATS_TEST_TMPDIR/pgdir ]] || rm -rf "$(cat "$BATS_TEST_TMPDIR/pgdir")"
}
