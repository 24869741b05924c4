# nestls.bash: helpers for bats suites that test programs under nestls.
#
# Installed as PREFIX/share/nestls/nestls.bash. In a .bats file:
#
#   load /usr/share/nestls/nestls          # or: source /usr/share/nestls/nestls.bash
#   teardown() { nestls_teardown; }
#
#   @test "my client talks to a TLS server" {
#       nestls_start_s_server tls server.pem server.key -www
#       run nestls_client client.yaml curl -s "http://127.0.0.1:$NESTLS_PORT/"
#       [ "$status" -eq 0 ]
#   }
#
# Which nestls: $NESTLS_BIN, else $NESTLS_PREFIX/bin/nestls, else the
# bin/nestls of the prefix this file is installed in, else nestls on PATH.
# Nothing here depends on the nestls source tree.
#
# Every background program is started in its own session and process group
# and recorded by PID; nestls_teardown stops them all by PID (TERM, then
# KILL after $NESTLS_STOP_SECONDS) and never by name. Call the start
# functions directly from a test or setup, not inside $(...) or bats' run:
# only the shell that started a program can reap it.
#
# Files (program output NAME.out / NAME.err, configurations, captures) go to
# $NESTLS_WORKDIR, by default $BATS_TEST_TMPDIR (a fresh directory per test).
# Servers listen on 127.0.0.1 only. Every wait is bounded: $NESTLS_WAIT_SECONDS
# (default 10) for readiness, $NESTLS_TIMEOUT (default 60) for a client.
#
# Functions (each says more above its definition):
#   nestls_cmd ARGS...                         the nestls command itself
#   nestls_free_port                           a free TCP port on 127.0.0.1
#   nestls_start NAME CMD [ARGS...]            any program in the background
#   nestls_wait_port PORT [SECONDS]            until something listens on PORT
#   nestls_start_server [--port PORT] NAME POLICY CMD [ARGS...]
#                                              CMD under `nestls run` (server role)
#   nestls_client POLICY CMD [ARGS...]         CMD under `nestls run`, in the foreground
#   nestls_start_s_server [--port PORT] NAME CERT KEY [S_SERVER ARGS...]
#                                              a real TLS server: openssl s_server
#   nestls_start_stunnel_chain [--port PORT] NAME BACKEND_PORT CERT KEY [CERT KEY...]
#                                              N real TLS layers: stunnel, outermost first
#   nestls_make_certs DIR [NAME...]            a small PKI for tests
#   nestls_marker                              a fresh plaintext marker
#   nestls_capture_start PORT                  tcpdump of loopback TCP PORT
#   nestls_capture_stop [MIN_ENDS]             stop it once the connections ended
#   nestls_assert_not_in_clear MARKER          the capture has data, but not MARKER
#   nestls_assert_in_clear MARKER              the capture has MARKER (a control)
#   nestls_stop PID                            stop one program started here
#   nestls_teardown                            stop everything started here
#
# Needs: bash, coreutils, util-linux (setsid), iproute2 (ss); openssl,
# stunnel4 and tcpdump for the functions that use them. Capturing needs the
# right to open loopback with tcpdump (root, or CAP_NET_RAW).

NESTLS_WAIT_SECONDS=${NESTLS_WAIT_SECONDS:-10}
NESTLS_TIMEOUT=${NESTLS_TIMEOUT:-60}
NESTLS_STOP_SECONDS=${NESTLS_STOP_SECONDS:-5}

# Where this file lives, to find the nestls of its own install prefix.
_NESTLS_HELPER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ------------------------------------------------------------ the command

# _nestls_locate: print the nestls executable to use (see the top).
_nestls_locate() {
    local own
    if [[ -n ${NESTLS_BIN:-} ]]; then
        [[ -x $NESTLS_BIN ]] || { echo "nestls.bash: NESTLS_BIN=$NESTLS_BIN is not executable" >&2; return 1; }
        echo "$NESTLS_BIN"
        return 0
    fi
    if [[ -n ${NESTLS_PREFIX:-} ]]; then
        [[ -x $NESTLS_PREFIX/bin/nestls ]] ||
            { echo "nestls.bash: no $NESTLS_PREFIX/bin/nestls (NESTLS_PREFIX)" >&2; return 1; }
        echo "$NESTLS_PREFIX/bin/nestls"
        return 0
    fi
    if [[ $_NESTLS_HELPER_DIR == */share/nestls ]]; then
        own=${_NESTLS_HELPER_DIR%/share/nestls}/bin/nestls
        [[ -x $own ]] && { echo "$own"; return 0; }
    fi
    command -v nestls 2>/dev/null && return 0
    echo "nestls.bash: nestls not found: set NESTLS_BIN or NESTLS_PREFIX, or put it on PATH" >&2
    return 1
}

