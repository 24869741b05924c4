/* The engine thread: one epoll loop serving every wrapped connection of
 * this process.
 *
 * Locking: engine.lock guards the connection list and every connection.
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
#include "engine/sessions.h"

const struct nl_policy *nl_policy;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;  /* a connection ended (exit drain waits on it) */
    bool running;
    int epfd, wakefd;
    struct nl_conn *conns;
    size_t n_conns;
    bool run_all;
    unsigned epoch;  /* bumped when connections are freed outside the loop */
    bool frozen;     /* exec hand-off: the relay owns the sockets; touch nothing */
} engine = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .epfd = -1,
    .wakefd = -1,
};

static pthread_once_t cond_once = PTHREAD_ONCE_INIT;
static char wake_marker; /* epoll data for the wake-up eventfd */
static bool relay_mode;  /* this process is a relay: stop when idle */
static bool relay_forking;

static void init_cond(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&engine.changed, &attr);
    pthread_condattr_destroy(&attr);
}

static void wake(void)
{
    uint64_t one = 1;
    ssize_t w = nl_real.write(engine.wakefd, &one, sizeof(one));
    (void)w; /* a full counter already means "wake up" */
}

static void set_interest(struct nl_conn_end *e)
{
    if (e->fd < 0)
        return;
    bool want = !(e == &e->conn->app && e->conn->app_gone);
    struct epoll_event ev = {.events = e->events, .data.ptr = e};
    if (!want) {
        if (e->registered)
            nl_real.epoll_ctl(engine.epfd, EPOLL_CTL_DEL, e->fd, NULL);
        e->registered = false;
        return;
    }
    if (!e->registered) {
        if (nl_real.epoll_ctl(engine.epfd, EPOLL_CTL_ADD, e->fd, &ev) == 0)
            e->registered = true;
        e->last_events = e->events;
        return;
    }
    if (e->last_events != e->events) {
        nl_real.epoll_ctl(engine.epfd, EPOLL_CTL_MOD, e->fd, &ev);
        e->last_events = e->events;
    }
}

static void unlink_conn(struct nl_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        engine.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    engine.n_conns--;
}

static void unregister(struct nl_conn_end *e)
{
    if (e->fd >= 0 && e->registered)
        nl_real.epoll_ctl(engine.epfd, EPOLL_CTL_DEL, e->fd, NULL);
    e->registered = false;
}

void nl_engine_unwatch(struct nl_conn_end *e)
{
    unregister(e);
}

/* After running a connection: update its epoll interest or reap it. */
static void settle(struct nl_conn *c)
{
    if (c->state == NL_CONN_DONE) {
        unregister(&c->tcp);
        unregister(&c->app);
        unlink_conn(c);
        nl_conn_free(c);
        pthread_cond_broadcast(&engine.changed);
        return;
    }
    set_interest(&c->tcp);
    set_interest(&c->app);
}

static int next_timeout_ms(uint64_t now)
{
    uint64_t next = 0;
    for (struct nl_conn *c = engine.conns; c; c = c->next) {
        if (c->run_again)
            return 0; /* its last run ran out of rounds, not of work */
        if (c->deadline_ms && (next == 0 || c->deadline_ms < next))
            next = c->deadline_ms;
        uint64_t trim = nl_conn_trim_due(c);
        if (trim && (next == 0 || trim < next))
            next = trim;
    }
    if (next == 0)
        return -1;
    return next <= now ? 0 : (int)(next - now);
}

static void *engine_main(void *arg)
{
    (void)arg;
    struct epoll_event evs[64];
    nl_mutex_lock(&engine.lock);
    for (;;) {
        int timeout = next_timeout_ms(nl_now_ms());
        unsigned epoch = engine.epoch;
        nl_mutex_unlock(&engine.lock);
        int n = epoll_wait(engine.epfd, evs, (int)NL_ARRAY_LEN(evs), timeout);
        nl_mutex_lock(&engine.lock);
        while (engine.frozen)
            pthread_cond_wait(&engine.changed, &engine.lock);
        if (epoch != engine.epoch)
            n = 0; /* those events may point at connections that are gone */
        uint64_t now = nl_now_ms();
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &wake_marker) {
                uint64_t v;
                ssize_t r = read(engine.wakefd, &v, sizeof(v));
                (void)r;
                continue;
            }
            struct nl_conn_end *e = evs[i].data.ptr;
            if (e->conn->state != NL_CONN_DONE)
                nl_conn_run(e->conn, e, evs[i].events, now);
        }
        bool run_all = engine.run_all;
        engine.run_all = false;
        for (struct nl_conn *c = engine.conns, *next; c; c = next) {
            next = c->next;
            if (run_all || c->run_again || (c->deadline_ms && c->deadline_ms <= now))
                if (c->state != NL_CONN_DONE)
                    nl_conn_run(c, NULL, 0, now);
            nl_conn_trim_if_idle(c, now);
            settle(c);
        }
        if (relay_mode && engine.n_conns == 0)
            break;
    }
    nl_mutex_unlock(&engine.lock);
    return NULL;
}

