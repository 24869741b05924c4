#!/usr/bin/env bats
# Server role: the handshakes run before the program's accept() returns
# (hooks/listen.c, engine/listener.c). The engine accepts from the real
# listener; the program's accept() returns only connections whose layers
# are up. What must hold:
#  - a client that fails its handshake (plaintext, garbage, nothing at all,
#    a client trusting another CA) never reaches the program;
#  - a program that connects to itself and accepts later, in one thread,
#    does not deadlock;
#  - poll() on the listening descriptor says "readable" only when accept()
#    has a connection to return; a non-blocking accept says EAGAIN;
#  - the listening descriptor still looks like a TCP listener
#    (getsockname, SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ACCEPTCONN,
#    getpeername ENOTCONN), accepted ones show the TCP peer;
#  - prefork children sharing the listener each take whole connections;
#  - close frees the port at once; shutdown(SHUT_RD) wakes a blocked accept;
#  - a listener on 0.0.0.0 still decides each connection by its own local
#    address (wrapped, passed through, or denied without the program
#    hearing of it).

load helpers/common
load helpers/peers
load helpers/fault_lib

PROBE=${BATS_TEST_DIRNAME}/helpers/listen_probe.py

teardown() {
    nl_teardown
    if [[ -f $BATS_TEST_TMPDIR/dirs ]]; then
        xargs rm -rf <"$BATS_TEST_TMPDIR/dirs"
    fi
}

setup() {
    need_build
    need_cmd python3 curl openssl
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
}

# both_roles_policy: rule 'server' (two layers) for connections accepted
# on 127.0.0.1:$PORT and rule 'client' (the matching two layers) for
# connections to it. Sets POLICY.
both_roles_policy() {
    write_policy both.yaml <<'EOF'
version: 1
settings:
  handshake_timeout_ms: 3000
rules:
  - name: server
    match:
      role: server
      address: 127.0.0.1
      port: @PORT@
    layers:
      - cert: @CERTS@/outer-server.pem
        key: @CERTS@/outer-server.key
      - cert: @CERTS@/inner-server.pem
        key: @CERTS@/inner-server.key
  - name: client
    match:
      role: client
      address: 127.0.0.1
      port: @PORT@
    layers:
      - ca: @CERTS@/outer-ca.pem
      - ca: @CERTS@/inner-ca.pem
EOF
}

# probe_bg NAME ARGS...: listen_probe.py under nestls with $POLICY, in the
# background, waited for until its listener is up.
probe_bg() {
    local name=$1
    shift
    nestls_bg "$name" "$POLICY" python3 "$PROBE" "$@"
    PROBE_PID=$BG_PID
    wait_for_match "$name.out" '^listening$'
}

# wrapped_client LINE: a wrapped client sends LINE and prints the echo
# (its log goes to client.err).
wrapped_client() {
    "$NESTLS" run -p "$POLICY" -- python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
c.sendall(sys.argv[2].encode() + b"\n")
print(c.makefile().readline().strip())' "$PORT" "$1" 2>>"$BATS_TEST_TMPDIR/client.err"
}

# bad_clients: a plaintext HTTP request, garbage, a connection closed at
# once, and a TLS client that trusts another CA: none gets through.
bad_clients() {
    curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$PORT/f.txt" || true
    timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1; printf "\x00\x01garbage\r\n\r\n" >&3; cat <&3 >/dev/null' _ "$PORT" || true
    timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1; exec 3>&-' _ "$PORT" || true
    curl -s --max-time 5 --cacert "$CERTS/inner-ca.pem" -o /dev/null "https://127.0.0.1:$PORT/f.txt" || true
}

