#!/usr/bin/env bats
# A wrapped connect that failed may be tried again on the same socket, as
# on Linux: the failure is reported once, then the socket connects anew
# (a fresh socket takes its number; hooks/connect.c renew_socket).

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
}

@test "a non-blocking connect refused, then tried again once something listens: the failure once, then connected through the layers" {
    loopback_policy 1
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 "$HELPERS/reconnect.py"
    assert_ok
    assert_output "first: EINPROGRESS
attempt 1 -> ECONNREFUSED
attempt 2 -> ok"
    # the second attempt went through the layer, as the log says
    assert_log "$stderr" "info: rule 'loopback': client 127\.0\.0\.1:[0-9]+ -> 127\.0\.0\.1:[0-9]+ up in "
}