# nestls_cmd ARGS...: run the nestls command (check, explain, run...).
nestls_cmd() {
    local bin
    bin=$(_nestls_locate) || return 127
    "$bin" "$@"
}

# ------------------------------------------------------------ files, ports

# _nestls_dir: set NESTLS_WORKDIR, the directory for this test's files,
# when it is not set yet, and make it.
_nestls_dir() {
    if [[ -z ${NESTLS_WORKDIR:-} ]]; then
        if [[ -n ${BATS_TEST_TMPDIR:-} ]]; then
            NESTLS_WORKDIR=$BATS_TEST_TMPDIR
        else
            NESTLS_WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/nestls-test.XXXXXX") || return 1
        fi
    fi
    mkdir -p "$NESTLS_WORKDIR"
}

# _nestls_poll SECONDS CMD [ARGS...]: run CMD every 20 ms until it succeeds;
# false if it has not after SECONDS.
_nestls_poll() {
    local i n
    n=$(awk -v s="$1" 'BEGIN { printf "%d\n", s * 50 + 0.5 }')
    shift
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep 0.02
    done
    return 1
}

# nestls_free_port: print a TCP port that no socket on this machine uses,
# from 10000 up to the start of the kernel's ephemeral range (so that no
# outgoing connection takes it meanwhile), never one already handed out to
# this test.
nestls_free_port() {
    local dir lo port try
    _nestls_dir || return 1
    dir=$NESTLS_WORKDIR
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range || lo=32768
    ((lo > 11000)) || lo=32768
    for ((try = 0; try < 200; try++)); do
        port=$((10000 + (RANDOM * 32768 + RANDOM) % (lo - 10000)))
        grep -qx "$port" "$dir/.nestls-ports" 2>/dev/null && continue
        [[ -z $(ss -Htan "( sport = :$port or dport = :$port )" 2>/dev/null) ]] || continue
        echo "$port" >>"$dir/.nestls-ports"
        echo "$port"
        return 0
    done
    echo "nestls_free_port: no free port after $try tries" >&2
    return 1
}

# ------------------------------------------------------------ processes

# nestls_start NAME CMD [ARGS...]: run CMD in the background in a session
# and process group of its own, stdin from /dev/null, stdout to
# $NESTLS_WORKDIR/NAME.out and stderr to NAME.err. Sets NESTLS_PID.
nestls_start() {
    local name=$1 dir
    shift
    _nestls_dir || return 1
    dir=$NESTLS_WORKDIR
    setsid "$@" </dev/null >"$dir/$name.out" 2>"$dir/$name.err" 3>&- 4>&- &
    NESTLS_PID=$!
    echo "$NESTLS_PID $name" >>"$dir/.nestls-pids"
}

# _nestls_alive PID: PID runs and is not a zombie.
_nestls_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}
_nestls_gone() { ! _nestls_alive "$1"; }

# nestls_stop PID: TERM to PID's process group, wait up to
# $NESTLS_STOP_SECONDS, KILL what is left of the group, reap PID. Sets
# NESTLS_STATUS to PID's exit status (143 after TERM).
nestls_stop() {
    local pid=$1 rc=0 dir
    _nestls_dir || return 1
    dir=$NESTLS_WORKDIR
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    _nestls_poll "$NESTLS_STOP_SECONDS" _nestls_gone "$pid" || true
    # PID is not reaped yet, so its group id cannot have been reused.
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || rc=$?
    [[ ! -f $dir/.nestls-pids ]] || sed -i "/^$pid /d" "$dir/.nestls-pids"
    # shellcheck disable=SC2034 # for the caller
    NESTLS_STATUS=$rc
}

# nestls_teardown: stop every program started here (newest first), and on a
# failed test print the end of what each one wrote.
nestls_teardown() {
    local dir pid name f pids=()
    _nestls_dir || return 0
    dir=$NESTLS_WORKDIR
    if [[ -z ${BATS_TEST_COMPLETED:-} && -n ${BATS_TEST_NAME:-} ]]; then
        for f in "$dir"/*.out "$dir"/*.err; do
            [[ -s $f ]] || continue
            echo "--- ${f##*/} (last 20 lines):"
            tail -n 20 "$f"
        done
    fi
    [[ -f $dir/.nestls-pids ]] || return 0
    while read -r pid name; do
        pids=("$pid" "${pids[@]}")
    done <"$dir/.nestls-pids"
    for pid in "${pids[@]}"; do
        nestls_stop "$pid"
    done
    return 0
}