@test "the scanner case: plaintext, garbage, empty and untrusted clients never reach a wrapped http.server, which logs only the good download" {
    write_policy server.yaml <<'EOF'
version: 1
rules:
  - name: https
    match:
      role: server
      address: 127.0.0.1
      port: @PORT@
    layers:
      - cert: @CERTS@/outer-server.pem
        key: @CERTS@/outer-server.key
EOF
    mkdir www
    echo "the file $(new_marker)" >www/f.txt
    serve_http http "$PORT" www "$POLICY"
    local round
    for round in 1 2 3; do
        bad_clients
    done
    run curl -sS --max-time 10 --cacert "$CERTS/outer-ca.pem" "https://127.0.0.1:$PORT/f.txt"
    assert_success
    assert_output "$(cat www/f.txt)"
    # http.server logs each request on stderr; without nestls's own lines
    # exactly one is left: the good GET. No traceback, no "code 400".
    wait_for_match http.err '"GET /f.txt HTTP/1.1" 200'
    run grep -v '^nestls\[' http.err
    assert_output --regexp '^127\.0\.0\.1 - - \[.*\] "GET /f\.txt HTTP/1\.1" 200 -$'
    assert_equal "${#lines[@]}" 1
}

@test "a program that connects to its own wrapped listener and accepts afterwards, in one thread, is served (no deadlock, no timeout)" {
    both_roles_policy
    run --separate-stderr timeout 20 "$NESTLS" run -p "$POLICY" -- python3 "$PROBE" self "$PORT"
    assert_ok
    assert_line 'accepted from 127.0.0.1 ping pong'
    assert_line 'peer port matches: True'
}

@test "poll on the listening descriptor stays quiet while only failing clients come, and a non-blocking accept then says EAGAIN" {
    both_roles_policy
    probe_bg quiet quiet "$PORT" 2
    bad_clients
    wait_for_exit "$PROBE_PID" 10 || fail "the probe did not finish"
    assert_equal "$(sed -n 2p quiet.out)" quiet
    probe_bg nb nonblock "$(free_port)"
    wait_for_exit "$PROBE_PID" 10
    assert_equal "$(sed -n 2p nb.out)" EAGAIN
}

@test "a listener made with syscall(SYS_listen) is taken over too: failing clients do not wake poll" {
    both_roles_policy
    PROBE_RAW_LISTEN=1 probe_bg quiet quiet "$PORT" 2
    bad_clients
    wait_for_exit "$PROBE_PID" 10 || fail "the probe did not finish"
    assert_equal "$(sed -n 2p quiet.out)" quiet
}

@test "poll says ready as soon as a good client's layers are up, and accept returns it" {
    both_roles_policy
    probe_bg quiet quiet "$PORT" 15
    run wrapped_client hello
    assert_success
    assert_output hello
    wait_for_match quiet.out '^ready$'
}

