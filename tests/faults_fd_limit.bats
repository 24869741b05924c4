#!/usr/bin/env bats
# Fault injection: RLIMIT_NOFILE nearly exhausted (prlimit --nofile). A
# wrapped connection costs the program 3 descriptors (its end, the
# engine's end, the TCP socket, plus 2 more for a moment while connect()
# builds them), so a program near its limit runs out inside nestls.
# fdflood (tests/helpers/fdflood.c) opens connections to a wrapped echo
# server until one fails, then checks the ones it holds, closes them and
# counts what is left in /proc/self/fd; the server role runs fdflood as
# the wrapped, limited echo server.
# What must hold (README "Fail-closed rules": no descriptors means the
# operation fails with the error and the TCP connection is closed, never
# passed through in plaintext): a clear EMFILE; no crash; the connections
# already made keep working; nothing is left behind once they close; and
# a socket whose connect() failed carries nothing in plaintext.

load helpers/common
load helpers/peers
load helpers/fault_lib

setup() {
    need_build
    need_cmd python3 tcpdump prlimit
    cd "$BATS_TEST_TMPDIR"
    MARKER=$(new_marker)
    PORT=$(free_port)
}

# start_echo: a wrapped echo server (two layers) on $PORT; a client
# policy for it in $POLICY.
start_echo() {
    server_policy server.yaml "$PORT" outer inner
    nestls_bg echo "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
    client_policy client.yaml "$PORT" outer inner
}

# fdflood_value PREFIX: the number fdflood printed right after PREFIX.
fdflood_value() {
    sed -En "s/^$1([0-9]+).*/\\1/p" <<<"$output" | head -n 1
}

# assert_recovered: fdflood's connections all echoed, nothing was left
# after they closed but the engine's three descriptors (epoll, eventfd,
# the inotify watch of the policy's files), and a new connection worked.
assert_recovered() {
    local n start end
    n=$(fdflood_value 'opened ')
    assert_line "$n of $n connections echo"
    assert_line --regexp '^sockets left after closing: 0 \(after [0-9]+ ms\)$'
    start=$(fdflood_value 'descriptors at start ')
    end=$(fdflood_value 'descriptors at the end ')
    assert_equal "$end" $((start + 3))
    assert_line 'a new connection echoes'
    refute_log "$stderr" 'AddressSanitizer|Segmentation|Aborted'
}

@test "client: at the limit connect() fails with EMFILE, the socket carries nothing, the earlier connections keep echoing, nothing is left after they close" {
    start_echo
    capture_start "$PORT"
    local limit n
    # Three limits in a row: the last connect() runs out at a different
    # step each time (socketpair, or the engine's copy of its end).
    for limit in 40 41 42; do
        run --separate-stderr prlimit --nofile="$limit" -- timeout 60 \
            "$NESTLS" run -p "$POLICY" -- "$TESTBIN/fdflood" client 127.0.0.1 "$PORT" "$MARKER"
        assert_ok
        assert_line "limit $limit"
        n=$(fdflood_value 'opened ')
        ((n >= 5)) || fail "limit $limit: only $n connections"
        assert_line "connection $((n + 1)): connect: EMFILE (Too many open files)"
        assert_line 'write after the failed connect: EPIPE (Broken pipe)'
        assert_recovered
        assert_equal "$(grep -c " info: rule 'client': .* up in " <<<"$stderr")" $((n + 1))
    done
    capture_stop 3
    assert_not_on_wire "$MARKER"
    refute_log "$(cat echo.err)" 'wrong version number|http request'
}

@test "client: with exactly one descriptor free, connect() fails with EMFILE and leaves no plaintext path: a write on that socket fails, the wire never holds it" {
    start_echo
    capture_start "$PORT"
    run --separate-stderr prlimit --nofile=40 -- timeout 60 \
        "$NESTLS" run -p "$POLICY" -- "$TESTBIN/fdflood" client 127.0.0.1 "$PORT" "$MARKER" --one-free
    assert_line 'write after the failed connect: EPIPE (Broken pipe)' # the first failure
    assert_line 'one descriptor free: connect: EMFILE (Too many open files)'
    # A plain TCP socket whose connect() failed is not connected: writes fail.
    assert_equal "$(grep -A1 '^one descriptor free: ' <<<"$output" | tail -n 1)" \
        'write after the failed connect: EPIPE (Broken pipe)'
    assert_recovered
    assert_ok
    capture_stop 2
    assert_not_on_wire "$MARKER"
    refute_log "$(cat echo.err)" 'wrong version number|http request'
}

@test "server: at the limit new clients are refused with a clear EMFILE line; the connections it holds keep echoing; after they close only the listener is left, and new clients are served" {
    server_policy server.yaml "$PORT" outer inner
    start_bg server prlimit --nofile=30 -- "$NESTLS" run -p "$POLICY" -- "$TESTBIN/fdflood" server "$PORT"
    local server_pid=$BG_PID n base
    wait_for_port "$PORT"
    base=$(socket_count "$server_pid") # the listener, and the engine's side of it
    client_policy client.yaml "$PORT" outer inner
    sed -i 's/^rules:/settings:\n  handshake_timeout_ms: 1000\nrules:/' "$POLICY"
    capture_start "$PORT"
    run --separate-stderr timeout 60 "$NESTLS" run -p "$POLICY" -- "$TESTBIN/fdflood" client 127.0.0.1 "$PORT" "$MARKER"
    assert_ok
    n=$(fdflood_value 'opened ')
    ((n >= 3)) || fail "the server held only $n connections"
    # The server could not take the next one: it never accepted it (the
    # handshake timed out) or nestls closed it for want of descriptors:
    # during the handshake, or (the engine accepts first) at once, with the
    # ClientHello unread, which the client sees as a reset.
    assert_line --regexp "^connection $((n + 1)): connect: (ETIMEDOUT|EPROTO|ECONNRESET) \("
    assert_log "$stderr" "^nestls\[[0-9]+\] error: rule 'client': client $ADDR -> $IP4:$PORT (layer 1: handshake timed out after 1000 ms|layer 1: server closed the connection during the handshake|TCP: Connection reset by peer \\(during the handshake of layer 1\\))$"
    assert_line 'write after the failed connect: EPIPE (Broken pipe)'
    assert_recovered
    # The engine accepts and handshakes before the program's accept (see
    # tests/server_before_accept.bats): whichever ran out first says so.
    poll "$WAIT_SECONDS" grep -Eqs -- '^accept: EMFILE \(Too many open files\)$' server.out ||
        wait_for_match server.err "^nestls\[$server_pid\] warn: listener $IP4:$PORT: (accept|a new connection was closed): Too many open files; accepting again in 100 ms$"
    poll 5 sockets_at_most "$server_pid" "$base" || fail "the server holds $(socket_count "$server_pid") sockets, $base before the clients"
    is_alive "$server_pid" || fail "the server died"
    capture_stop 2
    assert_not_on_wire "$MARKER"
}

@test "client: after a non-blocking connect comes up, every descriptor number nestls let go of can be closed by the program" {
    need_cmd python3
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer
    nestls_bg echo "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
    client_policy client.yaml "$PORT" outer
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 "$HELPERS/lowlimit_fds.py" "$PORT"
    assert_ok
    assert_line --regexp '^closed [0-9]+ files, 0 failed$'
    assert_line ok
}
