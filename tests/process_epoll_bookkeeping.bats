#!/usr/bin/env bats
# The program's epoll registrations that nestls records (to move them to
# the new socket at connect) are forgotten when the epoll descriptor is
# closed: a new epoll instance on the same number never inherits them.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
    wrapped_echo outer
}

@test "a closed epoll descriptor's registrations do not reappear in a new one on the same number" {
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 "$HELPERS/epoll_reuse.py" "$PORT"
    assert_ok
    assert_output "same number
new epoll sees 0 events
echo ping
ok"
}
