/* Process life of the engine: the drain at exit, fork, the hand-off of
 * live connections to a relay process before exec, and moving an engine
 * descriptor off a number the program wants. (The order of every lock at
 * fork is hooks/forking.c's.) */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "common/locking.h"
#include "common/log.h"
#include "common/real.h"
#include "common/util.h"
#include "engine/engine.h"
#include "engine/engine_state.h"
#include "engine/listener.h"
#include "engine/reload.h"
#include "engine/sessions.h"

static bool relay_forking; /* fork() for the relay: the child keeps everything */
static bool listeners_handed; /* the relay forked before exec serves our listeners */

static bool hand_off_locked(bool keep_listeners, bool at_exec);

/* Exit (lock held): does another process still hold a listening
 * descriptor this engine serves? (A server that daemonizes after listen:
 * the parent exits, the child accepts; or prefork workers outliving their
 * parent.) Then a relay takes over the listeners and every connection, and
 * this process forgets them; true. Otherwise false: nobody will accept
 * again, and the caller closes the listeners. */
static bool listeners_outlive_us(void)
{
    nl_wrapped_close_listeners(); /* the table lock comes after the engine's */
    if (!nl_listeners_held_elsewhere())
        return false;
    if (!hand_off_locked(true, false))
        return false;
    nl_info("exit: a relay process goes on serving the listener(s) other processes still hold");
    listeners_handed = true;
    nl_engine_exec_failed(); /* forget them here, and the connections; unlocks */
    return true;
}

void nl_engine_drain_at_exit(void)
{
    if (!nl_engine.running)
        return;
    nl_engine_init_once();
    nl_mutex_lock(&nl_engine.lock);
    if (nl_engine.listeners != NULL && listeners_outlive_us())
        return; /* a relay serves them, and every connection, from now on */
    /* No new connections: the ones accepted and not handed over end now
     * (no program will take them), those handed over are drained. */
    nl_listeners_close_all();
    uint64_t deadline = nl_now_ms() + nl_policy->settings.linger_ms;
    for (struct nl_conn *c = nl_engine.conns; c; c = c->next)
        nl_conn_begin_exit(c, deadline);
    nl_engine.run_all = true;
    nl_engine_wake();
    while (nl_engine.n_conns > 0) {
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
        pthread_cond_timedwait(&nl_engine.changed, &nl_engine.lock, &ts);
    }
    if (nl_engine.n_conns > 0)
        nl_warn("exit: %zu connection(s) not closed within linger_ms (%u ms)", nl_engine.n_conns,
                nl_policy->settings.linger_ms);
    nl_mutex_unlock(&nl_engine.lock);
}

void nl_engine_fork_prepare(void)
{
    pthread_mutex_lock(&nl_engine.lock);
    if (!relay_forking) /* the child may go on using the listeners */
        nl_listeners_mark_shared();
}

void nl_engine_fork_parent(void)
{
    pthread_mutex_unlock(&nl_engine.lock);
}

/* The child has no engine thread: the parent keeps serving every
 * connection. Drop the child's copies of engine descriptors so that the
 * parent's closes still reach the peers. */
void nl_engine_fork_child(void)
{
    pthread_mutex_init(&nl_engine.lock, NULL);
    nl_engine_reinit_cond();
    if (relay_forking) { /* this child becomes the relay: keep everything */
        for (struct nl_conn *c = nl_engine.conns; c; c = c->next) {
            c->waiter = NULL;
            /* Program threads that waited for TCP input themselves
             * (direct_read.c) are not in the relay: its engine reads. */
            nl_direct_read_take_back(c, false);
            nl_engine_set_interest(&c->tcp);
        }
        return;
    }
    nl_listeners_fork_child();
    for (struct nl_conn *c = nl_engine.conns, *next; c; c = next) {
        next = c->next;
        c->waiter = NULL;
        /* The epoll instance is shared with the parent: removing an item
         * here would remove it from the parent's set. Only drop copies. */
        c->tcp.registered = c->app.registered = false;
        nl_conn_free(c);
    }
    nl_engine.conns = NULL;
    nl_engine.n_conns = 0;
    if (nl_engine.epfd >= 0) {
        nl_guard_remove(nl_engine.epfd);
        nl_real.close(nl_engine.epfd);
    }
    if (nl_engine.wakefd >= 0) {
        nl_guard_remove(nl_engine.wakefd);
        nl_real.close(nl_engine.wakefd);
    }
    nl_engine.epfd = nl_engine.wakefd = -1;
    nl_reload_fork_child();
    nl_engine.running = false;
    nl_engine.run_all = false;
}

