#!/usr/bin/env bats
# PostgreSQL in the server role, through raw LD_PRELOAD as the postgres
# user (how a unit file or pg_ctl would start it): postgres links libraries
# whose constructors call into nestls's hooks before nestls's own
# constructor (it used to crash before main), and forks a backend per
# connection (the postmaster's engine serves each one). psql, wrapped in
# the client role, speaks plain PostgreSQL inside two TLS layers.

load helpers/common
load helpers/peers

PGBIN=/usr/lib/postgresql/15/bin

setup() {
    need_build
    need_cmd psql runuser
    [[ -x $PGBIN/postgres ]] || fail "postgresql 15 is not installed (make deps)"
    cd "$BATS_TEST_TMPDIR"
    # postgres runs as its own user: its files, and a copy of the server
    # keys, in a directory it owns (the test's own is root's).
    PGDIR=$(mktemp -d /tmp/nestls-pg.XXXXXX)
    echo "$PGDIR" >pgdir
    cp "$CERTS"/outer-server.pem "$CERTS"/outer-server.key "$CERTS"/inner-server.pem \
        "$CERTS"/inner-server.key "$PGDIR"/
    chmod 755 "$PGDIR"
    PORT=$(free_port)
    cat >"$PGDIR/server.yaml" <<EOF2
version: 1
rules:
  - name: postgres
    match: {role: server, port: [$PORT]}
    layers:
      - {cert: $PGDIR/outer-server.pem, key: $PGDIR/outer-server.key}
      - {cert: $PGDIR/inner-server.pem, key: $PGDIR/inner-server.key}
EOF2
    chown -R postgres "$PGDIR"
    runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" --auth=trust -U postgres >initdb.log 2>&1 ||
        fail "initdb: $(tail -3 initdb.log)"
    # Under test-asan, postgres's own OpenSSL start-up leaks, and with the
    # fast unwinder those stacks stop inside libcrypto, where the judge
    # cannot tell whose they are: leak checks are off for postgres only
    # (sanitizer errors still count; nestls's leaks are checked in every
    # other program the suites wrap).
    local asan=()
    [[ -z ${PRELOAD_FIRST:-} ]] || asan=("ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0")
    start_bg postgres runuser -u postgres -- env "${asan[@]}" \
        LD_PRELOAD="${PRELOAD_FIRST:+$PRELOAD_FIRST }$LIB" \
        NESTLS_POLICY="$PGDIR/server.yaml" "$PGBIN/postgres" -D "$PGDIR/data" \
        -c listen_addresses=127.0.0.1 -p "$PORT" -k "$PGDIR"
    wait_for_match postgres.err 'ready to accept connections' 30
    client_policy client.yaml "$PORT" outer inner
    CONN="host=127.0.0.1 port=$PORT user=postgres dbname=postgres sslmode=disable"
}

teardown() {
    nl_teardown
    [[ ! -f $BATS_TEST_TMPDIR/pgdir ]] || rm -rf "$(cat "$BATS_TEST_TMPDIR/pgdir")"
}

psql_wrapped() {
    "$NESTLS" run -p "$POLICY" -- psql "$CONN" -X -q -t -A "$@"
}

@test "postgres under LD_PRELOAD serves a wrapped psql: a query through two layers" {
    run --separate-stderr psql_wrapped -c "select 40 + 2"
    assert_ok
    assert_output "42"
    assert_log "$stderr" "rule 'client': client $ADDR -> $IP4:$PORT up in .*layer 2"
    refute_log "$(cat postgres.err)" 'nestls\[[0-9]+\] (error|warn)'
}

@test "COPY of 20,000 rows in and out through two layers, checksums equal" {
    seq 1 20000 | sed 's/$/\tline/' >rows.tsv
    run --separate-stderr psql_wrapped -c "create table t (n int, s text)"
    assert_ok
    run --separate-stderr psql_wrapped -c "\\copy t from 'rows.tsv'"
    assert_ok
    run --separate-stderr psql_wrapped -c "\\copy (select * from t order by n) to 'back.tsv'"
    assert_ok
    assert_equal "$(sha256 back.tsv)" "$(sha256 rows.tsv)"
}

@test "8 parallel sessions, each its own forked backend, all answer" {
    local k pids=()
    for k in 1 2 3 4 5 6 7 8; do
        psql_wrapped -c "select $k * 1000 + pg_backend_pid() * 0, pg_sleep(0.2)" >"out-$k" 2>"err-$k" &
        pids+=($!)
    done
    for k in 1 2 3 4 5 6 7 8; do
        wait "${pids[k - 1]}" || fail "session $k: $(cat "err-$k")"
        assert_equal "$(cat "out-$k")" "$((k * 1000))|"
    done
}
