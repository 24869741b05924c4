#!/usr/bin/env bash
# canary.sh: prove that make test-asan's set-up reports what it must, in
# the kind of programs the suites wrap. A preloaded canary library
# (asan_canary.c) commits one error in each program below, with the same
# LD_PRELOAD order and sanitizer options as the suites; each must leave a
# log that asan_reports.py fails on. The same programs without a canary
# must pass. Uses the environment run-asan.sh sets up.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
canary=$NESTLS_BUILD/libnl_asan_canary.so
[[ -f $canary ]] || { echo "canary: $canary is missing (make asan)"; exit 1; }
work=$(mktemp -d /tmp/nestls-canary.XXXXXX)
trap 'rm -rf "$work"' EXIT

# check NAME EXPECT(0|1) [NL_CANARY=...] CMD...: run CMD with the canary
# preloaded; asan_reports.py must exit EXPECT on its logs.
failures=0
check() {
    local name=$1 expect=$2 dir=$work/$1
    shift 2
    mkdir -p "$dir"
    # (in a subshell, whose stderr also takes the shell's "Aborted" notice)
    (ASAN_OPTIONS=${ASAN_OPTIONS/log_path=*([^:])/log_path=$dir/asan} \
        LD_PRELOAD="$NESTLS_PRELOAD_FIRST $canary" timeout 20 env "$@"
     :) >/dev/null 2>&1
    python3 "$HERE/asan_reports.py" "$dir" >"$dir.out" 2>&1
    local got=$?
    if ((got == expect)); then
        echo "# canary $name: $( ((expect)) && echo reported || echo clean)"
    else
        echo "# canary $name: asan_reports.py exited $got, wanted $expect:"
        sed 's/^/#   /' "$dir.out" | tail -n 20
        failures=$((failures + 1))
    fi
}
shopt -s extglob
check heap-overflow-in-curl 1 NL_CANARY=overflow curl -sS --max-time 5 http://127.0.0.1:9/
check leak-in-python 1 NL_CANARY=leak python3 -c 'pass'
check ubsan-in-sh 1 NL_CANARY=ubsan sh -c true
check clean-curl 0 curl -sS --max-time 5 http://127.0.0.1:9/
check clean-python 0 python3 -c 'pass'
((failures == 0)) || { echo "test-asan: the sanitizer set-up misses errors ($failures canary checks)"; exit 1; }
