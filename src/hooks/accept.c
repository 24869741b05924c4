/* accept()/accept4(): the server role.
 *
 * A listener taken over at listen() (hooks/listen.c) is the receiving end
 * of the hand-over queue: accept takes the next connection whose layers
 * are up (or a passthrough TCP connection) from it, with the flags accept4
 * asked for and the TCP peer's address. A client that failed its
 * handshake never gets here.
 *
 * Any other TCP listener (taken over by nobody: listen() ran before
 * nestls started, or the take-over failed) is the late road: a connection
 * a server rule wraps is handed to the engine as accept returns it, and
 * the program gets a socketpair end at once whose layers come up after;
 * a client that fails then shows as ECONNRESET on that descriptor.
 *
 * errno contract: the kernel's accept errors; EINVAL once the listener is
 * shut down; EMFILE when the descriptor limit drops a handed-over
 * connection; ENOMEM/EMFILE when the wrapper itself cannot be built (the
 * TCP connection is then closed, never passed on in plaintext). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/handover.h"
#include "common/log.h"
#include "common/real.h"
#include "common/util.h"
#include "engine/engine.h"
#include "engine/listener.h"
#include "hooks/export.h"
#include "hooks/hooks.h"
#include "hooks/pair.h"
#include "hooks/roads.h"

/* What accept hands the program: the descriptor with the flags accept4
 * asked for (close-on-exec always; O_NONBLOCK when set_nonblock: the
 * kernel's accept4 already did it for the TCP socket itself), and the TCP
 * peer's address. Returns fd. */
static int give_to_program(int fd, int flags, bool set_nonblock, const struct sockaddr_storage *peer,
                           socklen_t peer_len, struct sockaddr *addr, socklen_t *addrlen)
{
    if (!(flags & SOCK_CLOEXEC))
        fcntl(fd, F_SETFD, 0);
    if (set_nonblock)
        nl_set_nonblock(fd, flags & SOCK_NONBLOCK);
    if (addr != NULL && addrlen != NULL) {
        socklen_t n = *addrlen < peer_len ? *addrlen : peer_len;
        memcpy(addr, peer, n);
        *addrlen = peer_len;
    }
    return fd;
}

static int wrap_accepted(int conn, int family, const struct nl_rule *rule, struct sockaddr *addr,
                         socklen_t *addrlen, int flags)
{
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof(peer);
    if (nl_real.getpeername(conn, (struct sockaddr *)&peer, &peer_len) != 0)
        peer_len = 0;
    int tcp = nl_guard_dup_high(conn);
    nl_real.close(conn);
    if (tcp < 0)
        return -1;
    int prog_end, engine_end;
    if (nl_pair_open(&prog_end, &engine_end) != 0) {
        int e = errno;
        nl_pair_abort(tcp, -1);
        errno = e;
        return -1;
    }
    struct nl_sock *sock = nl_pair_sock(tcp, family, (struct sockaddr *)&peer, peer_len);
    if (sock == NULL || nl_wrapped_add(prog_end, sock) != 0) {
        nl_pair_abort(tcp, engine_end);
        nl_real.close(prog_end);
        if (sock)
            nl_sock_put(sock);
        errno = ENOMEM;
        return -1;
    }
    struct nl_conn_spec spec = {
        .role = NL_ROLE_SERVER,
        .rule = rule,
        .tcp_fd = tcp,
        .app_fd = engine_end,
        .prog_fd = prog_end,
        .prog_hold = -1,
        .sock = sock,
        .local = (struct sockaddr *)&sock->local,
        .peer = (struct sockaddr *)&peer,
    };
    if (nl_engine_submit(&spec) != 0) {
        int e = errno;
        nl_wrapped_remove(prog_end);
        nl_pair_abort(tcp, engine_end);
        nl_real.close(prog_end);
        nl_sock_put(sock);
        errno = e;
        return -1;
    }
    /* socketpair gave us close-on-exec; keep only what the caller asked. */
    return give_to_program(prog_end, flags, true, &peer, peer_len, addr, addrlen);
}

/* One message from the queue: the header, the connection's descriptor
 * and, for a wrapped one, a copy of its TCP socket (*tcp, else -1); both
 * close-on-exec. Returns the descriptor, or -1 with errno: EINVAL when the
 * queue has ended (the listener was shut down, or the engine behind it is
 * gone). */
static int receive(int queue, struct nl_handover *h, int *tcp)
{
    for (;;) {
        /* A descriptor passed to a process at its limit is lost (the
         * kernel closes it: MSG_CTRUNC). accept at the limit says EMFILE
         * and leaves the connection queued: so make sure of two free
         * numbers first. */
        int spare[2];
        spare[0] = nl_real.fcntl(queue, F_DUPFD_CLOEXEC, 0);
        spare[1] = spare[0] < 0 ? -1 : nl_real.fcntl(queue, F_DUPFD_CLOEXEC, 0);
        int e = errno;
        if (spare[0] >= 0)
            nl_real.close(spare[0]);
        if (spare[1] >= 0)
            nl_real.close(spare[1]);
        if (spare[1] < 0) {
            errno = e;
            return -1;
        }
        int fds[2] = {-1, -1};
        struct iovec iov = {.iov_base = h, .iov_len = sizeof(*h)};
        union {
            char buf[CMSG_SPACE(sizeof(fds))];
            struct cmsghdr align;
        } ctl;
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                             .msg_controllen = sizeof(ctl.buf)};
        ssize_t n = recvmsg(queue, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0)
            return -1; /* EAGAIN, EINTR, a timeout: as accept says them */
        if (n == 0) {
            errno = EINVAL;
            return -1;
        }
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len >= CMSG_LEN(sizeof(int)) && cm->cmsg_len <= CMSG_LEN(sizeof(fds)))
            memcpy(fds, CMSG_DATA(cm), cm->cmsg_len - CMSG_LEN(0));
        if (fds[0] >= 0 && (size_t)n == sizeof(*h) && h->magic == NL_HANDOVER_MAGIC &&
            h->local_len <= sizeof(h->local) && h->peer_len <= sizeof(h->peer)) {
            *tcp = fds[1];
            return fds[0];
        }
        for (int k = 0; k < 2; k++)
            if (fds[k] >= 0)
                nl_real.close(fds[k]);
        if (msg.msg_flags & MSG_CTRUNC) {
            errno = EMFILE; /* the kernel could not give us the descriptors */
            return -1;
        }
    }
}

