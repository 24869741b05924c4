#!/usr/bin/env bats
# Fault injection: a storm of signals. sigstorm (tests/helpers/sigstorm.c)
# takes SIGALRM every millisecond (setitimer) through a handler installed
# WITHOUT SA_RESTART, while it moves 256 MiB each way over one connection
# with blocking read()/write() in two threads, checks every byte it reads
# against the test stream, and counts each EINTR by the call that got it.
# The same pair runs over plain TCP first, then with both ends wrapped in
# two layers (client role and server role at once).
# What must hold: every byte arrives intact both ways in both runs; under
# nestls EINTR comes only from calls that block in the kernel on a plain
# socket too (accept, read, write) — never from connect() (nestls waits
# for the handshakes inside it, and a signal must not cut that short),
# shutdown() or close(), which the plain run never sees interrupted either.

load helpers/common
load helpers/peers
load helpers/fault_lib

SIZE=256M
BYTES=268435456

setup() {
    need_build
    cd "$BATS_TEST_TMPDIR"
}

# storm_value REPORT REGEX: the number REGEX's group captures in REPORT.
storm_value() {
    sed -En "s/$2/\\1/p" <<<"$1" | head -n 1
}

# check_storm WHAT REPORT: the checks every sigstorm run must pass.
check_storm() {
    local what=$1 report=$2 n ms
    grep -qx "sent $BYTES received $BYTES intact" <<<"$report" ||
        fail "$what: not every byte arrived intact:
$report"
    n=$(storm_value "$report" '^signals ([0-9]+) in [0-9]+ ms$')
    ms=$(storm_value "$report" '^signals [0-9]+ in ([0-9]+) ms$')
    # The timer fires 1000 times a second, but a signal still pending when
    # the next fires merges with it (often, on a loaded machine): at least
    # 250 handled a second.
    ((n >= 100 && n * 4 >= ms)) || fail "$what: only $n signals in $ms ms"
    assert_regex "$report" $'(^|\n)eintr accept [0-9]+ connect 0 poll 0 read [0-9]+ write [0-9]+ shutdown 0 close 0(\n|$)'
}

# eintr_sum REPORT...: accept, read and write EINTRs over the reports.
eintr_sum() {
    local r total=0
    for r in "$@"; do
        total=$((total + $(storm_value "$r" '^eintr accept ([0-9]+) .*$') +
            $(storm_value "$r" '^eintr .* read ([0-9]+) .*$') + $(storm_value "$r" '^eintr .* write ([0-9]+) .*$')))
    done
    echo "$total"
}

@test "1 kHz signals without SA_RESTART during 256 MiB each way through two layers: every byte intact; no EINTR a plain socket would not give" {
    local pid rc=0 plain_client plain_server client server

    # Plain TCP: what the kernel does on its own.
    start_bg plain_server "$TESTBIN/sigstorm" server 0 "$SIZE"
    pid=$BG_PID
    PORT=$(port_of plain_server)
    run --separate-stderr timeout 120 "$TESTBIN/sigstorm" client 127.0.0.1 "$PORT" "$SIZE"
    assert_ok
    plain_client=$output
    wait_for_exit "$pid" 60 || fail "the plain server did not finish"
    reap "$pid" || rc=$?
    ((rc == 0)) || fail "the plain server exited $rc: $(cat plain_server.err)"
    plain_server=$(cat plain_server.out)
    check_storm "plain client" "$plain_client"
    check_storm "plain server" "$plain_server"
    (($(eintr_sum "$plain_client" "$plain_server") > 0)) ||
        fail "no accept, read or write was interrupted over plain TCP: the storm proves nothing"

    # Both ends wrapped in two layers.
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer inner
    nestls_bg wrapped_server "$POLICY" "$TESTBIN/sigstorm" server "$PORT" "$SIZE"
    pid=$BG_PID
    wait_for_port "$PORT"
    client_policy client.yaml "$PORT" outer inner
    run --separate-stderr nestls_run "$POLICY" timeout 120 "$TESTBIN/sigstorm" client 127.0.0.1 "$PORT" "$SIZE"
    assert_ok
    client=$output
    assert_log "$stderr" "^nestls\[[0-9]+\] info: rule 'client': client $ADDR -> $IP4:$PORT closed: sent $BYTES B, received $BYTES B in .* \(clean\)$"
    wait_for_exit "$pid" 60 || fail "the wrapped server did not finish"
    reap "$pid" || rc=$?
    ((rc == 0)) || fail "the wrapped server exited $rc: $(cat wrapped_server.err)"
    server=$(cat wrapped_server.out)
    assert_log "$(cat wrapped_server.err)" "^nestls\[$pid\] info: rule 'server': server $IP4:$PORT <- $ADDR closed: sent $BYTES B, received $BYTES B in .* \(clean\)$"
    check_storm "wrapped client" "$client"
    check_storm "wrapped server" "$server"
}
