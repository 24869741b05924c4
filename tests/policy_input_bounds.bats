#!/usr/bin/env bats
# Bounded policy input, and what a wrapped process tree is told about its
# policy (issue "Fail closed on every road to the wire").
#
# The policy is read in the constructor of every wrapped program. A file
# that is not a regular file, is over 1 MiB, or whose YAML nests too deep
# or grows through aliases past the loader's limits (src/policy/loader.h)
# is refused at once, with one line naming FILE:LINE:COL and the limit:
#   nestls check FILE          exit 1,  "nestls: FILE:LINE:COL: ..."
#   nestls run -p FILE -- CMD  exit 78, same line, CMD never runs
#   preloaded, NESTLS_POLICY   exit 78 before main, "nestls[PID] error: ..."
# Every command runs under `timeout`: a hang or a minutes-long load fails
# the test (status 124) instead of stalling the suite.
#
# A relative NESTLS_POLICY reaches children as an absolute path, and one
# info line per process tree names the policy and what happens to
# connections no rule matches.

load helpers/common
load helpers/peers # assert_log

BOUND=5 # seconds each command may take; a refusal takes milliseconds

setup() {
    need_build
    need_cmd python3 timeout bash
    cd "$BATS_TEST_TMPDIR"
}

# preloaded CMD...: CMD with the library preloaded and NESTLS_POLICY as the
# caller set it, bounded.
preloaded() {
    timeout -k 1 "$BOUND" env LD_PRELOAD="${PRELOAD_FIRST:+$PRELOAD_FIRST }$LIB" "$@"
}

# one_stderr_line REGEX: the last `run --separate-stderr` printed exactly
# one stderr line, matching the extended REGEX.
one_stderr_line() {
    [[ $(wc -l <<<"$stderr") -eq 1 && -n $stderr ]] || fail "expected one stderr line, got: $stderr"
    [[ $stderr =~ $1 ]] || fail "stderr does not match '$1': $stderr"
}

