#!/usr/bin/env bats
# Everything a program can do with its socket still works when the socket
# is wrapped, because the program holds a real kernel socket: the calls of
# tests/helpers/iozoo.c (read/write, send/recv, readv/writev,
# sendmsg/recvmsg, sendfile, poll, select, edge-triggered epoll, stdio on
# fdopen, dup/dup2, closing every other descriptor, half-close, epoll
# registered before connect, connect again), TCP facts from getpeername,
# getsockname, getsockopt and setsockopt, over IPv4 and IPv6; and a wrapped
# descriptor that survives exec.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
}

# both_ends_policy HOST: both roles wrapped in two layers on HOST:$PORT.
both_ends_policy() {
    write_policy both.yaml <<EOF2
version: 1
rules:
  - name: server
    match: {role: server, address: "$1", port: $PORT}
    layers:
      - {cert: $CERTS/outer-server.pem, key: $CERTS/outer-server.key}
      - {cert: $CERTS/inner-server.pem, key: $CERTS/inner-server.key}
  - name: client
    match: {role: client, address: "$1", port: $PORT}
    layers:
      - {ca: $CERTS/outer-ca.pem, server_name: localhost}
      - {ca: $CERTS/inner-ca.pem, server_name: localhost}
EOF2
}

iozoo_through_two_layers() {
    local host=$1
    both_ends_policy "$host"
    nestls_bg server "$POLICY" python3 "$HELPERS/echo_server.py" thread --host "$host" --port "$PORT"
    wait_for_match server.out '^port '
    run --separate-stderr nestls_run "$POLICY" timeout 60 "$BUILD/tests/iozoo" "$host" "$PORT"
    refute_log "$output" '^not ok'
    assert_ok
    # every check ran, and the connections really were wrapped in two layers
    assert_equal "$(grep -c '^ok ' <<<"$output")" 26
    assert_log "$stderr" "info: rule 'client': client .* up in .*: layer 1 $(layer_re localhost); layer 2 $(layer_re localhost)$"
    refute_log "$stderr" "(warn|error): "
}

@test "a C client using read, send, readv, sendmsg, sendfile, poll, select, epoll ET, stdio and dup2 works through two layers (IPv4)" {
    iozoo_through_two_layers 127.0.0.1
}

@test "the same program works through two layers over IPv6" {
    iozoo_through_two_layers ::1
}

@test "a wrapped descriptor that survives exec keeps working: a relay serves it" {
    make_file page.txt 4096
    start_s_server tls "$PORT" outer-server -WWW
    client_policy client.yaml "$PORT" outer
    cat >execit.py <<'EOF2'
import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
os.dup2(s.fileno(), 9)  # inheritable, survives exec
s.close()
os.execv("/bin/sh", ["sh", "-c", 'printf "GET /page.txt HTTP/1.0\r\n\r\n" >&9; exec cat <&9'])
EOF2
    run --separate-stderr nestls_run "$POLICY" sh -c 'timeout 30 python3 execit.py "$0" >reply.bin' "$PORT"
    assert_ok
    # the body after the HTTP header (ended by an empty line) is the file
    python3 -c 'import sys; d = open("reply.bin", "rb").read(); sys.stdout.buffer.write(d.split(b"\r\n\r\n", 1)[1])' >body.bin
    assert_equal "$(sha256sum <body.bin)" "$(sha256sum <page.txt)"
    assert_log "$stderr" "info: relay: serving 1 connection\(s\) across exec"
    assert_log "$stderr" "info: rule 'client': .* closed: .*\(clean\)$"
}

@test "a client that writes 1 MiB before reading any echo gets it all back and a clean EOF, 10 times" {
    # Back-pressure both ways at once: the echo fills the reply path while
    # the client is still writing. A lost wake-up here once left the last
    # close undelivered (found by make test-valgrind).
    both_ends_policy 127.0.0.1
    head -c 1048576 /dev/urandom >data
    nestls_bg server "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_match server.out '^port '
    for i in $(seq 1 10); do
        run --separate-stderr nestls_run "$POLICY" sh -c \
            'timeout 20 "$0" 127.0.0.1 "$1" <data >reply; echo "exit $?"' "$TESTBIN/tcpclient" "$PORT"
        assert_output "exit 0"
        cmp -s data reply || fail "round $i: the reply differs from what was sent"
    done
}

@test "a client with a socket timeout that sends 5 KiB right after connect() has it all taken by send(), 100 rounds" {
    # Python's connect() with a timeout returns when the socket turns
    # writable: when the layers are up and the engine lets go of the
    # program's end. The end's send buffer must be back to its size
    # before that; it was given back just after, and a send() in between
    # took 4 KiB of 5 (asyncio's test_server client then waited forever
    # for a reply to a line that never ended).
    both_ends_policy 127.0.0.1
    nestls_bg server "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_match server.out '^port '
    run --separate-stderr nestls_run "$POLICY" timeout 120 python3 "$HELPERS/send_after_connect.py" 127.0.0.1 "$PORT" 100
    assert_ok
    assert_output "short 0 echoed 100"
}

@test "urgent data (MSG_OOB, ftplib's ABOR) arrives inline at a server with SO_OOBINLINE, both roles wrapped" {
    # TLS carries no urgent pointer: the byte travels in its place. It was
    # left out of band on the socket pair, where the engine never read it,
    # and the server waited for the line's end for ever.
    loopback_policy 1
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- timeout 60 python3 "$HELPERS/oob_inline.py"
    assert_ok
    assert_output "b'ABOR\\r\\n'"
}
