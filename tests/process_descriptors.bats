#!/usr/bin/env bats
# Nothing of nestls is visible or breakable through descriptors (issue 18,
# item 2):
#  - no descriptor of nestls's exists before it is needed: the log file is
#    opened by the first line written, not at load, so a program, or a
#    child given an exact list of descriptors (pass_fds), sees none;
#  - every descriptor nestls holds is close-on-exec;
#  - a program that closes every descriptor >= 3 (closefrom, close_range, a
#    loop of close, the same through syscall(), or a system call no hook
#    sees) and dup2s a file of its own over the log's number keeps logging
#    working, and no log byte lands in its file;
#  - a wrapped connection survives close_range(3, ~0U, 0) and a dup2 over
#    every descriptor left (nestls's own, moved out of the way), through
#    libc or syscall(), and no engine byte lands in the program's file;
#  - those syscall() roads never start nestls early (jemalloc's raw close
#    before main).
# Real peer: openssl s_server -rev.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3 openssl
    cd "$BATS_TEST_TMPDIR"
    unset NESTLS_LOG
    PORT=$(free_port)
    [[ -x $TESTBIN/fdhygiene ]] || fail "$TESTBIN/fdhygiene is missing: run make"
}

# logged_policy FILE PORT: a client rule wrapping 127.0.0.1:PORT in one
# layer (outer CA), logging to $BATS_TEST_TMPDIR/nestls.log. Sets POLICY.
logged_policy() {
    client_policy "$1" "$2" outer
    printf 'settings:\n  log_file: %s/nestls.log\n' "$BATS_TEST_TMPDIR" >>"$POLICY"
}

@test "with log_file set, a program under nestls run has no descriptor of nestls's before it needs one" {
    logged_policy client.yaml "$PORT"
    # Started from a process that closes every descriptor but 0-2, so the
    # list is the program's own and whatever nestls (command or library) left.
    run --separate-stderr python3 -c '
import subprocess, sys
sys.exit(subprocess.run(sys.argv[1:], close_fds=True).returncode)' \
        "$NESTLS" run -p "$POLICY" -- "$TESTBIN/fdhygiene" fds
    assert_ok
    assert_output "fds: none"
    [[ ! -e nestls.log ]] || fail "the log file exists with nothing logged: $(cat nestls.log)"
}

@test "a child started with pass_fds sees exactly the descriptors it was passed" {
    logged_policy client.yaml "$PORT"
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 -c '
import os, subprocess, sys
r, w = os.pipe()
out = subprocess.run([sys.argv[1], "fds"], pass_fds=[r], capture_output=True, text=True).stdout
print(out.strip() == "fds: %d" % r or "child saw: " + out.strip())' "$TESTBIN/fdhygiene"
    assert_ok
    assert_output True
}

@test "every descriptor nestls holds is close-on-exec: a child that inherits all descriptors sees none of them while a wrapped connection is open" {
    start_s_server tls "$PORT" outer-server -rev
    logged_policy client.yaml "$PORT"
    # The program logs (debug: the log file is open) and holds a wrapped
    # connection (the engine's sockets, epoll and wake-up descriptors);
    # its own descriptors are non-inheritable (Python's default). The child,
    # which inherits every inheritable descriptor, must see exactly the
    # ones the program holds so (the test runner's, if any); it runs at the
    # default level, so it opens nothing itself.
    NESTLS_LOG=debug run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 -c '
import os, socket, subprocess, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
s.sendall(b"abc\n")
assert s.recv(100) == b"cba\n"
def inheritable():
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if int(name) >= 3 and os.get_inheritable(int(name)):
                fds.append(int(name))
        except OSError:
            pass  # the directory listing itself, closed by now
    return " ".join(str(fd) for fd in sorted(fds)) or "none"
env = dict(os.environ, NESTLS_LOG="warn")
expected = "fds: " + inheritable()  # what the test runner left open, if anything
out = subprocess.run([sys.argv[1], "fds"], close_fds=False, env=env, capture_output=True, text=True).stdout
print(out.strip() == expected or "child saw %r, expected %r" % (out.strip(), expected))
s.sendall(b"xyz\n")
assert s.recv(100) == b"zyx\n"
s.close()' "$TESTBIN/fdhygiene" "$PORT"
    assert_ok
    assert_output True
    wait_for_match nestls.log " up in "
}

@test "logging goes on after the program closes every descriptor >= 3 and dup2s its own file over the log's number; none of it lands in that file" {
    local port2 how hows=(closefrom close_range close_loop raw_close_range raw_close dup2 raw_dup2)
    [[ $(uname -m) != x86_64 ]] || hows+=(asm_close)
    port2=$(free_port) # nothing listens on PORT or port2: the connects are refused
    logged_policy client.yaml "$PORT"
    for how in "${hows[@]}"; do
        rm -f nestls.log mine.txt
        NESTLS_LOG=debug run --separate-stderr "$NESTLS" run -p "$POLICY" -- \
            "$TESTBIN/fdhygiene" log "$how" "$BATS_TEST_TMPDIR/nestls.log" "$PORT" "$port2" \
            "$BATS_TEST_TMPDIR/mine.txt"
        assert_ok
        assert_line --index 0 --regexp '^log fd [0-9]+$'
        assert_line --index 1 ok
        assert_equal "$stderr" ""
        [[ ! -s mine.txt ]] || fail "$how: nestls wrote into the program's file: $(cat mine.txt)"
        grep -Eq -- "-> $IP4:$port2 passed through" nestls.log ||
            fail "$how: the line after the closing is not in the log file: $(cat nestls.log)"
    done
}

@test "a wrapped connection keeps working through close_range(3, ~0U, 0) and a dup2 over every descriptor left, by libc or syscall(); no engine byte lands in the program's file" {
    start_s_server tls "$PORT" outer-server -rev
    logged_policy client.yaml "$PORT"
    local how
    for how in libc raw; do
        rm -f nestls.log mine.txt
        NESTLS_LOG=debug run --separate-stderr timeout 30 "$NESTLS" run -p "$POLICY" -- \
            "$TESTBIN/fdhygiene" wrapped "$how" "$PORT" "$BATS_TEST_TMPDIR/mine.txt"
        assert_ok
        # What close_range left open is nestls's: at least the TCP socket,
        # the engine's end of the socketpair, epoll, the wake-up descriptor
        # and the log file.
        local kept
        kept=$(sed -n 's/^kept //p' <<<"$output")
        ((kept >= 5)) || fail "$how: only $kept descriptors left after close_range: $output"
        assert_line "echo ok"
        assert_line ok
        assert_equal "$stderr" ""
        [[ ! -s mine.txt ]] || fail "$how: nestls wrote into the program's file: $(od -c mine.txt | head)"
        wait_for_match nestls.log "closed: sent 13 B, received 13 B in [0-9.]+ s \(clean\)$"
    done
}

@test "a program whose allocator closes files with syscall(SYS_close) before main still starts (jemalloc in redis-server)" {
    need_cmd redis-server
    # jemalloc reads /proc and /sys with raw syscall()s inside its own
    # initialisation, holding its lock: the descriptor roads of syscall()
    # must not start nestls there (start-up allocates: a hang before main).
    client_policy client.yaml "$PORT" outer
    run --separate-stderr timeout 20 "$NESTLS" run -p "$POLICY" -- redis-server --version
    assert_ok
    assert_output --partial "malloc=jemalloc"
}
