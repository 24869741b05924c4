#!/usr/bin/env bats
# nginx in the server role, as Debian runs it: daemon on (the process that
# opened the listener forks the master and exits), a master and two
# prefork workers sharing the listener, a reload (SIGHUP: new workers, the
# same listener). nestls serves the handshakes of the listener nginx
# opened (a relay process takes it over when that first process exits) and
# the workers' accept() returns only connections whose layer is up.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd nginx curl
    # Under test-asan, LeakSanitizer's check at exit (it stops the world
    # from a tracer it clones) hangs now and then in an nginx process that
    # exits: the daemon's first process (nobody serves the handshakes, the
    # first download times out) or an old worker after the reload (it never
    # goes away). Leak checks are off for nginx only; sanitizer errors still
    # count, and nestls's leaks are checked in every other program.
    [[ -z ${PRELOAD_FIRST:-} ]] || export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
    cd "$BATS_TEST_TMPDIR"
    PORT=$(free_port)
    mkdir -p www logs
    make_file www/file.bin 1M
    TMP=$BATS_TEST_TMPDIR
    expand_vars >nginx.conf <<'EOF'
daemon on;
master_process on;
worker_processes 2;
user root;
pid @TMP@/nginx.pid;
error_log @TMP@/logs/error.log info;
events { worker_connections 64; }
http {
    access_log @TMP@/logs/access.log;
    client_body_temp_path @TMP@/logs/body;
    proxy_temp_path @TMP@/logs/proxy;
    fastcgi_temp_path @TMP@/logs/fastcgi;
    uwsgi_temp_path @TMP@/logs/uwsgi;
    scgi_temp_path @TMP@/logs/scgi;
    server {
        listen 127.0.0.1:@PORT@;
        root @TMP@/www;
    }
}
EOF
    write_policy server.yaml <<'EOF'
version: 1
settings:
  log_file: @TMP@/logs/nestls.log
rules:
  - name: nginx
    match: {role: server, address: 127.0.0.1, port: @PORT@}
    layers:
      - {cert: @CERTS@/outer-server.pem, key: @CERTS@/outer-server.key}
EOF
}

teardown() {
    local master
    master=$(cat nginx.pid 2>/dev/null) || true
    [[ -z $master ]] || kill -TERM "$master" 2>/dev/null || true
    [[ -z $master ]] || poll 5 is_gone "$master" || kill -KILL "$master" 2>/dev/null || true
    nl_teardown
}

# fetch_all N: N curl downloads over https, each intact.
fetch_all() {
    local i
    for ((i = 1; i <= $1; i++)); do
        curl -sS --max-time 10 --cacert "$CERTS/outer-ca.pem" -o got.bin "https://127.0.0.1:$PORT/file.bin" ||
            fail "download $i failed
$(describe_workers)
nestls: $(tail -n 40 logs/nestls.log)
nginx: $(tail -n 20 logs/error.log)"
        assert_equal "$(sha256 got.bin)" "$(sha256 www/file.bin)"
    done
}

worker_pids() {
    pgrep -P "$(cat nginx.pid)" | sort
}

# describe_workers: each child of the master, its state and where it waits.
describe_workers() {
    local pid
    for pid in $(worker_pids); do
        echo "worker $pid: $(ps -o stat=,wchan:32=,etime= -p "$pid") threads: $(ls /proc/$pid/task 2>/dev/null | wc -l)"
        ! command -v gdb >/dev/null || timeout 30 gdb -batch -p "$pid" -ex 'thread apply all bt' 2>/dev/null | grep '^#'
    done
}

@test "nginx daemon, master and two workers serve https through nestls; plaintext clients never reach a worker; a reload keeps serving" {
    run --separate-stderr "$NESTLS" run -p "$POLICY" -- nginx -c "$BATS_TEST_TMPDIR/nginx.conf" -p "$BATS_TEST_TMPDIR"
    assert_ok
    wait_for_file nginx.pid
    poll 10 test "$(worker_pids | wc -l)" -eq 2 || fail "nginx workers: $(worker_pids)"
    fetch_all 20
    # Plaintext and garbage never reach nginx: no 400 in its access log.
    local i
    for i in 1 2 3; do
        curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$PORT/file.bin" || true
    done
    fetch_all 5
    assert_equal "$(grep -c ' 200 ' logs/access.log)" 25
    refute_log "$(cat logs/access.log)" '" 400 '
    # Reload: new workers on the same listener.
    local old
    old=$(worker_pids)
    kill -HUP "$(cat nginx.pid)"
    poll 10 bash -c '[[ $(pgrep -P "$1" | sort) != "$2" && $(pgrep -P "$1" | wc -l) -eq 2 ]]' _ "$(cat nginx.pid)" "$old" ||
        fail "no new workers after the reload: $(worker_pids | tr '\n' ' ')
$(describe_workers)
nestls: $(tail -n 40 logs/nestls.log)
nginx: $(tail -n 30 logs/error.log)"
    fetch_all 10
    # Stop: once nginx is gone, nothing listens on the port any more.
    kill -TERM "$(cat nginx.pid)"
    poll 10 bash -c '! ss -Hltn "sport = :$1" | grep -q .' _ "$PORT" ||
        fail "still listening after nginx stopped: $(ss -Hltnp "sport = :$PORT")"
}
