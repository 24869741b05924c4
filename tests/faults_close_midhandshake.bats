#!/usr/bin/env bats
# Fault injection: the program closes its socket while the layers are
# still coming up. Client role: closemid (tests/helpers/closemid.c) makes
# non-blocking connects, writes its marker early, and closes at once.
# Server role: fault_greeter.py --close N writes its marker at accept and
# closes at once. Two layers, a fault_peer.py on the other side.
# What must hold: no crash; every socket the connection used is released
# (counted in /proc/PID/fd) — at once when the handshake can finish, by
# handshake_timeout_ms when the peer stalls it; what was written before
# close reaches a good peer encrypted, as TCP would deliver it, and the
# peer never gets a byte of it in plaintext; and a descriptor number the
# program reuses meanwhile is not disturbed by the old connection's end.

load helpers/common
load helpers/peers
load helpers/fault_lib

setup() {
    need_build
    need_cmd python3 tcpdump
    cd "$BATS_TEST_TMPDIR"
    MARKER=$(new_marker)
}

# closemid_value PREFIX: the number closemid printed right after PREFIX.
closemid_value() {
    sed -En "s/^$1([0-9]+).*/\\1/p" <<<"$output" | head -n 1
}

# run_closemid N: closemid's N connections to $PORT under $POLICY; checks
# it exited 0 (no socket left), that each early write was taken, and that
# it ends holding exactly the engine's three descriptors (epoll, eventfd,
# and the inotify watch of the policy's files: settings reload) more than
# at the start. Sets LEFT_MS: how long the sockets took to go.
run_closemid() {
    local n=$1 start end
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/closemid" 127.0.0.1 "$PORT" "$n" "$MARKER"
    assert_ok
    assert_equal "$(grep -c "^connection [0-9]*: connect: EINPROGRESS (" <<<"$output")" "$n"
    assert_equal "$(grep -c "^connection [0-9]*: early write: $((${#MARKER} + 1)) bytes$" <<<"$output")" "$n"
    assert_line --regexp "^closed $n connections; sockets now [0-9]+$"
    assert_line --regexp '^sockets left: 0 after [0-9]+ ms$'
    LEFT_MS=$(closemid_value 'sockets left: 0 after ')
    start=$(closemid_value 'descriptors at start ')
    end=$(closemid_value 'descriptors at the end ')
    assert_equal "$end" $((start + 3))
    refute_log "$stderr" 'AddressSanitizer|Segmentation|Aborted'
}

@test "client: 5 non-blocking connects closed while the peer stalls layer 1: every socket released by handshake_timeout_ms; the peer got nothing" {
    start_fault_server hs1 stall --count 5
    sed -i 's/^rules:/settings:\n  handshake_timeout_ms: 1000\nrules:/' "$POLICY"
    capture_start "$PORT"
    run_closemid 5
    ((LEFT_MS <= 2500)) || fail "the sockets were released after $LEFT_MS ms (handshake_timeout_ms 1000)"
    # one line per connection says how it ended
    assert_equal "$(grep -Ec "^nestls\[$(run_pid)\] error: rule 'client': client $ADDR -> $IP4:$PORT layer 1: " <<<"$stderr")" 5
    local k
    for k in 1 2 3 4 5; do
        [[ $(peer_end "$k") == @(eof|ECONNRESET) ]] || fail "connection $k ended as '$(peer_end "$k")'"
        assert_equal "$(peer_sum "$k")" "0 $EMPTY_SHA"
        refute_peer_got "$MARKER" "$k"
    done
    capture_stop 5
    assert_not_on_wire "$MARKER"
}

@test "client: 5 non-blocking connects closed before a good peer's handshake ends: the early bytes arrive encrypted, then a clean close; nothing left" {
    start_fault_server data clean --count 5 --expect 1000000
    capture_start "$PORT"
    run_closemid 5
    ((LEFT_MS <= 2000)) || fail "the sockets were released after $LEFT_MS ms"
    assert_equal "$(grep -Ec "^nestls\[$(run_pid)\] info: rule 'client': client $ADDR -> $IP4:$PORT closed: sent $((${#MARKER} + 1)) B, received 0 B in .* \(clean\)$" <<<"$stderr")" 5
    local k
    for k in 1 2 3 4 5; do
        assert_equal "$(peer_end "$k")" eof
        assert_equal "$(cat "peer/conn-$k.plain")" "$MARKER"
        refute_peer_got "$MARKER" "$k"
    done
    capture_stop 5
    assert_not_on_wire "$MARKER"
}

@test "server: the program closes each connection right after accept and its greeting: the greeting arrives encrypted, then a clean close; only the listener is left" {
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer inner
    start_greeter "$POLICY" --close 3
    local base
    base=$(socket_count "$SERVER_PID") # the listener, and the engine's side of it
    capture_start "$PORT"
    local k
    for k in 1 2 3; do
        run_fault_client data clean --expect 1000000 --record "$BATS_TEST_TMPDIR/peer$k"
        assert_success
        assert_equal "$(cat "peer$k/conn-1.end")" eof
        assert_equal "$(cat "peer$k/conn-1.plain")" "$MARKER"
        grep -q -a -F -- "$MARKER" "peer$k/conn-1.raw" && fail "client $k got the greeting in plaintext"
        assert_equal "$(greeter_end "$k")" "0 $EMPTY_SHA closed"
    done
    wait_for_count greeter.err \
        "^nestls\[$SERVER_PID\] info: rule 'server': server $IP4:$PORT <- $ADDR closed: sent $((${#MARKER} + 1)) B, received 0 B in .* \(clean\)$" 3
    poll 5 sockets_at_most "$SERVER_PID" "$base" || fail "the server holds $(socket_count "$SERVER_PID") sockets, $base before the clients"
    capture_stop 3
    assert_not_on_wire "$MARKER"
}

@test "server: clients that stall their handshake never reach the program and are cut at the timeout; good clients that came after them are accepted and served meanwhile" {
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer inner
    sed -i 's/^rules:/settings:\n  handshake_timeout_ms: 1500\nrules:/' "$POLICY"
    start_greeter "$POLICY"
    local base
    base=$(socket_count "$SERVER_PID")
    capture_start "$PORT"
    local k
    for k in 1 2; do
        start_bg "slow$k" python3 "$HELPERS/fault_peer.py" client "$PORT" --at hs1 --fault stall \
            --partial 50 --certs "$CERTS" --record "$BATS_TEST_TMPDIR/slow$k" --count 1 --wait 30
        wait_for_match "slow$k.out" '^conn 1 acting$'
    done
    # Two good clients finish their handshakes while the stalled ones
    # wait; the program accepts exactly these two, as its connections 1
    # and 2, and they read nothing until told to go.
    "$TESTBIN/pattern" 256K >data
    for k in 1 2; do
        start_bg "good$k" python3 "$HELPERS/fault_peer.py" client "$PORT" --at data --fault clean \
            --expect $((${#MARKER} + 1)) --send data --hold "$BATS_TEST_TMPDIR/go" \
            --certs "$CERTS" --record "$BATS_TEST_TMPDIR/good$k" --count 1 --wait 30
    done
    wait_for_count greeter.err "^nestls\[$SERVER_PID\] info: rule 'server': .* up in " 2
    wait_for_count greeter.err \
        "^nestls\[$SERVER_PID\] [a-z]+: rule 'server': server $IP4:$PORT <- $ADDR layer 1: handshake timed out after 1500 ms$" 2
    touch go
    for k in 1 2; do
        wait_for_file "good$k/conn-1.end"
        assert_equal "$(cat "good$k/conn-1.end")" eof
        assert_equal "$(cat "good$k/conn-1.plain")" "$MARKER" # not one stray byte
        assert_equal "$(greeter_end "$k")" "262144 $(sha256 data) eof"
        assert_equal "$(cat "slow$k/conn-1.sum")" "0 $EMPTY_SHA"
        grep -q -a -F -- "$MARKER" "slow$k/conn-1.raw" && fail "slow$k got the greeting in plaintext"
    done
    [[ ! -e greeter/conn-3.done ]] || fail "the program saw a third connection: $(cat greeter/conn-3.done)"
    poll 5 sockets_at_most "$SERVER_PID" "$base" || fail "the server holds $(socket_count "$SERVER_PID") sockets, $base before the clients"
    capture_stop 4
    assert_not_on_wire "$MARKER"
}
