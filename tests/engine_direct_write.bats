#!/usr/bin/env bats
# The direct path: when nothing the program wrote earlier waits in the
# socketpair, write() and send() encrypt and send in the program's own
# thread (src/hooks/write.c). Calls that go the usual way (sendmsg,
# MSG_MORE) and partial fast writes interleave with it, in both roles:
# the peer must still get every byte in order.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer inner
    SERVER_POLICY=$POLICY
    client_policy client.yaml "$PORT" outer inner
}

@test "a client mixing send, write, sendmsg and MSG_MORE writes of 1 B to 256 KiB: every byte in order through two layers" {
    nestls_bg sink "$SERVER_POLICY" python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink" \
        --port "$PORT" --hash-only
    wait_for_port "$PORT"
    local seed sent sha
    for seed in 1 2; do
        run --separate-stderr nestls_run "$POLICY" timeout 120 \
            python3 "$HELPERS/mixed_writer.py" connect "$PORT" 33554432 "$seed"
        assert_ok
        read -r sent sha <<<"$output"
        assert_equal "$sent" 33554432
        wait_for_file "sink/conn-$seed.done" 60
        assert_equal "$(cat "sink/conn-$seed.done")" "$sent $sha eof"
        assert_log "$stderr" "info: rule 'client': .* closed: sent 33554432 B, received 0 B in .* \\(clean\\)$"
    done
}

@test "a server mixing the same calls: every byte in order through two layers to a wrapped reader" {
    need_cmd socat
    nestls_bg writer "$SERVER_POLICY" python3 "$HELPERS/mixed_writer.py" listen "$PORT" 33554432 3
    wait_for_port "$PORT"
    run --separate-stderr nestls_run "$POLICY" timeout 120 \
        sh -c "socat -u TCP:127.0.0.1:$PORT - | sha256sum"
    assert_ok
    wait_for_match writer.out '^33554432 '
    assert_equal "$output" "$(awk '/^33554432 / { print $2 }' writer.out)  -"
    wait_for_match writer.err "closed: sent 33554432 B, received 0 B in .* \\(clean\\)$"
}

@test "one large write, then waiting for the answer: nothing is kept back, through 2 and 3 layers" {
    # A direct write stops when the layers are full; what it could not
    # push out yet must still reach TCP although no further write or
    # event comes to move it.
    local layers
    for layers in "outer inner" "outer inner outer"; do
        PORT=$(free_port)
        server_policy server.yaml "$PORT" $layers
        SERVER_POLICY=$POLICY
        client_policy client.yaml "$PORT" $layers
        nestls_bg "bigack-${layers// /-}" "$SERVER_POLICY" \
            python3 "$HELPERS/bigwrite_ack.py" server "$PORT" 40 1048576
        wait_for_port "$PORT"
        run --separate-stderr nestls_run "$POLICY" timeout 60 \
            python3 "$HELPERS/bigwrite_ack.py" client "$PORT" 40 1048576
        assert_ok
        assert_output "ok 40"
    done
}

@test "256 MiB through three layers to a slower reader: the sender's writes keep flowing as TCP fills and drains" {
    # TCP fills (the reader is Python), so direct writes meet a full
    # outer layer and fall back to the socketpair, again and again.
    server_policy server.yaml "$PORT" outer inner outer
    SERVER_POLICY=$POLICY
    client_policy client.yaml "$PORT" outer inner outer
    nestls_bg sink "$SERVER_POLICY" python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink" \
        --port "$PORT" --hash-only
    wait_for_port "$PORT"
    local expected
    expected=$("$TESTBIN/pattern" 256M | sha256)
    run --separate-stderr nestls_run "$POLICY" timeout 120 "$TESTBIN/sendpattern" 127.0.0.1 "$PORT" 256M close
    assert_ok
    wait_for_file sink/conn-1.done 60
    assert_equal "$(cat sink/conn-1.done)" "268435456 $expected eof"
}
