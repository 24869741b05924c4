#!/usr/bin/env bats
# The library's start-up contract: a preloaded program without a valid
# policy never runs (it would speak plaintext where TLS was meant). It stops
# before main with exit status 78 and one line on stderr,
#   nestls[PID] error: FILE:LINE:COL: what is wrong
# and makes no connection. A valid policy whose rules do not match leaves
# the program's connections exactly as they were (passthrough).

load helpers/common

setup() {
    need_build
    need_cmd curl python3
    cd "$BATS_TEST_TMPDIR"
}

# preloaded CMD...: run CMD with the library preloaded and NESTLS_POLICY as
# the caller set it. Prints "pid N" first: the PID the program runs as
# (env and CMD are exec'd in place), so the error line's PID can be checked.
preloaded() {
    sh -c 'echo "pid $$"; exec env LD_PRELOAD="$0" "$@"' "${PRELOAD_FIRST:+$PRELOAD_FIRST }$LIB" "$@"
}

# assert_refused REGEX: the last `run --separate-stderr preloaded ...` exited
# 78 before the program ran, with one stderr line "nestls[PID] error: "
# + REGEX, PID being the program's.
assert_refused() {
    assert_failure 78
    local pid
    pid=$(sed -n 's/^pid //p' <<<"$output")
    [[ -n $pid ]] || fail "no pid line in: $output"
    assert_output "pid $pid" # the program printed nothing: it never ran
    [[ $(wc -l <<<"$stderr") -eq 1 ]] || fail "expected one stderr line, got: $stderr"
    [[ $stderr =~ ^nestls\[$pid\]\ error:\ $1 ]] ||
        fail "stderr does not match 'nestls[$pid] error: $1': $stderr"
}

write_invalid_policy() {
    write_policy bad.yaml <<'EOF'
version: 1
rules:
  - name: typo
    match:
      role: client
    layers:
      - servr_name: localhost
        ca: @CERTS@/outer-ca.pem
EOF
}

@test "NESTLS_POLICY unset: the preloaded program stops before main, exit 78, one line naming NESTLS_POLICY" {
    unset NESTLS_POLICY
    run --separate-stderr preloaded sh -c 'echo ran'
    assert_refused '.*NESTLS_POLICY'
}

@test "NESTLS_POLICY names a missing file: exit 78, one line naming the file" {
    NESTLS_POLICY=$BATS_TEST_TMPDIR/no-such-policy.yaml \
        run --separate-stderr preloaded sh -c 'echo ran'
    assert_refused ".*no-such-policy\.yaml.*No such file"
}

@test "NESTLS_POLICY is invalid: exit 78, one line with FILE:LINE:COL of the fault" {
    write_invalid_policy
    NESTLS_POLICY=bad.yaml run --separate-stderr preloaded sh -c 'echo ran'
    assert_refused "bad\.yaml:7:9: .*unknown key 'servr_name'"
}

@test "a policy whose certificate key does not match stops the program, naming the key's line" {
    write_policy bad.yaml <<'EOF'
version: 1
rules:
  - name: server
    match:
      role: server
    layers:
      - cert: @CERTS@/mismatch.pem
        key: @CERTS@/mismatch.key
EOF
    NESTLS_POLICY=bad.yaml run --separate-stderr preloaded sh -c 'echo ran'
    assert_refused "bad\.yaml:8:14: "
}

@test "an invalid policy makes no connection: curl exits 78 and the listener sees nothing" {
    start_bg sink python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink"
    wait_for_match "$BATS_TEST_TMPDIR/sink.out" '^port [0-9]+$'
    local port
    port=$(awk '{ print $2 }' "$BATS_TEST_TMPDIR/sink.out")
    write_invalid_policy

    NESTLS_POLICY=bad.yaml run --separate-stderr preloaded curl -sS --max-time 10 "http://127.0.0.1:$port/"
    assert_refused "bad\.yaml:7:9: "
    # The same through `nestls run`, which refuses before exec.
    run --separate-stderr "$NESTLS" run -p bad.yaml -- curl -sS --max-time 10 "http://127.0.0.1:$port/"
    assert_failure 78
    [[ $stderr =~ ^nestls:\ bad\.yaml:7:9:\  ]] || fail "stderr: $stderr"

    # A plain connection is recorded (the listener works) ...
    run "$TESTBIN/tcpclient" 127.0.0.1 "$port" </dev/null
    assert_success
    wait_for_file "$BATS_TEST_TMPDIR/sink/accepted.log"
    # ... and it is the only one.
    run wc -l <"$BATS_TEST_TMPDIR/sink/accepted.log"
    assert_output 1
}

