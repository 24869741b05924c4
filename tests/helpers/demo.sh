#!/usr/bin/env bash
# make demo: show nestls wrapping a plaintext HTTP server and a plaintext
# HTTP client in two nested TLS layers (policy/demo.yaml), and prove from a
# capture of the loopback wire that no plaintext crossed it.
#
# Run by `make demo` after the build and `make certs`. Every process it
# starts is stopped by its PID when it ends, however it ends.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NESTLS=$REPO/build/nestls
POLICY=$REPO/policy/demo.yaml
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nestls-demo.XXXXXX")
PIDS=()

cleanup() {
    local pid i
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || continue
        for ((i = 0; i < 250; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.02
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
show() { sed 's/^/   | /' "$@"; }
die() {
    printf '\nnestls demo: FAILED: %s\n' "$*"
    exit 1
}

# wait_until SECONDS CMD...: poll CMD every 20 ms until it succeeds.
wait_until() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 50; i++)); do
        "$@" && return 0
        sleep 0.02
    done
    return 1
}
listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

[[ -x $NESTLS && -f $REPO/build/libnestls.so ]] || die "build first: make"
[[ -f $REPO/certs/outer-ca.pem ]] || die "no certificates: make certs"

step "1. The policy: policy/demo.yaml (nestls check)"
"$NESTLS" check "$POLICY" >"$WORK/check.txt" 2>&1 || { show "$WORK/check.txt"; die "the policy is invalid"; }
show "$WORK/check.txt"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MARKER="nestls-demo-marker-$(openssl rand -hex 8)"
mkdir "$WORK/www"
echo "$MARKER" >"$WORK/www/secret.txt"

step "2. A plaintext HTTP server (python3 -m http.server) under nestls, on 127.0.0.1:$PORT"
echo "   \$ nestls run -p policy/demo.yaml -- python3 -m http.server $PORT --bind 127.0.0.1"
"$NESTLS" run -p "$POLICY" -- python3 -m http.server "$PORT" --bind 127.0.0.1 \
    --directory "$WORK/www" </dev/null >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
wait_until 10 listening "$PORT" || { show "$WORK/server.err"; die "the server did not start"; }
echo "   listening (pid $SERVER_PID)"

CAPTURE=""
step "3. Capturing the loopback wire, tcp port $PORT"
if command -v tcpdump >/dev/null && ((EUID == 0)); then
    tcpdump --immediate-mode -U -n -i lo -w "$WORK/wire.pcap" "tcp port $PORT" \
        </dev/null >/dev/null 2>"$WORK/tcpdump.err" &
    TCPDUMP_PID=$!
    PIDS+=("$TCPDUMP_PID")
    if wait_until 10 grep -q 'listening on' "$WORK/tcpdump.err"; then
        CAPTURE=$WORK/wire.pcap
        echo "   tcpdump is listening (pid $TCPDUMP_PID)"
    else
        echo "   tcpdump did not start; going on without a capture:"
        show "$WORK/tcpdump.err"
    fi
else
    echo "   skipped: needs tcpdump and root"
fi

step "4. A plaintext HTTP client (curl) under nestls fetches /secret.txt"
echo "   \$ nestls run -p policy/demo.yaml -- curl -sS http://127.0.0.1:$PORT/secret.txt"
"$NESTLS" run -p "$POLICY" -- curl -sS --max-time 30 "http://127.0.0.1:$PORT/secret.txt" \
    >"$WORK/client.out" 2>"$WORK/client.err"
CLIENT_STATUS=$?
echo "   curl exit status $CLIENT_STATUS, it printed:"
show "$WORK/client.out"

step "5. What nestls logged"
echo "   client side (curl's stderr):"
show "$WORK/client.err"
wait_until 5 grep -q ' closed: ' "$WORK/server.err"
echo "   server side (http.server's stderr):"
grep '^nestls\[' "$WORK/server.err" | show

if [[ -n $CAPTURE ]]; then
    # let the last packets (FIN) reach the capture, then stop it
    wait_until 5 sh -c "[ \$(tcpdump -n -r '$CAPTURE' 'tcp[tcpflags] & tcp-fin != 0' 2>/dev/null | wc -l) -ge 2 ]"
    kill -INT "$TCPDUMP_PID" 2>/dev/null
    wait "$TCPDUMP_PID" 2>/dev/null
    PIDS=("$SERVER_PID") # reaped: its PID may be reused, never signal it again
fi

step "6. Checks"
failed=0
check() { # DESCRIPTION CMD...
    if "${@:2}"; then
        echo "   ok      $1"
    else
        echo "   FAILED  $1"
        failed=1
    fi
}
check "curl succeeded" test "$CLIENT_STATUS" -eq 0
check "the marker crossed end to end" grep -qxF "$MARKER" "$WORK/client.out"
check "the client logged both layers up" \
    grep -Eq "^nestls\[[0-9]+\] info: rule 'demo-client': client .* up in .* layer 1 TLSv1\.[23] .*; layer 2 TLSv1\.[23] " "$WORK/client.err"
check "the server logged both layers up" \
    grep -Eq "^nestls\[[0-9]+\] info: rule 'demo-server': server .* up in .* layer 1 TLSv1\.[23] .*; layer 2 TLSv1\.[23] " "$WORK/server.err"
check "the connection closed cleanly" grep -Eq ' closed: .*\(clean\)$' "$WORK/client.err"
if [[ -n $CAPTURE ]]; then
    packets=$(tcpdump -n -r "$CAPTURE" 2>/dev/null | wc -l)
    echo "   (the capture holds $packets packets)"
    check "the capture holds traffic" test "$packets" -gt 0
    check "the capture holds no marker" test "$(grep -a -c -F "$MARKER" "$CAPTURE")" -eq 0
    check "the capture holds no plaintext HTTP" test "$(grep -a -c -F 'GET /secret.txt' "$CAPTURE")" -eq 0
fi

if ((failed)); then
    die "see above"
fi
printf '\nnestls demo: OK\n'
