#!/usr/bin/env bats
# What the build produces: a preload library that exports its hooks and
# nothing else (no internal nl_* symbol can clash with a program's), built
# position-independent, and a command that exports nothing of its own.

load helpers/common

# The hooks: plain libc names of socket, descriptor, name-lookup and process
# calls (and glibc's second names for some), and liburing's set-up
# functions (src/hooks/uring.c). Anything else exported is a leak of an
# internal symbol.
LIBURING_HOOKS='io_uring_queue_init|io_uring_queue_init_params|io_uring_queue_init_mem|io_uring_setup'
HOOK_NAMES='socket|socketpair|connect|__connect|accept|accept4|listen|bind|close|dup|dup2|dup3|fcntl|fcntl64|ioctl|close_range|closefrom|shutdown|write|__write|send|__send|sendto|sendmsg|sendmmsg|syscall|'"$LIBURING_HOOKS"'|getpeername|getsockname|getsockopt|setsockopt|getaddrinfo|freeaddrinfo|getnameinfo|gethostbyname|gethostbyname2|gethostbyname_r|gethostbyname2_r|epoll_ctl|epoll_wait|epoll_pwait|poll|__poll|__poll_chk|read|__read|__read_chk|recv|__recv_chk|exit|_exit|_Exit|execve|execveat|fexecve|execv|execvp|execvpe|execl|execlp|execle|fork|vfork|daemon|posix_spawn|posix_spawnp|system|popen'

setup() {
    need_build
    need_cmd nm readelf
}

# The library's exported (dynamic, defined) symbol names, one a line.
exported() {
    nm -D --defined-only "$1" | awk '{ print $NF }' | sed 's/@.*//' | sort -u
}

@test "libnestls.so exports only hook functions named like the libc calls they wrap" {
    run exported "$LIB"
    assert_success
    [[ -n $output ]] || fail "libnestls.so exports nothing at all"
    local internal bad
    internal=$(grep -E '^_*nl_' <<<"$output" || true)
    [[ -z $internal ]] || fail "internal symbols exported: $(echo $internal)"
    bad=$(grep -Evx "$HOOK_NAMES" <<<"$output" || true)
    [[ -z $bad ]] || fail "exported but not a hook name: $(echo $bad)"
}

@test "every libnestls.so export is a function that libc (or liburing, for its hooks) exports" {
    local libc sym missing=()
    libc=$(ldd "$LIB" | awk '/libc\.so\.6/ { print $3 }')
    [[ -f $libc ]] || fail "libnestls.so is not linked with libc.so.6"
    local libc_syms
    libc_syms=$(exported "$libc")
    while read -r sym; do
        grep -qx -- "$sym" <<<"$libc_syms" || grep -Eqx -- "$LIBURING_HOOKS" <<<"$sym" ||
            missing+=("$sym")
    done < <(exported "$LIB")
    ((${#missing[@]} == 0)) || fail "not libc functions: ${missing[*]}"
    # And they are code, not data.
    run bash -c "nm -D --defined-only '$LIB' | awk '\$2 !~ /^[TtWi]\$/'"
    assert_output ''
}

@test "libnestls.so wraps connect, accept, accept4 and close" {
    run exported "$LIB"
    for sym in connect accept accept4 close; do
        assert_line "$sym"
    done
}

@test "libnestls.so is position-independent: no text relocations" {
    run readelf -d "$LIB"
    assert_success
    refute_output --partial TEXTREL
    run readelf -h "$LIB"
    assert_output --regexp 'Type:[[:space:]]+DYN'
}

@test "the nestls command exports no symbol of its own" {
    # A PIE exports nothing but what the C runtime puts there.
    run bash -c "nm -D --defined-only '$NESTLS' | awk '{ print \$NF }' | sed 's/@.*//' \
        | grep -Evx '_IO_stdin_used|__data_start|data_start|_edata|_end|__bss_start|_init|_fini'"
    assert_output ''
}
