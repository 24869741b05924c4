#!/usr/bin/env bats
# The README's quick start works as typed: every command block of it is run
# exactly as written, in a copy of the source tree (so its `make` and
# `make certs` touch neither build/ nor certs/ of this tree), from a clean
# environment, as a person with a fresh shell would run it.
#
# Blocks are found by the HTML comment (invisible on the rendered page)
# right before each fenced block of the "Quick start" section:
#   <!-- quickstart: setup -->                  run once, first
#   <!-- quickstart: N server listens=PORT -->  example N's peer: runs in the
#                                               background ("terminal 1");
#                                               the test waits for PORT
#   <!-- quickstart: N client -->               example N's client: runs in
#                                               the foreground
#   <!-- quickstart: N output -->               what the client must print
#                                               (stdout, exactly)
#   <!-- quickstart: check -->                  must succeed
# nestls's own stderr is not checked: only what the programs print.

load helpers/common

setup_file() {
    # A clean environment for the README's commands: common.bash exports
    # BUILD, and a `make test` exports MAKEFLAGS; neither may reach them.
    QS_TREE=$BATS_FILE_TMPDIR/tree
    QS_BLOCKS=$BATS_FILE_TMPDIR/blocks
    export QS_TREE QS_BLOCKS
    mkdir -p "$QS_TREE" "$QS_BLOCKS"
    tar -C "$REPO" --exclude=./.git --exclude='./build*' --exclude='./certs/*.pem' \
        --exclude='./certs/*.key' --exclude='*.pcap' -cf - . | tar -C "$QS_TREE" -xf -
    python3 - "$QS_TREE/README.md" "$QS_BLOCKS" <<'PY'
import re, sys, os
readme, out = sys.argv[1], sys.argv[2]
lines = open(readme).read().split('\n')
start = next(i for i, l in enumerate(lines) if l.startswith('## Quick start'))
end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith('## ')), len(lines))
n, i, untagged = 0, start, 0
while i < end:
    m = re.match(r'^<!-- quickstart: (.*) -->$', lines[i])
    if lines[i].startswith('```') and not m:
        untagged += lines[i].startswith('```sh')
        i += 1
        while i < end and not lines[i].startswith('```'):
            i += 1
    elif m:
        i += 1
        assert lines[i].startswith('```'), f'README line {i + 1}: no fenced block after the tag'
        body = []
        i += 1
        while not lines[i].startswith('```'):
            body.append(lines[i])
            i += 1
        n += 1
        with open(os.path.join(out, f'{n:02d}.tag'), 'w') as f:
            f.write(m.group(1) + '\n')
        with open(os.path.join(out, f'{n:02d}.body'), 'w') as f:
            f.write('\n'.join(body) + '\n')
    i += 1
with open(os.path.join(out, 'untagged'), 'w') as f:
    f.write(f'{untagged}\n')
PY
    local block
    block=$(qs_blocks_tagged setup) || return 1
    cd "$QS_TREE" && qs_env bash -c "$(cat "$block")" >"$BATS_FILE_TMPDIR/setup.log" 2>&1
}

# qs_env CMD...: CMD in the environment of a fresh login shell.
qs_env() {
    env -i "PATH=$PATH" "HOME=$HOME" "TERM=dumb" "LANG=${LANG:-C.UTF-8}" \
        ${PYENV_ROOT:+"PYENV_ROOT=$PYENV_ROOT"} "$@"
}

# qs_blocks_tagged REGEX: the body files of the blocks whose tag matches.
qs_blocks_tagged() {
    local tag found=0
    for tag in "$QS_BLOCKS"/*.tag; do
        if grep -Eqx -- "$1" "$tag"; then
            echo "${tag%.tag}.body"
            found=1
        fi
    done
    ((found)) || { echo "no README block tagged '$1'" >&2; return 1; }
}

teardown() {
    nl_teardown
    if [[ -n ${QS_MADE_WWW:-} ]]; then rm -rf /tmp/nestls-www; fi
}

setup() {
    [[ -x $QS_TREE/build/nestls && -f $QS_TREE/certs/outer-ca.pem ]] ||
        fail "the quick start's setup block failed:
$(tail -n 40 "$BATS_FILE_TMPDIR/setup.log")"
    cd "$QS_TREE"
}

# run_example N: example N as the README has it: each server block started
# in the background in turn (waiting for the ports its tag names), then the
# client block, whose stdout must be the output block.
run_example() {
    local n=$1 body tag port i=0 expected
    for body in $(qs_blocks_tagged "$n server.*"); do
        tag=$(cat "${body%.body}.tag")
        for port in $(grep -o 'listens=[0-9,]*' <<<"$tag" | cut -d= -f2 | tr , ' '); do
            [[ -z $(ss -Hltn "sport = :$port") ]] ||
                fail "port $port, which example $n of the README uses, is taken: $(ss -Hltnp "sport = :$port")"
        done
        start_bg "example$n-server$((++i))" env -i "PATH=$PATH" "HOME=$HOME" "TERM=dumb" \
            "LANG=${LANG:-C.UTF-8}" ${PYENV_ROOT:+"PYENV_ROOT=$PYENV_ROOT"} bash -c "$(cat "$body")"
        for port in $(grep -o 'listens=[0-9,]*' <<<"$tag" | cut -d= -f2 | tr , ' '); do
            wait_for_port "$port"
        done
    done
    body=$(qs_blocks_tagged "$n client")
    expected=$(cat "$(qs_blocks_tagged "$n output")")
    run --separate-stderr qs_env bash -c "$(cat "$body")"
    [[ $output == "$expected" ]] || fail "example $n printed:
$output
--- the README says:
$expected
--- stderr:
$stderr
--- exit status $status"
}

@test "the quick start: every command block is tagged, and each example has a peer, a client and an output" {
    run cat "$QS_BLOCKS/untagged"
    assert_output 0
    local n
    for n in 1 2 3; do
        qs_blocks_tagged "$n server.*" >/dev/null
        qs_blocks_tagged "$n client" >/dev/null
        qs_blocks_tagged "$n output" >/dev/null
    done
    qs_blocks_tagged setup >/dev/null
    qs_blocks_tagged check >/dev/null
}

@test "quick start example 1: one TLS layer, plaintext curl to openssl s_server" {
    run_example 1
}

@test "quick start example 2: two layers, curl to a stunnel + openssl s_server chain" {
    run_example 2
}

@test "quick start example 3: both ends wrapped, two layers with mutual TLS" {
    # The README's server block makes /tmp/nestls-www: teardown removes it
    # unless it was there before.
    [[ -e /tmp/nestls-www ]] || QS_MADE_WWW=1
    run_example 3
}

@test "quick start: the check and explain lines succeed" {
    local body
    body=$(qs_blocks_tagged check)
    run --separate-stderr qs_env bash -ec "$(cat "$body")"
    assert_ok
    assert_output --partial 'rule'
}
