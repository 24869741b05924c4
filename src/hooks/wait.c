/* poll() and epoll_wait() that would sleep until a wrapped socket has
 * something to read: the read side's direct path (engine/direct_read.c).
 *
 * Instead of sleeping until the engine thread has woken, decrypted and
 * delivered into the program's end of the socketpair, the program's
 * thread also waits for the connections' TCP input and, when it comes,
 * runs the connections itself; then it asks the kernel again what the
 * program asked. What poll and epoll report is always the kernel's answer
 * about the program's own descriptors, so it stays true; only who does
 * the decrypting changes. Hooks that do not wait (a zero timeout), calls
 * with many descriptors, and the ones not hooked here (select, pselect,
 * ppoll, epoll_pwait2) go straight to the kernel, as before: the engine
 * thread then delivers.
 *
 * errno contract: the kernel's. A signal ends the wait with EINTR, as the
 * kernel's poll and epoll_wait do whatever SA_RESTART says. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include "common/fdtable.h"
#include "common/real.h"
#include "engine/engine.h"
#include "hooks/epoll_registry.h"
#include "hooks/export.h"
#include "hooks/hooks.h"

/* The most wrapped sockets one wait stands in for, and the most
 * descriptors a poll() may name for it: beyond, the engine's batching is
 * worth more than one thread hop. */
#define WAIT_MAX_SOCKS 16
#define WAIT_MAX_FDS 64

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* What is left of a wait of timeout_ms (negative: none) begun at start. */
static int left_ms(int timeout_ms, int64_t start)
{
    if (timeout_ms < 0)
        return -1;
    int64_t left = (int64_t)timeout_ms - (now_ms() - start);
    return left > 0 ? (int)left : 0;
}

static void put_all(struct nl_sock **socks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        nl_sock_put(socks[i]);
}

int nl_wait_with_input(const struct pollfd *prog, size_t nprog, struct nl_sock *const *socks,
                       size_t nsocks, int timeout_ms, const sigset_t *mask)
{
    if (nprog + nsocks > WAIT_MAX_FDS + WAIT_MAX_SOCKS || nsocks > WAIT_MAX_SOCKS)
        return NL_WAIT_USUAL;
    struct pollfd all[WAIT_MAX_FDS + WAIT_MAX_SOCKS];
    struct nl_input_claim claims[WAIT_MAX_SOCKS];
    size_t claimed = nl_engine_claim_input(socks, nsocks, claims, all + nprog);
    if (claimed == 0)
        return NL_WAIT_USUAL;
    memcpy(all, prog, nprog * sizeof(*prog));
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L};
    int r = nl_real.ppoll(all, nprog + claimed, timeout_ms < 0 ? NULL : &ts, mask);
    int saved = errno;
    nl_engine_release_input(claims, all + nprog, claimed);
    errno = saved;
    return r < 0 ? NL_WAIT_FAILED : r == 0 ? NL_WAIT_TIMED_OUT : NL_WAIT_WOKEN;
}

/* The wrapped sockets among a poll's descriptors that it waits to read. */
static size_t inputs_of_poll(const struct pollfd *fds, nfds_t nfds, struct nl_sock **socks)
{
    size_t n = 0;
    bool any = false;
    for (nfds_t i = 0; i < nfds && !any; i++)
        any = (fds[i].events & (POLLIN | POLLRDNORM)) && nl_wrapped_maybe(fds[i].fd);
    if (!any || nl_in_vfork_child())
        return 0;
    for (nfds_t i = 0; i < nfds && n < WAIT_MAX_SOCKS; i++)
        if ((fds[i].events & (POLLIN | POLLRDNORM)) && nl_wrapped_maybe(fds[i].fd))
            if ((socks[n] = nl_wrapped_get(fds[i].fd)) != NULL)
                n++;
    return n;
}

