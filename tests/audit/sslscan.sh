#!/usr/bin/env bash
# make audit-sslscan: sslscan (no colours) against a server that nestls wraps
# with default settings -- one server layer, certs/outer-server.pem, no
# version or cipher options -- on 127.0.0.1 and a free port. The output is
# printed and kept in OUT (default build/audit/sslscan.txt), never committed.
#
# Usage: bash tests/audit/sslscan.sh [BUILD] [OUT]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=$(cd "${1:-$REPO/build}" && pwd)
OUT=${2:-$BUILD/audit/sslscan.txt}
CERTS=$REPO/certs

command -v sslscan >/dev/null || { echo "sslscan is not installed (run: make deps)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
work=$(mktemp -d /tmp/nestls-sslscan.XXXXXX)
server=
running() { # PID: not ended (a zombie has ended)
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}
cleanup() {
    if [[ -n $server ]]; then
        kill -TERM -- "-$server" 2>/dev/null || true
        for _ in $(seq 50); do running "$server" || break; sleep 0.1; done
        kill -KILL -- "-$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
cat >"$work/server.yaml" <<POLICY
version: 1
rules:
  - name: audited
    match:
      role: server
      address: [127.0.0.1]
      port: [$port]
    layers:
      - cert: $CERTS/outer-server.pem
        key: $CERTS/outer-server.key
POLICY

setsid "$BUILD/nestls" run -p "$work/server.yaml" -- \
    python3 "$REPO/tests/helpers/echo_server.py" thread --port "$port" \
    </dev/null >"$work/server.out" 2>"$work/server.err" &
server=$!
for _ in $(seq 100); do
    [[ -n $(ss -Hltn "sport = :$port") ]] && break
    running "$server" || { cat "$work/server.err" >&2; exit 1; }
    sleep 0.1
done
[[ -n $(ss -Hltn "sport = :$port") ]] || { echo "the wrapped server did not listen" >&2; exit 1; }

timeout 120 sslscan --no-colour "127.0.0.1:$port" >"$OUT"
cat "$OUT"
echo "(saved in $OUT)"
