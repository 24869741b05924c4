#!/usr/bin/env bats
# Key logging exists only when the policy names settings.keylog_file: then
# every layer's secrets are appended there (mode 0600) and start-up warns
# that it is insecure. SSLKEYLOGFILE in the environment does nothing.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer inner
    nestls_bg server "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_match server.out '^port '
}

echo_once() {
    run --separate-stderr env SSLKEYLOGFILE="$BATS_TEST_TMPDIR/env-keys.txt" \
        "$NESTLS" run -p "$1" -- python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"ping"); assert s.recv(4) == b"ping"; s.close()' "$PORT"
    assert_ok
}

@test "keylog_file named in the policy gets both layers' secrets, mode 0600, with a warning" {
    client_policy client.yaml "$PORT" outer inner
    printf 'settings:\n  keylog_file: keys.txt\n' >>client.yaml
    echo_once client.yaml
    assert_log "$stderr" "warn: keylog_file $BATS_TEST_TMPDIR/keys.txt: .*INSECURE"
    assert_equal "$(stat -c %a keys.txt)" 600
    # TLS 1.3 logs one CLIENT_TRAFFIC_SECRET_0 per connection per layer
    assert_equal "$(grep -c '^CLIENT_TRAFFIC_SECRET_0 [0-9a-f]\{64\} [0-9a-f]\+$' keys.txt)" 2
    assert_equal "$(cut -d' ' -f2 keys.txt | sort -u | wc -l)" 2
    [[ ! -e env-keys.txt ]] || fail "SSLKEYLOGFILE was honoured"
}

@test "without keylog_file no secret is written anywhere, SSLKEYLOGFILE notwithstanding" {
    client_policy client.yaml "$PORT" outer inner
    echo_once client.yaml
    refute_log "$stderr" "keylog"
    [[ ! -e env-keys.txt ]] || fail "SSLKEYLOGFILE was honoured"
    run "$NESTLS" check client.yaml
    assert_output --partial "keylog_file:          off"
}