/* The facts of a handed-over connection: the engine's own when it is
 * this process's (direct writes, half-close and TCP options then work as
 * for a client connection), else a copy from the message with its own
 * copy of the TCP socket for options (a prefork child: the parent's
 * engine serves it). Takes tcp (closed or kept). */
static struct nl_sock *sock_for(int fd, const struct nl_handover *h, int tcp)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        goto fail;
    if (h->engine_pid == getpid()) {
        struct nl_sock *own = nl_engine_handed_sock(st.st_dev, st.st_ino, fd);
        if (own != NULL) {
            if (tcp >= 0)
                nl_real.close(tcp);
            return own;
        }
    }
    struct nl_sock *s = nl_sock_new(h->family);
    if (s == NULL)
        goto fail;
    s->protocol = h->protocol;
    s->local = h->local;
    s->local_len = h->local_len;
    s->peer = h->peer;
    s->peer_len = h->peer_len;
    s->established = true;
    if (tcp >= 0) {
        s->tcp_fd = nl_guard_dup_high(tcp); /* out of the program's way */
        s->owns_tcp_fd = s->tcp_fd >= 0;
        nl_real.close(tcp);
    }
    return s;
fail:
    if (tcp >= 0)
        nl_real.close(tcp);
    return NULL;
}

static int accept_handed_over(int queue, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    for (;;) {
        struct nl_handover h;
        int tcp = -1;
        int fd = receive(queue, &h, &tcp);
        if (fd < 0)
            return -1;
        if (h.kind == NL_HANDOVER_WRAPPED) {
            struct nl_sock *s = sock_for(fd, &h, tcp);
            if (s == NULL || nl_wrapped_add(fd, s) != 0) {
                if (s)
                    nl_sock_put(s);
                nl_real.close(fd); /* never as a plain socket */
                errno = ENOMEM;
                return -1;
            }
            nl_sock_put(s);
        } else {
            if (tcp >= 0)
                nl_real.close(tcp);
            if (h.kind != NL_HANDOVER_PLAIN) {
                nl_real.close(fd);
                continue;
            }
        }
        return give_to_program(fd, flags, true, &h.peer, h.peer_len, addr, addrlen);
    }
}

int nl_accept_road(int listener, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    if (nl_policy == NULL)
        return nl_real.accept4(listener, addr, addrlen, flags);
    if (nl_wrapped_maybe(listener) && !nl_lock_held_here() && !nl_in_vfork_child()) {
        struct nl_sock *ls = nl_wrapped_get(listener);
        bool taken_over = ls != NULL && ls->listener;
        if (ls)
            nl_sock_put(ls);
        if (taken_over)
            return accept_handed_over(listener, addr, addrlen, flags);
    }
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof(peer);
    int conn = nl_real.accept4(listener, (struct sockaddr *)&peer, &peer_len, flags | SOCK_CLOEXEC);
    if (conn < 0)
        return -1;
    int family;
    if (!nl_is_tcp_socket(conn, &family))
        goto as_is;
    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);
    if (nl_real.getsockname(conn, (struct sockaddr *)&local, &local_len) != 0)
        goto as_is;
    struct nl_decision d = nl_decide(NL_ROLE_SERVER, (struct sockaddr *)&local, NULL);
    if (d.action == NL_ACTION_WRAP)
        return wrap_accepted(conn, family, d.rule, addr, addrlen, flags);
    if (d.action == NL_ACTION_DENY || nl_log_enabled(NL_LOG_DEBUG)) {
        char a[80];
        nl_format_addr((struct sockaddr *)&local, a, sizeof(a));
        nl_log_server_unwrapped(d.rule, d.action == NL_ACTION_DENY, a, (struct sockaddr *)&peer);
    }
    if (d.action == NL_ACTION_DENY) {
        nl_real.close(conn);
        errno = ECONNABORTED; /* what accept reports for a connection gone before use */
        return -1;
    }
as_is:
    return give_to_program(conn, flags, false, &peer, peer_len, addr, addrlen);
}

NL_EXPORT int accept4(int listener, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    if (!nl_started())
        return nl_real.accept4(listener, addr, addrlen, flags);
    return nl_accept_road(listener, addr, addrlen, flags);
}

NL_EXPORT int accept(int listener, struct sockaddr *addr, socklen_t *addrlen)
{
    if (!nl_started())
        return nl_real.accept(listener, addr, addrlen);
    return nl_accept_road(listener, addr, addrlen, 0);
}