static int start_engine(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return -1;
    int wfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wfd < 0) {
        nl_real.close(ep);
        return -1;
    }
    engine.epfd = nl_guard_dup_high(ep);
    engine.wakefd = nl_guard_dup_high(wfd);
    nl_real.close(ep);
    nl_real.close(wfd);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &wake_marker};
    nl_real.epoll_ctl(engine.epfd, EPOLL_CTL_ADD, engine.wakefd, &ev);

    /* The engine never runs the program's signal handlers. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, engine_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    engine.running = true;
    return 0;
}

int nl_engine_submit(const struct nl_conn_spec *spec)
{
    pthread_once(&cond_once, init_cond);
    nl_mutex_lock(&engine.lock);
    if (!engine.running && start_engine() != 0) {
        int saved = errno;
        nl_mutex_unlock(&engine.lock);
        nl_error("cannot start the engine: %s", strerror(saved));
        errno = saved;
        return -1;
    }
    struct nl_conn *c = nl_conn_new(spec, nl_policy->settings.handshake_timeout_ms);
    if (c == NULL) {
        int saved = errno;
        nl_mutex_unlock(&engine.lock);
        errno = saved;
        return -1;
    }
    nl_sock_lock();
    if (c->sock)
        c->sock->engine_conn = c;
    nl_sock_unlock();
    c->next = engine.conns;
    if (engine.conns)
        engine.conns->prev = c;
    engine.conns = c;
    engine.n_conns++;
    /* The first event (TCP writable, or the client's first flight) starts
     * the connection in the engine thread. */
    c->tcp.events = EPOLLOUT | EPOLLIN;
    c->app.events = 0;
    set_interest(&c->tcp);
    set_interest(&c->app);
    nl_mutex_unlock(&engine.lock);
    return 0;
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

void nl_engine_drain_at_exit(void)
{
    if (!engine.running)
        return;
    pthread_once(&cond_once, init_cond);
    nl_mutex_lock(&engine.lock);
    uint64_t deadline = nl_now_ms() + nl_policy->settings.linger_ms;
    for (struct nl_conn *c = engine.conns; c; c = c->next)
        nl_conn_begin_exit(c, deadline);
    engine.run_all = true;
    wake();
    while (engine.n_conns > 0) {
        uint64_t now = nl_now_ms();
        if (now >= deadline + 50)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t wait_ms = deadline + 50 - now;
        ts.tv_sec += (time_t)(wait_ms / 1000);
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&engine.changed, &engine.lock, &ts);
    }
    if (engine.n_conns > 0)
        nl_warn("exit: %zu connection(s) not closed within linger_ms (%u ms)", engine.n_conns,
                nl_policy->settings.linger_ms);
    nl_mutex_unlock(&engine.lock);
}

void nl_engine_fork_prepare(void)
{
    pthread_mutex_lock(&engine.lock);
}

void nl_engine_fork_parent(void)
{
    pthread_mutex_unlock(&engine.lock);
}

/* The child has no engine thread: the parent keeps serving every
 * connection. Drop the child's copies of engine descriptors so that the
 * parent's closes still reach the peers. */
