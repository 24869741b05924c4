#!/usr/bin/env bash
# Run unit test binaries (TAP-like "ok N - ..." lines) and end with
# "N passed, M failed". Exit status 1 when anything failed or crashed.
#
# Usage: bash tests/helpers/run-unit.sh BINARY...    (make unit)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tap.bash"

(($#)) || tap_fail "no unit test binaries given"
for bin in "$@"; do
    if [[ -x $bin ]]; then
        tap_run "$bin" "$bin"
    else
        tap_fail "$bin is missing or not executable"
    fi
done
tap_summary
