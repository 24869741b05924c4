#!/usr/bin/env bats
# Session resumption: a client process that connects to the same server
# again resumes every layer (no full handshake), and a resumed connection
# still carries the bytes and still names the peer's certificate.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
}

@test "a second connection to the same server resumes both layers and still echoes" {
    server_policy server.yaml "$PORT" outer inner
    nestls_bg server "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_match server.out '^port '
    client_policy client.yaml "$PORT" outer inner
    run --separate-stderr nestls_run "$POLICY" python3 -c '
import socket, sys
for i in range(3):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"hello %d" % i)
    assert s.recv(64) == b"hello %d" % i
    s.close()
print("3 echoes")' "$PORT"
    assert_ok
    assert_output "3 echoes"
    up=$(grep " up in " <<<"$stderr")
    assert_equal "$(wc -l <<<"$up")" 3
    # the first connection makes full handshakes, the next ones resume
    refute_log "$(head -1 <<<"$up")" "resumed"
    assert_equal "$(grep -Ec "layer 1 $(layer_re localhost); layer 2 $(layer_re localhost)$" <<<"$up")" 3
    assert_equal "$(grep -c 'alpn - resumed; layer 2 .* alpn - resumed$' <<<"$up")" 2
}
