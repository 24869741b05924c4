#!/usr/bin/env bats
# A real client/server pair, both ends wrapped in two layers with mutual
# TLS on the outer one: redis-server, redis-cli, redis-benchmark (many
# parallel non-blocking connections).

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd redis-server redis-cli redis-benchmark
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    server_policy server.yaml "$PORT" outer-mtls inner
    nestls_bg redis "$POLICY" redis-server --port "$PORT" --bind 127.0.0.1 \
        --save '' --appendonly no --dir "$BATS_TEST_TMPDIR" --protected-mode yes
    SERVER_PID=$BG_PID
    wait_for_port "$PORT"
    client_policy client.yaml "$PORT" outer-mtls inner
}

@test "redis-cli SET then GET returns the value through two layers with mTLS on the outer" {
    local value
    value=$(openssl rand -base64 3000 | tr -d '\n')
    run --separate-stderr nestls_run "$POLICY" redis-cli -h 127.0.0.1 -p "$PORT" SET nestls:key "$value"
    assert_ok
    assert_output OK
    run --separate-stderr nestls_run "$POLICY" redis-cli -h 127.0.0.1 -p "$PORT" GET nestls:key
    assert_ok
    assert_output "$value"
    # the server saw the client's outer certificate and none on the inner layer
    wait_for_match redis.err \
        "^nestls\[$SERVER_PID\] info: rule 'server': server $IP4:$PORT <- $ADDR up in [0-9.]+ ms: layer 1 $(layer_re nestls-client-outer); layer 2 TLSv1\.3 TLS_[A-Z0-9_]+ sni [^ ]+ peer \"-\" verified - alpn -$"
}

@test "redis-benchmark SET and GET (200 requests, 50 parallel clients) complete through two layers" {
    run --separate-stderr nestls_run "$POLICY" timeout 120 \
        redis-benchmark -h 127.0.0.1 -p "$PORT" -n 200 -t set,get -q
    assert_ok
    local results # -q redraws a progress line with \r before each result
    results=$(tr '\r' '\n' <<<"$output")
    assert_log "$results" '^SET: [0-9.]+ requests per second'
    assert_log "$results" '^GET: [0-9.]+ requests per second'
    refute_log "$stderr" ' error: '
}

@test "redis-cli without the outer client certificate is refused and never reaches redis" {
    client_policy no-cert.yaml "$PORT" outer inner
    run --separate-stderr nestls_run "$POLICY" redis-cli -h 127.0.0.1 -p "$PORT" SET nestls:key leaked
    # redis-cli reports the connection failure (exit 1, or an error text)
    refute_output OK
    # the server refused the outer layer for want of a certificate
    wait_for_match redis.err \
        "^nestls\[$SERVER_PID\] info: rule 'server': server $IP4:$PORT <- $ADDR layer 1: peer did not return a certificate \\(this layer's 'client_ca' requires a client certificate\\)$"
    # and the key was never set
    client_policy client.yaml "$PORT" outer-mtls inner
    run --separate-stderr nestls_run "$POLICY" redis-cli -h 127.0.0.1 -p "$PORT" EXISTS nestls:key
    assert_ok
    assert_output 0
}
