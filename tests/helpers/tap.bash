# Shared by run-tests.sh and run-unit.sh: run TAP producers, show their
# output as it comes, and keep the totals.
#
# A producer counts by its own "ok N" / "not ok N" lines. On top of those it
# fails once more when it crashed (non-zero exit with no failure of its own,
# or killed by a signal) or stopped before the plan ("1..N") it announced:
# a test that never ran is not a pass.

TAP_PASSED=0
TAP_FAILED=0
TAP_SKIPPED=0
TAP_TIMEOUT=${TAP_TIMEOUT:-900} # seconds one producer may run

# tap_run LABEL CMD [ARGS...]
tap_run() {
    local label=$1
    shift
    local log rc
    log=$(mktemp "${TMPDIR:-/tmp}/nestls-tap.XXXXXX")
    echo "# --- $label"
    # Output is shown line by line as the producer writes it.
    timeout -k 10 "$TAP_TIMEOUT" "$@" </dev/null 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}

    local plan=-1 pass=0 fail=0 skip=0 line
    while IFS= read -r line; do
        if [[ $line =~ ^1\.\.([0-9]+) ]]; then
            plan=${BASH_REMATCH[1]}
        elif [[ $line =~ ^not\ ok\ [0-9]+ ]]; then
            fail=$((fail + 1))
        elif [[ $line =~ ^ok\ [0-9]+ ]]; then
            if [[ ${line,,} =~ \#\ skip ]]; then
                skip=$((skip + 1))
            else
                pass=$((pass + 1))
            fi
        fi
    done <"$log"
    rm -f "$log"

    local ran=$((pass + fail + skip))
    if ((rc == 124 || rc == 137)); then
        echo "# $label: timed out after ${TAP_TIMEOUT} s"
        fail=$((fail + 1))
    elif ((rc > 128)); then
        echo "# $label: killed by signal $((rc - 128))"
        fail=$((fail + 1))
    elif ((rc != 0 && fail == 0)); then
        echo "# $label: exited with status $rc but reported no failure"
        fail=$((fail + 1))
    elif ((ran == 0 && plan != 0)); then
        echo "# $label: reported no test result"
        fail=$((fail + 1))
    fi
    if ((plan > ran)); then
        echo "# $label: planned $plan tests, $ran reported; $((plan - ran)) missing count as failed"
        fail=$((fail + plan - ran))
    fi

    TAP_PASSED=$((TAP_PASSED + pass))
    TAP_FAILED=$((TAP_FAILED + fail))
    TAP_SKIPPED=$((TAP_SKIPPED + skip))
}

# tap_fail MESSAGE: something that should have run could not.
tap_fail() {
    echo "# error: $1"
    TAP_FAILED=$((TAP_FAILED + 1))
}

# tap_summary: the closing line, alone, and the exit status.
tap_summary() {
    ((TAP_SKIPPED == 0)) || echo "# $TAP_SKIPPED skipped"
    echo "$TAP_PASSED passed, $TAP_FAILED failed"
    ((TAP_FAILED == 0))
}
