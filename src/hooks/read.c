/* read() and recv() that would block on a wrapped socket: the read side's
 * direct path (engine/direct_read.c, hooks/wait.c).
 *
 * Bytes always come from the program's end of the socketpair, where the
 * engine delivers them, so what poll, epoll, FIONREAD and MSG_PEEK say
 * stays true. Only the wait changes: when a blocking read finds nothing,
 * this thread waits for the connection's TCP input as well and runs the
 * connection when it comes, instead of sleeping until the engine thread
 * has woken, decrypted and delivered: one thread hop fewer for each batch
 * the program reads.
 *
 * Only reads that wait take it. A non-blocking descriptor, any flag,
 * a receive timeout (SO_RCVTIMEO), a low-water mark (SO_RCVLOWAT), a
 * signal handler that interrupted nestls, a vfork child: all go straight
 * to the kernel, as before. A
 * signal during the wait ends the read with EINTR when the program's own
 * read would have ended so (see interrupts_reads).
 *
 * errno contract: the kernel's, from the socketpair. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/fdtable.h"
#include "common/real.h"
#include "hooks/export.h"
#include "hooks/hooks.h"

static ssize_t usual(int fd, void *buf, size_t len, int flags, bool via_read)
{
    return via_read ? nl_real.read(fd, buf, len) : nl_real.recv(fd, buf, len, flags);
}

/* A read that would block until a byte comes: a blocking descriptor,
 * without a receive timeout (whose expiry is the kernel's to keep) or a
 * low-water mark (the kernel's to count). */
static bool waits_for_a_byte(int fd)
{
    int fl = nl_real.fcntl(fd, F_GETFL);
    struct timeval timeout = {0};
    int lowat = 1;
    socklen_t tl = sizeof(timeout), ll = sizeof(lowat);
    return fl >= 0 && !(fl & O_NONBLOCK) &&
           nl_real.getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, &tl) == 0 && timeout.tv_sec == 0 &&
           timeout.tv_usec == 0 && nl_real.getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, &ll) == 0 &&
           lowat <= 1;
}

/* Signals a fault raises in the thread itself: they do not interrupt a
 * read from elsewhere (sanitizers and crash reporters handle them). */
static bool is_fault_signal(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP ||
           sig == SIGSYS;
}

/* Whether a signal that ended the wait would have ended the program's own
 * read: a blocking read with no timeout restarts after a handler installed
 * with SA_RESTART, and fails with EINTR after any other. Which signal came
 * is not known here, so any handler without SA_RESTART counts (a program
 * that has one must take EINTR from its reads anyway). */
static bool interrupts_reads(void)
{
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (is_fault_signal(sig) || sigaction(sig, NULL, &sa) != 0)
            continue;
        bool handled = (sa.sa_flags & SA_SIGINFO) ? sa.sa_sigaction != NULL
                                                  : sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN;
        if (handled && !(sa.sa_flags & SA_RESTART))
            return true;
    }
    return false;
}

/* A signal the program does not block came while the guard blocked it. */
static bool signal_waiting(const sigset_t *programs_mask)
{
    sigset_t pending;
    if (sigpending(&pending) != 0)
        return false;
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&pending, sig) == 1 && sigismember(programs_mask, sig) == 0)
            return true;
    return false;
}

/* First what is there; when nothing is and the read would block, the
 * wait in this thread; then again. */
static ssize_t receive(int fd, void *buf, size_t len, int flags, bool via_read)
{
    if (flags != 0 || len == 0 || !nl_wrapped_maybe(fd) || nl_lock_held_here())
        return usual(fd, buf, len, flags, via_read);
    /* A non-blocking look would return fewer bytes than a low-water mark
     * asks: once the program has set one, each read asks the kernel. */
    int lowat = 1;
    socklen_t ll = sizeof(lowat);
    if (__atomic_load_n(&nl_rcvlowat_seen, __ATOMIC_RELAXED) &&
        (nl_real.getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, &ll) != 0 || lowat > 1))
        return usual(fd, buf, len, flags, via_read);
    ssize_t n = nl_real.recv(fd, buf, len, MSG_DONTWAIT);
    if (n >= 0 || errno != EAGAIN)
        return n < 0 && errno == ENOTSOCK ? usual(fd, buf, len, flags, via_read) : n;
    /* (A vfork child shares the parent's memory: it touches none of
     * nestls's state, and waits the usual way.) */
    struct nl_sock *s;
    if (!waits_for_a_byte(fd) || nl_in_vfork_child() || (s = nl_wrapped_get(fd)) == NULL)
        return usual(fd, buf, len, flags, via_read);
    struct nl_wait_guard g;
    nl_wait_guard_begin(&g);
    bool go_usual = false;
    for (;;) {
        struct pollfd mine = {.fd = fd, .events = POLLIN};
        int w = nl_wait_with_input(&mine, 1, &s, 1, -1, NULL, &g);
        if (w == NL_WAIT_FAILED && errno == EINTR) {
            if (interrupts_reads()) {
                n = -1; /* errno is EINTR */
                break;
            }
        } else if (w == NL_WAIT_USUAL || w == NL_WAIT_FAILED) {
            go_usual = true;
            break;
        }
        n = nl_real.recv(fd, buf, len, MSG_DONTWAIT);
        if (n >= 0 || errno != EAGAIN)
            break;
    }
    int saved = errno;
    bool signalled = go_usual && signal_waiting(&g.mask);
    nl_wait_guard_end(&g); /* a signal blocked meanwhile is handled here */
    nl_sock_put(s);
    if (go_usual) {
        if (signalled && interrupts_reads()) {
            errno = EINTR;
            return -1;
        }
        return usual(fd, buf, len, flags, via_read);
    }
    errno = saved;
    return n;
}

NL_EXPORT ssize_t read(int fd, void *buf, size_t len)
{
    if (!nl_started())
        return nl_real.read(fd, buf, len);
    return receive(fd, buf, len, 0, true);
}

NL_EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    if (!nl_started())
        return nl_real.recv(fd, buf, len, flags);
    return receive(fd, buf, len, flags, false);
}

/* Fortified programs (_FORTIFY_SOURCE) call these instead; an overflow is
 * left to glibc's own check, which stops the program. */
NL_EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
    if (len > buflen || !nl_started())
        return nl_real.__read_chk(fd, buf, len, buflen);
    return receive(fd, buf, len, 0, true);
}

NL_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
    if (len > buflen || !nl_started())
        return nl_real.__recv_chk(fd, buf, len, buflen, flags);
    return receive(fd, buf, len, flags, false);
}

/* glibc exports read under a second name too: the same road. */
NL_EXPORT ssize_t __read(int fd, void *buf, size_t len) __attribute__((alias("read")));
