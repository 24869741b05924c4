#!/usr/bin/env bats
# Closing descriptor ranges around a wrapped connection (close_range,
# closefrom, os.closerange: what daemons and subprocess code do): the
# table of wrapped descriptors is walked, not the number space;
# CLOSE_RANGE_CLOEXEC leaves a wrapped descriptor open and wrapped; a
# closed one is forgotten, and its number can carry a new connection.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
    wrapped_echo outer inner
}

@test "CLOSE_RANGE_CLOEXEC keeps a connection wrapped; closefrom above it is quick; close_range closes it cleanly" {
    run --separate-stderr timeout 60 "$NESTLS" run -p "$POLICY" -- \
        python3 "$HELPERS/closerange.py" "$PORT"
    assert_ok
    assert_output "cloexec: still wrapped, peer 127.0.0.1
closerange above it: fast
closed; the number reused by a working connection
ok"
}
