#!/usr/bin/env bats
# padding: N on a layer pads every TLS 1.3 record it sends to a multiple of
# N bytes. What a passive observer of the wire sees is recorded by a plain
# relay between a wrapped tcpclient and a wrapped echo server (relay.py),
# and cut into records (record_sizes.py). Without padding, an inner
# layer's handshake shows through the outer layer record by record: the
# inner ClientHello is an outer record exactly 22 bytes longer than the
# outer ClientHello (5 bytes of inner header, 1 content type, 16 of AEAD
# tag) — the sizes TLS-in-TLS detection keys on. With padding: 512 on the
# outer layer, every encrypted record on the wire is 16 + a multiple of 512.

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3
    cd "$BATS_TEST_TMPDIR"
}

# pad_policy ROLE FILE PORT LAYERS [PADDING]: rule for ROLE on
# 127.0.0.1:PORT with LAYERS (1 or 2) layers, the outer one padded to
# PADDING when given (with min_version: TLSv1.3, which padding needs).
pad_policy() {
    local role=$1 file=$2 port=$3 layers=$4 pad=${5:-} extra=
    [[ -n $pad ]] && extra=", min_version: TLSv1.3, padding: $pad"
    write_policy "$file" < <(
        printf 'version: 1\nrules:\n  - name: %s\n    match: {role: %s, address: [127.0.0.1], port: [%s]}\n    layers:\n' \
            "$role" "$role" "$port"
        if [[ $role == server ]]; then
            printf '      - {cert: %s/outer-server.pem, key: %s/outer-server.key%s}\n' "$CERTS" "$CERTS" "$extra"
            ((layers == 1)) || printf '      - {cert: %s/inner-server.pem, key: %s/inner-server.key}\n' "$CERTS" "$CERTS"
        else
            printf '      - {ca: %s/outer-ca.pem%s}\n' "$CERTS" "$extra"
            ((layers == 1)) || printf '      - {ca: %s/inner-ca.pem}\n' "$CERTS"
        fi
    )
}

# exchange NAME LAYERS [PADDING]: one line through LAYERS layers, both
# ends padded as given, across relay.py; sets UP and DOWN to the records
# each way (record_sizes.py).
exchange() {
    local name=$1 layers=$2 pad=${3:-} port rport
    port=$(free_port)
    pad_policy server "s-$name.yaml" "$port" "$layers" "$pad"
    nestls_bg "echo-$name" "$POLICY" python3 "$HELPERS/echo_server.py" thread --port "$port"
    wait_for_port "$port"
    start_bg "relay-$name" python3 "$HELPERS/relay.py" "rec-$name" --to "$port"
    rport=$(port_of "relay-$name")
    pad_policy client "c-$name.yaml" "$rport" "$layers" "$pad"
    run --separate-stderr nestls_run "$POLICY" "$TESTBIN/tcpclient" 127.0.0.1 "$rport" <<<"hello $name"
    assert_success
    assert_output "hello $name"
    # The relay has written both directions once each side closed.
    wait_for_match "rec-$name/conn-1.down" . >/dev/null
    poll 10 python3 "$HELPERS/record_sizes.py" "rec-$name/conn-1.up" "rec-$name/conn-1.down" >/dev/null ||
        fail "the relay's record of $name does not parse as TLS records"
    UP=$(python3 "$HELPERS/record_sizes.py" "rec-$name/conn-1.up")
    DOWN=$(python3 "$HELPERS/record_sizes.py" "rec-$name/conn-1.down")
    echo "# $name up:   $UP" >&3
    echo "# $name down: $DOWN" >&3
}

# encrypted_sizes RECORDS: the lengths of the application-data records.
encrypted_sizes() {
    tr ' ' '\n' <<<"$1" | sed -n 's/^23://p'
}

@test "without padding the inner ClientHello shows on the wire; with padding: 512 every encrypted record is 16 + a multiple of 512, both ways" {
    exchange one 1
    local hello=${UP%% *}
    hello=${hello#22:}
    exchange two 2
    local two_up=$UP size odd=0
    # Unpadded: the inner ClientHello, carried whole in one outer record.
    grep -qx "$((hello + 22))" < <(encrypted_sizes "$two_up") ||
        fail "no outer record of $((hello + 22)) bytes (the outer ClientHello is $hello): $two_up"
    for size in $(encrypted_sizes "$two_up $DOWN"); do
        (((size - 16) % 512 == 0)) || odd=$((odd + 1))
    done
    ((odd > 0)) || fail "unpadded records all look padded: $two_up / $DOWN"

    exchange twopad 2 512
    for size in $(encrypted_sizes "$UP $DOWN"); do
        (((size - 16) % 512 == 0)) || fail "a $size-byte record with padding: 512: $UP / $DOWN"
    done
    [[ -n $(encrypted_sizes "$UP") ]] || fail "no encrypted record sent: $UP"
}

@test "check and explain show a layer's padding, in text and JSON" {
    pad_policy client c.yaml 443 2 1024
    run "$NESTLS" check "$POLICY"
    assert_success
    assert_output --partial "padding:     every record sent padded to a multiple of 1024 bytes"
    run "$NESTLS" check --json "$POLICY"
    assert_success
    [[ $(python3 -c 'import json,sys; l=json.load(sys.stdin)["policies"][0]["rules"][0]["layers"]; print(l[0]["padding"], l[1]["padding"])' <<<"$output") == "1024 None" ]]
}
