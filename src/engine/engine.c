/* The engine thread: one epoll loop serving every wrapped connection of
 * this process.
 *
 * Locking: nl_engine.lock guards the connection list and every connection.
 * The thread holds it while it handles events and drops it only inside
 * epoll_wait, so fork (which takes the lock in prepare) always sees the
 * engine between events, never inside OpenSSL. */
#include "engine/engine.h"
#include "common/locking.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/real.h"
#include "common/util.h"
#include "engine/conn.h"
#include "engine/engine_state.h"
#include "engine/listener.h"
#include "engine/reload.h"
#include "engine/sessions.h"

const struct nl_policy *nl_policy;

struct nl_engine_state nl_engine = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .epfd = -1,
    .wakefd = -1,
};

static pthread_once_t cond_once = PTHREAD_ONCE_INIT;
char nl_engine_wake_marker;

static void init_cond(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&nl_engine.changed, &attr);
    pthread_condattr_destroy(&attr);
}

void nl_engine_init_once(void)
{
    pthread_once(&cond_once, init_cond);
}

/* A fork child: the condition variable may count waiters that were other
 * threads of the parent (the exit drain, a start-up wait); a broadcast in
 * the child would wait for them for ever. The child has only this thread. */
void nl_engine_reinit_cond(void)
{
    init_cond();
}

void nl_engine_wake(void)
{
    uint64_t one = 1;
    ssize_t w = nl_real.write(nl_engine.wakefd, &one, sizeof(one));
    (void)w; /* a full counter already means "wake up" */
}

void nl_engine_set_interest(struct nl_conn_end *e)
{
    if (e->fd < 0)
        return;
    /* A program that closed its end: nothing more to hear from it; nor
     * from a reset TCP socket read to its end, which would report its
     * hang-up to every epoll_wait while the program takes what came
     * before the reset. (A listener's ends, engine/listener.c, have no
     * connection.) */
    bool want = !(e->conn && e == &e->conn->app && e->conn->app_gone) &&
                !(e->conn && e == &e->conn->tcp && e->conn->tcp_error && e->conn->tcp_eof);
    /* TCP input a program thread waits for itself (direct_read.c). */
    uint32_t events = e->events;
    if (e->conn && e == &e->conn->tcp && e->conn->direct_readers > 0 && e->conn->state == NL_CONN_OPEN)
        events &= ~(uint32_t)EPOLLIN;
    struct epoll_event ev = {.events = events, .data.ptr = e};
    if (!want) {
        if (e->registered)
            nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_DEL, e->fd, NULL);
        e->registered = false;
        return;
    }
    if (!e->registered) {
        if (nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_ADD, e->fd, &ev) == 0)
            e->registered = true;
        e->last_events = events;
        return;
    }
    if (e->last_events != events) {
        nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_MOD, e->fd, &ev);
        e->last_events = events;
    }
}

static void unlink_conn(struct nl_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        nl_engine.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nl_engine.n_conns--;
}

void nl_engine_unregister(struct nl_conn_end *e)
{
    if (e->fd >= 0 && e->registered)
        nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_DEL, e->fd, NULL);
    e->registered = false;
}

void nl_engine_settle(struct nl_conn *c)
{
    if (c->listener)
        nl_listener_settle(c);
    if (c->state == NL_CONN_DONE || c->tcp.retired)
        nl_direct_read_take_back(c, true);
    if (c->state == NL_CONN_DONE) {
        nl_engine_unregister(&c->tcp);
        nl_engine_unregister(&c->app);
        unlink_conn(c);
        nl_conn_free(c);
        pthread_cond_broadcast(&nl_engine.changed);
        return;
    }
    /* Sides the connection retired leave epoll, then close. */
    if (c->tcp.retired)
        nl_engine_unregister(&c->tcp);
    if (c->app.retired)
        nl_engine_unregister(&c->app);
    nl_conn_close_retired(c);
    nl_engine_set_interest(&c->tcp);
    nl_engine_set_interest(&c->app);
}

static int next_timeout_ms(uint64_t now)
{
    uint64_t next = 0;
    for (struct nl_conn *c = nl_engine.conns; c; c = c->next) {
        if (c->run_again)
            return 0; /* its last run ran out of rounds, not of work */
        if (c->deadline_ms && (next == 0 || c->deadline_ms < next))
            next = c->deadline_ms;
        uint64_t trim = nl_conn_trim_due(c);
        if (trim && (next == 0 || trim < next))
            next = trim;
        uint64_t reader = nl_direct_read_due(c, now);
        if (reader && (next == 0 || reader < next))
            next = reader;
    }
    uint64_t paused = nl_listeners_due();
    if (paused && (next == 0 || paused < next))
        next = paused;
    uint64_t reload = nl_reload_due();
    if (reload && (next == 0 || reload < next))
        next = reload;
    if (next == 0)
        return -1;
    return next <= now ? 0 : (int)(next - now);
}

