#!/usr/bin/env bash
# make test-valgrind: a C echo server and C clients, all wrapped in two
# layers (mTLS on the outer) and all under valgrind memcheck: tcpclient
# echoes 1 MiB twice (blocking, then non-blocking connect), then iozoo runs
# its I/O checks over three connections, the later ones resumed. Fails on any memcheck error, on any definitely or
# indirectly lost block, and when the exchange did not really go through
# nestls (every connection must log two layers up and a clean close).
# "Still reachable" memory (what OpenSSL and glibc keep until exit) is
# allowed; no suppression file is used.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=$REPO/build
C=$REPO/certs
command -v valgrind >/dev/null || { echo "test-valgrind: valgrind is not installed (apt-get install valgrind)"; exit 1; }
work=$(mktemp -d /tmp/nestls-valgrind.XXXXXX)
server_pid=
cleanup() {
    [[ -z $server_pid ]] || kill "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

memcheck=(timeout 300 valgrind --tool=memcheck --leak-check=full
          --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
          --error-exitcode=99 --trace-children=no)
failed=0
fail() {
    echo "test-valgrind: $*"
    failed=1
}

# First prove the options catch what they must: a preloaded canary
# (asan_canary.c built without ASan) leaks, then writes out of bounds.
for what in leak overflow; do
    NL_CANARY=$what LD_PRELOAD=$BUILD/tests/libnl_vg_canary.so "${memcheck[@]}" \
        --log-file="$work/canary.vg" true
    rc=$?
    ((rc == 99)) || { fail "memcheck missed the canary's $what (exit $rc)"; cat "$work/canary.vg"; }
done
((failed == 0)) || exit 1
echo "test-valgrind: canaries (a leak, an overflow) reported"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/policy.yaml" <<EOF
version: 1
settings: {log_level: info}
rules:
  - name: server
    match: {role: server, port: $port}
    layers:
      - {cert: $C/outer-server.pem, key: $C/outer-server.key, client_ca: $C/outer-ca.pem}
      - {cert: $C/inner-server.pem, key: $C/inner-server.key}
  - name: client
    match: {role: client, port: $port}
    layers:
      - {ca: $C/outer-ca.pem, cert: $C/outer-client.pem, key: $C/outer-client.key, server_name: localhost}
      - {ca: $C/inner-ca.pem, server_name: localhost}
EOF
export NESTLS_POLICY=$work/policy.yaml
conns=5 # tcpclient twice, iozoo's three

LD_PRELOAD=$BUILD/libnestls.so "${memcheck[@]}" --log-file="$work/server.vg" \
    "$BUILD/tests/echo_once" "$port" "$conns" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 1 1000); do # until it listens, at most 20 s
    grep -q ready "$work/server.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.02
done
grep -q ready "$work/server.out" || { echo "test-valgrind: the server did not start"; cat "$work/server.err"; exit 1; }

summary() { # WHO LOG: memcheck's verdict lines
    grep -E "ERROR SUMMARY|definitely lost|indirectly lost" "$2" | sed "s/^==[0-9]*== */$1: /"
}

head -c 1048576 /dev/urandom >"$work/data"
n=0
for mode in blocking -n; do
    n=$((n + 1))
    args=(127.0.0.1 "$port")
    [[ $mode == -n ]] && args=(-n "${args[@]}")
    LD_PRELOAD=$BUILD/libnestls.so "${memcheck[@]}" --log-file="$work/client$n.vg" \
        "$BUILD/tests/tcpclient" "${args[@]}" <"$work/data" >"$work/reply" 2>"$work/client$n.err"
    rc=$?
    summary "tcpclient $mode" "$work/client$n.vg"
    ((rc == 0)) || { fail "tcpclient $mode exited $rc"; cat "$work/client$n.err" "$work/client$n.vg"; }
    cmp -s "$work/data" "$work/reply" || fail "tcpclient $mode: the echo differs from what it sent"
    # Proof that nestls carried it: both layers up, then a clean close.
    grep -Eq "up in .*layer 1 TLS.*; layer 2 TLS" "$work/client$n.err" ||
        fail "tcpclient $mode: no 'up' line with two layers in its log"
    grep -Eq "closed: sent 1048576 B, received 1048576 B .*\(clean\)" "$work/client$n.err" ||
        fail "tcpclient $mode: no clean close of 1 MiB each way in its log"
done

# iozoo: the many ways programs use a socket (epoll, poll, sendfile, dup,
# readv...) over 3 connections of one process, so the later ones resume
# both layers from the session cache.
LD_PRELOAD=$BUILD/libnestls.so "${memcheck[@]}" --log-file="$work/iozoo.vg" \
    "$BUILD/tests/iozoo" 127.0.0.1 "$port" >"$work/iozoo.out" 2>"$work/iozoo.err"
rc=$?
summary iozoo "$work/iozoo.vg"
((rc == 0)) || { fail "iozoo exited $rc"; grep -v '^ok' "$work/iozoo.out"; cat "$work/iozoo.err"; }
resumed=$(grep -Ec "layer 1 [^;]* resumed; layer 2 .* resumed" "$work/iozoo.err")
((resumed >= 1)) || fail "iozoo: no connection resumed both layers"

wait "$server_pid"
rc=$?
server_pid=
summary server "$work/server.vg"
((rc == 0)) || { fail "the server exited $rc"; cat "$work/server.err" "$work/server.vg"; }
ups=$(grep -Ec "up in .*layer 1 TLS.*; layer 2 TLS" "$work/server.err")
((ups == conns)) || fail "the server logged $ups of $conns connections up with two layers"

if ((failed)); then
    echo "test-valgrind: FAILED"
    exit 1
fi
echo "test-valgrind: $conns connections through 2 layers (2 x 1 MiB echoed, iozoo's checks, $resumed resumed), both roles under memcheck: 0 errors, nothing definitely or indirectly lost"
