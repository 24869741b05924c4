/* syscall(): the same roads, reached by number.
 *
 * A program (or a runtime: libuv, some language bindings) may call
 * connect, accept, sendto, sendmsg, io_uring_setup or execve through
 * libc's syscall() instead of their own functions. Those numbers take the same
 * hooks as the functions; every other number goes to libc untouched.
 *
 * errno contract: syscall()'s: -1 and errno, as the hooked function's. */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
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
    return n == SYS_connect || n == SYS_accept || n == SYS_accept4 || n == SYS_sendto ||
           n == SYS_sendmsg || n == SYS_sendmmsg || n == SYS_io_uring_setup || n == SYS_execve ||
           n == SYS_execveat;
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
    if (is_a_road(number) && nl_started()) {
        bool handled;
        long r = dispatch(number, a, &handled);
        if (handled)
            return r;
    }
    return next_syscall()(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