# refused_everywhere FILE REGEX: check, run and the library each refuse
# FILE at once with one line "FILE:" + REGEX; nothing runs.
refused_everywhere() {
    local file=$1 re=$2
    local name=${file//./\\.}

    run --separate-stderr timeout -k 1 "$BOUND" "$NESTLS" check "$file"
    assert_failure 1
    assert_output ''
    one_stderr_line "^nestls: $name:$re"

    run --separate-stderr timeout -k 1 "$BOUND" "$NESTLS" run -p "$file" -- sh -c 'echo ran'
    assert_failure 78
    assert_output ''
    one_stderr_line "^nestls: $name:$re"

    NESTLS_POLICY=$file run --separate-stderr preloaded sh -c 'echo ran'
    assert_failure 78
    assert_output ''
    one_stderr_line "^nestls\[[0-9]+\] error: $name:$re"
}

# escaped TEXT: TEXT with the dots of a path escaped for a regex.
escaped() {
    echo "${1//./\\.}"
}

# ------------------------------------------------------------ not a file

@test "a FIFO as the policy is refused at once: nothing waits for a writer" {
    mkfifo policy.yaml
    refused_everywhere policy.yaml '1:1: cannot read policy: it is a FIFO, not a regular file$'
}

@test "a FIFO named as a layer's ca is refused at once" {
    mkfifo ca.pem
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: c
    match: {port: [9]}
    layers:
      - ca: ca.pem
EOF
    refused_everywhere policy.yaml "6:13: layer 1 of rule 'c': cannot read 'ca' file 'ca.pem': not a regular file$"
}

@test "a FIFO without a reader as log_file does not block start-up: the program runs, logging to stderr" {
    mkfifo log.fifo
    write_policy policy.yaml <<EOF
version: 1
settings:
  log_file: $BATS_TEST_TMPDIR/log.fifo
rules: []
EOF
    run --separate-stderr timeout -k 1 "$BOUND" "$NESTLS" run -p "$POLICY" -- sh -c 'echo ran'
    assert_ok
    assert_output ran
    assert_log "$stderr" "warn: cannot open log_file .*/log\\.fifo: No such device or address; logging to stderr$"
}

@test "/dev/zero as the policy is refused: a device is not a policy" {
    refused_everywhere /dev/zero '1:1: cannot read policy: it is a character device, not a regular file$'
}

@test "a directory as the policy is refused, saying it is a directory" {
    mkdir policy.d
    refused_everywhere policy.d '1:1: cannot read policy: it is a directory, not a regular file$'
}

# --------------------------------------------------------------- size

# policy_of_size BYTES: a valid policy padded to BYTES by a comment.
policy_of_size() {
    python3 -c 'import sys
head = "version: 1\nrules: []\n#"
sys.stdout.write(head + "x" * (int(sys.argv[1]) - len(head) - 1) + "\n")' "$1"
}

@test "a policy over 1 MiB is refused unread, naming its size and the limit" {
    policy_of_size $((1024 * 1024 + 1)) >big.yaml
    refused_everywhere big.yaml '1:1: cannot read policy: it is 1048577 bytes, over the limit of 1048576 bytes \(1 MiB\) for a policy$'
}

@test "a policy of exactly 1 MiB still loads" {
    policy_of_size $((1024 * 1024)) >policy.yaml
    run --separate-stderr timeout -k 1 "$BOUND" "$NESTLS" check policy.yaml
    assert_success
    assert_line 'policy.yaml: ok'
}

# ------------------------------------------------------------ YAML shape

@test "an alias bomb (a rule of 5,000 addresses repeated 20,000 times) is refused at the alias past the node limit" {
    # 5 nodes before the rule, 5,009 in it: the 19th alias (line 22) passes 100,000.
    python3 -c 'addrs = ", ".join("10.%d.%d.1" % (i // 250, i % 250) for i in range(5000))
print("version: 1\nrules:\n  - &r {name: r, match: {address: [%s]}, action: passthrough}" % addrs)
print("  - *r\n" * 20000, end="")' >bomb.yaml
    refused_everywhere bomb.yaml '22:5: alias \*r takes the policy past 100000 nodes, the limit \(an alias counts as a copy of what it names\)$'
}

@test "100,000 nested '[' are refused at the level past the depth limit" {
    # The top mapping is level 1; "rules: " ends at column 7: level 65 is column 71.
    { printf 'version: 1\nrules: '; head -c 100000 /dev/zero | tr '\0' '['; echo; } >deep.yaml
    refused_everywhere deep.yaml '2:71: nested more than 64 levels deep, the limit for a policy$'
}

# ---------------------------------------------- relative NESTLS_POLICY

# Connects to a listener of its own: "connected", or "connect: ERRNO".
PROBE='import errno, socket
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
try:
    socket.socket().connect(listener.getsockname())
    print("connected")
except OSError as e:
    print("connect:", errno.errorcode[e.errno])'

@test "a relative NESTLS_POLICY reaches a child that changed directory as the same file" {
    write_policy policy.yaml <<'EOF'
version: 1
settings:
  default_action: deny
rules: []
EOF
    # Same name, other directory, the opposite default.
    mkdir sub
    printf 'version: 1\nrules: []\n' >sub/policy.yaml
    local abs
    abs=$(realpath policy.yaml)

    NESTLS_POLICY=policy.yaml run --separate-stderr preloaded \
        bash -c 'cd sub && echo "child: $NESTLS_POLICY" && python3 -c "$0"' "$PROBE"
    assert_success
    assert_line "child: $abs"
    assert_line 'connect: EPERM' # the deny policy, not sub/policy.yaml
}

# ----------------------------------------------- the start-up line

@test "start-up says once which policy is in force and that unmatched connections pass in plaintext" {
    write_policy policy.yaml <<'EOF'
version: 1
rules:
  - name: elsewhere
    match:
      address: 192.0.2.0/24
    action: deny
EOF
    NESTLS_POLICY=policy.yaml run --separate-stderr preloaded sh -c 'echo ran'
    assert_success
    assert_output ran
    one_stderr_line "^nestls\[[0-9]+\] info: policy $(escaped "$(realpath policy.yaml)"): 1 rule; connections no rule matches are passed through in plaintext$"
}

@test "with default_action deny the start-up line says unmatched connections are denied" {
    write_policy policy.yaml <<'EOF'
version: 1
settings:
  default_action: deny
rules:
  - match: {port: 1}
    action: passthrough
  - match: {port: 2}
    action: passthrough
EOF
    run --separate-stderr timeout -k 1 "$BOUND" "$NESTLS" run -p policy.yaml -- sh -c 'echo ran'
    assert_success
    assert_output ran
    one_stderr_line "^nestls\[[0-9]+\] info: policy $(escaped "$(realpath policy.yaml)"): 2 rules; connections no rule matches are denied$"
}

@test "the start-up line is said once per process tree, not by every process in it" {
    printf 'version: 1\nrules: []\n' >policy.yaml
    # bash, dash and python children and grandchildren, all preloaded.
    run --separate-stderr timeout -k 1 "$BOUND" "$NESTLS" run -p policy.yaml -- \
        bash -c 'sh -c "sh -c true; true"; python3 -c "import subprocess; subprocess.run([\"true\"])"; true'
    assert_success
    one_stderr_line '^nestls\[[0-9]+\] info: policy .*/policy\.yaml: 0 rules; connections no rule matches are passed through in plaintext$'
}

@test "a child started under another policy says its own start-up line" {
    printf 'version: 1\nrules: []\n' >policy.yaml
    printf 'version: 1\nsettings:\n  default_action: deny\nrules: []\n' >other.yaml
    run --separate-stderr timeout -k 1 "$BOUND" "$NESTLS" run -p policy.yaml -- \
        bash -c 'NESTLS_POLICY=$PWD/other.yaml sh -c true; sh -c true'
    assert_success
    [[ $(wc -l <<<"$stderr") -eq 2 ]] || fail "expected two stderr lines, got: $stderr"
    assert_log "$stderr" '^nestls\[[0-9]+\] info: policy .*/policy\.yaml: .* passed through in plaintext$'
    assert_log "$stderr" '^nestls\[[0-9]+\] info: policy .*/other\.yaml: .* denied$'
}

@test "at log_level warn the start-up line is not said" {
    unset NESTLS_LOG # the policy's level, not the suites' (common.bash)
    printf 'version: 1\nsettings:\n  log_level: warn\nrules: []\n' >policy.yaml
    NESTLS_POLICY=policy.yaml run --separate-stderr preloaded sh -c 'echo ran'
    assert_success
    assert_output ran
    assert_equal "$stderr" ''
}
