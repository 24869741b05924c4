# Loaded by every suite (`load helpers/common`): paths, and the helpers that
# keep tests independent — ephemeral ports, background processes tracked by
# PID and killed in teardown, bounded waits, per-test policy files.
#
# Rules every suite follows (tests/CONTRACT.md explains why):
#  - a server listens on 127.0.0.1 and an ephemeral port (free_port, or one
#    the server picked and printed);
#  - readiness is waited for with a bounded poll, never a fixed sleep;
#  - everything started with start_bg is killed by PID in teardown;
#  - files go to $BATS_TEST_TMPDIR, which is the test's own.

bats_require_minimum_version 1.5.0 # run --separate-stderr, run -N

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

REPO=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
# make test-asan points the suites at the sanitizer build, and names the
# runtime that must be preloaded ahead of libnestls.so (PRELOAD_FIRST).
BUILD=${NESTLS_BUILD:-$REPO/build}
PRELOAD_FIRST=${NESTLS_PRELOAD_FIRST:-}
NESTLS=${NESTLS_CMD:-$BUILD/nestls} # test-asan: a wrapper preloading the ASan runtime
LIB=$BUILD/libnestls.so
CERTS=$REPO/certs
HELPERS=$REPO/tests/helpers
TESTBIN=$BUILD/tests # the plaintext C programs from tests/helpers/*.c
export REPO BUILD NESTLS LIB CERTS HELPERS TESTBIN PRELOAD_FIRST
# The suites read the connection lines of tests/CONTRACT.md ("up", "closed",
# the start-up line), which are info lines: they run at info. A healthy run
# at the default level (warn) prints nothing; a test of the default, or of
# settings.log_level (which NESTLS_LOG overrides), unsets it
# (tests/logging_quiet.bats).
export NESTLS_LOG=${NESTLS_LOG:-info}

WAIT_SECONDS=${WAIT_SECONDS:-10} # default bound of every wait_for_*
STEP=0.02                        # poll interval of every wait_for_*

# Teardown shared by every suite: a failed test shows what its background
# processes printed, then all of them are stopped. A suite that needs its
# own teardown calls nl_teardown from it.
nl_teardown() {
    [[ -n ${BATS_TEST_COMPLETED:-} ]] || show_bg_logs
    stop_all_bg
}
teardown() {
    nl_teardown
}

# ---------------------------------------------------------------- ports

# free_port: print a TCP port free on 127.0.0.1 (the kernel's pick for port
# 0), never one already handed out in this test.
free_port() {
    local port try
    for try in 1 2 3 4 5 6 7 8; do
        port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])') || return 1
        if ! grep -qx "$port" "$BATS_TEST_TMPDIR/ports" 2>/dev/null; then
            echo "$port" >>"$BATS_TEST_TMPDIR/ports"
            echo "$port"
            return 0
        fi
    done
    echo "free_port: no new port after $try tries" >&2
    return 1
}

# ---------------------------------------------------- background processes

# start_bg NAME CMD [ARGS...]: run CMD in the background, in its own session
# and process group (so teardown also reaches anything it forks), stdin from
# /dev/null, stdout to $BATS_TEST_TMPDIR/NAME.out, stderr to NAME.err.
# Sets BG_PID. Call it directly from the test, never inside $(...) or run:
# teardown can only reap its own children.
start_bg() {
    local name=$1
    shift
    setsid "$@" </dev/null >"$BATS_TEST_TMPDIR/$name.out" 2>"$BATS_TEST_TMPDIR/$name.err" 3>&- 4>&- &
    BG_PID=$!
    echo "$BG_PID $name" >>"$BATS_TEST_TMPDIR/pids"
}

# nestls_bg NAME POLICY CMD [ARGS...]: start_bg of CMD under `nestls run`.
nestls_bg() {
    local name=$1 policy=$2
    shift 2
    start_bg "$name" "$NESTLS" run -p "$policy" -- "$@"
}

# is_alive PID: true while PID runs (a zombie does not count).
is_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# wait_for_exit PID [SECONDS]: wait until PID has ended; false on timeout.
# It stays unreaped (and listed for teardown) until stop_bg.
wait_for_exit() {
    poll "${2:-$WAIT_SECONDS}" is_gone "$1"
}
is_gone() { ! is_alive "$1"; }

# stop_bg PID [SIGNAL]: send SIGNAL (TERM) to PID's process group, wait up
# to 5 s, then KILL whatever is left of the group, and reap PID.
stop_bg() {
    local pid=$1 sig=${2:-TERM}
    kill -"$sig" -- "-$pid" 2>/dev/null || kill -"$sig" "$pid" 2>/dev/null || true
    wait_for_exit "$pid" 5 || true
    reap "$pid" || true
}

# reap PID: KILL what is left of PID's process group, collect PID's exit
# status (returned) and drop it from the teardown list. While PID is not
# reaped its group id cannot have been reused, so the KILL is safe.
reap() {
    local pid=$1 rc=0
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || rc=$?
    if [[ -f $BATS_TEST_TMPDIR/pids ]]; then
        sed -i "/^$pid /d" "$BATS_TEST_TMPDIR/pids"
    fi
    return "$rc"
}

