#!/usr/bin/env bats
# Data a program wrote reaches the peer even when the program exits at
# once afterwards: write then _exit(0), write then exit(0), and the
# ordinary write then close, 8 MiB each, into a recording server.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    EXPECTED="8388608 $("$TESTBIN/pattern" 8M | sha256) eof"
}

# wrapped_sink: a two-layer wrapped sink.py on $PORT, and the matching
# client policy in POLICY.
wrapped_sink() {
    server_policy server.yaml "$PORT" outer inner
    nestls_bg sink "$POLICY" python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink" --port "$PORT" --hash-only
    wait_for_port "$PORT"
    client_policy client.yaml "$PORT" outer inner
}

# sends_whole END: sendpattern 8 MiB then END; the sink got exactly those
# bytes and a clean end of stream.
sends_whole() {
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/sendpattern" 127.0.0.1 "$PORT" 8M "$1"
    assert_ok
    wait_for_file sink/conn-1.done 60
    assert_equal "$(cat sink/conn-1.done)" "$EXPECTED"
}

@test "8 MiB written then _exit(0) at once all reach a wrapped server, ending cleanly" {
    wrapped_sink
    sends_whole _exit
}

@test "8 MiB written then exit(0) at once all reach a wrapped server, ending cleanly" {
    wrapped_sink
    sends_whole exit
}

@test "8 MiB written then close() all reach a wrapped server, ending cleanly" {
    wrapped_sink
    sends_whole close
}

@test "8 MiB written then _exit(0) at once all reach a plain sink behind stunnel" {
    start_bg sink python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink" --hash-only
    SINK_PORT=$(port_of sink)
    start_stunnel_server outer "$PORT" "$SINK_PORT"
    client_policy client.yaml "$PORT" outer
    sends_whole _exit
}
