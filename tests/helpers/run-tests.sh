#!/usr/bin/env bash
# Run the unit test binaries, then every tests/*.bats suite, and end with
# one line "N passed, M failed" over both. Exit status 1 when anything
# failed or crashed.
#
# Usage: bash tests/helpers/run-tests.sh [UNIT_BINARY...]    (make test)
#   BATS_FILTER=REGEX   only bats tests whose name matches
#   BATS_TEST_TIMEOUT   seconds one bats test may take (default 300)
#   SKIP_SUITES="a.bats b.bats", SKIP_REASON   suites not run, said so
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
source "$HERE/tap.bash"

for bin in "$@"; do
    if [[ -x $bin ]]; then
        tap_run "$bin" "$bin"
    else
        tap_fail "$bin is missing or not executable"
    fi
done

shopt -s nullglob
suites=("$REPO"/tests/*.bats)
if ! command -v bats >/dev/null; then
    tap_fail "bats is not installed (run: make deps)"
elif ((${#suites[@]} == 0)); then
    tap_fail "no bats suites in $REPO/tests"
else
    export BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-300}
    # One suite per bats run: a suite that crashes is named, and the others
    # still run. (No --jobs: the suites measure timing and capture the
    # loopback wire, and the machine has two cores.)
    for suite in "${suites[@]}"; do
        if [[ " ${SKIP_SUITES:-} " == *" ${suite##*/} "* ]]; then
            echo "# not run here: tests/${suite##*/} (${SKIP_REASON:-excluded by SKIP_SUITES})"
            continue
        fi
        args=(--tap)
        [[ -z ${BATS_FILTER:-} ]] || args+=(--filter "$BATS_FILTER")
        tap_run "tests/${suite##*/}" bats "${args[@]}" "$suite"
    done
fi
tap_summary
