/* Descriptor hygiene: close, dup, dup2, dup3, close_range, closefrom.
 *
 * - The engine's descriptors are not the program's to close: a close of
 *   one fails with EBADF, as if it were not open, and close_range/closefrom
 *   skip them. A dup2/dup3 onto one first moves the engine's descriptor to
 *   another number, so the program gets exactly the number it asked for.
 * - Wrapped descriptors carry their TCP facts along through dup/dup2/dup3
 *   and lose them on close.
 *
 * errno contract: the kernel's, plus EBADF for closing an engine descriptor
 * and EBUSY if an engine descriptor in the way cannot be moved. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fdtable.h"
#include "common/locking.h"
#include "common/real.h"
#include "engine/engine.h"
#include "engine/listener.h"
#include "hooks/export.h"
#include "hooks/hooks.h"

/* Whether a close or dup involving these numbers (-1: none) has anything
 * of ours to update, given whether fd and other are guarded. Asked before
 * nl_in_vfork_child (a system call), so that most calls never pay for it:
 * a vfork child must change none of our tables, and only these would. */
static bool ours(int fd, bool fd_guarded, int other, bool other_guarded)
{
    return fd_guarded || other_guarded || nl_wrapped_maybe(fd) || nl_wrapped_maybe(other) ||
           nl_epoll_knows(fd) || nl_epoll_knows(other);
}

static int nl_close(int fd)
{
    /* A signal handler that interrupted nestls holding a lock: waiting
     * for that lock would be forever (an entry left behind is caught
     * later: every lookup checks the descriptor is still the same file).
     * A vfork child: its own descriptor table, our memory. */
    if (nl_lock_held_here())
        return nl_real.close(fd);
    bool guarded = nl_guard_has(fd);
    if (!ours(fd, guarded, -1, false) || nl_in_vfork_child())
        return nl_real.close(fd);
    if (guarded) {
        errno = EBADF;
        return -1;
    }
    struct nl_sock *s = nl_wrapped_maybe(fd) ? nl_wrapped_get(fd) : NULL;
    bool up = false, resets = false;
    if (s != NULL) {
        nl_sock_lock();
        up = s->established;
        resets = s->abort_on_close;
        nl_sock_unlock();
        if (!up) /* maybe a connect given up: see nl_engine_program_closed */
            nl_engine_program_closed(s);
        int unread = 0;
        resets = up && (resets || (ioctl(fd, FIONREAD, &unread) == 0 && unread > 0));
    }
    nl_wrapped_remove(fd);
    nl_epoll_forget_fd(fd);
    int r = nl_real.close(fd);
    if (s != NULL) {
        int e = errno;
        if (s->listener) /* the last copy? then the port is free now */
            nl_engine_listener_closed(s);
        else if (resets) /* the last copy? then the reset leaves now, as TCP's */
            nl_engine_await_close(s);
        nl_sock_put(s);
        errno = e;
    }
    return r;
}

static int nl_dup3(int oldfd, int newfd, int flags, bool is_dup2)
{
    if (nl_lock_held_here())
        return is_dup2 ? nl_real.dup2(oldfd, newfd) : nl_real.dup3(oldfd, newfd, flags);
    bool old_guarded = nl_guard_has(oldfd), new_guarded = nl_guard_has(newfd);
    if (!ours(oldfd, old_guarded, newfd, new_guarded) || nl_in_vfork_child())
        return is_dup2 ? nl_real.dup2(oldfd, newfd) : nl_real.dup3(oldfd, newfd, flags);
    /* An engine descriptor in the way moves; the program gets its number. */
    if (new_guarded && nl_engine_relocate_fd(newfd) != 0) {
        errno = EBUSY;
        return -1;
    }
    if (old_guarded) { /* not the program's to copy */
        errno = EBADF;
        return -1;
    }
    bool over_wrapped = nl_wrapped_maybe(newfd);
    int r = is_dup2 ? nl_real.dup2(oldfd, newfd) : nl_real.dup3(oldfd, newfd, flags);
    if (r >= 0 && oldfd != newfd) {
        nl_epoll_forget_fd(newfd);
        nl_wrapped_dup(oldfd, newfd);
        if (over_wrapped) /* maybe the last copy of a listener: free its port now */
            nl_engine_listeners_check();
    }
    return r;
}

