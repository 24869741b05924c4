#!/usr/bin/env bash
# make fuzz: run each libFuzzer target for FUZZ_SECONDS (default 60), both
# at once (one per core), from its seeds, the regression inputs and the
# corpus earlier runs grew in build-fuzz/corpus/. Prints executions and
# crashes per target; a crash fails the run and leaves its input in
# build-fuzz/crashes/TARGET/, with what to do next.
#
# Usage: FUZZ_SECONDS=N bash tests/fuzz/run-fuzz.sh build-fuzz/fuzz_NAME...
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"
seconds=${FUZZ_SECONDS:-60}
source "$HERE/targets.bash"
FUZZ_SCRATCH=$(mktemp -d /dev/shm/nestls-fuzz.XXXXXX)
trap 'rm -rf "$FUZZ_SCRATCH"' EXIT

pids=() names=()
for bin in "$@"; do
    name=$(basename "$bin")
    fuzz_inputs "$name" || exit 1
    mkdir -p "build-fuzz/corpus/$name" "build-fuzz/crashes/$name"
    rm -f "build-fuzz/crashes/$name"/*
    # -timeout: one input taking 25 s is a hang; </dev/null: no input from
    # a terminal can reach a policy naming /dev/stdin.
    "$bin" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2560 -print_final_stats=1 \
        "${FUZZ_ARGS[@]}" -artifact_prefix="build-fuzz/crashes/$name/" \
        "build-fuzz/corpus/$name" "${FUZZ_DIRS[@]}" </dev/null >"build-fuzz/$name.log" 2>&1 &
    pids+=($!) names+=("$name")
done

status=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}"
    rc=$?
    name=${names[$i]} log=build-fuzz/${names[$i]}.log
    runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 executions in \2 s/p' "$log")
    corpus=$(ls "build-fuzz/corpus/$name" | wc -l)
    crashes=$(ls "build-fuzz/crashes/$name" | wc -l)
    echo "fuzz: $name: ${runs:-no final count (see $log)}, corpus $corpus inputs, $crashes crash(es)"
    if ((rc != 0 || crashes > 0)); then
        status=1
        echo "--- $log (last 60 lines):"
        tail -n 60 "$log"
        for f in "build-fuzz/crashes/$name"/*; do
            [[ -e $f ]] || continue
            echo "fuzz: $name crashed on $f. Minimize it, keep it, report it:"
            echo "  $bin -minimize_crash=1 -runs=20000 -exact_artifact_path=min $f"
            echo "  cp min tests/fuzz/regressions/${name#fuzz_}/WHAT-IT-BREAKS   (make fuzz-regress runs it)"
        done
    fi
done
exit "$status"
