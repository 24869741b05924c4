#!/usr/bin/env bash
# make test-asan: every unit test and bats suite against build-asan/, with
# AddressSanitizer and UndefinedBehaviorSanitizer in libnestls.so, the
# nestls command, the unit tests and the C test programs. Every process a
# suite starts under nestls (python, curl, redis, stunnel's peers...) runs
# with the ASan runtime preloaded first, so nestls's code is checked in all
# of them. tests/sanitize/README.md says exactly what is and is not checked.
#
# Usage: bash tests/sanitize/run-asan.sh [UNIT_BINARY...]
#   (BATS_FILTER, BATS_TEST_TIMEOUT: as for tests/helpers/run-tests.sh)
#   ASAN_REPORTS=DIR   keep the sanitizer logs in DIR
#   ASAN_FULL_UNWIND=1 whole stacks for every allocation (see below)
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"

# The shared ASan runtime the build links (clang -shared-libasan), in the
# copy marked to initialise before any other library (initfirst.py).
runtime=$REPO/build-asan/rt/libclang_rt.asan-x86_64.so
for f in "$runtime" "$REPO/build-asan/libnestls.so"; do
    [[ -f $f ]] || { echo "test-asan: $f is missing (make asan)"; exit 1; }
done
# ASAN_REPORTS=DIR keeps the logs there for a look afterwards.
if [[ -n ${ASAN_REPORTS:-} ]]; then
    reports=$ASAN_REPORTS
    mkdir -p "$reports" && rm -f "$reports"/asan.*
else
    reports=$(mktemp -d /tmp/nestls-asan.XXXXXX)
    trap 'rm -rf "$reports"' EXIT
fi
# Programs some suites run as another user (postgres) write their reports
# here too.
chmod 1777 "$reports"

# The suites find the build through these (tests/helpers/common.bash).
# PRELOAD_FIRST goes ahead of libnestls.so in every LD_PRELOAD the suites
# build: the ASan runtime must be the first library loaded (ASan checks it),
# and `nestls run` keeps it in front (src/cli/run.c).
export NESTLS_BUILD=$REPO/build-asan
export NESTLS_PRELOAD_FIRST=$runtime
export NESTLS_CMD=$HERE/nestls-asan
# tests/build.bats inspects the files of the release build with nm and
# readelf and runs no nestls code: nothing for a sanitizer to check.
export SKIP_SUITES="build.bats ${SKIP_SUITES:-}" SKIP_REASON="runs no nestls code; make test runs it"

# Every report goes to a file of its own (log_path: one per process, named
# after the program), so nothing depends on a suite showing stderr.
# - Errors stop the process at once: ASan aborts (abort_on_error) and UBSan
#   halts at the first finding (built with -fno-sanitize-recover). UBSan
#   lives in the ASan runtime and writes to the same log.
# - Leaks are looked for at every normal exit, but do not change the exit
#   status (exitcode=0: the wrapped programs have leaks of their own, which
#   must not fail their tests); asan_reports.py fails on the leaks that
#   nestls (or a test program) allocated and counts the others apart.
# - ASAN_FULL_UNWIND=1 unwinds every malloc through code without frame
#   pointers (OpenSSL, libyaml): exact leak stacks, about 5x slower.
symbolizer=$(command -v llvm-symbolizer || true)
unwind=() fast=1
[[ ${ASAN_FULL_UNWIND:-0} == 1 ]] && unwind=(--full-unwind) fast=0
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:exitcode=0:fast_unwind_on_malloc=$fast:log_path=$reports/asan:log_exe_name=1${symbolizer:+:external_symbolizer_path=$symbolizer}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"

# First prove the set-up sees errors in programs like those the suites wrap.
bash "$HERE/canary.sh" || exit 1
bash tests/helpers/run-tests.sh "$@"
status=$?
python3 "$HERE/asan_reports.py" "$reports" "${unwind[@]}" || status=1
exit "$status"
