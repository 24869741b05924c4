#!/usr/bin/env bats
# Children that share the program's memory: vfork(), posix_spawn() and
# Python 3.11's subprocess (which starts children vfork-style). Between
# their birth and their exec or exit they run the program's code in the
# program's memory; nestls's hooks there must not take, change or free
# the parent's state (a hand-off taken in the child used to freeze the
# parent's engine: the next connect hung forever). The parent's engine
# keeps serving every connection throughout.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
    wrapped_echo outer inner
}

@test "Python: subprocesses by path, by bare name, captured and missing, while wrapped connections stream and echo" {
    run --separate-stderr timeout 120 "$NESTLS" run -p "$POLICY" -- \
        python3 "$HELPERS/subprocess_client.py" "$PORT" 25 16
    assert_ok
    assert_output "echo first
children 100
stream ok
echo second
echo first again
ok"
}

@test "vfork with a failing execvp, vfork with exec, posix_spawnp: connections old and new keep echoing" {
    run --separate-stderr timeout 60 "$NESTLS" run -p "$POLICY" -- "$TESTBIN/vforker" "$PORT"
    assert_ok
    assert_output "ok"
}
