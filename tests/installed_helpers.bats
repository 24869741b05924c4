#!/usr/bin/env bats
# The bats helper users load in their own suites (share/nestls.bash),
# exercised as a user has it: `make install DESTDIR=... PREFIX=/usr` into
# this suite's temporary directory, then loaded from the installed prefix,
# outside the repository, with nothing of tests/helpers loaded and the
# working directory outside the repository. Every function runs against
# real peers: openssl s_server, a stunnel chain, Python's http.server,
# programs wrapped by the installed nestls in both roles, and tcpdump.
#
# Only bats-support and bats-assert come from elsewhere (as a user's suite
# would load them); the source tree is used for `make install` alone.

bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

REPO_DIR=$(cd "$BATS_TEST_DIRNAME/.." && pwd)

setup_file() {
    PREFIX_ROOT=$BATS_FILE_TMPDIR/root
    export PREFIX_ROOT
    # Nothing of the calling make (MAKEFLAGS) or of other suites reaches it.
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD -u CFLAGS -u CPPFLAGS -u LDFLAGS \
        make --no-print-directory -C "$REPO_DIR" BUILD="$BATS_FILE_TMPDIR/build" -j2 \
        PREFIX=/usr DESTDIR="$PREFIX_ROOT" install >"$BATS_FILE_TMPDIR/install.log" 2>&1
    echo $? >"$BATS_FILE_TMPDIR/install.rc"
    # One PKI for the whole file, made by the helper itself.
    [[ $(cat "$BATS_FILE_TMPDIR/install.rc") == 0 ]] || return 0
    (
        unset NESTLS_BIN NESTLS_PREFIX NESTLS_WORKDIR
        source "$PREFIX_ROOT/usr/share/nestls/nestls.bash"
        nestls_make_certs "$BATS_FILE_TMPDIR/pki"
    ) >"$BATS_FILE_TMPDIR/pki.log" 2>&1
}

setup() {
    [[ $(cat "$BATS_FILE_TMPDIR/install.rc") == 0 ]] ||
        fail "make install failed: $(tail -n 30 "$BATS_FILE_TMPDIR/install.log")"
    # As a user's suite: no hint of where nestls is, a directory of our own.
    unset NESTLS_BIN NESTLS_PREFIX NESTLS_WORKDIR NESTLS_CMD NESTLS_BUILD
    load "$PREFIX_ROOT/usr/share/nestls/nestls"
    PKI=$BATS_FILE_TMPDIR/pki
    cd "$BATS_TEST_TMPDIR"
}

teardown() {
    nestls_teardown
}

# client_yaml FILE PORT CA...: a client rule for 127.0.0.1:PORT, one layer
# per CA (outermost first). server_yaml FILE PORT NAME...: a server rule for
# local port PORT, one layer per NAME-server certificate.
client_yaml() {
    local file=$1 port=$2 ca
    shift 2
    {
        printf 'version: 1\nrules:\n  - name: client\n'
        printf '    match: {role: client, address: [127.0.0.1], port: %s}\n    layers:\n' "$port"
        for ca in "$@"; do printf '      - ca: %s/%s-ca.pem\n' "$PKI" "$ca"; done
    } >"$file"
}
server_yaml() {
    local file=$1 port=$2 name
    shift 2
    {
        printf 'version: 1\nrules:\n  - name: server\n'
        printf '    match: {role: server, port: %s}\n    layers:\n' "$port"
        for name in "$@"; do
            printf '      - cert: %s/%s-server.pem\n        key: %s/%s-server.key\n' "$PKI" "$name" "$PKI" "$name"
        done
    } >"$file"
}

@test "loaded from the installed prefix, the helper runs that prefix's nestls and names no source path" {
    assert_equal "$(_nestls_locate)" "$PREFIX_ROOT/usr/bin/nestls"
    run nestls_cmd --version
    assert_success
    assert_output --regexp '^nestls [0-9]+\.[0-9]+'
    run grep -c -F -e "$REPO_DIR" -e tests/helpers "$PREFIX_ROOT/usr/share/nestls/nestls.bash"
    assert_output 0
    [[ $PWD != "$REPO_DIR"* ]]
}