void *nl_engine_main(void *arg)
{
    (void)arg;
    struct epoll_event evs[64];
    nl_mutex_lock(&nl_engine.lock);
    nl_engine.thread_in = true;
    pthread_cond_broadcast(&nl_engine.changed);
    for (;;) {
        uint64_t before = nl_now_ms();
        int timeout = next_timeout_ms(before);
        unsigned epoch = nl_engine.epoch;
        nl_engine.sleep_until_ms = timeout < 0 ? UINT64_MAX : before + (uint64_t)timeout;
        nl_mutex_unlock(&nl_engine.lock);
        int n = nl_real.epoll_wait(nl_engine.epfd, evs, (int)NL_ARRAY_LEN(evs), timeout);
        nl_mutex_lock(&nl_engine.lock);
        nl_engine.sleep_until_ms = 0;
        while (nl_engine.frozen)
            pthread_cond_wait(&nl_engine.changed, &nl_engine.lock);
        if (epoch != nl_engine.epoch)
            n = 0; /* those events may point at connections that are gone */
        uint64_t now = nl_now_ms();
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &nl_engine_wake_marker) {
                uint64_t v;
                ssize_t r = nl_real.read(nl_engine.wakefd, &v, sizeof(v));
                (void)r;
                continue;
            }
            if (nl_reload_is_marker(evs[i].data.ptr)) {
                nl_reload_event(now);
                continue;
            }
            struct nl_conn_end *e = evs[i].data.ptr;
            if (e->conn == NULL) {
                nl_listener_event(e, evs[i].events, now);
                continue;
            }
            if (e->conn->state != NL_CONN_DONE)
                nl_conn_run(e->conn, e, evs[i].events, now);
        }
        nl_listeners_run_due(now);
        nl_reload_run_due(now);
        bool run_all = nl_engine.run_all;
        nl_engine.run_all = false;
        for (struct nl_conn *c = nl_engine.conns, *next; c; c = next) {
            next = c->next;
            if (run_all || c->run_again || (c->deadline_ms && c->deadline_ms <= now))
                if (c->state != NL_CONN_DONE)
                    nl_conn_run(c, NULL, 0, now);
            nl_conn_trim_if_idle(c, now);
            nl_direct_read_check(c, now);
            nl_engine_settle(c);
        }
        nl_listeners_reap();
        nl_sock_free_unused();
        if (nl_engine.relay_mode && nl_engine.n_conns == 0 && nl_engine.listeners == NULL)
            break;
    }
    nl_mutex_unlock(&nl_engine.lock);
    return NULL;
}

int nl_engine_start_locked(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return -1;
    int wfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wfd < 0) {
        nl_real.close(ep);
        return -1;
    }
    nl_engine.epfd = nl_guard_dup_high(ep);
    nl_engine.wakefd = nl_guard_dup_high(wfd);
    nl_real.close(ep);
    nl_real.close(wfd);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &nl_engine_wake_marker};
    nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_ADD, nl_engine.wakefd, &ev);
    nl_reload_start_locked(nl_now_ms());

    /* The engine never runs the program's signal handlers. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, nl_engine_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    pthread_setname_np(thread, "nestls-engine"); /* for top -H, ps -L and tests */
    /* Wait until the thread is in its loop. Before that it runs the C
     * library's (and a sanitizer runtime's) thread start-up, which may
     * allocate outside any lock of ours, and a program that forks right
     * after its first listen or connect (a daemon) would fork in that
     * moment: an allocator that does not lock itself at fork (clang 14's
     * ASan) then leaves the child a lock nobody releases, and some free()
     * in it, or in a child of it, hangs for ever. Once in the loop, the
     * thread touches memory only under the engine lock, which fork takes
     * first (hooks/forking.c). Running from now on: another thread that
     * takes the lock while this one waits must add its connection, not
     * start a second engine. */
    nl_engine.running = true;
    nl_engine.thread_in = false;
    while (!nl_engine.thread_in)
        pthread_cond_wait(&nl_engine.changed, &nl_engine.lock);
    return 0;
}

int nl_engine_add_locked(const struct nl_conn_spec *spec)
{
    struct nl_conn *c = nl_conn_new(spec, nl_policy->settings.handshake_timeout_ms);
    if (c == NULL)
        return -1;
    nl_sock_lock();
    if (c->sock)
        c->sock->engine_conn = c;
    nl_sock_unlock();
    c->next = nl_engine.conns;
    if (nl_engine.conns)
        nl_engine.conns->prev = c;
    nl_engine.conns = c;
    nl_engine.n_conns++;
    /* The first event (TCP writable, or the client's first flight) starts
     * the connection in the engine thread. */
    c->tcp.events = EPOLLOUT | EPOLLIN;
    c->app.events = 0;
    nl_engine_set_interest(&c->tcp);
    nl_engine_set_interest(&c->app);
    return 0;
}

int nl_engine_submit(const struct nl_conn_spec *spec)
{
    nl_engine_init_once();
    nl_mutex_lock(&nl_engine.lock);
    if (!nl_engine.running && nl_engine_start_locked() != 0) {
        int saved = errno;
        nl_mutex_unlock(&nl_engine.lock);
        nl_error("cannot start the engine: %s", strerror(saved));
        errno = saved;
        return -1;
    }
    int r = nl_engine_add_locked(spec);
    int saved = errno;
    nl_mutex_unlock(&nl_engine.lock);
    errno = saved;
    return r;
}

void nl_waiter_init(struct nl_waiter *w)
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->done = false;
    w->err = 0;
}

int nl_waiter_wait(struct nl_waiter *w, unsigned timeout_ms)
{
    (void)timeout_ms; /* the engine enforces handshake_timeout_ms itself */
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->lock);
    int err = w->err;
    pthread_mutex_unlock(&w->lock);
    return err;
}

void nl_waiter_destroy(struct nl_waiter *w)
{
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}
