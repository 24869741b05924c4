/* The program's own threads entering the engine: a direct write (encrypt
 * and send in the calling thread), a half-close, a close before the
 * layers are up, a buffer size. Each takes the engine's lock, so the
 * engine thread and the program never touch a connection at once. And
 * two that only wait for the engine thread: a close after the layers are
 * up, getpeername() finding a reset. */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include "common/fdtable.h"
#include "common/locking.h"
#include "common/real.h"
#include "common/sys.h"
#include "common/util.h"
#include "engine/engine.h"
#include "engine/engine_state.h"
#include "engine/tls_error.h"

struct nl_conn *nl_engine_conn_of(struct nl_sock *s)
{
    nl_sock_lock();
    struct nl_conn *c = s->engine_conn;
    nl_sock_unlock();
    return c;
}

void nl_engine_program_closed(struct nl_sock *s)
{
    if (!nl_engine.running)
        return;
    nl_mutex_lock(&nl_engine.lock);
    struct nl_conn *c = nl_engine_conn_of(s);
    if (c != NULL)
        nl_conn_program_closed(c);
    nl_mutex_unlock(&nl_engine.lock);
}

/* Wait until the engine thread has acted on s (engine_acted), for at most
 * NL_ACT_WAIT_MS, with no lock and nothing but system calls a signal
 * handler may make: these run from close() and getpeername(), which a
 * handler may call while the code it interrupted holds malloc's lock or
 * is inside OpenSSL, so the engine's work cannot run here. */
#define NL_ACT_WAIT_MS 100
static void await_engine(struct nl_sock *s)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int unset = 0;
    /* 2 tells the engine that someone waits (conn.c: tell_acted). */
    while (__atomic_load_n(&s->engine_acted, __ATOMIC_ACQUIRE) != 1) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left_ns = NL_ACT_WAIT_MS * 1000000L - ((now.tv_sec - start.tv_sec) * 1000000000L +
                                                    (now.tv_nsec - start.tv_nsec));
        if (left_ns <= 0)
            return; /* a busy or stopped engine: go on, as before */
        if (!__atomic_compare_exchange_n(&s->engine_acted, &unset, 2, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE) &&
            unset == 1)
            return;
        unset = 0;
        struct timespec left = {.tv_sec = left_ns / 1000000000L, .tv_nsec = left_ns % 1000000000L};
        nl_sys_futex_wait(&s->engine_acted, 2, &left);
    }
}

/* The engine's end of s while its connection is open in this process, or
 * -1. (Read under the table's lock only: the connection is freed under
 * it too, and an end closed meanwhile only ends the wait early or late.) */
static int open_end_of(struct nl_sock *s)
{
    nl_sock_lock();
    struct nl_conn *c = s->engine_conn;
    int fd = c != NULL && c->state == NL_CONN_OPEN && c->listener == NULL ? c->app.fd : -1;
    nl_sock_unlock();
    return fd;
}

void nl_engine_await_close(struct nl_sock *s)
{
    int fd = nl_engine.running ? open_end_of(s) : -1;
    struct pollfd end = {.fd = fd};
    /* POLLHUP on the engine's end: that was the program's last copy. */
    if (fd >= 0 && poll(&end, 1, 0) == 1 && (end.revents & POLLHUP))
        await_engine(s);
}

void nl_engine_await_reset(struct nl_sock *s)
{
    if (nl_engine.running && open_end_of(s) >= 0)
        await_engine(s);
}

int nl_engine_half_close(struct nl_sock *s)
{
    int found = 0;
    if (!nl_engine.running)
        return 0;
    nl_mutex_lock(&nl_engine.lock);
    struct nl_conn *c = nl_engine_conn_of(s);
    if (c != NULL && c->state < NL_CONN_CLOSING && !c->app_eof) {
        c->prog_shut_wr = true;
        nl_engine.run_all = true; /* run every connection once */
        nl_engine_wake();
        found = 1;
        /* Before the lock is let go: a write racing this shutdown in
         * another thread must already see it (hooks/write.c). */
        __atomic_store_n(&s->shut_wr, true, __ATOMIC_RELEASE);
    }
    nl_mutex_unlock(&nl_engine.lock);
    return found;
}

int nl_engine_size_buffer(struct nl_sock *s, int name, int bytes)
{
    int kept = 0;
    if (!nl_engine.running)
        return 0;
    nl_mutex_lock(&nl_engine.lock);
    struct nl_conn *c = nl_engine_conn_of(s);
    if (c != NULL && name == SO_RCVBUF && c->app.fd >= 0 && !c->app.retired)
        nl_real.setsockopt(c->app.fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
    if (c != NULL && bytes > 0 && (size_t)bytes < c->onion.cap)
        nl_onion_limit(&c->onion, (size_t)bytes); /* the layers hold no more either */
    if (c != NULL && name == SO_SNDBUF && c->prog_hold >= 0 && c->prog_sndbuf > 0) {
        c->prog_sndbuf = bytes;
        kept = 1;
    }
    nl_mutex_unlock(&nl_engine.lock);
    return kept;
}

ssize_t nl_engine_write_direct(struct nl_sock *s, const void *buf, size_t len)
{
    if (!nl_engine.running || len == 0)
        return -1;
    /* Never waiting for the engine: when it is busy, the socketpair is as
     * fast and keeps connections from waiting on each other (and the
     * handshake's timing stays the engine's: takes_direct wants every
     * layer up). */
    if (nl_mutex_trylock(&nl_engine.lock) != 0)
        return -1;
    ssize_t taken = -1;
    struct nl_conn *c = nl_engine_conn_of(s);
    if (c != NULL && !nl_engine.frozen && !nl_engine.relay_mode && nl_conn_takes_direct(c)) {
        /* A trimmed connection had no trim scheduled: once it is busy
         * again, the engine must know to plan the next one. */
        bool was_trimmed = c->trimmed;
        nl_err_program_begin(); /* the program's OpenSSL errors stay its own */
        taken = nl_conn_write_direct(c, buf, len, nl_now_ms());
        if (was_trimmed)
            nl_engine_wake();
        if (c->state == NL_CONN_DONE)
            nl_engine.epoch++; /* the engine thread may hold events for it */
        nl_engine_settle(c); /* may free the layers' SSL objects */
        nl_err_program_end();
    }
    nl_mutex_unlock(&nl_engine.lock);
    return taken;
}