void nl_engine_fork_child(void)
{
    pthread_mutex_init(&engine.lock, NULL);
    if (relay_forking) { /* this child becomes the relay: keep everything */
        for (struct nl_conn *c = engine.conns; c; c = c->next)
            c->waiter = NULL;
        return;
    }
    for (struct nl_conn *c = engine.conns, *next; c; c = next) {
        next = c->next;
        c->waiter = NULL;
        /* The epoll instance is shared with the parent: removing an item
         * here would remove it from the parent's set. Only drop copies. */
        c->tcp.registered = c->app.registered = false;
        nl_conn_free(c);
    }
    engine.conns = NULL;
    engine.n_conns = 0;
    if (engine.epfd >= 0) {
        nl_guard_remove(engine.epfd);
        nl_real.close(engine.epfd);
    }
    if (engine.wakefd >= 0) {
        nl_guard_remove(engine.wakefd);
        nl_real.close(engine.wakefd);
    }
    engine.epfd = engine.wakefd = -1;
    engine.running = false;
    engine.run_all = false;
}

static int move_end(struct nl_conn_end *e)
{
    int moved = fcntl(e->fd, F_DUPFD_CLOEXEC, e->fd + 1);
    if (moved < 0)
        return -1;
    nl_guard_add(moved);
    if (e->registered) {
        struct epoll_event ev = {.events = e->last_events, .data.ptr = e};
        nl_real.epoll_ctl(engine.epfd, EPOLL_CTL_DEL, e->fd, NULL);
        nl_real.epoll_ctl(engine.epfd, EPOLL_CTL_ADD, moved, &ev);
    }
    if (e == &e->conn->tcp) {
        nl_sock_lock();
        if (e->conn->sock)
            e->conn->sock->tcp_fd = moved;
        nl_sock_unlock();
    }
    nl_guard_remove(e->fd);
    nl_real.close(e->fd);
    e->fd = moved;
    return 0;
}

static int move_plain(int *fd)
{
    int moved = fcntl(*fd, F_DUPFD_CLOEXEC, *fd + 1);
    if (moved < 0)
        return -1;
    nl_guard_add(moved);
    nl_guard_remove(*fd);
    nl_real.close(*fd);
    *fd = moved;
    return 0;
}

int nl_engine_relocate_fd(int fd)
{
    int r = -1;
    if (fd == nl_log_fd())
        return nl_log_relocate();
    nl_mutex_lock(&engine.lock);
    if (fd == engine.wakefd) {
        /* epoll holds the file, not the number: re-register the new one. */
        nl_real.epoll_ctl(engine.epfd, EPOLL_CTL_DEL, fd, NULL);
        r = move_plain(&engine.wakefd);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &wake_marker};
        nl_real.epoll_ctl(engine.epfd, EPOLL_CTL_ADD, engine.wakefd, &ev);
    } else if (fd == engine.epfd) {
        r = move_plain(&engine.epfd); /* a thread inside epoll_wait keeps the file */
        wake();
    } else {
        for (struct nl_conn *c = engine.conns; c && r != 0; c = c->next) {
            if (c->tcp.fd == fd)
                r = move_end(&c->tcp);
            else if (c->app.fd == fd)
                r = move_end(&c->app);
            else if (c->prog_hold == fd)
                r = move_plain(&c->prog_hold);
        }
    }
    nl_mutex_unlock(&engine.lock);
    return r;
}

/* exec: a relay process keeps serving.
 *
 * fork() a child that keeps every connection (the child handler sees
 * relay_forking), drops every descriptor that is not the engine's (so it
 * holds no copy of the program's ends), rebuilds its own epoll set and runs
 * the loop until the last connection ends. The parent forgets the
 * connections without closing them on the wire, then execs. */
static void relay_main(void)
{
    /* Everything but engine descriptors: the program's ends live on in
     * the exec'd image only, so EOF still means "the program closed". */
    if (nl_log_fd() <= 2)
        nl_log_keep_for_relay();
    nl_close_all_but_guarded();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        nl_real._exit(1);
    nl_guard_remove(engine.epfd);
    nl_real.close(engine.epfd);
    engine.epfd = ep;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &wake_marker};
    nl_real.epoll_ctl(engine.epfd, EPOLL_CTL_ADD, engine.wakefd, &ev);
    for (struct nl_conn *c = engine.conns; c; c = c->next) {
        c->tcp.registered = c->app.registered = false;
        c->tcp.events = c->tcp.last_events | EPOLLIN;
        c->app.events = c->app.last_events | EPOLLIN;
        set_interest(&c->tcp);
        set_interest(&c->app);
    }
    nl_info("relay: serving %zu connection(s) across exec", engine.n_conns);
    engine.running = true;
    engine.frozen = false; /* the parent's freeze was copied by fork */
    relay_mode = true;
    nl_mutex_unlock(&engine.lock);
    /* engine_main returns only when the last connection is gone. */
    engine_main(NULL);
    nl_real._exit(0);
}

