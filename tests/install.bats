#!/usr/bin/env bats
# Installing like a Debian tool (packaging/install.mk): `make install`
# honours PREFIX and DESTDIR and puts every file in place, the installed
# nestls finds its library, both man pages render with `man -l` and
# document every policy key the loader knows, `make uninstall` takes it all
# back, the link lines honour CPPFLAGS and LDFLAGS, and `make deb` builds a
# package whose contents and control data are right and whose programs
# work once unpacked.
#
# Everything is built and installed under this suite's own temporary
# directory (a release build of its own, so it is the same under
# `make test-asan`); nothing is installed into the system. `dpkg -i` into
# the real system is not part of `make test`.

load helpers/common
load helpers/peers

# make in the repository, with nothing of the calling make's or the suites'
# environment (MAKEFLAGS from `make test`, BUILD exported by common.bash).
repo_make() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD -u CFLAGS -u CPPFLAGS -u LDFLAGS \
        make --no-print-directory -C "$REPO" "$@"
}

setup_file() {
    IB=$BATS_FILE_TMPDIR/build
    DEST=$BATS_FILE_TMPDIR/dest
    export IB DEST
    repo_make BUILD="$IB" -j2 all >"$BATS_FILE_TMPDIR/build.log" 2>&1 &&
        repo_make BUILD="$IB" PREFIX=/usr DESTDIR="$DEST" install >"$BATS_FILE_TMPDIR/install.log" 2>&1
    echo $? >"$BATS_FILE_TMPDIR/install.rc"
}

setup() {
    [[ $(cat "$BATS_FILE_TMPDIR/install.rc") == 0 ]] || fail "make install failed:
$(tail -n 30 "$BATS_FILE_TMPDIR/build.log" "$BATS_FILE_TMPDIR/install.log" 2>/dev/null)"
}

# The files make install puts under PREFIX, with their modes.
installed_files() {
    local f
    echo "755 bin/nestls"
    echo "644 lib/nestls/libnestls.so"
    echo "644 share/nestls/nestls.bash"
    echo "644 share/man/man1/nestls.1"
    echo "644 share/man/man5/nestls-policy.5"
    echo "644 share/bash-completion/completions/nestls"
    echo "644 share/doc/nestls/certs/generate.sh"
    echo "644 share/doc/nestls/README.md"
    for f in "$REPO"/policy/*.yaml; do echo "644 share/doc/nestls/examples/${f##*/}"; done
    for f in "$REPO"/docs/*.md "$REPO"/docs/*.png; do
        [[ -e $f ]] && echo "644 share/doc/nestls/${f##*/}"
    done
}