stop_all_bg() {
    local pid name pids=()
    [[ -f $BATS_TEST_TMPDIR/pids ]] || return 0
    while read -r pid name; do
        pids+=("$pid")
    done <"$BATS_TEST_TMPDIR/pids"
    for pid in "${pids[@]}"; do
        stop_bg "$pid"
    done
}

# show_bg_logs: print every background process's output (for failures).
show_bg_logs() {
    local f
    for f in "$BATS_TEST_TMPDIR"/*.out "$BATS_TEST_TMPDIR"/*.err; do
        [[ -s $f ]] || continue
        echo "--- ${f##*/} (last 40 lines):"
        tail -n 40 "$f"
    done
}

# --------------------------------------------------------------- waiting

# poll SECONDS CMD [ARGS...]: run CMD every $STEP seconds until it succeeds;
# false when it has not after SECONDS. Every wait below is one of these.
poll() {
    local i n
    n=$(awk -v s="$1" -v d="$STEP" 'BEGIN { printf "%d\n", s / d + 0.5 }')
    shift
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep "$STEP"
    done
    return 1
}

# waited WHAT: report a wait that ran out, with the background logs.
waited() {
    echo "$1" >&2
    show_bg_logs >&2
    return 1
}

# wait_for_port PORT [HOST]: wait until something listens on TCP PORT (on
# HOST, when given). Nothing connects to it, so a recording or wrapped
# server sees no probe. Fails early when the last start_bg process died.
wait_for_port() {
    local filter="sport = :$1"
    [[ -z ${2:-} ]] || filter="src $2 and $filter"
    poll "$WAIT_SECONDS" listening_or_dead "$filter" ||
        { waited "wait_for_port $1${2:+ on $2}: nothing listening after $WAIT_SECONDS s"; return; }
    is_listening "$filter" ||
        waited "wait_for_port $1: process $BG_PID exited before listening"
}
is_listening() { [[ -n $(ss -Hltn "$1" 2>/dev/null) ]]; }
listening_or_dead() {
    is_listening "$1" || { [[ -n ${BG_PID:-} ]] && ! is_alive "$BG_PID"; }
}

# wait_for_file FILE [SECONDS]: wait until FILE exists and is not empty.
wait_for_file() {
    poll "${2:-$WAIT_SECONDS}" test -s "$1" ||
        waited "wait_for_file $1: still missing or empty after ${2:-$WAIT_SECONDS} s"
}

# wait_for_match FILE REGEX [SECONDS]: wait until a line of FILE matches
# the extended REGEX.
wait_for_match() {
    poll "${3:-$WAIT_SECONDS}" grep -Eqs -- "$2" "$1" ||
        waited "wait_for_match: no line of $1 matches '$2' after ${3:-$WAIT_SECONDS} s"
}

# wait_for_count FILE REGEX N [SECONDS]: wait until at least N lines of
# FILE match the extended REGEX.
wait_for_count() {
    poll "${4:-$WAIT_SECONDS}" lines_at_least "$@" ||
        waited "wait_for_count: $(grep -Ecs -- "$2" "$1") of $3 lines of $1 match '$2' after ${4:-$WAIT_SECONDS} s"
}
lines_at_least() { (($(grep -Ecs -- "$2" "$1") >= $3)); }

# --------------------------------------------------------------- policies

# expand_vars < TEXT: TEXT with every @NAME@ replaced by the value of the
# shell variable NAME (@CERTS@, @PORT@, ...); an unset NAME is an error.
expand_vars() {
    local text name
    text=$(
        cat
        echo .
    )
    text=${text%.}
    while [[ $text =~ @([A-Z][A-Z0-9_]*)@ ]]; do
        name=${BASH_REMATCH[1]}
        if [[ -z ${!name+set} ]]; then
            echo "expand_vars: @$name@ is used but \$$name is not set" >&2
            return 1
        fi
        text=${text//"@$name@"/${!name}}
    done
    printf '%s' "$text"
}

# write_policy FILE <<'EOF' ... EOF: write a policy from stdin, @NAME@
# expanded (expand_vars), into the test's directory (FILE relative to it).
# Sets POLICY to the file's path.
write_policy() {
    local file=$1
    [[ $file == /* ]] || file=$BATS_TEST_TMPDIR/$file
    expand_vars >"$file" || return 1
    POLICY=$file
}

# ------------------------------------------------------------------ data

# sha256 FILE|-: the hex SHA-256 of FILE (or stdin).
sha256() {
    local sum
    sum=$(sha256sum "${1:--}") || return 1
    echo "${sum%% *}"
}

# assert_ok: the last `run` exited 0; otherwise fail showing its stdout and
# (with --separate-stderr) stderr, where nestls logs why.
assert_ok() {
    ((status == 0)) || fail "exit status $status
--- stdout:
$output
--- stderr:
${stderr:-}"
}

# need_cmd CMD...: fail with a clear message when a tool is missing (make
# deps installs every one; a missing tool is a broken machine, not a pass).
need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null || fail "$c is not installed (run: make deps)"
    done
}

# need_build: fail (not skip) when the library or command is not built;
# need_cli: the same for the command alone.
need_build() {
    need_cli
    [[ -f $LIB ]] || fail "build/libnestls.so is missing: run make"
}
need_cli() {
    [[ -x $NESTLS ]] || fail "build/nestls is missing: run make"
}
