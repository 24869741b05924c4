# Real peers and wire captures for the engine suites (load after common):
# openssl s_server, stunnel, the python servers in tests/helpers, tcpdump.
# Every function that starts something uses start_bg, so teardown kills it.

# Patterns for the log lines of tests/CONTRACT.md.
IP4='127\.0\.0\.1'
ADDR="$IP4:[0-9]+"

# new_marker: a plaintext marker no other test (or byte stream) contains.
new_marker() {
    echo "nestls-plaintext-marker-$(openssl rand -hex 8)"
}

# port_of NAME: the port a python helper started as NAME printed ("port N").
port_of() {
    wait_for_match "$BATS_TEST_TMPDIR/$1.out" '^port [0-9]+$' >&2 || return 1
    awk '/^port / { print $2; exit }' "$BATS_TEST_TMPDIR/$1.out"
}

# start_s_server NAME PORT CERT [OPENSSL ARGS...]: openssl s_server on
# 127.0.0.1:PORT with certs/CERT.pem and CERT.key, working directory the
# test's (so -WWW serves the test's files). Waits until it listens.
start_s_server() {
    local name=$1 port=$2 cert=$3
    shift 3
    start_bg "$name" sh -c 'cd "$0" && exec "$@"' "$BATS_TEST_TMPDIR" \
        openssl s_server -accept "127.0.0.1:$port" \
        -cert "$CERTS/$cert.pem" -key "$CERTS/$cert.key" "$@"
    wait_for_port "$port"
}

# start_stunnel NAME <<EOF ... EOF: stunnel in the foreground with the
# service sections from stdin (@VAR@ replaced as in write_policy), its
# config, pid file and log in the test's directory. The caller waits for
# its accept ports.
start_stunnel() {
    local name=$1 conf=$BATS_TEST_TMPDIR/$1.conf
    {
        echo "foreground = yes"
        echo "pid = $BATS_TEST_TMPDIR/$name.pid"
        echo "debug = 5"
        echo "syslog = no"
        echo
        cat
    } | expand_vars >"$conf"
    start_bg "$name" stunnel "$conf"
}

# start_stunnel_chain: two chained stunnel servers in front of a plain
# http.server for the test's www/ (made if missing):
#   127.0.0.1:PORT (outer CA) -> PORT2 (inner CA) -> PORT3 http.server
# so that a client of PORT meets two independent TLS layers. Sets PORT,
# PORT2 and PORT3; returns once all three listen.
start_stunnel_chain() {
    need_cmd stunnel
    PORT=$(free_port) PORT2=$(free_port) PORT3=$(free_port)
    mkdir -p "$BATS_TEST_TMPDIR/www"
    serve_http http "$PORT3" "$BATS_TEST_TMPDIR/www"
    start_stunnel_server inner "$PORT2" "$PORT3"
    start_stunnel_server outer "$PORT" "$PORT2"
}

# start_stunnel_server LAYER ACCEPT CONNECT: a stunnel TLS server named
# LAYER (outer or inner: whose certificate it shows) on 127.0.0.1:ACCEPT,
# relaying in plaintext to 127.0.0.1:CONNECT; returns once it listens.
start_stunnel_server() {
    local layer=$1 accept=$2 connect=$3
    start_stunnel "$layer" < <(printf '%s\n' "[$layer]" "accept = 127.0.0.1:$accept" \
        "connect = 127.0.0.1:$connect" "cert = $CERTS/$layer-server.pem" \
        "key = $CERTS/$layer-server.key")
    wait_for_port "$accept"
}

# serve_http NAME PORT DIR [POLICY]: python3 -m http.server for DIR on
# 127.0.0.1:PORT, under `nestls run -p POLICY` when POLICY is given.
serve_http() {
    local name=$1 port=$2 dir=$3 policy=${4:-}
    local cmd=(python3 -m http.server "$port" --bind 127.0.0.1 --directory "$dir")
    if [[ -n $policy ]]; then
        nestls_bg "$name" "$policy" "${cmd[@]}"
    else
        start_bg "$name" "${cmd[@]}"
    fi
    wait_for_port "$port"
}

