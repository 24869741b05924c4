#!/usr/bin/env bats
# io_uring: I/O submitted through its queues passes no hook, so while a
# rule wraps, setting one up fails as on a kernel without io_uring
# (ENOSYS) and programs fall back to the socket calls; allow_io_uring
# lets it through. Both ways a program reaches it through libc are
# covered: syscall(SYS_io_uring_setup) (libuv) and liburing's functions.

load helpers/common
load helpers/peers

setup() {
    need_build
    cd "$BATS_TEST_TMPDIR"
    # The control: this kernel and sandbox let io_uring be set up at all.
    run "$TESTBIN/roads" uring-syscall 0 -
    [[ $output =~ ^io_uring_setup:\ [0-9]+$ ]] ||
        skip "io_uring is not available here without nestls either ($output)"
}

wrap_policy() {
    write_policy wrap.yaml <<EOF
version: 1
settings:
  allow_io_uring: ${1:-false}
rules:
  - name: client
    match: {role: client, port: [9]}
    layers:
      - ca: $CERTS/outer-ca.pem
EOF
}

@test "under a wrap rule, syscall(SYS_io_uring_setup) fails with ENOSYS and says why once" {
    wrap_policy
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- "$TESTBIN/roads" uring-syscall 0 -
    assert_ok
    assert_output "io_uring_setup: ENOSYS"
    assert_log "$stderr" "io_uring refused \(ENOSYS\): its I/O would bypass the policy \(allow_io_uring: true"
}

@test "under a wrap rule, liburing's io_uring_queue_init fails with -ENOSYS" {
    [[ -e /usr/lib/x86_64-linux-gnu/liburing.so.2 ]] || fail "liburing2 is not installed (run: make deps)"
    wrap_policy
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- "$TESTBIN/roads" uring-lib 0 -
    assert_ok
    assert_output "io_uring_queue_init: ENOSYS"
}

@test "allow_io_uring: true lets both through" {
    wrap_policy true
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- "$TESTBIN/roads" uring-syscall 0 -
    assert_ok
    [[ $output =~ ^io_uring_setup:\ [0-9]+$ ]] || fail "refused: $output"
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- "$TESTBIN/roads" uring-lib 0 -
    assert_ok
    assert_output "io_uring_queue_init: 0"
}

@test "a deny policy refuses io_uring too: its I/O would bypass the denial" {
    write_policy deny.yaml <<'EOF'
version: 1
settings:
  default_action: deny
rules:
  - name: plain
    match: {port: [9]}
    action: passthrough
EOF
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- "$TESTBIN/roads" uring-syscall 0 -
    assert_ok
    assert_output "io_uring_setup: ENOSYS"
}

@test "a policy that only passes through does not refuse io_uring" {
    write_policy plain.yaml <<'EOF'
version: 1
rules:
  - name: plain
    match: {port: [9]}
    action: passthrough
EOF
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- "$TESTBIN/roads" uring-syscall 0 -
    assert_ok
    [[ $output =~ ^io_uring_setup:\ [0-9]+$ ]] || fail "refused: $output"
}
