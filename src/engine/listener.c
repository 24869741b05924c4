/* Wrapped listeners: the engine accepts, handshakes, then hands over.
 *
 * Each listener has two ends in the engine's epoll set: the real TCP
 * listener (EPOLLIN: connections to accept) and the engine end of the
 * hand-over queue (EPOLLOUT only while the queue is full; EPOLLHUP when
 * the program's last copy of its listening descriptor is closed). A
 * connection accepted here is decided by the policy with its own local
 * address (a listener on 0.0.0.0 may see several): wrapped connections
 * run their layers as any server connection does and are handed over when
 * they are up; passthrough ones are handed over at once as the TCP socket
 * itself; denied ones are closed.
 *
 * Bounds: at most in_flight_cap() connections per listener are accepted
 * and not yet taken by the program's accept, handshaking or queued (512,
 * or an eighth of RLIMIT_NOFILE when that is less: a wrapped one costs
 * three or four descriptors until the program takes it);
 * beyond that the engine stops accepting and the kernel's backlog holds
 * the rest, as it would for a program that accepts slowly. A failing
 * accept (no descriptors left) pauses the listener for a moment instead
 * of spinning. */
#include "engine/listener.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/handover.h"
#include "common/locking.h"
#include "common/log.h"
#include "common/real.h"
#include "common/util.h"
#include "engine/conn.h"
#include "engine/engine_state.h"

#define NL_LISTEN_IN_FLIGHT 512
#define NL_LISTEN_ACCEPT_BATCH 32
#define NL_LISTEN_PAUSE_MS 100
#define NL_LISTEN_RETRY_MS 20

struct nl_listener {
    struct nl_listener *next, *prev;
    struct nl_conn_end tcp, queue; /* conn == NULL: .listener says whose */
    struct nl_sock *sock;          /* the program's listening descriptor */
    size_t in_flight;              /* accepted, not handed over yet */
    int *plain;                    /* passthrough connections the full queue holds back */
    size_t n_plain;
    bool queue_full;               /* wait for EPOLLOUT on the queue */
    bool closed;                   /* closed inside the loop: freed after the batch */
    bool shared;                   /* this process forked since: a child may hold it */
    uint64_t paused_until;         /* accept failed for want of resources */
    uint64_t retry_at;             /* queue refused for want of resources */
    uint64_t recheck_at;           /* at the cap: see whether the program accepted */
    size_t msg_cost;               /* bytes one queued message is charged */
    char where[80];                /* its address, for the log */
};

static struct nl_listener *dead; /* closed during this batch of events */

static void set_interest(struct nl_conn_end *e, uint32_t events)
{
    e->events = events;
    nl_engine_set_interest(e);
}

static size_t in_flight_cap(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur / 8 >= NL_LISTEN_IN_FLIGHT)
        return NL_LISTEN_IN_FLIGHT;
    return rl.rlim_cur / 8 < 4 ? 4 : (size_t)(rl.rlim_cur / 8);
}

/* How many connections wait in the queue for the program's accept: the
 * bytes the kernel still charges to our end (SIOCOUTQ: messages not yet
 * received), over what one message costs. Each holds descriptors in this
 * process and in flight, so they count against the cap as well. */
static size_t queued(const struct nl_listener *l)
{
    int outq = 0;
    if (l->msg_cost == 0 || ioctl(l->queue.fd, SIOCOUTQ, &outq) != 0 || outq <= 0)
        return 0;
    return (size_t)outq / l->msg_cost;
}

static void arm(struct nl_listener *l)
{
    size_t waiting = l->in_flight + queued(l);
    bool accepting = waiting < in_flight_cap() && l->paused_until == 0;
    /* No event says the program accepted: look again soon. */
    if (!accepting && l->paused_until == 0 && l->recheck_at == 0)
        l->recheck_at = nl_now_ms() + NL_LISTEN_RETRY_MS;
    set_interest(&l->tcp, accepting ? EPOLLIN : 0);
    /* A queue refused for want of resources is retried on a timer:
     * EPOLLOUT would fire at once, and again, and again. */
    set_interest(&l->queue, l->queue_full && l->retry_at == 0 ? EPOLLOUT : 0);
}

