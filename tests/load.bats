#!/usr/bin/env bats
# Load: 1,000 wrapped connections open at the same time through two layers
# (mTLS outside), between a wrapped echo server and a wrapped client; every
# connection echoes bytes of its own, checked byte for byte, twice; all of
# them close cleanly and the server is left holding what it held before.
# The peak RSS and descriptor counts of both processes are printed.

load helpers/common
load helpers/peers

LOAD=$REPO/tests/load
CONNS=1000
# Descriptors per wrapped connection in each process: the program's end of
# the socketpair, the engine's end, the TCP socket (and a short-lived copy
# during the handshake). 8192 leaves room for 1,000 and the rest.
NOFILE=8192

setup() {
    need_build
    need_cmd python3
    ulimit -n "$NOFILE" 2>/dev/null ||
        fail "cannot raise RLIMIT_NOFILE to $NOFILE (hard limit $(ulimit -Hn)): 1,000 connections need it"
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer-mtls inner
    SERVER_POLICY=$POLICY
    client_policy client.yaml "$PORT" outer-mtls inner
    CLIENT_POLICY=$POLICY
}

# proc_figures PID: "rss N KiB, peak N KiB, N fds" of a running process.
proc_figures() {
    local rss hwm fds
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status")
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$1/status")
    fds=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l)
    echo "rss $rss KiB, peak $hwm KiB, $fds fds"
}

# socket_count PID: how many sockets PID holds.
socket_count() {
    find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' | wc -l
}
sockets_are() { (($(socket_count "$1") == $2)); }

# figure NAME TEXT: a line in the TAP output (bats shows fd 3).
figure() {
    printf '# %s: %s\n' "$1" "$2" >&3
}

@test "1000 wrapped connections are open at once through two layers, each echoing its own bytes" {
    nestls_bg server "$SERVER_POLICY" python3 "$LOAD/echo_hub.py" --port "$PORT"
    local server=$BG_PID
    wait_for_port "$PORT"
    local sockets_before
    sockets_before=$(socket_count "$server")

    local started=$SECONDS
    nestls_bg client "$CLIENT_POLICY" python3 "$LOAD/hold_clients.py" 127.0.0.1 "$PORT" \
        --conns "$CONNS" --bytes 16384 --parallel 250 --timeout 40 \
        --hold-file "$BATS_TEST_TMPDIR/release"
    local client=$BG_PID

    # The client says so only when all 1,000 are verified and none closed.
    wait_for_match client.out "^holding $CONNS\$" 45
    local open_time=$((SECONDS - started))
    # The server counts them too: 1,000 open at this moment.
    kill -USR1 "$server"
    wait_for_match server.out "^stats open=$CONNS peak=$CONNS accepted=$CONNS closed=0 errors=0 "
    local server_held client_held
    server_held=$(proc_figures "$server")
    client_held=$(proc_figures "$client")

    touch release
    wait_for_exit "$client" 45 || fail "the client did not finish within 45 s of the release"
    local rc=0
    reap "$client" || rc=$?
    run cat client.out
    assert_line "$CONNS of $CONNS connections held at once and echoed their own bytes"
    assert_equal "$rc" 0

    # nestls agrees: every connection came up on both sides and closed
    # cleanly, and nothing was logged above info.
    assert_equal "$(grep -c "^nestls\[[0-9]*\] info: rule 'client': .* up in " client.err)" "$CONNS"
    assert_equal "$(grep -Ec "^nestls\[[0-9]+\] info: rule 'client': .* closed: .*\(clean\)$" client.err)" "$CONNS"
    wait_for_count server.err "^nestls\[[0-9]+\] info: rule 'server': .* closed: .*\(clean\)$" "$CONNS"
    assert_equal "$(grep -c "^nestls\[[0-9]*\] info: rule 'server': .* up in " server.err)" "$CONNS"
    refute_log "$(cat client.err server.err)" "(warn|error): "

    # The server's own count: all gone, none ended in an error.
    kill -USR1 "$server"
    wait_for_match server.out "^stats open=0 peak=$CONNS accepted=$CONNS closed=$CONNS errors=0 "
    # Nothing leaked: the server holds the sockets it held before the load.
    poll "$WAIT_SECONDS" sockets_are "$server" "$sockets_before" ||
        fail "the server holds $(socket_count "$server") sockets after the load, $sockets_before before"

    figure "connections open at once" "$CONNS (both sides counted), all up after ${open_time} s"
    figure "server (wrapped, at the hold)" "$server_held"
    figure "server (wrapped, after)" "$(proc_figures "$server")"
    figure "client (wrapped, at the hold)" "$client_held"
    figure "client (wrapped, its own count at exit)" "$(sed -n 's/^self //p' client.out)"
    figure "client timings" "$(grep -E '^(opened|echo again)' client.out | paste -sd ';')"
}