/* ... and those registered for input in an epoll set. */
static size_t inputs_of_epoll(int epfd, struct nl_sock **socks)
{
    int fds[WAIT_MAX_SOCKS];
    size_t nfds = nl_wrapped_fds(fds, WAIT_MAX_SOCKS), n = 0;
    for (size_t i = 0; i < nfds && nfds <= WAIT_MAX_SOCKS; i++)
        if (nl_epoll_watches_input(epfd, fds[i]) && (socks[n] = nl_wrapped_get(fds[i])) != NULL)
            n++;
    return n;
}

/* (A vfork child shares the parent's memory: it touches none of nestls's
 * state, and waits the usual way.) */
static bool may_stand_in(int timeout_ms)
{
    return timeout_ms != 0 && nl_wrapped_any() && !nl_lock_held_here();
}

static int wait_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
    if (!may_stand_in(timeout_ms) || nfds > WAIT_MAX_FDS)
        return nl_real.poll(fds, nfds, timeout_ms);
    struct nl_sock *socks[WAIT_MAX_SOCKS];
    size_t n = inputs_of_poll(fds, nfds, socks);
    int r = n == 0 ? nl_real.poll(fds, nfds, timeout_ms) : nl_real.poll(fds, nfds, 0);
    int64_t start = now_ms();
    while (r == 0 && n > 0) {
        int left = left_ms(timeout_ms, start);
        int w = left == 0 ? NL_WAIT_TIMED_OUT : nl_wait_with_input(fds, nfds, socks, n, left, NULL);
        if (w == NL_WAIT_USUAL) {
            r = nl_real.poll(fds, nfds, left);
            break;
        }
        if (w == NL_WAIT_FAILED) {
            r = -1;
            break;
        }
        r = nl_real.poll(fds, nfds, 0); /* what the program asked, now */
        if (w == NL_WAIT_TIMED_OUT)
            break;
    }
    int saved = errno;
    put_all(socks, n);
    errno = saved;
    return r;
}

NL_EXPORT int poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
    if (!nl_started())
        return nl_real.poll(fds, nfds, timeout_ms);
    return wait_poll(fds, nfds, timeout_ms);
}

NL_EXPORT int __poll(struct pollfd *fds, nfds_t nfds, int timeout_ms) __attribute__((alias("poll")));

/* Fortified programs: an overflow is left to glibc's own check. */
NL_EXPORT int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout_ms, size_t fdslen)
{
    if (!nl_started() || fdslen / sizeof(*fds) < nfds)
        return nl_real.__poll_chk(fds, nfds, timeout_ms, fdslen);
    return wait_poll(fds, nfds, timeout_ms);
}

NL_EXPORT int epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout_ms, const sigset_t *mask)
{
    if (!nl_started() || !may_stand_in(timeout_ms) || nl_in_vfork_child())
        return nl_real.epoll_pwait(epfd, evs, max, timeout_ms, mask);
    struct nl_sock *socks[WAIT_MAX_SOCKS];
    size_t n = inputs_of_epoll(epfd, socks);
    int r = nl_real.epoll_pwait(epfd, evs, max, n == 0 ? timeout_ms : 0, mask);
    int64_t start = now_ms();
    struct pollfd set = {.fd = epfd, .events = POLLIN};
    while (r == 0 && n > 0) {
        int left = left_ms(timeout_ms, start);
        int w = left == 0 ? NL_WAIT_TIMED_OUT : nl_wait_with_input(&set, 1, socks, n, left, mask);
        if (w == NL_WAIT_USUAL) {
            r = nl_real.epoll_pwait(epfd, evs, max, left, mask);
            break;
        }
        if (w == NL_WAIT_FAILED) {
            r = -1;
            break;
        }
        r = nl_real.epoll_pwait(epfd, evs, max, 0, mask); /* what the program asked, now */
        if (w == NL_WAIT_TIMED_OUT)
            break;
    }
    int saved = errno;
    put_all(socks, n);
    errno = saved;
    return r;
}

NL_EXPORT int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout_ms)
{
    if (!nl_started())
        return nl_real.epoll_wait(epfd, evs, max, timeout_ms);
    return epoll_pwait(epfd, evs, max, timeout_ms, NULL);
}
