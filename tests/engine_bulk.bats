#!/usr/bin/env bats
# Volume through two layers: 1 GiB one way, and 256 MiB echoed back while
# it is still being sent (both directions at once, then a half-close).
# The data is the test stream (build/tests/pattern), never stored whole.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3 socat
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer inner
    SERVER_POLICY=$POLICY
    client_policy client.yaml "$PORT" outer inner
}

@test "1 GiB from a wrapped client to a wrapped server through two layers arrives intact" {
    nestls_bg sink "$SERVER_POLICY" python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink" \
        --port "$PORT" --hash-only
    wait_for_port "$PORT"
    local expected
    expected=$("$TESTBIN/pattern" 1G | sha256)

    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/sendpattern" 127.0.0.1 "$PORT" 1G close
    assert_ok
    wait_for_file sink/conn-1.done 120
    assert_equal "$(cat sink/conn-1.done)" "1073741824 $expected eof"
}

@test "256 MiB echoed through two layers while still being sent comes back intact after a half-close" {
    nestls_bg echo "$SERVER_POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
    local expected
    expected=$("$TESTBIN/pattern" 256M | sha256)

    # socat copies both ways at once; at the end of its input it shuts down
    # writing (SHUT_WR) and waits up to 120 s for the echo to finish.
    run --separate-stderr nestls_run "$POLICY" sh -c \
        "'$TESTBIN/pattern' 256M | socat -t 120 -T 120 - TCP:127.0.0.1:$PORT | sha256sum"
    assert_ok
    assert_output "$expected  -"
}
