/* io_uring: a road no hook sees.
 *
 * A program that connects, sends or accepts through io_uring submission
 * queues never calls connect(), send() or accept(): its bytes would leave
 * in clear. So while the policy wraps or denies anything, setting up an io_uring
 * fails the way it fails on a kernel built without it (ENOSYS), and
 * programs fall back to the socket calls (libuv, liburing users, glibc's
 * own users all do). `allow_io_uring: true` in the settings lets it through.
 *
 * Covered: liburing's set-up functions (a program linked with liburing.so)
 * and syscall(SYS_io_uring_setup, ...) through libc (syscall.c; libuv and
 * Node do this). Not covered: an io_uring set up by a raw system call
 * instruction (a static liburing, Go, hand-written assembly): no preload
 * can see those; the README's threat model says so. */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

#include "common/log.h"
#include "engine/engine.h"
#include "hooks/export.h"
#include "hooks/hooks.h"
#include "hooks/uring.h"

bool nl_uring_refused(void)
{
    if (nl_policy == NULL || nl_policy->settings.allow_io_uring || !nl_policy_restricts(nl_policy))
        return false;
    static bool said;
    if (!__atomic_exchange_n(&said, true, __ATOMIC_RELAXED))
        nl_info("io_uring refused (ENOSYS): its I/O would bypass the policy "
                "(allow_io_uring: true in settings lets it through)");
    return true;
}

/* liburing's functions, for when this process is allowed to use them. */
static void *liburing(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

struct io_uring;
struct io_uring_params;

/* liburing reports failures as -errno. */
NL_EXPORT int io_uring_queue_init_params(unsigned entries, struct io_uring *ring,
                                         struct io_uring_params *p)
{
    if (nl_started() && nl_uring_refused())
        return -ENOSYS;
    int (*next)(unsigned, struct io_uring *, struct io_uring_params *) =
        (int (*)(unsigned, struct io_uring *, struct io_uring_params *))liburing(__func__);
    return next ? next(entries, ring, p) : -ENOSYS;
}

NL_EXPORT int io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags)
{
    if (nl_started() && nl_uring_refused())
        return -ENOSYS;
    int (*next)(unsigned, struct io_uring *, unsigned) =
        (int (*)(unsigned, struct io_uring *, unsigned))liburing(__func__);
    return next ? next(entries, ring, flags) : -ENOSYS;
}

/* liburing 2.5 and later. */
NL_EXPORT int io_uring_queue_init_mem(unsigned entries, struct io_uring *ring,
                                      struct io_uring_params *p, void *buf, size_t size)
{
    if (nl_started() && nl_uring_refused())
        return -ENOSYS;
    int (*next)(unsigned, struct io_uring *, struct io_uring_params *, void *, size_t) =
        (int (*)(unsigned, struct io_uring *, struct io_uring_params *, void *, size_t))liburing(
            __func__);
    return next ? next(entries, ring, p, buf, size) : -ENOSYS;
}

NL_EXPORT int io_uring_setup(unsigned entries, struct io_uring_params *p)
{
    if (nl_started() && nl_uring_refused())
        return -ENOSYS;
    int (*next)(unsigned, struct io_uring_params *) =
        (int (*)(unsigned, struct io_uring_params *))liburing(__func__);
    return next ? next(entries, p) : -ENOSYS;
}
