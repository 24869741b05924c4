/* write() and send(): the fast path for a wrapped socket.
 *
 * The program's end of the socketpair behaves as before for everything
 * else (poll, readiness, errors); only the bytes of a write can skip it:
 * when nothing the program wrote earlier is still queued and the layers
 * have room, this thread encrypts and sends them itself
 * (nl_engine_write_direct) instead of waking the engine thread through
 * the socketpair. What the layers cannot take goes into the socketpair
 * behind them, so order holds and a full connection blocks the writer
 * exactly as before.
 *
 * A blocking descriptor gets a full write (the rest is written the usual,
 * blocking way); a non-blocking one may get a short count, as from the
 * kernel. Flags other than MSG_DONTWAIT and MSG_NOSIGNAL (MSG_MORE,
 * MSG_OOB...) take the usual way. (sendto, sendmsg: send_addressed.c.)
 *
 * errno contract: the kernel's, from the socketpair, for everything the
 * fast path did not take. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fdtable.h"
#include "common/real.h"
#include "engine/engine.h"
#include "hooks/export.h"
#include "hooks/hooks.h"
#include "hooks/roads.h"

#define SHUT_FOR_WRITING (-2)

/* How much of buf the fast path took: -1 if none was tried,
 * SHUT_FOR_WRITING after the program's shutdown(SHUT_WR). */
static ssize_t try_direct(int fd, const void *buf, size_t len)
{
    /* (write and send have already sent a signal handler that interrupted
     * nestls holding a lock the other way: nl_handler_inside_nestls.) */
    if (!nl_wrapped_maybe(fd) || nl_in_vfork_child())
        return -1;
    struct nl_sock *s = nl_wrapped_get(fd);
    if (s == NULL)
        return -1;
    bool shut = __atomic_load_n(&s->shut_wr, __ATOMIC_ACQUIRE);
    ssize_t taken = shut ? SHUT_FOR_WRITING : len == 0 ? -1 : nl_engine_write_direct(s, buf, len);
    nl_sock_put(s);
    return taken;
}

/* A signal handler that interrupted nestls's own locked section on this
 * thread (nl_handler_inside_nestls: a direct write holds the engine's
 * lock) writes into the socketpair without waiting for that lock, and
 * without blocking: the engine, which would drain the socketpair, waits
 * for the very lock the interrupted code holds. So a full socketpair
 * gives a short count or EAGAIN here, never a hang. Other descriptors are
 * written as usual. */
static ssize_t write_from_handler(int fd, const void *buf, size_t len, int flags)
{
    ssize_t n = nl_real.send(fd, buf, len, flags | MSG_DONTWAIT);
    if (n < 0 && errno == ENOTSOCK)
        return nl_real.write(fd, buf, len);
    return n;
}

/* What the kernel answers a write on a socket shut for writing. */
ssize_t nl_broken_pipe(int flags)
{
    if (!(flags & MSG_NOSIGNAL))
        pthread_kill(pthread_self(), SIGPIPE);
    errno = EPIPE;
    return -1;
}

/* After the direct path took `taken` of len bytes (0 <= taken < len),
 * the rest goes the usual way, through the socketpair; on a socket,
 * send() with no flags is write(). When the rest would block or fails,
 * what was sent (if anything) is the answer, as from the kernel. */
static ssize_t send_rest(int fd, const void *buf, size_t len, ssize_t taken, int flags)
{
    int saved = errno;
    ssize_t rest = nl_real.send(fd, (const char *)buf + taken, len - (size_t)taken, flags);
    if (rest >= 0)
        return taken + rest;
    if (taken == 0)
        return rest;
    errno = saved;
    return taken;
}

NL_EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
    if (!nl_started())
        return nl_real.write(fd, buf, len);
    if (nl_handler_inside_nestls(fd))
        return write_from_handler(fd, buf, len, 0);
    ssize_t taken = try_direct(fd, buf, len);
    if (taken == SHUT_FOR_WRITING)
        return nl_broken_pipe(0);
    if (taken < 0)
        return nl_real.write(fd, buf, len);
    return (size_t)taken == len ? taken : send_rest(fd, buf, len, taken, 0);
}

ssize_t nl_send_road(int fd, const void *buf, size_t len, int flags)
{
    if (nl_handler_inside_nestls(fd))
        return write_from_handler(fd, buf, len, flags);
    ssize_t taken = try_direct(fd, buf, (flags & ~(MSG_DONTWAIT | MSG_NOSIGNAL)) ? 0 : len);
    if (taken == SHUT_FOR_WRITING)
        return nl_broken_pipe(flags);
    if (taken < 0)
        return nl_real.send(fd, buf, len, flags);
    return (size_t)taken == len ? taken : send_rest(fd, buf, len, taken, flags);
}

NL_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    if (!nl_started())
        return nl_real.send(fd, buf, len, flags);
    return nl_send_road(fd, buf, len, flags);
}

/* glibc exports write and send under second names too: the same roads. */
NL_EXPORT ssize_t __write(int fd, const void *buf, size_t len) __attribute__((alias("write")));
NL_EXPORT ssize_t __send(int fd, const void *buf, size_t len, int flags) __attribute__((alias("send")));