@test "the listening descriptor answers as a TCP listener; an accepted one shows the TCP peer" {
    both_roles_policy
    probe_bg facts facts "$PORT"
    run wrapped_client facts
    assert_output facts
    local listener accepted
    listener=$(sed -n 2p facts.out)
    accepted=$(sed -n 3p facts.out)
    assert_equal "$listener" "{\"sockname\": [\"127.0.0.1\", $PORT], \"type\": 1, \"domain\": 2, \"protocol\": 6, \"acceptconn\": 1, \"reuseaddr\": 1, \"peername\": \"ENOTCONN\"}"
    [[ $accepted =~ ^\{\"peer\":\ \[\"127.0.0.1\",\ ([0-9]+)\],\ \"peername\":\ \[\"127.0.0.1\",\ ([0-9]+)\],\ \"sockname\":\ \[\"127.0.0.1\",\ $PORT\],\ \"type\":\ 1\}$ ]] ||
        fail "accepted: $accepted"
    assert_equal "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
}

@test "closing the listener frees the port at once; shutdown(SHUT_RD) wakes a blocked accept with EINVAL" {
    both_roles_policy
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- python3 "$PROBE" rebind "$PORT"
    assert_ok
    assert_line rebound
    run --separate-stderr timeout 10 "$NESTLS" run -p "$POLICY" -- python3 "$PROBE" shutdown "$PORT"
    assert_ok
    assert_line EINVAL
}

@test "prefork: 3 children share the listener the parent closed; 60 wrapped clients are each served whole by one child" {
    both_roles_policy
    probe_bg prefork prefork "$PORT" 3 60 "$BATS_TEST_TMPDIR/stop"
    local i
    for ((i = 1; i <= 60; i++)); do
        run wrapped_client "line-$i"
        assert_output "line-$i"
    done
    touch stop
    wait_for_count prefork.out '^child [0-9]+ served [0-9]+$' 3 15
    assert_equal "$(awk '/^child/ { n += $4 } END { print n }' prefork.out)" 60
}

@test "a server that listens, forks and exits (a daemon): a relay serves its listener for the child, and ends with it" {
    both_roles_policy
    # Not `run`: the daemon keeps the output it inherited open.
    "$NESTLS" run -p "$POLICY" -- python3 "$PROBE" daemon "$PORT" 20 >daemon.out 2>daemon.err ||
        fail "the parent exited $?: $(cat daemon.err)"
    local daemon
    daemon=$(sed -n 's/^daemon \([0-9]*\)$/\1/p' daemon.out)
    [[ -n $daemon ]] || fail "no daemon pid in: $(cat daemon.out)"
    echo "$daemon daemon" >>"$BATS_TEST_TMPDIR/pids" # teardown stops it if the test fails
    local i
    for ((i = 1; i <= 20; i++)); do
        run wrapped_client "d$i"
        assert_output "d$i"
    done
    wait_for_exit "$daemon" 10 || fail "the daemon did not finish its 20 connections"
    # Nobody holds the listener any more: the relay closes it and leaves.
    poll 5 bash -c '! ss -Hltn "sport = :$1" | grep -q .' _ "$PORT" ||
        fail "still listening after the daemon ended: $(ss -Hltnp "sport = :$PORT")"
}

@test "the relay serving a daemon's listener ends on SIGTERM, though the program's own handler only sets a flag" {
    both_roles_policy
    PROBE_TERM_FLAG=1 "$NESTLS" run -p "$POLICY" -- python3 "$PROBE" daemon "$PORT" 1000 >daemon.out 2>daemon.err ||
        fail "the parent exited $?: $(cat daemon.err)"
    local daemon relay
    daemon=$(sed -n 's/^daemon \([0-9]*\)$/\1/p' daemon.out)
    [[ -n $daemon ]] || fail "no daemon pid in: $(cat daemon.out)"
    echo "$daemon daemon" >>"$BATS_TEST_TMPDIR/pids"
    wait_for_match daemon.err 'info: relay: serving'
    relay=$(sed -n 's/^nestls\[\([0-9]*\)\] info: relay: serving.*/\1/p' daemon.err)
    [[ -n $relay ]] || fail "no relay in: $(cat daemon.err)"
    echo "$relay relay" >>"$BATS_TEST_TMPDIR/pids"
    run wrapped_client before
    assert_output before
    kill -TERM "$relay"
    wait_for_exit "$relay" 5 || fail "the relay $relay is still running 5 s after SIGTERM"
    # The program's own process keeps its handler: SIGTERM only sets its flag.
    kill -TERM "$daemon"
    sleep 0.2
    kill -0 "$daemon" || fail "the daemon's own SIGTERM handler was lost"
}

@test "a copy of the listener made with fcntl(F_DUPFD_CLOEXEC) (Rust's try_clone) answers and accepts as the listener" {
    both_roles_policy
    probe_bg clone clone "$PORT"
    assert_equal "$(sed -n 2p clone.out)" "copy True True"
    run wrapped_client cloned
    assert_output cloned
    wait_for_match clone.out '^accepted on the copy$'
}

@test "a prefork child sets TCP_NODELAY and SO_KEEPALIVE on a connection it accepted, and reads them back" {
    both_roles_policy
    probe_bg childopts childopts "$PORT"
    run wrapped_client opts
    assert_output opts
    wait_for_match childopts.out '^child options'
    assert_equal "$(grep '^child options' childopts.out)" "child options 1 1"
}

@test "accept at the descriptor limit says EMFILE and leaves the ready connection for the next accept" {
    both_roles_policy
    probe_bg emfile emfile "$PORT"
    run wrapped_client patient
    assert_output patient
    assert_equal "$(sed -n 2,3p emfile.out)" "accept at the limit: EMFILE
then accepted"
}

@test "a worker keeps accepting after the process that listened execs another program" {
    both_roles_policy
    probe_bg execworker execworker "$PORT" 3
    local i
    for i in 1 2 3; do
        run wrapped_client "w$i"
        assert_output "w$i"
    done
    wait_for_match execworker.out '^worker served 3$'
}

@test "a server not running as root, with 128 descriptors, that accepts nothing while 120 clients connect: all 120 are served once it accepts" {
    need_cmd runuser
    # nobody must read the policy and the key: both in a directory of their own
    local dir
    dir=$(mktemp -d /tmp/nestls-slow.XXXXXX)
    echo "$dir" >>"$BATS_TEST_TMPDIR/dirs"
    cp "$CERTS/outer-server.pem" "$CERTS/outer-server.key" "$PROBE" "$dir/"
    cat >"$dir/server.yaml" <<EOF2
version: 1
rules:
  - name: server
    match: {role: server, address: 127.0.0.1, port: $PORT}
    layers:
      - {cert: $dir/outer-server.pem, key: $dir/outer-server.key}
EOF2
    chmod -R a+rX "$dir"
    start_bg slow runuser -u nobody -- bash -c 'ulimit -n 128; exec "$@"' _ \
        env LD_PRELOAD="${PRELOAD_FIRST:+$PRELOAD_FIRST }$LIB" NESTLS_POLICY="$dir/server.yaml" \
        python3 "$dir/listen_probe.py" slow "$PORT" 4 120
    wait_for_match slow.out '^listening$'
    run timeout 60 python3 -c '
import socket, ssl, sys, threading
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
ok = []
def one(i):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as c:
                c.sendall(b"c%d\n" % i)
                if c.recv(100) == b"c%d\n" % i:
                    ok.append(i)
    except Exception as e:
        print(i, repr(e))
ts = [threading.Thread(target=one, args=(i,)) for i in range(120)]
for t in ts: t.start()
for t in ts: t.join()
print("served", len(ok))' "$PORT" "$CERTS/outer-ca.pem"
    assert_line "served 120"
    wait_for_match slow.out '^served 120$'
}

@test "a listener on 0.0.0.0 decides each connection by its own address: wrapped on 127.0.0.2, plaintext on 127.0.0.1, denied on 127.0.0.3 without the program hearing of it" {
    write_policy wild.yaml <<'EOF'
version: 1
rules:
  - name: tls-on-2
    match:
      role: server
      address: 127.0.0.2
    layers:
      - cert: @CERTS@/outer-server.pem
        key: @CERTS@/outer-server.key
  - name: none-on-3
    match:
      role: server
      address: 127.0.0.3
    action: deny
EOF
    nestls_bg echo "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT" --host 0.0.0.0
    wait_for_port "$PORT"
    run python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
c.sendall(b"plain\n"); print(c.recv(100).decode().strip())' "$PORT"
    assert_output plain
    # A TLS client that closes cleanly (close_notify both ways).
    run timeout 20 python3 -c '
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(("127.0.0.2", int(sys.argv[1])), timeout=10) as raw:
    c = ctx.wrap_socket(raw, server_hostname="localhost")
    c.sendall(b"tls\n"); print(c.recv(100).decode().strip())
    c.unwrap()' "$PORT" "$CERTS/outer-ca.pem"
    assert_output tls
    run python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.3", int(sys.argv[1])), timeout=10)
c.sendall(b"denied\n")
try:
    print("closed" if c.recv(100) == b"" else "answered")
except ConnectionResetError:
    print("closed")  # closed with the request unread: a reset' "$PORT"
    assert_output closed
    wait_for_match echo.err "^nestls\[[0-9]+\] warn: rule 'none-on-3': server 127\.0\.0\.3:$PORT <- 127\.0\.0\.1:[0-9]+ denied$"
    is_alive "$BG_PID" || fail "the echo server died"
    refute_log "$(cat echo.err)" 'Traceback|Error'
}

@test "100 connections, a third of them failing clients, in any order: the program sees only the good ones and holds no socket more afterwards" {
    both_roles_policy
    probe_bg echo echo "$PORT" 1000000
    local base i good=0
    base=$(socket_count "$PROBE_PID")
    for ((i = 1; i <= 100; i++)); do
        case $((RANDOM % 3)) in
            0) bad_clients >/dev/null 2>&1 ;;
            *)
                run wrapped_client "n$i"
                assert_output "n$i"
                good=$((good + 1))
                ;;
        esac
    done
    poll 10 sockets_at_most "$PROBE_PID" "$base" ||
        fail "the program holds $(socket_count "$PROBE_PID") sockets, $base before"
    assert_equal "$(grep -c '^accepted$' echo.out)" "$good"
}
