/* listen(): take over a listener whose connections a server rule may wrap.
 *
 * The handshakes of the server role must not wait for the program's
 * accept (a program that connects to itself and accepts later, a slow
 * acceptor, a client that fails its handshake): so the engine accepts
 * instead (engine/listener.c) and the program's descriptor number becomes
 * the receiving end of the hand-over queue (common/handover.h). What the
 * program sees of its listening descriptor stays true:
 *  - readable (poll, epoll, select) exactly when accept() has a connection
 *    whose layers are up; accept() blocks, or says EAGAIN when the
 *    descriptor is non-blocking, as before;
 *  - shared by fork (prefork servers): every process takes connections
 *    from the one queue; the engine of the process that called listen()
 *    accepts and handshakes for all of them;
 *  - getsockname, SO_DOMAIN/SO_TYPE/SO_PROTOCOL/SO_ACCEPTCONN, TCP options:
 *    the TCP listener's (hooks/sockopt.c);
 *  - close: when the last copy is closed the TCP listener closes at once
 *    (the port is free again when close returns).
 * A listener that no rule can restrict is left alone. If the take-over
 * fails, the listener stays as it was and accept() wraps each connection
 * as it returns it (hooks/accept.c): later, never in plaintext.
 *
 * errno contract: the kernel's listen errors. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/real.h"
#include "common/util.h"
#include "engine/engine.h"
#include "engine/listener.h"
#include "hooks/export.h"
#include "hooks/hooks.h"
#include "hooks/roads.h"

static bool may_restrict(const struct sockaddr *local)
{
    struct nl_conn_query q = {
        .role = NL_ROLE_SERVER,
        .addr = local,
        .program = nl_program_name(),
    };
    return nl_policy_listener_restricted(nl_policy, &q);
}

/* What the program set on its listening socket that belongs to the
 * descriptor it keeps: non-blocking, close-on-exec, accept timeout. */
static void carry_descriptor_state(int tcp, int queue_end)
{
    int fl = fcntl(tcp, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK))
        nl_set_nonblock(queue_end, true);
    struct timeval tv;
    socklen_t len = sizeof(tv);
    if (nl_real.getsockopt(tcp, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0 &&
        (tv.tv_sec != 0 || tv.tv_usec != 0))
        nl_real.setsockopt(queue_end, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static int take_over(int fd, int family)
{
    struct nl_sock *s = nl_sock_new(family);
    if (s == NULL)
        return -1;
    nl_sock_facts_of(fd, s);
    s->peer_len = 0;
    s->listener = true;
    s->established = true; /* nothing to wait for: close is an ordinary close */
    int q[2] = {-1, -1};
    int tcp = nl_guard_dup_high(fd);
    if (tcp < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, q) != 0)
        goto fail;
    int engine_end = nl_guard_dup_high(q[1]);
    nl_real.close(q[1]);
    q[1] = -1;
    if (engine_end < 0)
        goto fail;
    carry_descriptor_state(fd, q[0]);
    int cloexec = fcntl(fd, F_GETFD);
    /* The engine serves it before the number changes: a connection that
     * arrives meanwhile waits in the TCP backlog either way. */
    if (nl_engine_listen(s, tcp, engine_end) != 0) {
        tcp = -1; /* the engine closed both */
        goto fail;
    }
    tcp = -1;
    struct nl_epoll_saved *saved = nl_epoll_detach(fd);
    int r = nl_real.dup3(q[0], fd, cloexec > 0 && (cloexec & FD_CLOEXEC) ? O_CLOEXEC : 0);
    int e = errno;
    nl_real.close(q[0]);
    nl_epoll_reattach(fd, saved);
    if (r < 0) { /* the number still is the TCP listener: accept() wraps late */
        nl_engine_listener_closed(s);
        nl_sock_put(s);
        errno = e;
        return -1;
    }
    nl_wrapped_add(fd, s);
    nl_sock_put(s);
    return 0;
fail:
    e = errno;
    if (tcp >= 0) {
        nl_guard_remove(tcp);
        nl_real.close(tcp);
    }
    if (q[0] >= 0)
        nl_real.close(q[0]);
    if (q[1] >= 0)
        nl_real.close(q[1]);
    nl_sock_put(s);
    errno = e;
    return -1;
}

int nl_listen_road(int fd, int backlog)
{
    struct nl_sock *s = nl_wrapped_maybe(fd) ? nl_wrapped_get(fd) : NULL;
    if (s != NULL) {
        /* listen() again on a listener taken over: a new backlog for the
         * TCP listener; on a wrapped connection: what TCP says (EINVAL). */
        int r;
        nl_sock_lock();
        if (s->listener && s->tcp_fd >= 0) {
            r = nl_real.listen(s->tcp_fd, backlog);
        } else {
            errno = s->listener ? EOPNOTSUPP : EINVAL;
            r = -1;
        }
        nl_sock_unlock();
        nl_sock_put(s);
        return r;
    }
    if (nl_real.listen(fd, backlog) != 0)
        return -1;
    int family;
    if (nl_policy == NULL || nl_lock_held_here() || nl_in_vfork_child() ||
        !nl_is_tcp_socket(fd, &family))
        return 0;
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    if (nl_real.getsockname(fd, (struct sockaddr *)&local, &len) != 0 ||
        !may_restrict((struct sockaddr *)&local))
        return 0;
    if (take_over(fd, family) != 0) {
        char where[80];
        nl_format_addr((struct sockaddr *)&local, where, sizeof(where));
        nl_warn("listener %s: cannot serve handshakes before accept (%s); each connection is "
                "wrapped when accept() returns it",
                where, strerror(errno));
    }
    return 0;
}

NL_EXPORT int listen(int fd, int backlog)
{
    if (!nl_started())
        return nl_real.listen(fd, backlog);
    return nl_listen_road(fd, backlog);
}
