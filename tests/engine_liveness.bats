#!/usr/bin/env bats
# Liveness with real processes: no byte is ever stranded inside the onion.
# A wrapped sender and a wrapped receiver (bulkack, both under `nestls
# run`) with 1, 2, 3 and 8 layers, through a relay that cuts the TLS
# stream into random pieces with random pauses (chop_relay.py). Transfers
# of random sizes both ways, random write sizes (so the program's direct
# writes and the engine's path both run), and three endings: the sender
# waits for an answer (the shape of the stall once seen at three layers),
# half-closes, or closes at once. The engine's round budget is made tiny
# (NESTLS_ROUNDS_PER_RUN), so that runs end in the middle of their work as
# often as possible. Every byte is checked; each layer count runs for
# LIVENESS_SECONDS (default 12). A stall shows as "stall in transfer K"
# after 20 s; the engines' logs then hold their own account (conn.c logs
# every layer's buffers when bytes are stranded).

load helpers/common
load helpers/peers

setup() {
    need_build
    need_cmd python3 ss
    cd "$BATS_TEST_TMPDIR"
}

# alternating PKIs, outermost first: outer inner outer ...
layer_names() {
    local i
    for ((i = 0; i < $1; i++)); do
        ((i % 2)) && echo inner || echo outer
    done
}

# phase N PLAN ROUNDS SECONDS [relay]: a receiver and a sender with N
# layers, NESTLS_ROUNDS_PER_RUN=ROUNDS in both, bulkack's PLAN, straight
# or through chop_relay.py, for SECONDS; every transfer must arrive whole.
phase() {
    local n=$1 plan=$2 rounds=$3 seconds=$4 via=${5:-} rport rpid port sent
    rport=$(free_port)
    # shellcheck disable=SC2046
    server_policy "server-$rport.yaml" "$rport" $(layer_names "$n")
    NESTLS_ROUNDS_PER_RUN=$rounds nestls_bg "recv-$rport" "$POLICY" \
        "$TESTBIN/bulkack" recv "$rport" 1000000 "$plan"
    rpid=$BG_PID
    wait_for_port "$rport"
    port=$rport
    if [[ $via == relay ]]; then
        start_bg "relay-$rport" python3 "$HELPERS/chop_relay.py" --to "$rport" --seed "$RANDOM"
        port=$(port_of "relay-$rport")
    fi
    # shellcheck disable=SC2046
    client_policy "client-$rport.yaml" "$port" $(layer_names "$n")

    run --separate-stderr env NESTLS_ROUNDS_PER_RUN="$rounds" "$NESTLS" run -p "$POLICY" -- \
        "$TESTBIN/bulkack" send 127.0.0.1 "$port" 1000000 "$plan" 20 "$seconds"
    if ((status != 0)); then
        echo "layers $n, plan $plan, $rounds rounds per run ${via:+via the relay}:"
        echo "sender exited $status: $output"
        echo "sender log: $stderr"
        echo "receiver: $(cat "recv-$rport.out")"
        ss -tnoi "( sport = :$rport or dport = :$rport or sport = :$port or dport = :$port )"
        return 1
    fi
    [[ $output =~ ^ok\ ([0-9]+)$ ]] || fail "sender: '$output'"
    sent=${BASH_REMATCH[1]}
    ((sent >= 2)) || fail "only $sent transfers in $seconds s"
    wait_for_match "recv-$rport.out" "^done $sent\$" 30 || fail "receiver: $(tail -3 "recv-$rport.out")"
    echo "# layers $n, $plan, $rounds rounds per run ${via:+via the relay}: $sent transfers" >&3
    # The engines never had to rescue stranded bytes.
    refute_log "$stderr" 'stranded'
    refute_log "$(cat "recv-$rport.err")" 'stranded'
    stop_bg "$rpid"
}

# Half the time straight, with runs of 1-3 rounds (where a run that
# stopped early used to strand bytes); half through the re-segmenting
# relay, with 1-3 rounds or the default 32.
stress_layers() {
    local n=$1 half=$(((${LIVENESS_SECONDS:-12} + 1) / 2)) budgets=(1 2 3 32)
    phase "$n" "random:$RANDOM" $((1 + RANDOM % 3)) "$half"
    phase "$n" "random:$RANDOM" "${budgets[RANDOM % 4]}" "$half" relay
}

@test "one layer: random transfers both ways through a re-segmenting relay all arrive whole" {
    stress_layers 1
}

@test "two layers: random transfers both ways through a re-segmenting relay all arrive whole" {
    stress_layers 2
}

@test "three layers: random transfers both ways through a re-segmenting relay all arrive whole" {
    stress_layers 3
}

@test "eight layers: random transfers both ways through a re-segmenting relay all arrive whole" {
    stress_layers 8
}