static void close_guarded(int *fd)
{
    if (*fd < 0)
        return;
    nl_guard_remove(*fd);
    nl_real.close(*fd);
    *fd = -1;
}

/* Stop listening: the kernel resets what waits in its backlog, and every
 * connection accepted here and not handed over ends (no program will ever
 * read it). */
static void listener_close(struct nl_listener *l, bool outside_loop)
{
    for (struct nl_conn *c = nl_engine.conns; c; c = c->next) {
        if (c->listener == l) {
            c->listener = NULL;
            nl_conn_end_unclaimed(c);
        }
    }
    for (size_t i = 0; i < l->n_plain; i++)
        close_guarded(&l->plain[i]);
    free(l->plain);
    nl_engine_unregister(&l->tcp);
    nl_engine_unregister(&l->queue);
    nl_sock_lock();
    l->sock->tcp_fd = -1;
    nl_sock_unlock();
    close_guarded(&l->tcp.fd);
    close_guarded(&l->queue.fd);
    if (l->prev)
        l->prev->next = l->next;
    else
        nl_engine.listeners = l->next;
    if (l->next)
        l->next->prev = l->prev;
    nl_engine.run_all = true; /* reap the connections it ended */
    if (outside_loop) {
        nl_engine.epoch++; /* the engine drops the events it fetched */
        nl_sock_put(l->sock);
        free(l);
        return;
    }
    /* Later events of this batch may still point at it. */
    l->closed = true;
    l->next = dead;
    dead = l;
}

void nl_listeners_reap(void)
{
    while (dead != NULL) {
        struct nl_listener *l = dead;
        dead = l->next;
        nl_sock_put(l->sock);
        free(l);
    }
}

/* One message: the header, the connection's descriptor and, for a wrapped
 * one, a copy of its TCP socket (tcp, else -1), so that a process other
 * than this one that accepts it can still set and read TCP options. */
