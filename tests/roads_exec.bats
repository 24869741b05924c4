#!/usr/bin/env bats
# A child the wrapped program starts with an environment of its own making
# (env -i, subprocess with env={}, posix_spawn with an empty environment,
# an emptied LD_PRELOAD) still runs under nestls: its connection is
# wrapped, the marker never on the wire in clear (src/hooks/exec_env.c).

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3 tcpdump
    cd "$BATS_TEST_TMPDIR"
    wrapped_echo outer inner
    MARKER=$(new_marker)
    ROADS=$TESTBIN/roads
}

# child_road CMD...: run CMD (which starts roads alias PORT MARKER in a
# child) under the client policy, with the wire captured.
child_road() {
    capture_start "$PORT"
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- "$@"
    capture_stop 2
    assert_ok
    assert_output "__connect: 0
send: ${#MARKER}
echo: $MARKER"
    assert_not_on_wire "$MARKER"
}

@test "env -i: the child keeps nestls and its connection is wrapped" {
    child_road bash -c 'exec env -i "$0" alias "$1" "$2"' "$ROADS" "$PORT" "$MARKER"
}

@test "an emptied LD_PRELOAD: nestls is put back in front" {
    child_road bash -c 'LD_PRELOAD= NESTLS_POLICY= "$0" alias "$1" "$2"' "$ROADS" "$PORT" "$MARKER"
}

@test "python subprocess with env={} (vfork and execve): the child is wrapped" {
    child_road python3 -c '
import subprocess, sys
sys.exit(subprocess.run(sys.argv[1:], env={}).returncode)' "$ROADS" alias "$PORT" "$MARKER"
}

@test "posix_spawn with an empty environment: the child is wrapped" {
    child_road python3 -c '
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], {})
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))' "$ROADS" alias "$PORT" "$MARKER"
}