@test "make install DESTDIR=... PREFIX=/usr puts every file in place, with its mode" {
    local mode path missing=()
    while read -r mode path; do
        if [[ ! -f $DEST/usr/$path ]]; then
            missing+=("$path")
        else
            run stat -c %a "$DEST/usr/$path"
            assert_output "$mode"
        fi
    done < <(installed_files)
    ((${#missing[@]} == 0)) || fail "not installed: ${missing[*]}"
    # And nothing else: the installed tree is exactly that list.
    diff <(installed_files | awk '{ print "usr/" $2 }' | sort) \
        <(cd "$DEST" && find . -type f | sed 's|^\./||' | sort)
    cmp "$DEST/usr/bin/nestls" "$IB/nestls"
    cmp "$DEST/usr/lib/nestls/libnestls.so" "$IB/libnestls.so"
}

@test "the installed nestls finds the installed libnestls.so (../lib/nestls beside bin/)" {
    run "$DEST/usr/bin/nestls" --version
    assert_ok
    assert_output --regexp '^nestls [0-9]+\.[0-9]+\.[0-9]+'
    write_policy p.yaml <<<'version: 1'
    # env -i: not the LD_PRELOAD or NESTLS_* of this shell.
    run --separate-stderr env -i PATH=/usr/bin:/bin "$DEST/usr/bin/nestls" run -p "$POLICY" -- \
        sh -c 'echo "$LD_PRELOAD"'
    assert_ok
    assert_output "$DEST/usr/lib/nestls/libnestls.so"
}

@test "a LIBDIR away from bin/ is compiled in; without a library, nestls names every place it looked" {
    local p=$BATS_TEST_TMPDIR/opt
    run repo_make BUILD="$BATS_TEST_TMPDIR/b" -j2 PREFIX="$p" LIBDIR="$p/lib64" install
    assert_ok
    [[ -f $p/lib64/nestls/libnestls.so && ! -e $p/lib ]] || fail "not installed in $p/lib64"
    write_policy p.yaml <<<'version: 1'
    run --separate-stderr env -i PATH=/usr/bin:/bin "$p/bin/nestls" run -p "$POLICY" -- sh -c 'echo "$LD_PRELOAD"'
    assert_ok
    assert_output "$p/lib64/nestls/libnestls.so"

    rm "$p/lib64/nestls/libnestls.so"
    run --separate-stderr "$p/bin/nestls" run -p "$POLICY" -- true
    assert_equal "$status" 1
    assert_equal "$stderr" "nestls: cannot find libnestls.so (tried $p/bin/libnestls.so, $p/bin/../lib/nestls/libnestls.so, $p/lib64/nestls/libnestls.so): build it with make, or install it with make install"
}

@test "PREFIX defaults to /usr/local" {
    local d=$BATS_TEST_TMPDIR/d
    run repo_make BUILD="$IB" DESTDIR="$d" install
    assert_ok
    [[ -x $d/usr/local/bin/nestls && -f $d/usr/local/lib/nestls/libnestls.so &&
        -f $d/usr/local/share/man/man5/nestls-policy.5 ]] || fail "$(cd "$d" && find . -type f)"
}

@test "man -l renders nestls(1) and nestls-policy(5) without a warning" {
    local page
    for page in "$DEST/usr/share/man/man1/nestls.1" "$DEST/usr/share/man/man5/nestls-policy.5"; do
        run --separate-stderr env MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings=all -l "$page"
        assert_ok
        [[ -z $stderr ]] || fail "man -l $page warned: $stderr"
        assert_line --regexp '^NAME$'
        assert_line --regexp '^SYNOPSIS$'
        assert_line --regexp '^SEE ALSO$'
        (($(wc -l <<<"$output") > 100)) || fail "$page renders to only $(wc -l <<<"$output") lines"
    done
    run env MANWIDTH=80 man -l "$DEST/usr/share/man/man1/nestls.1"
    assert_line --regexp '^ +nestls run \[-p FILE\]'
    assert_output --partial 'EXIT STATUS'
    assert_output --partial 'NESTLS_POLICY'
}

# The keys the loader accepts, from its tables in src/policy/*.c.
loader_keys() {
    python3 - "$REPO"/src/policy/*.c <<'PY'
import re, sys
keys = set()
for path in sys.argv[1:]:
    for name, body in re.findall(r'const char \*const (\w*keys\w*)\[\] = \{(.*?)\};',
                                 open(path).read(), re.S | re.I):
        keys.update(re.findall(r'"([a-z_]+)"', body))
print('\n'.join(sorted(keys)))
PY
}

@test "nestls-policy(5) and docs/policy.md name every key the policy loader accepts" {
    local keys key page missing=()
    keys=$(loader_keys)
    (($(wc -l <<<"$keys") >= 25)) || fail "found only these keys in src/policy: $keys"
    page=$(env MANWIDTH=200 man -l "$DEST/usr/share/man/man5/nestls-policy.5")
    for key in $keys; do
        # A key's entry starts a line of the rendered page.
        grep -Eq "^ +$key( |$)" <<<"$page" || missing+=("man:$key")
        grep -Fq "\`$key\`" "$REPO/docs/policy.md" || missing+=("policy.md:$key")
    done
    ((${#missing[@]} == 0)) || fail "not documented: ${missing[*]}"
}

@test "the installed examples and certs/generate.sh work from a copy, as the docs say" {
    local try=$BATS_TEST_TMPDIR/nestls-try f
    mkdir -p "$try"
    cp -r "$DEST/usr/share/doc/nestls/examples" "$DEST/usr/share/doc/nestls/certs" "$try/"
    run bash "$try/certs/generate.sh"
    assert_ok
    cd "$try"
    for f in examples/*.yaml; do
        run --separate-stderr "$DEST/usr/bin/nestls" check "$f"
        assert_ok
    done
}

@test "the bash completion completes subcommands, run's options and the program" {
    run bash -c '
        source "$1"
        complete -p nestls
        t() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _nestls; echo "${COMPREPLY[*]}"; }
        t nestls ""
        t nestls ex
        t nestls run -
        t nestls run -p p.yaml bas
        t nestls explain p.yaml s' _ "$DEST/usr/share/bash-completion/completions/nestls"
    assert_ok
    assert_line --index 0 --partial '-F _nestls'
    assert_line --index 1 'run check explain probe --help --version'
    assert_line --index 2 'explain'
    assert_line --index 3 --partial '-p --policy -v --verbose -q'
    assert_line --index 4 --regexp '(^| )bash( |$)'
    assert_line --index 5 'server'
}

@test "make uninstall removes every installed file and nestls's own directories" {
    local d=$BATS_TEST_TMPDIR/u
    run repo_make BUILD="$IB" PREFIX=/usr DESTDIR="$d" install
    assert_ok
    mkdir -p "$d/usr/bin" && touch "$d/usr/bin/someone-else"
    run repo_make BUILD="$IB" PREFIX=/usr DESTDIR="$d" uninstall
    assert_ok
    run find "$d" -type f
    assert_output "$d/usr/bin/someone-else"
    [[ ! -e $d/usr/lib/nestls && ! -e $d/usr/share/nestls && ! -e $d/usr/share/doc/nestls ]] ||
        fail "directories left: $(find "$d" -type d -path '*nestls*')"
}

@test "every compile line carries CPPFLAGS and every link line LDFLAGS" {
    run repo_make -B -n BUILD="$BATS_TEST_TMPDIR/n" CPPFLAGS=-DNL_CPP_MARK LDFLAGS=-Wl,--nl-ld-mark all
    assert_ok
    local compiles links
    compiles=$(grep -E ' -c [^ ]+\.c ' <<<"$output")
    links=$(grep -E -- '-o [^ ]+/(nestls|libnestls\.so)( |$)' <<<"$output")
    [[ -n $compiles && $(wc -l <<<"$links") -eq 2 ]] || fail "no compile or link lines in: $output"
    run grep -vc -- '-DNL_CPP_MARK' <<<"$compiles"
    assert_output 0
    run grep -vc -- '-Wl,--nl-ld-mark' <<<"$links"
    assert_output 0
}

# ------------------------------------------------------------------ deb

# VERSION := x.y.z in the Makefile.
makefile_version() {
    sed -n 's/^VERSION *:= *//p' "$REPO/Makefile"
}

# build_deb: make deb once for this file; sets DEB to the package's path.
build_deb() {
    DEB=$BATS_FILE_TMPDIR/db/nestls_$(makefile_version)_$(dpkg --print-architecture).deb
    [[ -f $DEB ]] && return 0
    run repo_make BUILD="$BATS_FILE_TMPDIR/db" deb
    assert_ok
    [[ -f $DEB ]] || fail "make deb made no $DEB"
}

@test "make deb builds a package: control data, contents, owners and modes" {
    local version arch deb
    version=$(makefile_version)
    arch=$(dpkg --print-architecture)
    build_deb
    deb=$DEB
    [[ ${deb##*/} == "nestls_${version}_$arch.deb" ]]

    run dpkg-deb -f "$deb" Package Version Architecture
    assert_output "Package: nestls
Version: $version
Architecture: $arch"
    run dpkg-deb -f "$deb" Depends
    assert_output --regexp '^libc6 \(>= 2\.[0-9]+\), libssl3 \(>= 3\.0\.0\), libyaml-0-2$'
    run dpkg-deb -I "$deb"
    assert_ok
    assert_output --regexp 'Installed-Size: [0-9]+'
    assert_output --partial 'Maintainer: '
    assert_output --partial 'Description: '
    assert_output --partial ' md5sums'

    run dpkg-deb -c "$deb"
    assert_ok
    local listing=$output
    assert_line --regexp '^-rwxr-xr-x root/root +[0-9]+ .* \./usr/bin/nestls$'
    assert_line --regexp '^-rw-r--r-- root/root +[0-9]+ .* \./usr/lib/nestls/libnestls\.so$'
    assert_line --regexp ' \./usr/share/man/man1/nestls\.1\.gz$'
    assert_line --regexp ' \./usr/share/man/man5/nestls-policy\.5\.gz$'
    assert_line --regexp ' \./usr/share/bash-completion/completions/nestls$'
    assert_line --regexp ' \./usr/share/nestls/nestls\.bash$'
    assert_line --regexp ' \./usr/share/doc/nestls/examples/demo\.yaml$'
    assert_line --regexp ' \./usr/share/doc/nestls/certs/generate\.sh$'
    run grep -vc ' root/root ' <<<"$listing"
    assert_output 0
    # Nothing outside /usr, nothing of the build tree.
    run grep -Evc ' \./(usr(/.*)?)?$' <<<"$listing"
    assert_output 0
}

@test "the .deb's nestls, unpacked, wraps a real connection (stripped, hardened build)" {
    local root port f
    build_deb
    root=$BATS_TEST_TMPDIR/root
    dpkg-deb -x "$DEB" "$root"
    for f in "$root/usr/bin/nestls" "$root/usr/lib/nestls/libnestls.so"; do
        run readelf -S -W "$f"
        refute_output --partial '.symtab'
        refute_output --partial '.debug_info'
        # Built with Debian's hardening flags: the stack protector, and
        # glibc's checked (_FORTIFY_SOURCE) functions.
        run nm -D "$f"
        assert_output --partial '__stack_chk_fail'
        assert_output --regexp '__[a-z]+_chk'
    done
    run --separate-stderr env MANWIDTH=80 man --warnings=all -l "$root/usr/share/man/man5/nestls-policy.5.gz"
    assert_ok
    assert_line --regexp '^NAME$'

    port=$(free_port)
    start_s_server tls "$port" outer-server -www
    client_policy c.yaml "$port" outer
    run --separate-stderr env -i PATH=/usr/bin:/bin "$root/usr/bin/nestls" run -p "$POLICY" -- \
        curl -s "http://127.0.0.1:$port/"
    assert_ok
    assert_line --regexp '^New, TLSv1\.3, Cipher is TLS_'
}