@test "finding nestls: NESTLS_BIN, then NESTLS_PREFIX, then the helper's own prefix, then PATH" {
    mkdir -p fake/bin elsewhere
    printf '#!/bin/sh\necho fake nestls\n' >fake/bin/nestls
    chmod +x fake/bin/nestls
    NESTLS_BIN=$PWD/fake/bin/nestls run nestls_cmd --version
    assert_output 'fake nestls'
    NESTLS_PREFIX=$PWD/fake run nestls_cmd --version
    assert_output 'fake nestls'
    NESTLS_PREFIX=$PWD/nowhere run -127 nestls_cmd --version
    assert_output --partial "no $PWD/nowhere/bin/nestls"
    # A copy of the helper outside any share/nestls: PATH decides.
    cp "$PREFIX_ROOT/usr/share/nestls/nestls.bash" elsewhere/
    run env -u NESTLS_BIN PATH="$PWD/fake/bin:$PATH" bash -c 'source "$1"; nestls_cmd --version' _ \
        "$PWD/elsewhere/nestls.bash"
    assert_output 'fake nestls'
    # A PATH without any nestls (only what sourcing the helper needs).
    mkdir tools && ln -s "$(command -v dirname)" tools/
    run -127 env -i PATH="$PWD/tools" "$BASH" -c 'source "$1"; nestls_cmd --version' _ "$PWD/elsewhere/nestls.bash"
    assert_output --partial 'nestls not found'
}

@test "nestls_make_certs: CAs, servers for localhost and 127.0.0.1, clients, each verifying" {
    run openssl verify -CAfile "$PKI/outer-ca.pem" "$PKI/outer-server.pem" "$PKI/outer-client.pem"
    assert_success
    run openssl verify -CAfile "$PKI/inner-ca.pem" "$PKI/outer-server.pem"
    assert_failure
    run openssl x509 -in "$PKI/inner-server.pem" -noout -ext subjectAltName
    assert_output --partial 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1'
    run stat -c %a "$PKI/outer-server.key"
    assert_output 600
}

@test "nestls_start_s_server + nestls_client: one layer; the marker never crosses in clear" {
    local marker
    marker=$(nestls_marker)
    nestls_start_s_server tls "$PKI/outer-server.pem" "$PKI/outer-server.key" -www
    [[ $NESTLS_PORT =~ ^[0-9]+$ ]]
    client_yaml client.yaml "$NESTLS_PORT" outer
    nestls_capture_start "$NESTLS_PORT"
    run --separate-stderr nestls_client client.yaml curl -s "http://127.0.0.1:$NESTLS_PORT/$marker"
    assert_success
    assert_line --regexp '^New, TLSv1\.3, Cipher is TLS_'
    nestls_capture_stop
    nestls_assert_not_in_clear "$marker"
}

@test "the control: a plaintext server (nestls_start, nestls_free_port, nestls_wait_port) shows the marker in clear" {
    local marker port
    marker=$(nestls_marker)
    mkdir www && echo "$marker" >www/m.txt
    port=$(nestls_free_port)
    nestls_start plain python3 -m http.server "$port" --bind 127.0.0.1 --directory www
    nestls_wait_port "$port"
    nestls_capture_start "$port"
    # A policy whose only rule is for another port: this connection passes.
    client_yaml client.yaml "$(nestls_free_port)" outer
    run --separate-stderr nestls_client client.yaml curl -s "http://127.0.0.1:$port/m.txt"
    assert_success
    assert_output "$marker"
    nestls_capture_stop
    nestls_assert_in_clear "$marker"
    run nestls_assert_not_in_clear "$marker"
    assert_failure
    assert_output --partial 'crossed the wire in clear'
}

@test "nestls_start_server: a plaintext server wrapped in two server layers, @PORT@ filled in" {
    local marker
    marker=$(nestls_marker)
    mkdir www && echo "$marker" >www/m.txt
    NESTLS_PORT=$(nestls_free_port)
    server_yaml server.yaml "$NESTLS_PORT" outer inner
    nestls_start_server --port "$NESTLS_PORT" web server.yaml \
        python3 -m http.server @PORT@ --bind 127.0.0.1 --directory www
    local port=$NESTLS_PORT pid=$NESTLS_PID
    [[ -d /proc/$pid ]]
    client_yaml client.yaml "$port" outer inner
    nestls_capture_start "$port"
    run --separate-stderr nestls_client client.yaml curl -s "http://127.0.0.1:$port/m.txt"
    assert_success
    assert_output "$marker"
    nestls_capture_stop
    nestls_assert_not_in_clear "$marker"
    # A client with only the outer layer gets no plaintext out of it.
    client_yaml one.yaml "$port" outer
    run --separate-stderr nestls_client one.yaml curl -s --max-time 5 "http://127.0.0.1:$port/m.txt"
    refute_output --partial "$marker"
}

