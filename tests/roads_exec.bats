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

# captured CMD...: run CMD (which starts roads alias PORT MARKER in a
# child) with the wire captured; the child's connection was wrapped: the
# echo came back through the layers and the marker never crossed in clear.
captured() {
    capture_start "$PORT"
    run --separate-stderr "$@"
    capture_stop 2
    assert_ok
    assert_output "__connect: 0
send: ${#MARKER}
echo: $MARKER"
    assert_not_on_wire "$MARKER"
}

# child_road CMD...: captured, with CMD run under the client policy.
child_road() {
    captured "$NESTLS" run -p "$POLICY" -- "$@"
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

@test "system() after unsetenv(LD_PRELOAD): the child is wrapped" {
    child_road python3 -c '
import os, shlex, sys
os.unsetenv("LD_PRELOAD"); os.unsetenv("NESTLS_POLICY")
sys.exit(os.waitstatus_to_exitcode(os.system(shlex.join(sys.argv[1:]))))' "$ROADS" alias "$PORT" "$MARKER"
}

@test "popen() after unsetenv(LD_PRELOAD): the child is wrapped" {
    child_road python3 -c '
import ctypes, os, shlex, sys
os.unsetenv("LD_PRELOAD")
libc = ctypes.CDLL(None)
libc.popen.restype = ctypes.c_void_p
libc.popen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.pclose.argtypes = [ctypes.c_void_p]
f = libc.popen(shlex.join(sys.argv[1:]).encode(), b"w")
sys.exit(os.waitstatus_to_exitcode(libc.pclose(f)))' "$ROADS" alias "$PORT" "$MARKER"
}

# execve_raw HOW ENV...: the roads child exec'd by python through ctypes
# (HOW: execve, or syscall for syscall(SYS_execve)) with exactly ENV.
execve_raw() {
    child_road python3 -c '
import ctypes, sys
how, road, port, marker, env = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
def vec(items):
    v = (ctypes.c_char_p * (len(items) + 1))(*[i.encode() for i in items]); v[len(items)] = None
    return v
libc = ctypes.CDLL(None, use_errno=True)
argv, envp = vec([road, "alias", port, marker]), vec(env)
if how == "syscall":
    libc.syscall(ctypes.c_long(59), road.encode(), argv, envp)
else:
    libc.execve(road.encode(), argv, envp)
sys.exit("exec failed: %d" % ctypes.get_errno())' "$1" "$ROADS" "$PORT" "$MARKER" "${@:2}"
}

@test "syscall(SYS_execve) with an empty environment: the child is wrapped" {
    execve_raw syscall
}

@test "two LD_PRELOAD entries, the last one empty (ld.so reads the last): the child is wrapped" {
    execve_raw execve "LD_PRELOAD=$LIB" "NESTLS_POLICY=$POLICY" "LD_PRELOAD="
}

@test "a relative LD_PRELOAD reaches a child that changed directory as an absolute path" {
    local dir=${LIB%/*}
    captured bash -c 'cd "$0" && LD_PRELOAD="${PRELOAD_FIRST:+$PRELOAD_FIRST }./libnestls.so" \
        NESTLS_POLICY="$1" bash -c "cd / && exec \"\$0\" alias \"\$1\" \"\$2\"" "$2" "$3" "$4"' \
        "$dir" "$POLICY" "$ROADS" "$PORT" "$MARKER"
}

@test "spawning with vfork leaves nothing behind in the parent: 800 children, flat memory" {
    [[ -z ${PRELOAD_FIRST:-} ]] || skip "under the ASan runtime the parent's RSS measures its quarantine, not nestls"
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 -c '
import resource, subprocess
def rss(): return int(open("/proc/self/statm").read().split()[1]) * 4096
for _ in range(50): subprocess.run(["/bin/true"], env={})
before = rss()
for _ in range(800): subprocess.run(["/bin/true"], env={})
print("grew", (rss() - before) // 1024, "KiB")'
    assert_ok
    local grew=${output#grew }
    grew=${grew% KiB}
    # One page per spawn left behind would be 3,200 KiB.
    ((grew < 800)) || fail "the parent grew by $grew KiB over 800 spawns"
}