# nestls_wait_port PORT [SECONDS]: wait until something listens on TCP PORT
# (nothing connects to it, so a server sees no probe). Fails at once when
# the program started last has exited, showing its stderr.
nestls_wait_port() {
    local port=$1 secs=${2:-$NESTLS_WAIT_SECONDS}
    if _nestls_poll "$secs" _nestls_listening_or_dead "$port" && _nestls_listening "$port"; then
        return 0
    fi
    if [[ -n ${NESTLS_PID:-} ]] && ! _nestls_alive "$NESTLS_PID"; then
        echo "nestls_wait_port $port: process $NESTLS_PID exited before listening" >&2
    else
        echo "nestls_wait_port $port: nothing listening after $secs s" >&2
    fi
    _nestls_show_last >&2
    return 1
}
_nestls_listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
_nestls_listening_or_dead() {
    _nestls_listening "$1" || { [[ -n ${NESTLS_PID:-} ]] && ! _nestls_alive "$NESTLS_PID"; }
}
# The stderr of the program started last.
_nestls_show_last() {
    local dir name
    _nestls_dir || return 0
    dir=$NESTLS_WORKDIR
    name=$(awk -v p="${NESTLS_PID:-}" '$1 == p { print $2 }' "$dir/.nestls-pids" 2>/dev/null)
    [[ -n $name && -s $dir/$name.err ]] || return 0
    echo "--- $name.err:"
    tail -n 20 "$dir/$name.err"
}

# _nestls_take_port "$@": when the arguments start with --port PORT, use
# it; otherwise a free port. Sets _NESTLS_ARGC (arguments consumed) and
# NESTLS_PORT.
_nestls_take_port() {
    _NESTLS_ARGC=0
    if [[ ${1:-} == --port ]]; then
        [[ -n ${2:-} ]] || { echo "--port needs a PORT" >&2; return 1; }
        NESTLS_PORT=$2
        _NESTLS_ARGC=2
    else
        NESTLS_PORT=$(nestls_free_port) || return 1
    fi
}

# ------------------------------------------------------------ nestls roles

