#!/usr/bin/env bash
# bulk_repro.sh LAYERS COUNT [SIZE]: the reproduction of the onion stall
# (issue "Bytes stranded inside the onion"). A wrapped receiver and a
# wrapped sender, both under `nestls run`, LAYERS nested TLS 1.3 layers
# (AES-128-GCM) on 127.0.0.1; the sender writes SIZE (default 64M) in
# 64 KiB write() calls, then waits for the receiver's one-line answer;
# COUNT such transfers, each on a new connection. Prints one line per 100
# transfers and "ok COUNT" at the end; exits 3 at the first stall, after
# printing both processes' socket queues.
set -uo pipefail
layers=${1:?LAYERS}
count=${2:?COUNT}
size=${3:-64M}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${NESTLS_BUILD:-$REPO/build}
CERTS=$REPO/certs
dir=$(mktemp -d)
trap 'kill "$rpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT

policy() { # ROLE FILE
    {
        printf 'version: 1\nsettings:\n  log_level: warn\nrules:\n  - name: bulk\n'
        printf '    match:\n      role: %s\n      address: [127.0.0.1]\n      port: [%s]\n    layers:\n' "$1" "$port"
        for ((i = 0; i < layers; i++)); do
            if [[ $1 == server ]]; then
                printf '      - cert: %s/inner-server.pem\n        key: %s/inner-server.key\n' "$CERTS" "$CERTS"
            else
                printf '      - ca: %s/inner-ca.pem\n' "$CERTS"
            fi
            printf '        ciphersuites: TLS_AES_128_GCM_SHA256\n'
        done
    } >"$2"
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
policy server "$dir/server.yaml"
policy client "$dir/client.yaml"
"$BUILD/nestls" run -p "$dir/server.yaml" -- "$BUILD/tests/bulkack" recv "$port" "$count" "$size" \
    >"$dir/recv.out" 2>"$dir/recv.err" &
rpid=$!
for ((i = 0; i < 500; i++)); do
    grep -q '^port' "$dir/recv.out" 2>/dev/null && break
    sleep 0.02
done
start=$(date +%s)
done_n=0
while ((done_n < count)); do
    batch=$((count - done_n < 100 ? count - done_n : 100))
    out=$("$BUILD/nestls" run -p "$dir/client.yaml" -- "$BUILD/tests/bulkack" send 127.0.0.1 "$port" "$batch" "$size" 20 2>"$dir/send.err")
    rc=$?
    if ((rc != 0)); then
        echo "$out"
        echo "after $done_n earlier transfers (layers $layers, $size each); sender stderr:"
        cat "$dir/send.err"
        echo "receiver stderr:"; cat "$dir/recv.err"
        ss -tnoi "( sport = :$port or dport = :$port )"
        exit "$rc"
    fi
    done_n=$((done_n + batch))
    echo "layers $layers: $done_n/$count transfers of $size ok ($(($(date +%s) - start)) s)"
done
wait "$rpid" || { echo "receiver failed:"; cat "$dir/recv.err"; exit 1; }
echo "ok $count"
