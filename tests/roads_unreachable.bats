#!/usr/bin/env bats
# Programs the preload cannot reach (DESIGN §6, "fail closed on every
# road"). LD_PRELOAD is a request to the dynamic loader: a statically
# linked program has none; the loader ignores it for a program that is
# setuid/setgid to someone else or has file capabilities (secure-execution
# mode); a Go program makes raw system calls no hook sees. Each would talk
# plaintext where the policy says TLS and exit 0. So, while the policy has
# a wrap rule, `nestls run` refuses them, and a #! script whose interpreter
# is one of them, with exit status 78 and one line:
#   nestls: refusing to run CMD: REASON (set insecure_allow_unhookable: true ...)
# With insecure_allow_unhookable: true it prints one warning line and runs
# them. A program it can reach, or a policy with no wrap rule, is never
# refused.
#
# The programs are builds of tests/helpers/plain_client.c made here: one
# static, one dynamic, and copies of the dynamic one made setuid, setgid,
# file-capable, unreadable, Go-marked or marked for another machine. The
# privilege cases run nestls as the user nobody, so everything lives in a
# directory that user can read.

load helpers/common
load helpers/peers

REFUSED_TAIL='(set insecure_allow_unhookable: true in settings to run it anyway, in plaintext)'
SECURE_MODE='so the loader ignores LD_PRELOAD (secure-execution mode) and its connections cannot be wrapped'
STATIC='statically linked, so LD_PRELOAD cannot wrap its connections'
GO='a Go program, whose runtime makes its socket calls as raw system calls, so LD_PRELOAD cannot wrap its connections'