# nestls_start_server [--port PORT] NAME POLICY CMD [ARGS...]: start CMD
# under `nestls run -p POLICY` (a server the policy wraps in the server
# role) on a free port, every @PORT@ in CMD and ARGS replaced by it, and
# wait until it listens. Sets NESTLS_PORT and NESTLS_PID. For example:
#   nestls_start_server web server.yaml python3 -m http.server @PORT@ --bind 127.0.0.1
nestls_start_server() {
    local name policy bin arg args=()
    _nestls_take_port "$@" || return 1
    shift "$_NESTLS_ARGC"
    (($# >= 3)) || { echo "usage: nestls_start_server [--port PORT] NAME POLICY CMD [ARGS...]" >&2; return 2; }
    name=$1 policy=$2
    shift 2
    bin=$(_nestls_locate) || return 1
    for arg in "$@"; do
        args+=("${arg//@PORT@/$NESTLS_PORT}")
    done
    nestls_start "$name" "$bin" run -p "$policy" -- "${args[@]}"
    nestls_wait_port "$NESTLS_PORT"
}

# nestls_client POLICY CMD [ARGS...]: run CMD under `nestls run -p POLICY`
# in the foreground (stdin, stdout and stderr are the caller's), ended
# after $NESTLS_TIMEOUT seconds (exit status 124). For bats:
#   run nestls_client client.yaml curl -s "http://127.0.0.1:$NESTLS_PORT/"
nestls_client() {
    local policy=$1 bin
    (($# >= 2)) || { echo "usage: nestls_client POLICY CMD [ARGS...]" >&2; return 2; }
    shift
    bin=$(_nestls_locate) || return 127
    timeout --kill-after=5 "$NESTLS_TIMEOUT" "$bin" run -p "$policy" -- "$@"
}

# ------------------------------------------------------------ real TLS peers

# nestls_start_s_server [--port PORT] NAME CERT KEY [S_SERVER ARGS...]:
# openssl s_server on 127.0.0.1 and a free port with the certificate CERT
# and its key KEY; waits until it listens. Sets NESTLS_PORT and NESTLS_PID.
# Give it a mode: -www (a status page naming the protocol and suite),
# -WWW (files from $NESTLS_WORKDIR), -rev (each line echoed reversed);
# -Verify 1 -CAfile CA asks for a client certificate.
nestls_start_s_server() {
    local name cert key dir
    _nestls_take_port "$@" || return 1
    shift "$_NESTLS_ARGC"
    (($# >= 3)) || { echo "usage: nestls_start_s_server [--port PORT] NAME CERT KEY [ARGS...]" >&2; return 2; }
    name=$1 cert=$(_nestls_abs "$2") key=$(_nestls_abs "$3")
    shift 3
    _nestls_dir || return 1
    dir=$NESTLS_WORKDIR
    # shellcheck disable=SC2016 # expanded by that sh
    nestls_start "$name" sh -c 'cd "$0" && exec "$@"' "$dir" \
        openssl s_server -accept "127.0.0.1:$NESTLS_PORT" -cert "$cert" -key "$key" "$@"
    nestls_wait_port "$NESTLS_PORT"
}

# nestls_start_stunnel_chain [--port PORT] NAME BACKEND_PORT CERT KEY [CERT KEY...]:
# one stunnel process serving N nested TLS layers, the first pair the
# outermost: layer 1 accepts TLS on a free port (NESTLS_PORT) and passes
# what it decrypts to layer 2's port, and so on; the innermost layer passes
# plaintext to 127.0.0.1:BACKEND_PORT. Waits until every layer listens.
# Sets NESTLS_PORT, NESTLS_PID and NESTLS_CHAIN_PORTS (outermost first).
# A client needs the same N layers, outermost first, to talk through it.
nestls_start_stunnel_chain() {
    local name backend dir conf i n next port
    _nestls_take_port "$@" || return 1
    shift "$_NESTLS_ARGC"
    if (($# < 4 || $# % 2 != 0)); then
        echo "usage: nestls_start_stunnel_chain [--port PORT] NAME BACKEND_PORT CERT KEY [CERT KEY...]" >&2
        return 2
    fi
    name=$1 backend=$2
    shift 2
    n=$(($# / 2))
    _nestls_dir || return 1
    dir=$NESTLS_WORKDIR
    conf=$dir/$name.conf
    NESTLS_CHAIN_PORTS=("$NESTLS_PORT")
    for ((i = 1; i < n; i++)); do
        port=$(nestls_free_port) || return 1
        NESTLS_CHAIN_PORTS+=("$port")
    done
    {
        echo "foreground = yes"
        echo "pid ="
        echo "syslog = no"
        for ((i = 0; i < n; i++)); do
            if ((i + 1 < n)); then next=${NESTLS_CHAIN_PORTS[i + 1]}; else next=$backend; fi
            echo
            echo "[layer$((i + 1))]"
            echo "accept = 127.0.0.1:${NESTLS_CHAIN_PORTS[i]}"
            echo "connect = 127.0.0.1:$next"
            echo "cert = $(_nestls_abs "$1")"
            echo "key = $(_nestls_abs "$2")"
            shift 2
        done
    } >"$conf"
    nestls_start "$name" stunnel "$conf"
    for ((i = 0; i < n; i++)); do
        nestls_wait_port "${NESTLS_CHAIN_PORTS[i]}" || return 1
    done
}

# _nestls_abs PATH: PATH made absolute against the working directory.
_nestls_abs() {
    if [[ $1 == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi
}

# nestls_make_certs DIR [NAME...]: a small PKI for tests in DIR (made if
# needed), one set per NAME (default: outer inner): NAME-ca.pem (the CA),
# NAME-server.pem / .key (for localhost, 127.0.0.1 and ::1) and
# NAME-client.pem / .key (a client certificate), all signed by NAME-ca.
# ECDSA P-256, valid for 30 days, keys mode 0600.
nestls_make_certs() {
    local dir=$1 name kind ext cnf
    shift
    (($# > 0)) || set -- outer inner
    mkdir -p "$dir" || return 1
    cnf=$dir/.nestls-x509.cnf
    cat >"$cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
EOF
    for name in "$@"; do
        (
            umask 077
            openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                -keyout "$dir/$name-ca.key" -out "$dir/$name-ca.pem" -days 30 \
                -subj "/CN=$name test CA" -config "$cnf" -extensions ca 2>/dev/null || exit 1
            for kind in server client; do
                if [[ $kind == server ]]; then ext="/CN=localhost"; else ext="/CN=$name client"; fi
                openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                    -keyout "$dir/$name-$kind.key" -out "$dir/$name-$kind.csr" \
                    -subj "$ext" -config "$cnf" 2>/dev/null || exit 1
                openssl x509 -req -in "$dir/$name-$kind.csr" -CA "$dir/$name-ca.pem" \
                    -CAkey "$dir/$name-ca.key" -CAcreateserial -days 30 -sha256 \
                    -extfile "$cnf" -extensions "$kind" -out "$dir/$name-$kind.pem" 2>/dev/null || exit 1
                rm -f "$dir/$name-$kind.csr"
            done
            chmod 0644 "$dir/$name-ca.pem" "$dir/$name-server.pem" "$dir/$name-client.pem"
        ) || { echo "nestls_make_certs: openssl failed for '$name' in $dir" >&2; return 1; }
    done
    rm -f "$dir"/*.srl
}

# ------------------------------------------------------------ the wire

# nestls_marker: print a plaintext marker no other byte stream contains.
nestls_marker() {
    echo "nestls-marker-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
}

# nestls_capture_start PORT: tcpdump of loopback TCP port PORT into
# $NESTLS_WORKDIR/wire.pcap (NESTLS_CAPTURE), returning once it listens.
nestls_capture_start() {
    local dir
    _nestls_dir || return 1
    dir=$NESTLS_WORKDIR
    command -v tcpdump >/dev/null || { echo "nestls_capture_start: tcpdump is not installed" >&2; return 1; }
    NESTLS_CAPTURE=$dir/wire.pcap
    # --immediate-mode: without it some sandboxed kernels deliver no packet.
    nestls_start tcpdump tcpdump --immediate-mode -U -n -i lo -w "$NESTLS_CAPTURE" "tcp port $1"
    NESTLS_CAPTURE_PID=$NESTLS_PID
    _nestls_poll "$NESTLS_WAIT_SECONDS" grep -qs 'listening on' "$dir/tcpdump.err" || {
        echo "nestls_capture_start: tcpdump did not start:" >&2
        cat "$dir/tcpdump.err" >&2
        return 1
    }
}

# _nestls_capture_count FILTER: packets of the capture that match FILTER.
_nestls_capture_count() {
    tcpdump -n -r "$NESTLS_CAPTURE" "$1" 2>/dev/null | wc -l
}
_nestls_capture_ends() {
    (($(_nestls_capture_count 'tcp[tcpflags] & (tcp-fin|tcp-rst) != 0') >= $1))
}

# nestls_capture_stop [MIN_ENDS]: wait (bounded) until the capture holds at
# least MIN_ENDS (default 1) packets with FIN or RST, so that the last
# bytes of the connections are in it, then stop tcpdump.
nestls_capture_stop() {
    [[ -n ${NESTLS_CAPTURE_PID:-} ]] || { echo "nestls_capture_stop: no capture running" >&2; return 1; }
    _nestls_poll "$NESTLS_WAIT_SECONDS" _nestls_capture_ends "${1:-1}" || true
    nestls_stop "$NESTLS_CAPTURE_PID"
    NESTLS_CAPTURE_PID=
}

# nestls_assert_not_in_clear MARKER: the stopped capture holds TCP payload
# (so there is something to prove) and MARKER appears nowhere in it. A
# marker written in one piece travels in one segment; one split across
# segments would not be seen, so keep markers short.
nestls_assert_not_in_clear() {
    local data hits
    [[ -s ${NESTLS_CAPTURE:-} ]] || { echo "nestls_assert_not_in_clear: no capture (nestls_capture_start)" >&2; return 1; }
    data=$(_nestls_capture_count 'tcp[tcpflags] & tcp-push != 0')
    ((data > 0)) || { echo "nestls_assert_not_in_clear: the capture holds no data packet: nothing to prove" >&2; return 1; }
    hits=$(grep -a -c -F -- "$1" "$NESTLS_CAPTURE" || true)
    ((hits == 0)) || { echo "nestls_assert_not_in_clear: '$1' crossed the wire in clear ($hits times)" >&2; return 1; }
}

# nestls_assert_in_clear MARKER: the stopped capture holds MARKER (the
# control experiment: the same capture does see plaintext).
nestls_assert_in_clear() {
    [[ -s ${NESTLS_CAPTURE:-} ]] || { echo "nestls_assert_in_clear: no capture (nestls_capture_start)" >&2; return 1; }
    grep -a -q -F -- "$1" "$NESTLS_CAPTURE" ||
        { echo "nestls_assert_in_clear: '$1' is not in the capture" >&2; return 1; }
}