int nl_engine_move_end(struct nl_conn_end *e)
{
    int moved = fcntl(e->fd, F_DUPFD_CLOEXEC, e->fd + 1);
    if (moved < 0)
        return -1;
    nl_guard_add(moved);
    /* A waiting thread's ppoll names the old number: the engine listens
     * for the TCP input again itself (registered below with it). */
    bool tcp_end = e->conn != NULL && e == &e->conn->tcp;
    if (tcp_end && e->conn->direct_readers > 0) {
        nl_direct_read_take_back(e->conn, false);
        e->last_events = e->events;
    }
    if (e->registered) {
        struct epoll_event ev = {.events = e->last_events, .data.ptr = e};
        nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_DEL, e->fd, NULL);
        nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_ADD, moved, &ev);
    }
    if (tcp_end) {
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

int nl_move_guarded(int *fd)
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
    nl_mutex_lock(&nl_engine.lock);
    if (fd == nl_engine.wakefd) {
        /* epoll holds the file, not the number: re-register the new one. */
        nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_DEL, fd, NULL);
        r = nl_move_guarded(&nl_engine.wakefd);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &nl_engine_wake_marker};
        nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_ADD, nl_engine.wakefd, &ev);
    } else if (fd == nl_engine.epfd) {
        r = nl_move_guarded(&nl_engine.epfd); /* a thread inside epoll_wait keeps the file */
        nl_engine_wake();
    } else {
        for (struct nl_conn *c = nl_engine.conns; c && r != 0; c = c->next) {
            if (c->tcp.fd == fd)
                r = nl_engine_move_end(&c->tcp);
            else if (c->app.fd == fd)
                r = nl_engine_move_end(&c->app);
            else if (c->prog_hold == fd)
                r = nl_move_guarded(&c->prog_hold);
        }
        if (r != 0)
            r = nl_listeners_relocate_fd(fd);
        if (r != 0)
            r = nl_reload_relocate_fd(fd);
    }
    nl_mutex_unlock(&nl_engine.lock);
    return r;
}

/* The relay is a copy of the program, with its signal handlers: a
 * handler that only sets the program's flag ("stop at the next loop")
 * would leave the relay deaf to SIGTERM forever, since no loop of the
 * program runs in it. Handlers go back to the default (SIGTERM ends the
 * relay, and with it the connections it serves, as it ends a program);
 * what the program ignores stays ignored (a daemon's SIGHUP); nothing is
 * blocked; the terminal's own signals are ignored (below). */
static void relay_default_signals(void)
{
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction old;
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &old) != 0)
            continue;
        if (old.sa_handler == SIG_IGN || old.sa_handler == SIG_DFL)
            continue;
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
    }
    signal(SIGPIPE, SIG_IGN); /* every send of the engine says MSG_NOSIGNAL; writes of the log may not */
    /* The relay stays in the program's process group: Ctrl-C at the
     * terminal is for the program (which may well survive it), not for
     * the connections it still uses. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGTSTP, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* exec: a relay process keeps serving.
 *
 * fork() a child that keeps every connection (the child handler sees
 * relay_forking), drops every descriptor that is not the engine's (so it
 * holds no copy of the program's ends), rebuilds its own epoll set and runs
 * the loop until the last connection ends. The parent forgets the
 * connections without closing them on the wire, then execs. */