/* Returns true with the engine locked when connections were handed to a
 * relay: the engine thread must not touch them again, so the lock is held
 * until execve replaces this image (or nl_engine_exec_failed). */
bool nl_engine_handoff_before_exec(void)
{
    pthread_once(&cond_once, init_cond);
    if (!engine.running)
        return false;
    nl_mutex_lock(&engine.lock);
    if (engine.n_conns == 0) {
        nl_mutex_unlock(&engine.lock);
        return false;
    }
    relay_forking = true;
    /* From here the relay child owns the sockets: this process's engine
     * must not read a byte more, even in the moment the lock is free. */
    engine.frozen = true;
    /* fork() runs our atfork handlers, which take the lock themselves. */
    nl_mutex_unlock(&engine.lock);
    pid_t pid = fork();
    if (pid == 0) {
        nl_mutex_lock(&engine.lock);
        relay_main();
    }
    nl_mutex_lock(&engine.lock);
    relay_forking = false;
    if (pid < 0) {
        nl_warn("exec: cannot start a relay (%s); wrapped connections end at exec",
                strerror(errno));
        engine.frozen = false;
        pthread_cond_broadcast(&engine.changed);
        nl_mutex_unlock(&engine.lock);
        return false;
    }
    return true;
}

/* execve failed after a hand-off: the relay serves the connections now, so
 * forget them here without a word on the wire, and make the engine thread
 * drop the events it may hold for them. */
void nl_engine_exec_failed(void)
{
    for (struct nl_conn *c = engine.conns, *next; c; c = next) {
        next = c->next;
        unregister(&c->tcp);
        unregister(&c->app);
        c->waiter = NULL;
        nl_conn_free(c);
    }
    engine.conns = NULL;
    engine.n_conns = 0;
    engine.epoch++;
    engine.frozen = false;
    pthread_cond_broadcast(&engine.changed);
    nl_mutex_unlock(&engine.lock);
}

void nl_engine_program_closed(struct nl_sock *s)
{
    if (!engine.running)
        return;
    nl_mutex_lock(&engine.lock);
    nl_sock_lock();
    struct nl_conn *c = s->engine_conn;
    nl_sock_unlock();
    if (c != NULL)
        nl_conn_program_closed(c);
    nl_mutex_unlock(&engine.lock);
}

int nl_engine_half_close(struct nl_sock *s)
{
    int found = 0;
    if (!engine.running)
        return 0;
    nl_mutex_lock(&engine.lock);
    nl_sock_lock();
    struct nl_conn *c = s->engine_conn;
    nl_sock_unlock();
    if (c != NULL && c->state < NL_CONN_CLOSING && !c->app_eof) {
        c->prog_shut_wr = true;
        engine.run_all = true; /* run every connection once */
        wake();
        found = 1;
    }
    nl_mutex_unlock(&engine.lock);
    return found;
}

ssize_t nl_engine_write_direct(struct nl_sock *s, const void *buf, size_t len)
{
    if (!engine.running || len == 0)
        return -1;
    /* Never waiting for the engine: when it is busy, the socketpair is as
     * fast and keeps connections from waiting on each other (and the
     * handshake's timing stays the engine's: takes_direct wants every
     * layer up). */
    if (nl_mutex_trylock(&engine.lock) != 0)
        return -1;
    ssize_t taken = -1;
    nl_sock_lock();
    struct nl_conn *c = s->engine_conn;
    nl_sock_unlock();
    /* A connection is only freed under engine.lock, so c stays valid. */
    if (c != NULL && !engine.frozen && !relay_mode && nl_conn_takes_direct(c)) {
        /* A trimmed connection had no trim scheduled: once it is busy
         * again, the engine must know to plan the next one. */
        bool was_trimmed = c->trimmed;
        taken = nl_conn_write_direct(c, buf, len, nl_now_ms());
        if (was_trimmed)
            wake();
        if (c->state == NL_CONN_DONE)
            engine.epoch++; /* the engine thread may hold events for it */
        settle(c);
    }
    nl_mutex_unlock(&engine.lock);
    return taken;
}
