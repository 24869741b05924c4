#!/usr/bin/env bats
# shutdown(SHUT_WR) on a wrapped socket, then a write: EPIPE and SIGPIPE,
# as from a TCP socket (it used to be accepted and silently dropped);
# reading goes on until the peer's EOF.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
    wrapped_echo outer inner
}

@test "a send after shutdown(SHUT_WR) fails with EPIPE; the echo of what came before still arrives, then EOF" {
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 "$HELPERS/shut_then_write.py" "$PORT"
    assert_ok
    assert_output "send after SHUT_WR: BrokenPipeError
then read: before and EOF"
}

@test "a send after shutdown(SHUT_WR) raises SIGPIPE when the program does not ignore it" {
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 "$HELPERS/shut_then_write.py" "$PORT" default-sigpipe
    assert_equal "$status" $((128 + 13))
    assert_output ""
}