@test "nestls_start_server picks a free port itself and says so in NESTLS_PORT" {
    server_yaml server.yaml 1-65535 outer
    nestls_start_server echo server.yaml python3 -m http.server @PORT@ --bind 127.0.0.1
    [[ $NESTLS_PORT =~ ^[0-9]+$ ]]
    [[ -n $(ss -Hltn "sport = :$NESTLS_PORT") ]]
    client_yaml client.yaml "$NESTLS_PORT" outer
    run --separate-stderr nestls_client client.yaml curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NESTLS_PORT/"
    assert_output 200
}

@test "nestls_start_stunnel_chain: two and three real TLS layers in front of a plaintext backend" {
    local marker backend n names
    marker=$(nestls_marker)
    mkdir www && echo "$marker" >www/m.txt
    backend=$(nestls_free_port)
    nestls_start backend python3 -m http.server "$backend" --bind 127.0.0.1 --directory www
    nestls_wait_port "$backend"
    nestls_make_certs "$PWD/pki3" third
    nestls_start_stunnel_chain chain2 "$backend" \
        "$PKI/outer-server.pem" "$PKI/outer-server.key" "$PKI/inner-server.pem" "$PKI/inner-server.key"
    assert_equal "${#NESTLS_CHAIN_PORTS[@]}" 2
    client_yaml two.yaml "$NESTLS_PORT" outer inner
    nestls_capture_start "$NESTLS_PORT"
    run --separate-stderr nestls_client two.yaml curl -s "http://127.0.0.1:$NESTLS_PORT/m.txt"
    assert_success
    assert_output "$marker"
    nestls_capture_stop
    nestls_assert_not_in_clear "$marker"
    # One layer short: the outer layer comes up, the inner does not.
    client_yaml one.yaml "$NESTLS_PORT" outer
    run --separate-stderr nestls_client one.yaml curl -s --max-time 5 "http://127.0.0.1:$NESTLS_PORT/m.txt"
    refute_output --partial "$marker"

    cp "$PKI"/*.pem "$PKI"/*.key pki3/
    PKI=$PWD/pki3
    nestls_start_stunnel_chain chain3 "$backend" \
        "$PKI/outer-server.pem" "$PKI/outer-server.key" "$PKI/inner-server.pem" "$PKI/inner-server.key" \
        "$PKI/third-server.pem" "$PKI/third-server.key"
    assert_equal "${#NESTLS_CHAIN_PORTS[@]}" 3
    client_yaml three.yaml "$NESTLS_PORT" outer inner third
    run --separate-stderr nestls_client three.yaml curl -s "http://127.0.0.1:$NESTLS_PORT/m.txt"
    assert_success
    assert_output "$marker"
}

@test "nestls_wait_port fails at once, with the program's stderr, when the program exits" {
    printf 'version: 1\nrules:\n  - layers: []\n' >bad.yaml
    SECONDS=0
    run nestls_start_server bad bad.yaml python3 -m http.server @PORT@ --bind 127.0.0.1
    assert_failure
    ((SECONDS < 5)) || fail "took $SECONDS s"
    assert_output --partial 'exited before listening'
    assert_output --partial 'bad.yaml'
}

@test "nestls_client is bounded by NESTLS_TIMEOUT" {
    printf 'version: 1\n' >p.yaml
    SECONDS=0
    NESTLS_TIMEOUT=1 run nestls_client p.yaml sleep 30
    assert_equal "$status" 124
    ((SECONDS < 10)) || fail "took $SECONDS s"
}

@test "nestls_stop and nestls_teardown stop every process group they started, by PID" {
    local pids=() pid
    nestls_start sleeper1 sleep 300
    pids+=("$NESTLS_PID")
    # A program with children of its own: its whole group goes.
    # (It reaps them on TERM: no zombie is left for a container's init.)
    nestls_start forker sh -c 'trap "wait; exit 0" TERM; sleep 300 & sleep 300 & wait'
    pids+=("$NESTLS_PID")
    nestls_start_s_server tls "$PKI/outer-server.pem" "$PKI/outer-server.key" -www
    pids+=("$NESTLS_PID")
    local forker=${pids[1]}
    sleep 0.2
    (($(pgrep -c -g "$forker" sleep) == 2)) || fail "the forker's children are not running"
    nestls_stop "${pids[0]}"
    assert_equal "$NESTLS_STATUS" 143
    [[ ! -d /proc/${pids[0]} ]] || fail "sleeper1 still runs"
    nestls_teardown
    for pid in "${pids[@]}"; do
        [[ ! -d /proc/$pid ]] || fail "process $pid still runs after nestls_teardown"
        # (Orphans that already died may wait as zombies for a reaper.)
        [[ -z $(ps -o stat= -g "$pid" | grep -v '^Z') ]] || fail "process group $pid still has live members"
    done
    [[ ! -s $NESTLS_WORKDIR/.nestls-pids ]]
}
