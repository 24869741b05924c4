#!/usr/bin/env bats
# Fault injection: truncation. The peer ends the TCP connection (FIN)
# mid-transfer without close_notify on the innermost layer — with no
# close_notify at all, or with one on the outer layer only. The program
# reads every byte that arrived, then ECONNRESET: a truncated stream must
# never look like a complete one (clean EOF). The controls send the same
# bytes and close properly, and the program sees a clean EOF. Both roles,
# two layers.
#
# Each test makes TRIALS transfers of slightly different sizes (1 MiB +
# k * 1000 bytes): the peer (Python's OpenSSL) does not align its inner
# records with its outer ones, as nestls does, so where an inner record is
# cut by the outer layer differs from one size to the next, and the end
# of the stream meets the engine in a different state each time.

load helpers/common
load helpers/peers
load helpers/fault_lib

setup() {
    need_build
    need_cmd python3 tcpdump
    cd "$BATS_TEST_TMPDIR"
    MARKER=$(new_marker)
    TRIALS=8
    local k
    for ((k = 1; k <= TRIALS; k++)); do
        "$TESTBIN/pattern" $((1048576 + (k - 1) * 1000)) >"data-$k"
    done
}

# client_reads FAULT: TRIALS times, a wrapped tcpclient sends the marker
# and reads what a fault_peer server sends (data-K) before it ends the
# connection as FAULT. Checks every byte arrived intact, and that the
# marker crossed only encrypted; leaves the log lines in $BATS_TEST_TMPDIR/log
# and tcpclient's exit statuses in statuses.
client_reads() {
    start_fault_server data "$1" --count "$TRIALS" --expect $((${#MARKER} + 1)) --send 'data-{k}'
    capture_start "$PORT"
    local k
    for ((k = 1; k <= TRIALS; k++)); do
        run --separate-stderr nestls_run "$POLICY" sh -c \
            "timeout 60 '$TESTBIN/tcpclient' 127.0.0.1 $PORT >got; echo \"exit \$?\" >&2" <<<"$MARKER"
        echo "$stderr" >>log
        echo "$(grep '^exit ' <<<"$stderr")" >>statuses
        assert_equal "trial $k: $(stat -c %s got) $(sha256 got)" \
            "trial $k: $(stat -c %s "data-$k") $(sha256 "data-$k")" # every byte that arrived, intact
        assert_equal "$(head -c $((${#MARKER} + 1)) "peer/conn-$k.plain")" "$MARKER"
        refute_peer_got "$MARKER" "$k"
    done
    capture_stop "$TRIALS"
    assert_not_on_wire "$MARKER"
}

# count_lines FILE REGEX: how many lines of FILE match the extended REGEX.
count_lines() {
    grep -Ec -- "$2" "$1" || true
}

@test "client: FIN without close_notify after 1 MiB: the program reads all of it, then ECONNRESET; logged truncated" {
    client_reads fin
    assert_equal "$(count_lines statuses '^exit 4$')" "$TRIALS"
    assert_equal "$(count_lines log '^tcpclient: read: ECONNRESET \(')" "$TRIALS"
    assert_equal "$(count_lines log "^nestls\[[0-9]+\] warn: rule 'client': client $ADDR -> $IP4:$PORT layer 2: connection cut without close_notify$")" "$TRIALS"
    assert_equal "$(count_lines log "^nestls\[[0-9]+\] info: rule 'client': client $ADDR -> $IP4:$PORT closed: sent $((${#MARKER} + 1)) B, received 10[0-9]{5} B in .* \(truncated\)$")" "$TRIALS"
}

@test "client: the last record torn in two by the FIN: the program reads every whole record, then ECONNRESET (no wait for the rest)" {
    client_reads torn
    assert_equal "$(count_lines statuses '^exit 4$')" "$TRIALS"
    assert_equal "$(count_lines log '^tcpclient: read: ECONNRESET \(')" "$TRIALS"
    assert_equal "$(count_lines log "^nestls\[[0-9]+\] info: rule 'client': client $ADDR -> $IP4:$PORT closed: .* \(truncated\)$")" "$TRIALS"
}

@test "client: close_notify on the outer layer only, then FIN: still truncation, ECONNRESET after all the bytes" {
    client_reads outer
    assert_equal "$(count_lines statuses '^exit 4$')" "$TRIALS"
    assert_equal "$(count_lines log '^tcpclient: read: ECONNRESET \(')" "$TRIALS"
    assert_equal "$(count_lines log "^nestls\[[0-9]+\] info: rule 'client': client $ADDR -> $IP4:$PORT closed: .* \(truncated\)$")" "$TRIALS"
}

@test "client control: the same bytes closed with close_notify on every layer end in a clean EOF, every byte delivered" {
    client_reads clean
    assert_equal "$(count_lines statuses '^exit 0$')" "$TRIALS"
    assert_equal "$(count_lines log "^nestls\[[0-9]+\] info: rule 'client': client $ADDR -> $IP4:$PORT closed: .* \(clean\)$")" "$TRIALS"
}

# server_reads FAULT: TRIALS times, a fault_peer client reads the wrapped
# greeter's marker, sends data-K and ends as FAULT; checks that the marker
# crossed only encrypted. The program's view is greeter/conn-K.done.
server_reads() {
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer inner
    start_greeter "$POLICY"
    capture_start "$PORT"
    local k
    for ((k = 1; k <= TRIALS; k++)); do
        run_fault_client data "$1" --expect $((${#MARKER} + 1)) --send "data-$k"
        assert_success
        assert_equal "$(head -c $((${#MARKER} + 1)) peer/conn-1.plain)" "$MARKER"
        refute_peer_got "$MARKER" 1
    done
    capture_stop "$TRIALS"
    assert_not_on_wire "$MARKER"
}

# assert_program_saw END: what the program saw of every trial: all of
# data-K, then END ("eof" or "error ECONNRESET").
assert_program_saw() {
    local k
    for ((k = 1; k <= TRIALS; k++)); do
        assert_equal "trial $k: $(greeter_end "$k")" \
            "trial $k: $(stat -c %s "data-$k") $(sha256 "data-$k") $1"
    done
}

@test "server: FIN without close_notify after 1 MiB: the program reads all of it, then ECONNRESET; logged truncated" {
    server_reads fin
    assert_program_saw "error ECONNRESET"
    wait_for_count greeter.err \
        "^nestls\[$SERVER_PID\] warn: rule 'server': server $IP4:$PORT <- $ADDR layer 2: connection cut without close_notify$" "$TRIALS"
    wait_for_count greeter.err \
        "^nestls\[$SERVER_PID\] info: rule 'server': server $IP4:$PORT <- $ADDR closed: .* received 10[0-9]{5} B in .* \(truncated\)$" "$TRIALS"
}

@test "server: the last record torn in two by the FIN: the program reads every whole record, then ECONNRESET" {
    server_reads torn
    assert_program_saw "error ECONNRESET"
}

@test "server: close_notify on the outer layer only, then FIN: ECONNRESET after all the bytes" {
    server_reads outer
    assert_program_saw "error ECONNRESET"
}

@test "server control: the same bytes closed with close_notify on every layer end in a clean EOF, every byte delivered" {
    server_reads clean
    assert_program_saw eof
    wait_for_count greeter.err \
        "^nestls\[$SERVER_PID\] info: rule 'server': server $IP4:$PORT <- $ADDR closed: .* \(clean\)$" "$TRIALS"
}