static ssize_t send_over(struct nl_listener *l, uint32_t kind, int fd, int tcp,
                         const struct nl_sock *s)
{
    /* Every byte defined: the message may go to another process. */
    struct nl_handover h;
    memset(&h, 0, sizeof(h));
    h.magic = NL_HANDOVER_MAGIC;
    h.kind = kind;
    h.family = s->family;
    h.protocol = s->protocol;
    h.local_len = s->local_len <= sizeof(h.local) ? s->local_len : 0;
    h.peer_len = s->peer_len <= sizeof(h.peer) ? s->peer_len : 0;
    memcpy(&h.local, &s->local, h.local_len);
    memcpy(&h.peer, &s->peer, h.peer_len);
    h.engine_pid = getpid();
    struct iovec iov = {.iov_base = &h, .iov_len = sizeof(h)};
    int fds[2] = {fd, tcp};
    size_t n = tcp >= 0 ? 2 : 1;
    union {
        char buf[CMSG_SPACE(sizeof(fds))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = CMSG_SPACE(n * sizeof(int))};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(n * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
    return nl_real.sendmsg(l->queue.fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Returns 1 handed over, 0 not now (the queue is full: EPOLLOUT, or a
 * timer, says when to try again), -1 the program's listening descriptor
 * is gone everywhere (the listener closes). */
static int hand_over(struct nl_listener *l, uint32_t kind, int fd, int tcp, const struct nl_sock *s)
{
    if (l->queue_full)
        return 0;
    int before = 0, after = 0;
    ioctl(l->queue.fd, SIOCOUTQ, &before);
    if (send_over(l, kind, fd, tcp, s) == (ssize_t)sizeof(struct nl_handover)) {
        /* What one message costs (the receiver may already have taken
         * one meanwhile: keep the largest seen). */
        if (ioctl(l->queue.fd, SIOCOUTQ, &after) == 0 && after - before > (int)l->msg_cost)
            l->msg_cost = (size_t)(after - before);
        return 1;
    }
    int e = errno;
    if (e == EPIPE || e == ECONNRESET || e == ECONNREFUSED || e == ENOTCONN)
        return -1;
    l->queue_full = true;
    if (e != EAGAIN && e != EWOULDBLOCK) {
        /* ETOOMANYREFS (descriptors in flight beyond the sender's
         * RLIMIT_NOFILE, for a server not running as root), ENOMEM,
         * ENOBUFS: no EPOLLOUT will come when they clear; try again soon.
         * The connections wait, as they would in the kernel's backlog. */
        if (l->retry_at == 0 && e == ETOOMANYREFS) /* the program is slow to accept: normal */
            nl_debug("listener %s: the kernel's limit on descriptors in flight is reached (the "
                     "program has not accepted yet); trying again in %d ms",
                     l->where, NL_LISTEN_RETRY_MS);
        else if (l->retry_at == 0)
            nl_warn("listener %s: handing a connection to the program: %s; trying again in %d ms",
                    l->where, strerror(e), NL_LISTEN_RETRY_MS);
        l->retry_at = nl_now_ms() + NL_LISTEN_RETRY_MS;
    }
    return 0;
}

/* A passthrough connection: the TCP socket itself, with its own facts. */
static int hand_over_plain(struct nl_listener *l, int tcp)
{
    struct nl_sock facts = {0};
    nl_sock_facts_of(tcp, &facts);
    return hand_over(l, NL_HANDOVER_PLAIN, tcp, -1, &facts);
}

/* Returns -1 when the listener closed (the program's descriptor is gone). */
static int settle(struct nl_listener *l, struct nl_conn *c)
{
    if (c->state == NL_CONN_DONE) { /* failed or timed out: never handed over */
        c->listener = NULL;
        l->in_flight--;
        return 0;
    }
    if (c->state < NL_CONN_OPEN)
        return 0;
    int r = hand_over(l, NL_HANDOVER_WRAPPED, c->prog_hold, c->tcp.fd, c->sock);
    if (r == 1) {
        c->listener = NULL;
        l->in_flight--;
        nl_conn_handed_over(c);
    } else if (r < 0) {
        nl_info("listener %s: the program closed it; stopping", l->where);
        listener_close(l, false);
        return -1;
    }
    return 0;
}

void nl_listener_settle(struct nl_conn *c)
{
    struct nl_listener *l = c->listener;
    if (l != NULL && settle(l, c) == 0 && !l->closed)
        arm(l);
}

/* The queue has room again: passthrough connections first (they have
 * waited longest for nothing), then every wrapped one that is up.
 * Returns -1 when the listener closed. */
static int drain_waiting(struct nl_listener *l)
{
    l->queue_full = false;
    size_t kept = 0;
    for (size_t i = 0; i < l->n_plain; i++) {
        int r = hand_over_plain(l, l->plain[i]);
        if (r == 0) {
            l->plain[kept++] = l->plain[i];
            continue;
        }
        if (r < 0) {
            l->n_plain = kept + (l->n_plain - i); /* the rest close with it */
            memmove(l->plain + kept, l->plain + i, (l->n_plain - kept) * sizeof(int));
            listener_close(l, false);
            return -1;
        }
        close_guarded(&l->plain[i]);
        l->in_flight--;
    }
    l->n_plain = kept;
    for (struct nl_conn *c = nl_engine.conns; c && !l->queue_full; c = c->next)
        if (c->listener == l && c->state != NL_CONN_DONE && c->state >= NL_CONN_OPEN)
            if (settle(l, c) != 0)
                return -1;
    return 0;
}

static void take_plain(struct nl_listener *l, int tcp)
{
    int r = hand_over_plain(l, tcp);
    if (r != 0) { /* handed over (our copy closes), or nobody will take it */
        close_guarded(&tcp);
        return;
    }
    int *grown = realloc(l->plain, (l->n_plain + 1) * sizeof(int));
    if (grown == NULL) {
        close_guarded(&tcp);
        return;
    }
    l->plain = grown;
    l->plain[l->n_plain++] = tcp;
    l->in_flight++;
}

/* The program sized the listener's buffers (hooks/sockopt.c): the TCP
 * connection inherited them, and the socket pair gets them too, so that
 * bytes bound for the program wait in no more room than it asked for.
 * Returns the smaller size it set (the layers' limit), or 0. */
static int size_like_listener(const struct nl_listener *l, int prog, int app)
{
    nl_sock_lock();
    int rcvbuf = l->sock->rcvbuf, sndbuf = l->sock->sndbuf;
    nl_sock_unlock();
    if (rcvbuf > 0) {
        nl_real.setsockopt(prog, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
        nl_real.setsockopt(app, SOL_SOCKET, SO_SNDBUF, &rcvbuf, sizeof(rcvbuf));
    }
    if (sndbuf > 0)
        nl_real.setsockopt(prog, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (rcvbuf > 0 && (sndbuf <= 0 || rcvbuf < sndbuf))
        return rcvbuf;
    return sndbuf > 0 ? sndbuf : 0;
}

/* Returns -1 with errno when descriptors or memory ran out (the
 * connection is closed: never handed over unwrapped). */
static int take_wrapped(struct nl_listener *l, int tcp, const struct nl_rule *rule)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        int e = errno;
        close_guarded(&tcp);
        errno = e;
        return -1;
    }
    int prog = nl_guard_dup_high(sv[0]), app = nl_guard_dup_high(sv[1]);
    int e = errno;
    nl_real.close(sv[0]);
    nl_real.close(sv[1]);
    struct nl_sock *s = nl_sock_new(l->sock->family);
    struct stat st;
    if (prog < 0 || app < 0 || s == NULL || fstat(prog, &st) != 0) {
        close_guarded(&prog);
        close_guarded(&app);
        close_guarded(&tcp);
        if (s)
            nl_sock_put(s);
        errno = s == NULL ? ENOMEM : e;
        return -1;
    }
    int sized = size_like_listener(l, prog, app);
    nl_sock_facts_of(tcp, s);
    s->tcp_fd = tcp;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    struct nl_conn_spec spec = {
        .role = NL_ROLE_SERVER,
        .rule = rule,
        .tcp_fd = tcp,
        .app_fd = app,
        .prog_fd = -1,
        .prog_hold = prog,
        .sock = s,
        .local = (struct sockaddr *)&s->local,
        .peer = (struct sockaddr *)&s->peer,
        .listener = l,
    };
    if (nl_engine_add_locked(&spec) != 0) {
        e = errno;
        close_guarded(&prog);
        close_guarded(&app);
        close_guarded(&tcp);
        nl_sock_put(s);
        errno = e;
        return -1;
    }
    if (sized > 0 && s->engine_conn != NULL)
        nl_onion_limit(&((struct nl_conn *)s->engine_conn)->onion, (size_t)sized);
    l->in_flight++;
    return 0;
}

/* One accepted connection, decided by its own local address. Returns -1
 * with errno when descriptors or memory ran out (it is closed). */
static int take(struct nl_listener *l, int fd)
{
    int tcp = nl_guard_dup_high(fd);
    int e = errno;
    nl_real.close(fd);
    if (tcp < 0) {
        errno = e;
        return -1;
    }
    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);
    if (nl_real.getsockname(tcp, (struct sockaddr *)&local, &local_len) != 0) {
        close_guarded(&tcp);
        return 0;
    }
    struct nl_conn_query q = {
        .role = NL_ROLE_SERVER,
        .addr = (struct sockaddr *)&local,
        .program = nl_program_name(),
    };
    const struct nl_rule *rule = nl_policy_match(nl_policy, &q);
    enum nl_action action = rule ? rule->action : nl_policy->settings.default_action;
    if (action == NL_ACTION_WRAP)
        return take_wrapped(l, tcp, rule);
    if (action == NL_ACTION_PASSTHROUGH) {
        nl_log_server_unwrapped(rule, false, l->where, NULL);
        take_plain(l, tcp);
        return 0;
    }
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof(peer);
    char a[80];
    nl_format_addr((struct sockaddr *)&local, a, sizeof(a));
    bool known = nl_real.getpeername(tcp, (struct sockaddr *)&peer, &peer_len) == 0;
    nl_log_server_unwrapped(rule, true, a, known ? (struct sockaddr *)&peer : NULL);
    close_guarded(&tcp);
    return 0;
}

void nl_log_server_unwrapped(const struct nl_rule *rule, bool denied, const char *local,
                             const struct sockaddr *peer)
{
    if (!denied && !nl_log_enabled(NL_LOG_DEBUG))
        return;
    const char *open = rule ? "rule '" : "default action", *name = rule ? rule->name : "",
               *close = rule ? "'" : "";
    if (!denied) {
        nl_debug("%s%s%s: server %s passed through in plaintext", open, name, close, local);
        return;
    }
    char b[80] = "?";
    if (peer != NULL)
        nl_format_addr(peer, b, sizeof(b));
    nl_warn("%s%s%s: server %s <- %s denied", open, name, close, local, b);
}

static bool out_of_resources(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* Out of descriptors or memory: say so, and stop accepting for a moment
 * instead of spinning on a backlog that cannot be taken. */
static void pause_for(struct nl_listener *l, const char *what, int err, uint64_t now_ms)
{
    nl_warn("listener %s: %s: %s; accepting again in %d ms", l->where, what, strerror(err),
            NL_LISTEN_PAUSE_MS);
    l->paused_until = now_ms + NL_LISTEN_PAUSE_MS;
}

static void accept_some(struct nl_listener *l, uint64_t now_ms)
{
    size_t cap = in_flight_cap();
    for (int i = 0; i < NL_LISTEN_ACCEPT_BATCH && l->in_flight < cap; i++) {
        int fd = nl_real.accept4(l->tcp.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (take(l, fd) != 0) {
                pause_for(l, "a new connection was closed", errno, now_ms);
                return;
            }
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (out_of_resources(errno)) {
            pause_for(l, "accept", errno, now_ms);
            return;
        }
        if (errno == EINVAL) { /* the program shut the listener down */
            listener_close(l, false);
            return;
        }
        /* ECONNABORTED, EPROTO, EPERM (a firewall), network errors: that
         * one connection is gone; the listener is fine. */
    }
}

void nl_listener_event(struct nl_conn_end *e, uint32_t events, uint64_t now_ms)
{
    struct nl_listener *l = e->listener;
    if (l->closed)
        return;
    if (e == &l->queue) {
        if (events & (EPOLLHUP | EPOLLERR)) { /* the program's last copy is closed */
            listener_close(l, false);
            return;
        }
        if ((events & EPOLLOUT) && drain_waiting(l) != 0)
            return;
        arm(l);
        return;
    }
    if (events & EPOLLIN)
        accept_some(l, now_ms);
    if (!l->closed) /* accept_some may have closed it */
        arm(l);
}

uint64_t nl_listeners_due(void)
{
    uint64_t due = 0;
    for (struct nl_listener *l = nl_engine.listeners; l; l = l->next) {
        if (l->paused_until && (due == 0 || l->paused_until < due))
            due = l->paused_until;
        if (l->retry_at && (due == 0 || l->retry_at < due))
            due = l->retry_at;
        if (l->recheck_at && (due == 0 || l->recheck_at < due))
            due = l->recheck_at;
    }
    return due;
}

void nl_listeners_run_due(uint64_t now_ms)
{
    for (struct nl_listener *l = nl_engine.listeners, *next; l; l = next) {
        next = l->next;
        if (l->paused_until && l->paused_until <= now_ms) {
            l->paused_until = 0;
            arm(l); /* a backlog still waiting makes EPOLLIN fire at once */
        }
        if (l->recheck_at && l->recheck_at <= now_ms) {
            l->recheck_at = 0;
            arm(l); /* accepts again if the program took some; else looks later */
        }
        if (l->retry_at && l->retry_at <= now_ms) {
            uint64_t was = l->retry_at;
            if (drain_waiting(l) != 0)
                continue; /* closed */
            if (l->retry_at == was) /* it went through: say so next time */
                l->retry_at = 0;
            arm(l);
        }
    }
}

int nl_engine_listen(struct nl_sock *sock, int tcp_fd, int queue_fd)
{
    nl_engine_init_once();
    nl_mutex_lock(&nl_engine.lock);
    struct nl_listener *l = calloc(1, sizeof(*l));
    if (l == NULL || (!nl_engine.running && nl_engine_start_locked() != 0)) {
        int e = l ? errno : ENOMEM;
        nl_mutex_unlock(&nl_engine.lock);
        free(l);
        close_guarded(&tcp_fd);
        close_guarded(&queue_fd);
        errno = e;
        return -1;
    }
    l->tcp = (struct nl_conn_end){.fd = tcp_fd, .listener = l};
    l->queue = (struct nl_conn_end){.fd = queue_fd, .listener = l};
    nl_set_nonblock(tcp_fd, true);
    nl_set_nonblock(queue_fd, true);
    nl_format_addr((struct sockaddr *)&sock->local, l->where, sizeof(l->where));
    nl_sock_lock();
    sock->refs++;
    sock->tcp_fd = tcp_fd;
    nl_sock_unlock();
    l->sock = sock;
    l->next = nl_engine.listeners;
    if (l->next)
        l->next->prev = l;
    nl_engine.listeners = l;
    arm(l);
    nl_debug("listener %s: handshakes run before accept() returns", l->where);
    nl_mutex_unlock(&nl_engine.lock);
    return 0;
}

/* No copy of the program's end of the queue is left anywhere (the kernel
 * releases it before close returns, so this holds at once). */
static bool hung_up(const struct nl_listener *l)
{
    struct pollfd p = {.fd = l->queue.fd, .events = 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

static void close_if(struct nl_sock *sock, bool only_if_hung_up)
{
    nl_engine_init_once();
    nl_mutex_lock(&nl_engine.lock);
    for (struct nl_listener *l = nl_engine.listeners; l; l = l->next) {
        if (l->sock != sock)
            continue;
        if (!only_if_hung_up || hung_up(l))
            listener_close(l, true);
        break;
    }
    nl_mutex_unlock(&nl_engine.lock);
}

void nl_engine_listeners_check(void)
{
    nl_engine_init_once();
    nl_mutex_lock(&nl_engine.lock);
    for (struct nl_listener *l = nl_engine.listeners, *next; l; l = next) {
        next = l->next;
        if (hung_up(l))
            listener_close(l, true);
    }
    nl_mutex_unlock(&nl_engine.lock);
}

void nl_engine_listener_closed(struct nl_sock *sock)
{
    close_if(sock, true);
}

void nl_engine_listener_shut(struct nl_sock *sock)
{
    close_if(sock, false);
}

struct nl_sock *nl_engine_handed_sock(dev_t dev, ino_t ino, int fd)
{
    struct nl_sock *found = NULL;
    nl_engine_init_once();
    nl_mutex_lock(&nl_engine.lock);
    for (struct nl_conn *c = nl_engine.conns; c && !found; c = c->next) {
        if (c->sock && c->role == NL_ROLE_SERVER && c->sock->ino == ino && c->sock->dev == dev) {
            c->prog_fd = fd; /* how a failure resets the program's end (engine/reset.c) */
            found = c->sock;
            nl_sock_lock();
            found->refs++;
            nl_sock_unlock();
        }
    }
    nl_mutex_unlock(&nl_engine.lock);
    return found;
}

int nl_listeners_relocate_fd(int fd)
{
    for (struct nl_listener *l = nl_engine.listeners; l; l = l->next) {
        struct nl_conn_end *e = l->tcp.fd == fd ? &l->tcp : l->queue.fd == fd ? &l->queue : NULL;
        if (e == NULL) {
            for (size_t i = 0; i < l->n_plain; i++)
                if (l->plain[i] == fd)
                    return nl_move_guarded(&l->plain[i]);
            continue;
        }
        int r = nl_engine_move_end(e);
        if (r == 0 && e == &l->tcp) {
            nl_sock_lock();
            l->sock->tcp_fd = e->fd;
            nl_sock_unlock();
        }
        return r;
    }
    return -1;
}

void nl_listeners_mark_shared(void)
{
    for (struct nl_listener *l = nl_engine.listeners; l; l = l->next)
        l->shared = true;
}

bool nl_listeners_shared(void)
{
    for (struct nl_listener *l = nl_engine.listeners; l; l = l->next)
        if (l->shared)
            return true;
    return false;
}

bool nl_listeners_held_elsewhere(void)
{
    for (struct nl_listener *l = nl_engine.listeners; l; l = l->next)
        if (!hung_up(l))
            return true;
    return false;
}

void nl_listeners_register_again(void)
{
    for (struct nl_listener *l = nl_engine.listeners; l; l = l->next) {
        l->tcp.registered = l->queue.registered = false;
        l->tcp.last_events = l->queue.last_events = 0;
        struct epoll_event ev = {.events = 0, .data.ptr = &l->tcp};
        if (nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_ADD, l->tcp.fd, &ev) == 0)
            l->tcp.registered = true;
        ev.data.ptr = &l->queue;
        if (nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_ADD, l->queue.fd, &ev) == 0)
            l->queue.registered = true;
        arm(l);
    }
}

void nl_listeners_close_all(void)
{
    while (nl_engine.listeners)
        listener_close(nl_engine.listeners, true);
}

/* A child of fork: the parent's engine goes on serving every listener
 * (the child's accept takes connections from the same queue). Drop the
 * child's copies, without touching the epoll set it shares with the
 * parent, so that the parent's close still ends the listener. */
static void forget_all(void)
{
    for (struct nl_listener *l = nl_engine.listeners, *next; l; l = next) {
        next = l->next;
        l->tcp.registered = l->queue.registered = false;
        for (size_t i = 0; i < l->n_plain; i++)
            close_guarded(&l->plain[i]);
        free(l->plain);
        nl_sock_lock();
        l->sock->tcp_fd = -1;
        nl_sock_unlock();
        close_guarded(&l->tcp.fd);
        close_guarded(&l->queue.fd);
        nl_sock_put(l->sock);
        free(l);
    }
    nl_engine.listeners = NULL;
    for (struct nl_conn *c = nl_engine.conns; c; c = c->next) {
        if (c->listener) {
            c->listener = NULL;
            nl_conn_end_unclaimed(c);
        }
    }
}

void nl_listeners_forget_handed_off(void)
{
    for (struct nl_listener *l = nl_engine.listeners; l; l = l->next) {
        nl_engine_unregister(&l->tcp);
        nl_engine_unregister(&l->queue);
    }
    forget_all();
    nl_engine.epoch++;
}

void nl_listeners_fork_child(void)
{
    forget_all();
}

/* A relay serves connections across exec; it has no program to hand new
 * ones to. */
void nl_listeners_forget_for_relay(void)
{
    forget_all();
}
