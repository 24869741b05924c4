#!/usr/bin/env bats
# Hooks called before nestls's own constructor: another library's
# constructor runs first and uses sockets (libcap-ng and libaudit do, so
# sshd, postgres, setpriv, su and the dbus tools do). The first hook
# called starts nestls (binds the real functions, loads the policy) so
# the program runs as it would bare, and a connection made that early is
# decided by the policy like any other.
# early_ctor links tests/helpers/early/libearly.c, whose constructor calls
# close, socket, dup and getaddrinfo, and connects when EARLY_CONNECT is set.

load helpers/common
load helpers/peers

setup() {
    need_build
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    client_policy client.yaml "$PORT" outer
}

@test "a library constructor that closes, dups and resolves before ours: the program runs" {
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- "$TESTBIN/early_ctor"
    assert_ok
    assert_output "early calls: done
main ran"
}

@test "setpriv, linked with libcap-ng, runs under nestls run" {
    need_cmd setpriv
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- setpriv --dump
    assert_ok
    assert_line --regexp '^uid: [0-9]+$'
}

@test "journalctl, linked with libaudit and libcap-ng through systemd's library, runs under nestls run" {
    need_cmd journalctl
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- journalctl --version
    assert_ok
    assert_line --regexp '^systemd [0-9]+ '
}

@test "a connection made in another library's constructor is wrapped: the echo comes back through TLS" {
    need_cmd python3
    server_policy server.yaml "$PORT" outer
    nestls_bg echo "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
    client_policy client.yaml "$PORT" outer
    run --separate-stderr env EARLY_CONNECT="$PORT" "$NESTLS" run -p "$POLICY" -- "$TESTBIN/early_ctor"
    assert_ok
    assert_output "early echo: ok
main ran"
    assert_log "$stderr" "rule 'client': client $ADDR -> $IP4:$PORT up in"
}

@test "a constructor's connection to a plaintext sink under a wrap rule: a ClientHello on the wire, never the marker" {
    need_cmd python3
    start_bg sink python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink" --port "$PORT"
    wait_for_port "$PORT"
    local marker
    marker=$(new_marker)
    run --separate-stderr env EARLY_CONNECT="$PORT" EARLY_MARKER="$marker" \
        "$NESTLS" run -p "$POLICY" -- "$TESTBIN/early_ctor"
    assert_ok
    assert_line --regexp '^early connect: '
    assert_line "main ran"
    wait_for_file sink/conn-1.done
    # A TLS handshake record (0x16 0x03) came first, and no marker at all.
    [[ $(head -c 2 sink/conn-1.bin | od -An -tx1 | tr -d ' ') == 1603 ]] ||
        fail "the sink got no ClientHello: $(head -c 16 sink/conn-1.bin | od -An -c)"
    ! grep -q "$marker" sink/conn-1.bin || fail "the marker reached the sink in clear"
}

@test "no policy: a library constructor's first socket call stops the program with status 78 and one line" {
    run --separate-stderr env -u NESTLS_POLICY LD_PRELOAD="${PRELOAD_FIRST:+$PRELOAD_FIRST }$LIB" "$TESTBIN/early_ctor"
    assert_equal "$status" 78
    assert_equal "$output" ""
    assert_equal "$(wc -l <<<"$stderr")" 1
    assert_log "$stderr" 'NESTLS_POLICY is not set'
}
