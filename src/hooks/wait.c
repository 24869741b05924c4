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
 * kernel's poll and epoll_wait do whatever SA_RESTART says. While a hook
 * stands in (nl_wait_guard), signals are blocked except inside the ppoll
 * itself, with the program's own mask there: a handler never runs while
 * nestls holds the engine's lock (it could longjmp out, or call a hook
 * that takes it), and one that arrives during the running of a
 * connection is delivered in the next ppoll, which then ends with EINTR,
 * as the kernel's wait would have. Cancellation likewise acts only in the
 * ppoll. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "common/fdtable.h"
#include "common/real.h"
#include "common/util.h"
#include "engine/engine.h"
#include "hooks/epoll_registry.h"
#include "hooks/export.h"
#include "hooks/hooks.h"

/* The most wrapped sockets one wait stands in for, and the most
 * descriptors a poll() may name for it: beyond, the engine's batching is
 * worth more than one thread hop. */
#define WAIT_MAX_SOCKS 16
#define WAIT_MAX_FDS 64

/* What is left of a wait of timeout_ms (negative: none) begun at start. */
static int left_ms(int timeout_ms, uint64_t start)
{
    if (timeout_ms < 0)
        return -1;
    int64_t left = (int64_t)timeout_ms - (int64_t)(nl_now_ms() - start);
    return left > 0 ? (int)left : 0;
}

/* ppoll's form of a poll timeout (negative: none, NULL). */
static const struct timespec *timespec_of(int timeout_ms, struct timespec *ts)
{
    if (timeout_ms < 0)
        return NULL;
    *ts = (struct timespec){.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L};
    return ts;
}

static void put_all(struct nl_sock **socks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        nl_sock_put(socks[i]);
}

void nl_wait_guard_begin(struct nl_wait_guard *g)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &g->mask);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &g->cancel);
}

void nl_wait_guard_end(const struct nl_wait_guard *g)
{
    pthread_setcancelstate(g->cancel, NULL);
    pthread_sigmask(SIG_SETMASK, &g->mask, NULL);
}

/* Running a connection needs about 150 KiB of stack (64 KiB buffers in
 * conn.c, OpenSSL under them): a thread with less left waits the usual
 * way. Its stack's lowest address is looked up once per thread. */
#define WAIT_STACK_NEEDED (256 * 1024)
static __thread uintptr_t stack_low;
static __thread bool stack_known;

static bool stack_enough(void)
{
    if (!stack_known) {
        pthread_attr_t attr;
        void *addr;
        size_t size;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            if (pthread_attr_getstack(&attr, &addr, &size) == 0)
                stack_low = (uintptr_t)addr;
            pthread_attr_destroy(&attr);
        }
        stack_known = true;
    }
    char here;
    return stack_low != 0 && (uintptr_t)&here > stack_low + WAIT_STACK_NEEDED;
}

struct claimed {
    struct nl_input_claim *claims;
    size_t n;
};

/* A thread cancelled in its wait gives the inputs back (without running
 * anything) as it unwinds. */
static void give_back(void *arg)
{
    struct claimed *c = arg;
    nl_engine_release_input(c->claims, NULL, c->n);
}