static void relay_main(bool keep_listeners, bool at_exec)
{
    relay_default_signals();
    /* Everything but engine descriptors: the program's ends live on in
     * the exec'd image only, so EOF still means "the program closed". */
    if (nl_log_fd() <= 2)
        nl_log_keep_for_relay();
    nl_close_all_but_guarded();
    nl_wrapped_release_all();
    if (!keep_listeners) /* exec: the new image cannot take connections from it */
        nl_listeners_forget_for_relay();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        nl_real._exit(1);
    nl_guard_remove(nl_engine.epfd);
    nl_real.close(nl_engine.epfd);
    nl_engine.epfd = ep;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &nl_engine_wake_marker};
    nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_ADD, nl_engine.wakefd, &ev);
    for (struct nl_conn *c = nl_engine.conns; c; c = c->next) {
        c->tcp.registered = c->app.registered = false;
        c->tcp.events = c->tcp.last_events | EPOLLIN;
        c->app.events = c->app.last_events | EPOLLIN;
        nl_engine_set_interest(&c->tcp);
        nl_engine_set_interest(&c->app);
    }
    nl_listeners_register_again();
    nl_reload_register_again();
    nl_info("relay: serving %zu connection(s)%s %s", nl_engine.n_conns,
            nl_engine.listeners ? " and listener(s)" : "", at_exec ? "across exec" : "after exit");
    nl_engine.running = true;
    nl_engine.frozen = false; /* the parent's freeze was copied by fork */
    nl_engine.relay_mode = true;
    nl_mutex_unlock(&nl_engine.lock);
    /* engine_main returns only when the last connection is gone. */
    nl_engine_main(NULL);
    nl_real._exit(0);
}

/* Returns true with the engine locked when connections were handed to a
 * relay: the engine thread must not touch them again, so the lock is held
 * until execve replaces this image (or nl_engine_exec_failed). */
bool nl_engine_handoff_before_exec(void)
{
    nl_engine_init_once();
    if (!nl_engine.running)
        return false;
    nl_mutex_lock(&nl_engine.lock);
    /* Listeners a forked child may still accept on (prefork workers) go
     * to the relay too; the others end with this image (the new one could
     * not take connections from them). */
    bool keep_listeners = nl_listeners_shared();
    if (nl_engine.n_conns == 0 && !keep_listeners) {
        nl_mutex_unlock(&nl_engine.lock);
        return false;
    }
    if (!hand_off_locked(keep_listeners, true)) {
        nl_mutex_unlock(&nl_engine.lock);
        return false;
    }
    listeners_handed = keep_listeners;
    return true;
}

/* Fork the relay (lock held, and held again on return). False when fork
 * failed: nothing changed. */
static bool hand_off_locked(bool keep_listeners, bool at_exec)
{
    relay_forking = true;
    /* From here the relay child owns the sockets: this process's engine
     * must not read a byte more, even in the moment the lock is free. */
    nl_engine.frozen = true;
    /* fork() runs our atfork handlers, which take the lock themselves. */
    nl_mutex_unlock(&nl_engine.lock);
    pid_t pid = fork();
    if (pid == 0) {
        nl_mutex_lock(&nl_engine.lock);
        relay_main(keep_listeners, at_exec);
    }
    nl_mutex_lock(&nl_engine.lock);
    relay_forking = false;
    if (pid < 0) {
        nl_warn("%s: cannot start a relay (%s); wrapped connections end here",
                at_exec ? "exec" : "exit", strerror(errno));
        nl_engine.frozen = false;
        pthread_cond_broadcast(&nl_engine.changed);
        return false;
    }
    return true;
}

/* execve failed after a hand-off: the relay serves the connections now, so
 * forget them here without a word on the wire, and make the engine thread
 * drop the events it may hold for them. */
void nl_engine_exec_failed(void)
{
    if (listeners_handed) /* the relay serves them now */
        nl_listeners_forget_handed_off();
    listeners_handed = false;
    for (struct nl_conn *c = nl_engine.conns, *next; c; c = next) {
        next = c->next;
        nl_engine_unregister(&c->tcp);
        nl_engine_unregister(&c->app);
        c->waiter = NULL;
        nl_conn_free(c);
    }
    nl_engine.conns = NULL;
    nl_engine.n_conns = 0;
    nl_engine.epoch++;
    nl_engine.frozen = false;
    pthread_cond_broadcast(&nl_engine.changed);
    nl_mutex_unlock(&nl_engine.lock);
}
