#!/usr/bin/env bats
# Fault injection: stalled handshakes against a wrapped server (slowloris).
# Clients (fault_peer.py, two layers) send part of a ClientHello — on
# layer 1, or on layer 2 inside a good layer 1 — and then either nothing
# more, or one byte every 300 ms so the connection never looks idle.
# What must happen: each is cut at handshake_timeout_ms, counted from
# accept (trickling does not extend it), with a warning naming the layer;
# the program sees that connection end in ECONNRESET with no byte read;
# and meanwhile the same server keeps serving other clients at full speed
# (they all finish before the first cut). The client-role stall (a server
# that never answers) is tests/engine_failures.bats "handshake timeout".

load helpers/common
load helpers/peers
load helpers/fault_lib

TIMEOUT_MS=5000

setup() {
    need_build
    need_cmd python3 tcpdump
    cd "$BATS_TEST_TMPDIR"
    MARKER=$(new_marker)
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer inner
    sed -i "s/^rules:/settings:\n  handshake_timeout_ms: $TIMEOUT_MS\nrules:/" "$POLICY"
    SERVER_POLICY=$POLICY
    client_policy client.yaml "$PORT" outer inner
    CLIENT_POLICY=$POLICY
}

# start_slow NAME AT FAULT [ARGS...]: a stalling fault client in the
# background, recording in NAME/; waits until it has sent its partial hello.
start_slow() {
    local name=$1 at=$2 fault=$3
    shift 3
    start_bg "$name" python3 "$HELPERS/fault_peer.py" client "$PORT" --at "$at" --fault "$fault" \
        --certs "$CERTS" --record "$BATS_TEST_TMPDIR/$name" --count 1 --wait 30 "$@"
    wait_for_match "$name.out" '^conn 1 acting$'
}

# slow_end NAME: how the stalled client's connection ended ("eof", "ECONNRESET").
slow_end() {
    wait_for_file "$BATS_TEST_TMPDIR/$1/conn-1.end" 15 >&2 || return 1
    cat "$BATS_TEST_TMPDIR/$1/conn-1.end"
}

@test "server: slowloris clients stalled or trickling on layers 1 and 2 are cut at handshake_timeout_ms; 10 other clients are served meanwhile" {
    start_greeter "$SERVER_POLICY"
    "$TESTBIN/pattern" 64K >data
    local t0 ms k out
    capture_start "$PORT"
    t0=$(date +%s%N)
    start_slow slow1 hs1 stall --partial 50
    start_slow slow2 hs1 trickle --partial 20 --gap 0.3
    start_slow slow3 hs2 stall --partial 50
    start_slow slow4 hs2 trickle --partial 20 --gap 0.3

    for ((k = 1; k <= 10; k++)); do
        run --separate-stderr nestls_run "$CLIENT_POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <data
        assert_ok
        assert_output "$MARKER"
    done
    ms=$(elapsed_ms "$t0")
    ((ms < TIMEOUT_MS)) || fail "the 10 clients took until $ms ms, past the $TIMEOUT_MS ms timeout"
    refute_log "$(cat greeter.err)" 'timed out'

    wait_for_count greeter.err \
        "^nestls\[$SERVER_PID\] info: rule 'server': server $IP4:$PORT <- $ADDR layer 1: handshake timed out after $TIMEOUT_MS ms$" 2 15
    wait_for_count greeter.err \
        "^nestls\[$SERVER_PID\] info: rule 'server': server $IP4:$PORT <- $ADDR layer 2: handshake timed out after $TIMEOUT_MS ms$" 2 15
    for k in 1 2 3 4; do
        [[ $(slow_end "slow$k") == @(eof|ECONNRESET) ]] || fail "slow$k ended as '$(slow_end "slow$k")'"
    done
    ms=$(elapsed_ms "$t0")
    ((ms >= TIMEOUT_MS && ms < TIMEOUT_MS + 3000)) || fail "the stalled clients were cut after $ms ms"
    for k in 1 2 3 4; do
        grep -q -a -F -- "$MARKER" "slow$k/conn-1.raw" && fail "slow$k got the greeting in plaintext"
        assert_equal "$(cat "slow$k/conn-1.sum")" "0 $EMPTY_SHA"
    done

    # What the program saw: the 10 clients' 64 KiB then EOF, and nothing
    # of the 4 slow ones (their handshakes never finished, so its accept
    # never returned them).
    for ((k = 1; k <= 10; k++)); do
        greeter_end "$k" >/dev/null
    done
    out=$(cat greeter/conn-*.done | sort | uniq -c | awk '{ $1 = $1; print }' | sort)
    assert_equal "$out" "$(printf '10 65536 %s eof' "$(sha256 data)")"
    capture_stop 14
    assert_not_on_wire "$MARKER"
}

@test "server: a slowloris client still trickling keeps nothing alive past the cut: later clients are served, the server holds only its listener" {
    start_greeter "$SERVER_POLICY"
    local t0 base
    base=$(socket_count "$SERVER_PID") # the listener, and the engine's side of it
    t0=$(date +%s%N)
    start_slow slow1 hs1 trickle --partial 10 --gap 0.2
    start_slow slow2 hs2 trickle --partial 10 --gap 0.2
    wait_for_count greeter.err "^nestls\[$SERVER_PID\] info: .* handshake timed out after $TIMEOUT_MS ms$" 2 15
    (($(elapsed_ms "$t0") >= TIMEOUT_MS)) || fail "cut before $TIMEOUT_MS ms"
    [[ $(slow_end slow1) == @(eof|ECONNRESET) ]] || fail "slow1 ended as '$(slow_end slow1)'"
    [[ $(slow_end slow2) == @(eof|ECONNRESET) ]] || fail "slow2 ended as '$(slow_end slow2)'"
    # Once both are cut, the wrapped server keeps its listening socket only
    # (and the engine's side of it); the program never saw them.
    poll 5 sockets_at_most "$SERVER_PID" "$base" || fail "the server holds $(socket_count "$SERVER_PID") sockets, $base before"
    run --separate-stderr nestls_run "$CLIENT_POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$PORT" <<<"after"
    assert_ok
    assert_output "$MARKER"
    assert_equal "$(greeter_end 1)" "6 $(echo after | sha256) eof"
}
