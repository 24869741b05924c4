/* syscall(): the same roads, reached by number.
 *
 * A program (or a runtime: libuv, some language bindings, daemons closing
 * every descriptor) may call connect, accept, sendto, sendmsg,
 * io_uring_setup, execve, close, close_range, dup2 or dup3 through libc's
 * syscall() instead of their own functions. Those numbers take the same
 * hooks as the functions (so a raw close_range skips nestls's descriptors
 * and a raw dup2 onto one moves it first, as fd.c does for the functions);
 * every other number goes to libc untouched. nestls's own raw calls
 * (common/sys.h, fdtable.c, fd.c's fallbacks) come through here too: they
 * are told apart by their return address, inside this library, and go
 * straight to libc (fd.c's close_range fallback would otherwise call
 * itself).
 *
 * errno contract: syscall()'s: -1 and errno, as the hooked function's. */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hooks/export.h"
#include "hooks/hooks.h"
#include "hooks/roads.h"
#include "hooks/uring.h"

static long dispatch(long n, long a[6], bool *handled)
{
    *handled = true;
    switch (n) {
    case SYS_connect: {
        bool plaintext;
        int r = nl_connect_road((int)a[0], (const struct sockaddr *)a[1], (socklen_t)a[2], &plaintext);
        if (!plaintext)
            return r;
        break;
    }
    case SYS_accept:
        return nl_accept_road((int)a[0], (struct sockaddr *)a[1], (socklen_t *)a[2], 0);
    case SYS_accept4:
        return nl_accept_road((int)a[0], (struct sockaddr *)a[1], (socklen_t *)a[2], (int)a[3]);
    case SYS_listen:
        return nl_listen_road((int)a[0], (int)a[1]);
    case SYS_sendto:
        return nl_sendto_road((int)a[0], (const void *)a[1], (size_t)a[2], (int)a[3],
                              (const struct sockaddr *)a[4], (socklen_t)a[5]);
    case SYS_sendmsg:
        return nl_sendmsg_road((int)a[0], (const struct msghdr *)a[1], (int)a[2]);
    case SYS_sendmmsg:
        return nl_sendmmsg_road((int)a[0], (struct mmsghdr *)a[1], (unsigned)a[2], (int)a[3]);
    case SYS_execve:
        return execve((const char *)a[0], (char *const *)a[1], (char *const *)a[2]);
    case SYS_execveat:
        return execveat((int)a[0], (const char *)a[1], (char *const *)a[2], (char *const *)a[3],
                        (int)a[4]);
    case SYS_close:
        return close((int)a[0]);
    case SYS_close_range:
        return close_range((unsigned)a[0], (unsigned)a[1], (int)a[2]);
#ifdef SYS_dup2
    case SYS_dup2:
        return dup2((int)a[0], (int)a[1]);
#endif
    case SYS_dup3:
        return dup3((int)a[0], (int)a[1], (int)a[2]);
    case SYS_io_uring_setup:
        if (nl_uring_refused()) {
            errno = ENOSYS;
            return -1;
        }
        break;
    default:
        break;
    }
    *handled = false;
    return 0;
}

/* libc's syscall(), found on first use, without start-up: allocators
 * (jemalloc in redis) call syscall() inside their own initialisation,
 * holding their lock, so a hook that started nestls there (which
 * allocates) would deadlock. nestls's own raw calls (common/sys.h) come
 * through here too. */
static long (*libc_syscall)(long, ...);

static long (*next_syscall(void))(long, ...)
{
    long (*next)(long, ...) = __atomic_load_n(&libc_syscall, __ATOMIC_ACQUIRE);
    if (next == NULL) {
        next = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
        __atomic_store_n(&libc_syscall, next, __ATOMIC_RELEASE);
    }
    return next;
}

static bool is_a_road(long n)
{
    switch (n) {
    case SYS_connect:
    case SYS_accept:
    case SYS_accept4:
    case SYS_listen:
    case SYS_sendto:
    case SYS_sendmsg:
    case SYS_sendmmsg:
    case SYS_io_uring_setup:
    case SYS_execve:
    case SYS_execveat:
    case SYS_close:
    case SYS_close_range:
#ifdef SYS_dup2
    case SYS_dup2:
#endif
    case SYS_dup3:
        return true;
    default:
        return false;
    }
}

/* close, close_range, dup2, dup3: until start-up has run, nestls holds no
 * descriptor they could take, so they never start it. jemalloc (redis)
 * closes its /proc and /sys files with syscall(SYS_close) inside its own
 * initialisation, holding its lock: starting nestls there (which
 * allocates) would hang the program before main. */
static bool descriptor_call(long n)
{
#ifdef SYS_dup2
    if (n == SYS_dup2)
        return true;
#endif
    return n == SYS_close || n == SYS_close_range || n == SYS_dup3;
}

/* This library's code, where nestls's own raw calls come from: the
 * loadable segment holding this file's code, found once at load. Until
 * then (a hook run from another library's constructor), nestls's own raw
 * calls happen inside start-up, where nl_started() is false anyway. */
static uintptr_t self_lo, self_hi;

static int find_self(struct dl_phdr_info *info, size_t size, void *probe)
{
    (void)size;
    uintptr_t at = (uintptr_t)probe;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (at >= lo && at < hi) {
            __atomic_store_n(&self_hi, hi, __ATOMIC_RELAXED);
            __atomic_store_n(&self_lo, lo, __ATOMIC_RELEASE);
            return 1;
        }
    }
    return 0;
}

__attribute__((constructor)) static void know_self(void)
{
    dl_iterate_phdr(find_self, (void *)(uintptr_t)&find_self);
}

static bool called_by_nestls(const void *return_address)
{
    uintptr_t at = (uintptr_t)return_address;
    uintptr_t lo = __atomic_load_n(&self_lo, __ATOMIC_ACQUIRE);
    return lo != 0 && at >= lo && at < __atomic_load_n(&self_hi, __ATOMIC_RELAXED);
}

/* Six arguments are taken whatever the number, as libc's own syscall()
 * does (it cannot know how many the call has): for a call with fewer, the
 * last ones are whatever the caller's frame holds there, passed on and
 * ignored by the kernel. AddressSanitizer would report that read. */
NL_EXPORT __attribute__((no_sanitize("address"))) long syscall(long number, ...)
{
    long a[6];
    va_list ap;
    va_start(ap, number);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (is_a_road(number) && !called_by_nestls(__builtin_return_address(0)) &&
        (descriptor_call(number) ? __atomic_load_n(&nl_started_flag, __ATOMIC_ACQUIRE)
                                 : nl_started())) {
        bool handled;
        long r = dispatch(number, a, &handled);
        if (handled)
            return r;
    }
    return next_syscall()(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