static int real_close_range(unsigned first, unsigned last, int flags)
{
    if (nl_real.close_range)
        return nl_real.close_range(first, last, flags);
    return (int)syscall(SYS_close_range, first, last, flags);
}

/* close_range over the program's descriptors only: split around ours. */
static int nl_close_range(unsigned first, unsigned last, int flags)
{
    if (first > last) {
        errno = EINVAL;
        return -1;
    }
    if (nl_in_vfork_child())
        return real_close_range(first, last, flags);
    unsigned from = first;
    for (;;) {
        int guard = nl_guard_next(from, last);
        unsigned to = guard < 0 ? last : (unsigned)guard - 1;
        if (guard < 0 || (unsigned)guard > from) {
            /* Forgotten before the close, so that a number reused by
             * another thread at once is not forgotten after it.
             * CLOSE_RANGE_CLOEXEC leaves them open: they stay wrapped. */
            if (!(flags & CLOSE_RANGE_CLOEXEC)) {
                nl_wrapped_remove_range(from, to);
                nl_epoll_forget_range(from, to);
            }
            if (real_close_range(from, to, flags) != 0)
                return -1;
        }
        if (guard < 0 || (unsigned)guard >= last)
            break;
        from = (unsigned)guard + 1;
    }
    if (!(flags & CLOSE_RANGE_CLOEXEC)) /* a listener's last copy among them? */
        nl_engine_listeners_check();
    return 0;
}

NL_EXPORT int close(int fd)
{
    if (!nl_started())
        return nl_real.close(fd);
    return nl_close(fd);
}

NL_EXPORT int dup(int oldfd)
{
    if (!nl_started())
        return nl_real.fcntl(oldfd, F_DUPFD, 0);
    if (nl_lock_held_here())
        return nl_real.fcntl(oldfd, F_DUPFD, 0);
    /* dup forgets no registration: only the wrapped table may change. */
    bool guarded = nl_guard_has(oldfd);
    if ((!guarded && !nl_wrapped_any()) || nl_in_vfork_child())
        return nl_real.fcntl(oldfd, F_DUPFD, 0);
    if (guarded) {
        errno = EBADF;
        return -1;
    }
    int r = nl_real.fcntl(oldfd, F_DUPFD, 0);
    if (r >= 0)
        nl_wrapped_dup(oldfd, r);
    return r;
}

/* fcntl(F_DUPFD / F_DUPFD_CLOEXEC) is dup by another name (Rust's
 * try_clone, for one): the copy of a wrapped descriptor is wrapped too.
 * Every other command goes to libc untouched; glibc itself reads the
 * third argument as a pointer whatever the command. */
static int nl_fcntl(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
    if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC)
        return real(fd, cmd, arg);
    int r = real(fd, cmd, arg);
    if (r >= 0 && nl_started() && nl_wrapped_maybe(fd) && !nl_lock_held_here() &&
        !nl_in_vfork_child())
        nl_wrapped_dup(fd, r);
    return r;
}

NL_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (nl_real.fcntl == NULL) /* before start-up bound it */
        return (int)syscall(SYS_fcntl, fd, cmd, arg);
    return nl_fcntl(nl_real.fcntl, fd, cmd, arg);
}

NL_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (nl_real.fcntl64 == NULL)
        return fcntl(fd, cmd, arg);
    return nl_fcntl(nl_real.fcntl64, fd, cmd, arg);
}

NL_EXPORT int dup2(int oldfd, int newfd)
{
    if (!nl_started())
        return nl_real.dup2(oldfd, newfd);
    return nl_dup3(oldfd, newfd, 0, true);
}

NL_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    if (!nl_started())
        return nl_real.dup3(oldfd, newfd, flags);
    return nl_dup3(oldfd, newfd, flags, false);
}

NL_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
    if (!nl_started())
        return (int)syscall(SYS_close_range, first, last, flags);
    return nl_close_range(first, last, flags);
}

NL_EXPORT void closefrom(int lowfd)
{
    if (!nl_started()) {
        syscall(SYS_close_range, lowfd < 0 ? 0 : lowfd, ~0U, 0);
        return;
    }
    if (lowfd < 0)
        lowfd = 0;
    nl_close_range((unsigned)lowfd, ~0U, 0);
}