# make_file PATH SIZE: SIZE bytes of the test stream (build/tests/pattern).
make_file() {
    "$TESTBIN/pattern" "$2" >"$1"
}

# ------------------------------------------------------------ wire capture

# capture_start PORT: tcpdump of loopback TCP port PORT into
# $BATS_TEST_TMPDIR/wire.pcap, returning once tcpdump is listening.
# (--immediate-mode: without it, some sandboxed kernels deliver no packet.)
capture_start() {
    need_cmd tcpdump
    CAPTURE=$BATS_TEST_TMPDIR/wire.pcap
    start_bg tcpdump tcpdump --immediate-mode -U -n -i lo -w "$CAPTURE" "tcp port $1"
    CAPTURE_PID=$BG_PID
    wait_for_match "$BATS_TEST_TMPDIR/tcpdump.err" 'listening on'
}

# capture_count FILTER: packets in the capture matching the tcpdump FILTER.
capture_count() {
    tcpdump -n -r "$CAPTURE" "$1" 2>/dev/null | wc -l
}

# capture_stop MIN_ENDS: wait until the capture holds at least MIN_ENDS
# packets with FIN or RST (so the connections' last bytes were captured),
# then stop tcpdump.
capture_stop() {
    poll "$WAIT_SECONDS" capture_has_ends "$1" || true
    stop_bg "$CAPTURE_PID" INT
}
capture_has_ends() {
    (($(capture_count 'tcp[tcpflags] & (tcp-fin|tcp-rst) != 0') >= $1))
}

# assert_not_on_wire MARKER: the stopped capture holds TCP payload but not
# MARKER anywhere.
assert_not_on_wire() {
    local payload
    payload=$(capture_count 'tcp[tcpflags] & tcp-push != 0')
    ((payload > 0)) || fail "the capture holds no data packet at all: nothing to prove"
    run grep -a -c -F -- "$1" "$CAPTURE"
    assert_output 0
}

# assert_on_wire MARKER: the opposite, for the control experiments.
assert_on_wire() {
    run grep -a -c -F -- "$1" "$CAPTURE"
    [[ $output -ge 1 ]] || fail "marker not found in the capture"
}

# ------------------------------------------------------------ nestls runs

# nestls_run POLICY CMD [ARGS...]: `nestls run -p POLICY -- CMD`, for use as
# `run --separate-stderr nestls_run ...`. The first stderr line is "pid N",
# the PID CMD runs as (nestls run execs it), so log lines can be matched
# to it: see run_pid.
nestls_run() {
    local policy=$1
    shift
    sh -c 'echo "pid $$" >&2; exec "$0" "$@"' "$NESTLS" run -p "$policy" -- "$@"
}

# run_pid: the PID nestls_run reported in the last run's stderr.
run_pid() {
    sed -n '1s/^pid //p' <<<"$stderr"
}

# assert_log TEXT REGEX: some line of TEXT matches the extended REGEX.
assert_log() {
    grep -Eq -- "$2" <<<"$1" || fail "no line matches: $2
--- in:
$1"
}

# refute_log TEXT REGEX: no line of TEXT matches.
refute_log() {
    ! grep -Eq -- "$2" <<<"$1" || fail "unexpected line matching: $2
--- in:
$1"
}

# One TLS 1.3 layer as the established line shows it, peer subject CN=$1
# (any SNI, any name or address verified).
layer_re() {
    echo "TLSv1\.3 TLS_[A-Z0-9_]+ sni [^ ]+ peer \"CN=$1\" verified [^ ]+ alpn -( resumed)?"
}

# ---------------------------------------------------------------- policies