setup_file() {
    need_build
    need_cmd cc objcopy setpriv
    [[ $(cc -print-file-name=libc.a) == /* ]] || fail "no static libc to link with (libc6-dev)"
    ROADS=$(mktemp -d /tmp/nestls-roads.XXXXXX)
    chmod 755 "$ROADS"
    export ROADS
    # For the user nobody; nestls finds libnestls.so next to itself.
    cp "$BUILD/nestls" "$LIB" "$ROADS/"
    cc -static -O2 -o "$ROADS/static-client" "$HELPERS/plain_client.c"
    cc -O2 -o "$ROADS/dynamic-client" "$HELPERS/plain_client.c"
    make_copies
    write_policies
}

teardown_file() {
    [[ -z ${ROADS:-} ]] || rm -rf "$ROADS"
}

setup() {
    cd "$BATS_TEST_TMPDIR"
}

# Copies of the dynamic client, each unreachable in one way.
make_copies() {
    local d=$ROADS
    install -m 4755 "$d/dynamic-client" "$d/setuid-client"   # root's
    install -m 2755 "$d/dynamic-client" "$d/setgid-client"   # group root's
    install -m 0711 "$d/dynamic-client" "$d/unreadable-client"
    cp "$d/dynamic-client" "$d/go-buildid-client"
    objcopy --add-section .note.go.buildid=/dev/null "$d/go-buildid-client"
    cp "$d/dynamic-client" "$d/go-buildinfo-client"
    objcopy --add-section .go.buildinfo=/dev/null "$d/go-buildinfo-client"
    # Go's build-ID note in a PT_NOTE segment, section headers stripped
    # (as sstrip leaves a Go binary): the GNU build-ID note turned into
    # Go's (owner "Go", type 4), e_shoff/e_shnum/e_shstrndx zeroed.
    python3 - "$d/dynamic-client" "$d/go-note-client" <<'EOF'
import struct, sys
elf = bytearray(open(sys.argv[1], "rb").read())
gnu = struct.pack("<III", 4, 20, 3) + b"GNU\0"
at = elf.find(gnu)
assert at > 0, "no GNU build-ID note to turn into Go's"
elf[at:at + 16] = struct.pack("<III", 4, 20, 4) + b"Go\0\0"  # as the Go linker writes it
elf[0x28:0x30] = bytes(8)  # e_shoff
elf[0x3c:0x40] = bytes(4)  # e_shnum, e_shstrndx
open(sys.argv[2], "wb").write(elf)
EOF
    chmod 755 "$d/go-note-client"
    # e_machine (offset 18) = EM_AARCH64: what qemu-user would run.
    cp "$d/dynamic-client" "$d/aarch64-client"
    printf '\267\000' | dd of="$d/aarch64-client" bs=1 seek=18 conv=notrunc status=none
    # #! scripts: straight to the static client, through env -S, and
    # through another script.
    printf '#!%s\n' "$d/static-client" >"$d/static-script"
    printf '#!/usr/bin/env -S static-client\n' >"$d/env-static-script"
    printf '#!%s\n' "$d/static-script" >"$d/script-script"
    printf '#!/usr/bin/env -S -i python3\nprint("python ran")\n' >"$d/env-i-script"
    printf '#!/usr/bin/env python3\nprint("python ran")\n' >"$d/python-script"
    chmod 755 "$d"/*-script
    if [[ $(id -u) == 0 ]] && command -v setcap >/dev/null; then
        cp "$d/dynamic-client" "$d/caps-client"
        setcap cap_net_bind_service+ep "$d/caps-client"
    fi
}

# wrap.yaml wraps client connections to loopback; allow.yaml does too,
# with insecure_allow_unhookable; nowrap.yaml only passes through;
# deny.yaml denies what its one passthrough rule does not match.
write_policies() {
    local rule='rules:
  - name: tls
    match:
      role: client
      address: [127.0.0.1]
    layers:
      - ca: system'
    printf 'version: 1\n%s\n' "$rule" >"$ROADS/wrap.yaml"
    printf 'version: 1\nsettings:\n  insecure_allow_unhookable: true\n%s\n' "$rule" >"$ROADS/allow.yaml"
    printf '%s\n' 'version: 1' 'rules:' \
        '  - name: local' '    match:' '      address: [127.0.0.1]' '    action: passthrough' \
        >"$ROADS/nowrap.yaml"
    printf '%s\n' 'version: 1' 'settings:' '  default_action: deny' 'rules:' \
        '  - name: local' '    match:' '      port: [9]' '    action: passthrough' \
        >"$ROADS/deny.yaml"
    chmod 644 "$ROADS"/*.yaml
}

# as_nobody CMD...: CMD as the user nobody, so that set-ID bits and file
# capabilities raise privileges (the tests run as root). A sanitizer
# runtime stays first in LD_PRELOAD, as $NESTLS would put it.
as_nobody() {
    setpriv --reuid=nobody --regid=nogroup --clear-groups \
        env ${PRELOAD_FIRST:+LD_PRELOAD="$PRELOAD_FIRST"} "$@"
}
need_root() {
    [[ $(id -u) == 0 ]] || skip "needs root to make set-ID copies and run them as nobody"
}

# nestls_roads POLICY CMD...: nestls run with POLICY of $ROADS. (The user
# nobody runs the copy in $ROADS instead: the build may be out of reach.)
nestls_roads() {
    local policy=$1
    shift
    "$NESTLS" run -p "$ROADS/$policy" -- "$@"
}

# assert_refused CMD REASON: the last run exited 78, printed nothing on
# stdout (the program never ran), and one stderr line refusing CMD for REASON.
assert_refused() {
    assert_equal "$status" 78
    assert_equal "$output" ''
    assert_equal "$stderr" "nestls: refusing to run $1: $2 $REFUSED_TAIL"
}

# cli_lines: the last run's stderr lines from the nestls command itself
# ("nestls: ..."), without the library's ("nestls[PID] LEVEL: ...").
cli_lines() {
    grep '^nestls: ' <<<"$stderr" || true
}

# assert_warned CMD REASON: the last run ran the program (exit 0, its line
# on stdout) after one line from nestls warning that CMD runs anyway for
# REASON.
assert_warned() {
    assert_ok
    assert_output 'plain_client ran'
    assert_equal "$(cli_lines)" "nestls: warning: running $1 anyway (insecure_allow_unhookable: true): $2"
}

# assert_not_refused OUTPUT: the last run ran the program to exit 0, its
# stdout was OUTPUT, and nestls itself said nothing.
assert_not_refused() {
    assert_ok
    assert_output "$1"
    assert_equal "$(cli_lines)" ''
}

# ------------------------------------------------------------- refusals

@test "a statically linked client is refused: exit 78, one line naming it and why" {
    run --separate-stderr nestls_roads wrap.yaml "$ROADS/static-client"
    assert_refused "$ROADS/static-client" "$STATIC"
}

@test "a statically linked client found on PATH is refused under the name it was given" {
    PATH=$ROADS:$PATH run --separate-stderr nestls_roads wrap.yaml static-client
    assert_refused static-client "$STATIC"
}

@test "a refused static client makes no connection: the listener sees nothing, the marker stays home" {
    need_cmd python3
    start_bg sink python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink"
    local port marker
    port=$(port_of sink)
    marker=$(new_marker)
    run --separate-stderr nestls_roads wrap.yaml "$ROADS/static-client" "$port" "$marker"
    assert_refused "$ROADS/static-client" "$STATIC"
    [[ ! -e sink/accepted.log ]] || fail "the listener accepted: $(cat sink/accepted.log)"
}

@test "a setuid-root copy of a dynamic client, run by nobody, is refused (the loader would drop LD_PRELOAD)" {
    need_root
    run --separate-stderr as_nobody "$ROADS/nestls" run -p "$ROADS/wrap.yaml" -- "$ROADS/setuid-client"
    assert_refused "$ROADS/setuid-client" "setuid to user 0, $SECURE_MODE"
}

@test "a setgid-root copy of a dynamic client, run by nobody, is refused" {
    need_root
    run --separate-stderr as_nobody "$ROADS/nestls" run -p "$ROADS/wrap.yaml" -- "$ROADS/setgid-client"
    assert_refused "$ROADS/setgid-client" "setgid to group 0, $SECURE_MODE"
}

@test "a copy with file capabilities, run by nobody, is refused" {
    need_root
    need_cmd setcap
    run --separate-stderr as_nobody "$ROADS/nestls" run -p "$ROADS/wrap.yaml" -- "$ROADS/caps-client"
    assert_refused "$ROADS/caps-client" "privileged by file capabilities, $SECURE_MODE"
}

@test "an executable nobody may run but not read (0711) is refused: nothing about it can be checked" {
    need_root
    run --separate-stderr as_nobody "$ROADS/nestls" run -p "$ROADS/wrap.yaml" -- "$ROADS/unreadable-client"
    assert_refused "$ROADS/unreadable-client" \
        'not readable by this user, so nestls cannot check that LD_PRELOAD can wrap its connections'
}

@test "a Go program (a .note.go.buildid or .go.buildinfo section) is refused, even dynamically linked" {
    run --separate-stderr nestls_roads wrap.yaml "$ROADS/go-buildid-client"
    assert_refused "$ROADS/go-buildid-client" "$GO"
    run --separate-stderr nestls_roads wrap.yaml "$ROADS/go-buildinfo-client"
    assert_refused "$ROADS/go-buildinfo-client" "$GO"
}

@test "a Go program whose section headers are stripped is still refused: its build-ID note is in a PT_NOTE segment" {
    run "$ROADS/go-note-client"
    [[ $status -ne 126 && $status -ne 139 ]] || fail "the patched copy does not run at all ($status)"
    run --separate-stderr nestls_roads wrap.yaml "$ROADS/go-note-client"
    assert_refused "$ROADS/go-note-client" "$GO"
}

@test "an ELF for another machine (as qemu-user would run it) is refused" {
    run --separate-stderr nestls_roads wrap.yaml "$ROADS/aarch64-client"
    assert_refused "$ROADS/aarch64-client" "built for another machine than libnestls.so (its ELF class, byte order or machine differ), so LD_PRELOAD cannot wrap its connections"
}

@test "a script whose #! interpreter is the static client is refused, naming the interpreter" {
    run --separate-stderr nestls_roads wrap.yaml "$ROADS/static-script"
    assert_refused "$ROADS/static-script" "its interpreter $ROADS/static-client is $STATIC"
}

@test "a script run by another script whose interpreter is static is refused" {
    run --separate-stderr nestls_roads wrap.yaml "$ROADS/script-script"
    assert_refused "$ROADS/script-script" "its interpreter $ROADS/static-client is $STATIC"
}

@test "#!/usr/bin/env -S NAME: NAME is found on PATH and judged" {
    PATH=$ROADS:$PATH run --separate-stderr nestls_roads wrap.yaml "$ROADS/env-static-script"
    assert_refused "$ROADS/env-static-script" "its interpreter $ROADS/static-client is $STATIC"
}

@test "#!/usr/bin/env with options nestls cannot follow (-i drops LD_PRELOAD) is refused, not guessed" {
    run --separate-stderr nestls_roads wrap.yaml "$ROADS/env-i-script"
    assert_refused "$ROADS/env-i-script" "a script whose line '#!/usr/bin/env -S -i python3' gives env options that can change what runs, which nestls does not follow"
}

# --------------------------------------------- insecure_allow_unhookable

@test "insecure_allow_unhookable: the static client and a script on it run, after one warning line" {
    run --separate-stderr nestls_roads allow.yaml "$ROADS/static-client"
    assert_warned "$ROADS/static-client" "$STATIC"
    run --separate-stderr nestls_roads allow.yaml "$ROADS/static-script"
    assert_warned "$ROADS/static-script" "its interpreter $ROADS/static-client is $STATIC"
}

@test "insecure_allow_unhookable: the static client's marker reaches the listener in clear, as the setting says" {
    need_cmd python3
    start_bg sink python3 "$HELPERS/sink.py" "$BATS_TEST_TMPDIR/sink"
    local port marker
    port=$(port_of sink)
    marker=$(new_marker)
    run --separate-stderr nestls_roads allow.yaml "$ROADS/static-client" "$port" "$marker"
    assert_warned "$ROADS/static-client" "$STATIC"
    wait_for_file sink/conn-1.done
    grep -qF "$marker" sink/conn-1.bin || fail "the marker did not arrive: $(od -c sink/conn-1.bin | head)"
}

@test "insecure_allow_unhookable: the Go-marked copy runs, after one warning line" {
    run --separate-stderr nestls_roads allow.yaml "$ROADS/go-buildid-client"
    assert_warned "$ROADS/go-buildid-client" "$GO"
}

@test "insecure_allow_unhookable: setuid, setgid, file-capability and unreadable copies run as nobody, each after one warning" {
    need_root
    local c reasons=(
        "setuid-client:setuid to user 0, $SECURE_MODE"
        "setgid-client:setgid to group 0, $SECURE_MODE"
        'unreadable-client:not readable by this user, so nestls cannot check that LD_PRELOAD can wrap its connections'
    )
    ! command -v setcap >/dev/null || reasons+=("caps-client:privileged by file capabilities, $SECURE_MODE")
    for c in "${reasons[@]}"; do
        run --separate-stderr as_nobody "$ROADS/nestls" run -p "$ROADS/allow.yaml" -- "$ROADS/${c%%:*}"
        assert_warned "$ROADS/${c%%:*}" "${c#*:}"
    done
}

# ------------------------------------------------------ never refused

@test "programs the preload reaches are not refused: /bin/true, a dynamic client, a python script through env" {
    need_cmd python3
    run --separate-stderr nestls_roads wrap.yaml true
    assert_not_refused ''
    run --separate-stderr nestls_roads wrap.yaml "$ROADS/dynamic-client"
    assert_not_refused 'plain_client ran'
    run --separate-stderr nestls_roads wrap.yaml "$ROADS/python-script"
    assert_not_refused 'python ran'
}

@test "a setuid copy run by its owner, or under no_new_privs, is not refused: the kernel raises nothing" {
    need_root
    run --separate-stderr nestls_roads wrap.yaml "$ROADS/setuid-client"
    assert_not_refused 'plain_client ran'
    run --separate-stderr setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs \
        env ${PRELOAD_FIRST:+LD_PRELOAD="$PRELOAD_FIRST"} \
        "$ROADS/nestls" run -p "$ROADS/wrap.yaml" -- "$ROADS/setuid-client"
    assert_not_refused 'plain_client ran'
}

@test "a deny policy refuses the static client too: it would connect where the policy denies" {
    run --separate-stderr nestls_roads deny.yaml "$ROADS/static-client"
    assert_failure 78
    assert_output ''
    [[ $stderr == *"$STATIC"* ]] || fail "not refused as static: $stderr"
}

@test "a policy that only passes through never refuses: the static client runs without a word" {
    run --separate-stderr nestls_roads nowrap.yaml "$ROADS/static-client"
    assert_not_refused 'plain_client ran'
    assert_equal "$stderr" ''
}

@test "a command that does not exist is left to exec to report (127), not refused" {
    run -127 --separate-stderr nestls_roads wrap.yaml "$ROADS/no-such-client"
    assert_failure 127
    [[ $stderr =~ ^nestls:\ cannot\ run\ .*no-such-client ]] || fail "stderr: $stderr"
}

# ------------------------------------------------------------- settings

@test "check accepts insecure_allow_unhookable and allow_io_uring as booleans" {
    printf 'version: 1\nsettings:\n  insecure_allow_unhookable: yes\n  allow_io_uring: true\nrules: []\n' >p.yaml
    run --separate-stderr "$NESTLS" check p.yaml
    assert_ok
}

@test "a setting that is not a boolean is reported at its value" {
    printf 'version: 1\nsettings:\n  allow_io_uring: sometimes\nrules: []\n' >p.yaml
    run --separate-stderr "$NESTLS" run -p p.yaml -- true
    assert_failure 78
    assert_equal "$stderr" "nestls: p.yaml:3:19: 'allow_io_uring' must be true or false (got 'sometimes')"
    printf 'version: 1\nsettings:\n  insecure_allow_unhookable: 1\nrules: []\n' >p.yaml
    run --separate-stderr "$NESTLS" run -p p.yaml -- true
    assert_failure 78
    assert_equal "$stderr" "nestls: p.yaml:3:30: 'insecure_allow_unhookable' must be true or false (got '1')"
}
