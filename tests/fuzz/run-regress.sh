#!/usr/bin/env bash
# make fuzz-regress: every seed and every saved regression input of each
# target, run once (no mutation, so it is quick and repeatable: the onion
# target replays its TLS randomness from the input). Any crash fails.
#
# Usage: bash tests/fuzz/run-regress.sh build-fuzz/fuzz_NAME...
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"
source "$HERE/targets.bash"
FUZZ_SCRATCH=$(mktemp -d /dev/shm/nestls-fuzz.XXXXXX)
trap 'rm -rf "$FUZZ_SCRATCH"' EXIT

status=0
for bin in "$@"; do
    name=$(basename "$bin")
    fuzz_inputs "$name" || exit 1
    inputs=()
    for d in "${FUZZ_DIRS[@]}"; do
        for f in "$d"/*; do
            [[ -f $f ]] && inputs+=("$f")
        done
    done
    log=build-fuzz/$name.regress.log
    "$bin" "${FUZZ_ARGS[@]}" "${inputs[@]}" </dev/null >"$log" 2>&1
    rc=$?
    ran=$(grep -c '^Executed ' "$log")
    if ((rc == 0 && ran == ${#inputs[@]})); then
        echo "fuzz-regress: $name: ${#inputs[@]} inputs, all passed"
    else
        status=1
        echo "fuzz-regress: $name: $ran of ${#inputs[@]} inputs ran; failed on $(sed -n 's/^Running: //p' "$log" | tail -n 1):"
        tail -n 40 "$log"
    fi
done
exit "$status"