# loopback_policy LAYERS: both roles wrapped on 127.0.0.1, every port, in
# LAYERS layers (1: the outer CA's; 2: outer, then inner); each layer has
# the CA, the certificate and the key, so that one process can be client
# and server. Sets POLICY.
loopback_policy() {
    local inner=
    (($1 >= 2)) && inner='      - ca: @CERTS@/inner-ca.pem
        cert: @CERTS@/inner-server.pem
        key: @CERTS@/inner-server.key'
    write_policy loopback.yaml < <(printf '%s\n' 'version: 1' 'rules:' '  - name: loopback' \
        '    match: {address: 127.0.0.1}' '    layers:' '      - ca: @CERTS@/outer-ca.pem' \
        '        cert: @CERTS@/outer-server.pem' '        key: @CERTS@/outer-server.key' \
        ${inner:+"$inner"})
}

# client_policy FILE PORT LAYER...: rule 'client' wrapping client
# connections to 127.0.0.1:PORT in the LAYERs, outermost first:
#   outer       trust the outer CA
#   outer-mtls  trust the outer CA and show outer-client.pem
#   inner       trust the inner CA
# Sets POLICY.
client_policy() {
    local file=$1 port=$2 layer
    shift 2
    for layer in "$@"; do
        [[ $layer == @(outer|outer-mtls|inner) ]] || fail "client_policy: unknown layer '$layer'"
    done
    write_policy "$file" < <(
        printf 'version: 1\nrules:\n  - name: client\n    match:\n'
        printf '      role: client\n      address: [127.0.0.1]\n      port: [%s]\n' "$port"
        printf '    layers:\n'
        for layer in "$@"; do
            case $layer in
                outer) printf '      - ca: %s/outer-ca.pem\n' "$CERTS" ;;
                outer-mtls)
                    printf '      - ca: %s/outer-ca.pem\n' "$CERTS"
                    printf '        cert: %s/outer-client.pem\n' "$CERTS"
                    printf '        key: %s/outer-client.key\n' "$CERTS"
                    ;;
                inner) printf '      - ca: %s/inner-ca.pem\n' "$CERTS" ;;
            esac
        done
    )
}

# server_policy FILE PORT LAYER...: rule 'server' wrapping connections
# accepted on 127.0.0.1:PORT in the LAYERs, outermost first:
#   outer       outer-server.pem
#   outer-mtls  outer-server.pem, and require a client certificate from the outer CA
#   inner       inner-server.pem
# Sets POLICY.
server_policy() {
    local file=$1 port=$2 layer
    shift 2
    for layer in "$@"; do
        [[ $layer == @(outer|outer-mtls|inner) ]] || fail "server_policy: unknown layer '$layer'"
    done
    write_policy "$file" < <(
        printf 'version: 1\nrules:\n  - name: server\n    match:\n'
        printf '      role: server\n      address: [127.0.0.1]\n      port: [%s]\n' "$port"
        printf '    layers:\n'
        for layer in "$@"; do
            case $layer in
                outer | outer-mtls)
                    printf '      - cert: %s/outer-server.pem\n' "$CERTS"
                    printf '        key: %s/outer-server.key\n' "$CERTS"
                    [[ $layer == outer ]] || printf '        client_ca: %s/outer-ca.pem\n' "$CERTS"
                    ;;
                inner)
                    printf '      - cert: %s/inner-server.pem\n' "$CERTS"
                    printf '        key: %s/inner-server.key\n' "$CERTS"
                    ;;
            esac
        done
    )
}

# wrapped_echo LAYER...: a threaded echo server (echo_server.py) wrapped
# in the server role with LAYERs (as server_policy), started as "echo" on
# a fresh PORT and waited for; then POLICY is the matching client policy
# (client_policy). Sets PORT and POLICY.
wrapped_echo() {
    PORT=$(free_port)
    server_policy server.yaml "$PORT" "$@"
    nestls_bg echo "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$PORT"
    wait_for_port "$PORT"
    client_policy client.yaml "$PORT" "$@"
}