int nl_wait_with_input(const struct pollfd *prog, size_t nprog, struct nl_sock *const *socks,
                       size_t nsocks, int timeout_ms, const sigset_t *mask, const struct nl_wait_guard *g)
{
    if (nprog + nsocks > WAIT_MAX_FDS + WAIT_MAX_SOCKS || nsocks > WAIT_MAX_SOCKS || !stack_enough())
        return NL_WAIT_USUAL;
    struct pollfd all[WAIT_MAX_FDS + WAIT_MAX_SOCKS];
    struct nl_input_claim claims[WAIT_MAX_SOCKS];
    size_t claimed = nl_engine_claim_input(socks, nsocks, claims, all + nprog);
    if (claimed == 0)
        return NL_WAIT_USUAL;
    memcpy(all, prog, nprog * sizeof(*prog));
    struct timespec ts;
    /* Signals (blocked by the guard) and cancellation come only in here,
     * never while the engine's lock is held. */
    struct claimed held = {claims, claimed};
    int r;
    pthread_cleanup_push(give_back, &held);
    pthread_setcancelstate(g->cancel, NULL);
    r = nl_real.ppoll(all, nprog + claimed, timespec_of(timeout_ms, &ts), mask ? mask : &g->mask);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    pthread_cleanup_pop(0);
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

/* What the program asked the kernel, asked again with this timeout and
 * signal mask (NULL: the thread's). */
typedef int (*ask_fn)(void *call, int timeout_ms, const sigset_t *mask);

/* The wait a hook stands in for: what the program asked, at once; then,
 * while nothing is ready, waiting on its descriptors (prog) and the TCP
 * input of socks together, and asking again after each wake-up. */
static int stand_in(ask_fn ask, void *call, const struct pollfd *prog, size_t nprog,
                    struct nl_sock *const *socks, size_t n, int timeout_ms, const sigset_t *mask)
{
    int r = ask(call, 0, mask);
    if (r != 0)
        return r;
    uint64_t start = nl_now_ms();
    struct nl_wait_guard g;
    nl_wait_guard_begin(&g);
    for (;;) {
        int left = left_ms(timeout_ms, start);
        int w = left == 0 ? NL_WAIT_TIMED_OUT : nl_wait_with_input(prog, nprog, socks, n, left, mask, &g);
        if (w == NL_WAIT_USUAL || (w == NL_WAIT_FAILED && errno != EINTR)) {
            /* The usual wait, with the program's mask set as it starts:
             * a signal that came meanwhile still ends it. */
            r = ask(call, left_ms(timeout_ms, start), mask ? mask : &g.mask);
            break;
        }
        if (w == NL_WAIT_FAILED) {
            r = -1;
            break;
        }
        r = ask(call, 0, mask);
        if (r != 0 || w == NL_WAIT_TIMED_OUT)
            break;
    }
    int saved = errno;
    nl_wait_guard_end(&g);
    errno = saved;
    return r;
}

struct poll_call {
    struct pollfd *fds;
    nfds_t nfds;
};

static int ask_poll(void *call, int timeout_ms, const sigset_t *mask)
{
    struct poll_call *p = call;
    if (mask == NULL)
        return nl_real.poll(p->fds, p->nfds, timeout_ms);
    struct timespec ts;
    return nl_real.ppoll(p->fds, p->nfds, timespec_of(timeout_ms, &ts), mask);
}

static int wait_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
    if (!may_stand_in(timeout_ms) || nfds > WAIT_MAX_FDS)
        return nl_real.poll(fds, nfds, timeout_ms);
    struct nl_sock *socks[WAIT_MAX_SOCKS];
    size_t n = inputs_of_poll(fds, nfds, socks);
    if (n == 0)
        return nl_real.poll(fds, nfds, timeout_ms);
    struct poll_call call = {fds, nfds};
    int r = stand_in(ask_poll, &call, fds, nfds, socks, n, timeout_ms, NULL);
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

struct epoll_call {
    int epfd;
    struct epoll_event *evs;
    int max;
};

static int ask_epoll(void *call, int timeout_ms, const sigset_t *mask)
{
    struct epoll_call *e = call;
    return nl_real.epoll_pwait(e->epfd, e->evs, e->max, timeout_ms, mask);
}

NL_EXPORT int epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout_ms, const sigset_t *mask)
{
    if (!nl_started() || !may_stand_in(timeout_ms) || nl_in_vfork_child())
        return nl_real.epoll_pwait(epfd, evs, max, timeout_ms, mask);
    struct nl_sock *socks[WAIT_MAX_SOCKS];
    size_t n = inputs_of_epoll(epfd, socks);
    if (n == 0)
        return nl_real.epoll_pwait(epfd, evs, max, timeout_ms, mask);
    struct epoll_call call = {epfd, evs, max};
    struct pollfd set = {.fd = epfd, .events = POLLIN};
    int r = stand_in(ask_epoll, &call, &set, 1, socks, n, timeout_ms, mask);
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
