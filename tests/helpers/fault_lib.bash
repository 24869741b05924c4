# Shared by the fault-injection suites (tests/faults_*.bats; load after
# common and peers): a misbehaving TLS peer (fault_peer.py) on either side
# of a program wrapped in two layers, and what each side recorded.
#
# The peer records under $BATS_TEST_TMPDIR/peer (conn-K.raw: the TCP bytes
# it received; conn-K.plain: what it decrypted; conn-K.end: how the other
# side ended for it).

# start_fault_server AT FAULT [fault_peer.py ARGS...]: a misbehaving TLS
# server (two layers unless --layers says otherwise) on a port the kernel
# picks; sets PORT, and POLICY to a client policy for it (outer, inner).
start_fault_server() {
    local at=$1 fault=$2
    shift 2
    start_bg peer python3 "$HELPERS/fault_peer.py" server 0 --at "$at" --fault "$fault" \
        --certs "$CERTS" --record "$BATS_TEST_TMPDIR/peer" "$@"
    PORT=$(port_of peer) || return 1
    client_policy client.yaml "$PORT" outer inner
}

# run_fault_client AT FAULT [fault_peer.py ARGS...]: one misbehaving TLS
# client (two layers unless --layers says otherwise) to $PORT, as `run`.
run_fault_client() {
    local at=$1 fault=$2
    shift 2
    run timeout 60 python3 "$HELPERS/fault_peer.py" client "$PORT" --at "$at" --fault "$fault" \
        --certs "$CERTS" --record "$BATS_TEST_TMPDIR/peer" --count 1 "$@"
}

# start_greeter POLICY [fault_greeter.py ARGS...]: the wrapped server
# program that writes $MARKER the moment it accepts (fault_greeter.py), on
# $PORT under POLICY. Sets SERVER_PID; its log is greeter.err.
start_greeter() {
    nestls_bg greeter "$1" python3 "$HELPERS/fault_greeter.py" \
        "$BATS_TEST_TMPDIR/greeter" --greeting "$MARKER" --port "$PORT" "${@:2}"
    SERVER_PID=$BG_PID
    wait_for_port "$PORT"
}

# greeter_end K: what the program behind the wrapped server saw of its
# connection K: "BYTES SHA256 eof|error ERRNAME" (waits for it).
greeter_end() {
    wait_for_file "$BATS_TEST_TMPDIR/greeter/conn-$1.done" >&2 || return 1
    cat "$BATS_TEST_TMPDIR/greeter/conn-$1.done"
}

# peer_end K: how the other side ended for the fault peer's connection K.
peer_end() {
    wait_for_file "$BATS_TEST_TMPDIR/peer/conn-$1.end" >&2 || return 1
    cat "$BATS_TEST_TMPDIR/peer/conn-$1.end"
}

# refute_peer_got TEXT K: the fault peer's TCP bytes of connection K do not
# hold TEXT (it got nothing of it in plaintext).
refute_peer_got() {
    local raw=$BATS_TEST_TMPDIR/peer/conn-$2.raw
    [[ -f $raw ]] || fail "the peer recorded no connection $2"
    ! grep -q -a -F -- "$1" "$raw" || fail "the peer received '$1' in plaintext on the wire"
}

# The SHA-256 of nothing: a program that received no byte.
EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

# fd_count PID: how many descriptors PID holds now.
fd_count() {
    local fds=("/proc/$1/fd/"*)
    echo "${#fds[@]}"
}

# peer_sum K: "BYTES SHA256" of all the plaintext the fault peer received
# on its connection K (waits for the connection's end).
peer_sum() {
    peer_end "$1" >/dev/null || return 1
    cat "$BATS_TEST_TMPDIR/peer/conn-$1.sum"
}

# socket_count PID: how many of PID's descriptors are sockets.
socket_count() {
    local n=0 f
    for f in "/proc/$1/fd/"*; do
        [[ $(readlink "$f" 2>/dev/null) != socket:* ]] || n=$((n + 1))
    done
    echo "$n"
}
# sockets_at_most PID N: PID holds N sockets or fewer (for poll).
sockets_at_most() { (($(socket_count "$1") <= $2)); }

# elapsed_ms T0: milliseconds since T0 (a `date +%s%N` value).
elapsed_ms() {
    echo $((($(date +%s%N) - $1) / 1000000))
}
