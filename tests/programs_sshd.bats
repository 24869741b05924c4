#!/usr/bin/env bats
# OpenSSH's sshd in the server role under `nestls run`: it links libraries
# whose constructors call into nestls's hooks before nestls's own
# constructor (it used to crash before main), forks and re-execs itself
# for every connection (the exec hand-off keeps the connection served).
# A real ssh reaches it through `openssl s_client` as its ProxyCommand,
# which verifies the layer; a few MiB go through sha256sum on the server.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd ssh ssh-keygen openssl
    [[ -x /usr/sbin/sshd ]] || fail "sshd is not installed (make deps)"
    cd "$BATS_TEST_TMPDIR"
    mkdir -p /run/sshd # privilege separation directory sshd insists on
    ssh-keygen -q -t ed25519 -N '' -f hostkey
    ssh-keygen -q -t ed25519 -N '' -f userkey
    cp userkey.pub authorized_keys
    PORT=$(free_port)
    cat >sshd_config <<EOF2
Port $PORT
ListenAddress 127.0.0.1
HostKey $BATS_TEST_TMPDIR/hostkey
AuthorizedKeysFile $BATS_TEST_TMPDIR/authorized_keys
PidFile $BATS_TEST_TMPDIR/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
EOF2
    server_policy server.yaml "$PORT" outer
    nestls_bg sshd "$POLICY" /usr/sbin/sshd -D -e -f "$BATS_TEST_TMPDIR/sshd_config"
    wait_for_port "$PORT"
}

ssh_through_tls() {
    timeout 60 ssh -F /dev/null -i userkey -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
        -o "ProxyCommand=openssl s_client -quiet -verify_return_error -verify_hostname localhost -CAfile $CERTS/outer-ca.pem -connect 127.0.0.1:$PORT" \
        -p "$PORT" root@127.0.0.1 "$@"
}

@test "ssh through a verified TLS layer into a wrapped sshd: 4 MiB through sha256sum, digests equal" {
    # Seen under test-asan: sshd's seccomp sandbox kills its pre-auth child
    # (signal 31, SIGSYS) for a system call the ASan runtime makes there.
    [[ -z ${PRELOAD_FIRST:-} ]] || skip "sshd's seccomp sandbox kills the ASan runtime's system calls"
    head -c 4194304 /dev/urandom >data
    run --separate-stderr ssh_through_tls sha256sum <data
    assert_ok
    assert_equal "${output%% *}" "$(sha256 data)"
    assert_log "$(cat sshd.err)" "rule 'server': server $IP4:$PORT <- $ADDR up in"
}

@test "plain ssh straight at the wrapped sshd gets no SSH banner: the port speaks TLS only" {
    run --separate-stderr timeout 30 ssh -F /dev/null -i userkey -o BatchMode=yes \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 \
        -p "$PORT" root@127.0.0.1 true
    assert_failure
    refute_output --partial "SSH-2.0"
}