@test "a valid policy whose rules do not match passes connections through untouched" {
    # Rules for an address nobody here uses; the default action is passthrough.
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: elsewhere
    match:
      address: [192.0.2.0/24]
    layers:
      - cert: @CERTS@/outer-server.pem
        key: @CERTS@/outer-server.key
        ca: @CERTS@/outer-ca.pem
EOF
    mkdir www
    head -c 300000 /dev/urandom >www/file.bin
    local port
    port=$(free_port)
    nestls_bg http "$POLICY" python3 -m http.server "$port" --bind 127.0.0.1 --directory www
    wait_for_port "$port"

    NESTLS_POLICY=$POLICY run --separate-stderr preloaded curl -sS --max-time 20 -o got.bin \
        "http://127.0.0.1:$port/file.bin"
    assert_success
    assert_equal "$(sha256 got.bin)" "$(sha256 www/file.bin)"
    # Passthrough is silent: at info (the suites' level, common.bash) the
    # one line is the start-up line, saying unmatched connections pass in
    # plaintext (at the default level there is none: logging_quiet.bats).
    assert_equal "$(wc -l <<<"$stderr")" 1
    [[ $stderr =~ ^nestls\[[0-9]+\]\ info:\ policy\ .*:\ 1\ rule\;\ connections\ no\ rule\ matches\ are\ passed\ through\ in\ plaintext$ ]] ||
        fail "expected only the start-up line, got: $stderr"
}

@test "a valid policy lets the preloaded program run normally and keep its exit status" {
    write_policy policy.yaml <<'EOF'
version: 1
settings:
  default_action: deny
rules:
  - name: elsewhere
    match:
      address: [192.0.2.0/24]
    action: passthrough
EOF
    NESTLS_POLICY=$POLICY run --separate-stderr preloaded sh -c 'echo ran; exit 3'
    assert_failure 3
    assert_line ran
    assert_equal "$(wc -l <<<"$stderr")" 1 # the start-up line only
    [[ $stderr =~ ^nestls\[[0-9]+\]\ info:\ policy\ .*:\ 1\ rule\;\ connections\ no\ rule\ matches\ are\ denied$ ]] ||
        fail "expected only the start-up line, got: $stderr"
}

@test "inside a setuid program nestls refuses to start: exit 78 before main, one line; without the bit the program runs" {
    need_cmd cc setpriv
    [[ $(id -u) == 0 ]] || skip "needs root to make a setuid-root program"
    # A sanitizer build needs its runtime loaded first, which a setuid
    # program cannot preload: it aborts before nestls runs. make test runs this.
    [[ -z ${PRELOAD_FIRST:-} ]] || skip "a sanitizer runtime cannot be preloaded into a setuid program"
    # A program linked against libnestls.so (the loader ignores LD_PRELOAD
    # for setuid programs, but a library named at link time still loads),
    # run as nobody so that the kernel marks it AT_SECURE. Everything it
    # needs lives in a directory the user nobody can read.
    local dir
    dir=$(mktemp -d /tmp/nestls-setuid.XXXXXX)
    chmod 755 "$dir"
    cp "$BUILD/libnestls.so" "$dir/"
    printf 'int puts(const char *);\nint main(void) { puts("main ran"); return 0; }\n' >"$dir/hello.c"
    cc -o "$dir/hello" "$dir/hello.c" -L"$dir" -Wl,--no-as-needed -lnestls -Wl,-rpath,"$dir"
    printf 'version: 1\nrules: []\n' >"$dir/policy.yaml"
    chmod 644 "$dir/policy.yaml" "$dir/libnestls.so"

    chmod 4755 "$dir/hello"
    run --separate-stderr setpriv --reuid=nobody --regid=nogroup --clear-groups \
        env NESTLS_POLICY="$dir/policy.yaml" "$dir/hello"
    local setuid_status=$status setuid_out=$output setuid_err=$stderr

    chmod 0755 "$dir/hello"
    run --separate-stderr setpriv --reuid=nobody --regid=nogroup --clear-groups \
        env NESTLS_POLICY="$dir/policy.yaml" "$dir/hello"
    rm -rf "$dir"

    assert_equal "$setuid_status" 78
    assert_equal "$setuid_out" ''
    [[ $setuid_err =~ ^nestls\[[0-9]+\]\ error:\ refusing\ to\ run\ inside\ a\ setuid/setgid\ program ]] ||
        fail "unexpected message: $setuid_err"
    assert_equal "$(wc -l <<<"$setuid_err")" 1
    assert_success
    assert_output 'main ran'
}
