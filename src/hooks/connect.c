/* connect(): the client role.
 *
 * For a TCP socket that a client rule wraps: the real connect runs on a
 * twin of the program's socket, at a high engine descriptor (twin.c: the
 * program's own socket is never connected, so no other reference to it can
 * reach the wire; TCP errors stay the kernel's own), and an AF_UNIX
 * socketpair end takes the place of the program's socket under its
 * descriptor number. A blocking connect returns
 * once every layer is up; a non-blocking one returns EINPROGRESS and its
 * descriptor turns writable only once every layer is up, as a TCP socket
 * turns writable once connected.
 *
 * errno contract: kernel errors for TCP; EACCES when a certificate is
 * refused, EPROTO for other TLS failures, ETIMEDOUT past
 * handshake_timeout_ms, EPERM for a deny rule. Never ECONNREFUSED for a
 * TLS problem. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/locking.h"
#include "common/log.h"
#include "common/real.h"
#include "common/util.h"
#include "engine/engine.h"
#include "hooks/export.h"
#include "hooks/hooks.h"
#include "hooks/pair.h"
#include "hooks/roads.h"
#include "hooks/twin.h"

/* Bytes queued into the program's end of a non-blocking connect so that it
 * polls unwritable until the layers are up (the engine drops them). */
#define FILLER_BYTES 2048

/* Every decision, at debug level (`nestls run -v`): which rule or the
 * default action, the outcome, and the host name it was matched and is
 * verified with. A denial is a warning (tests/CONTRACT.md's shape). */
static void log_decision(const char *verb, const struct nl_decision *d, const struct sockaddr *addr)
{
    enum nl_log_level level = d->action == NL_ACTION_DENY ? NL_LOG_WARN : NL_LOG_DEBUG;
    if (!nl_log_enabled(level))
        return;
    char a[80], rule[300], name[320] = "";
    nl_format_addr(addr, a, sizeof(a));
    if (d->rule)
        snprintf(rule, sizeof(rule), "rule '%s'", d->rule->name);
    else
        snprintf(rule, sizeof(rule), "default action");
    if (level == NL_LOG_DEBUG)
        snprintf(name, sizeof(name), d->peer_name ? " (host name '%s')" : " (no host name%s)",
                 d->peer_name ? d->peer_name : ": the address is verified");
    nl_log(level, "%s: client -> %s %s%s", rule, a, verb, name);
}

/* A blocking connect interrupted by a signal goes on in the kernel; we must
 * not hand the program a half-wrapped socket, so wait for it here. */
static int finish_interrupted_connect(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    while (poll(&p, 1, -1) < 0)
        if (errno != EINTR)
            return -1;
    int err = 0;
    socklen_t len = sizeof(err);
    if (nl_real.getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return -1;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

/* Make the program's end of a non-blocking connect unwritable until the
 * engine says the layers are up. */
static void hold_program_end(int prog_end, struct nl_conn_spec *spec)
{
    int sndbuf = 0, smallest = 1;
    socklen_t len = sizeof(sndbuf);
    if (nl_real.getsockopt(prog_end, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) != 0)
        return;
    spec->prog_hold = nl_guard_dup_high(prog_end);
    if (spec->prog_hold < 0)
        return;
    nl_real.setsockopt(prog_end, SOL_SOCKET, SO_SNDBUF, &smallest, sizeof(smallest));
    spec->prog_sndbuf = sndbuf / 2; /* the kernel doubles what is set */
    static const unsigned char zeros[FILLER_BYTES];
    ssize_t n = send(prog_end, zeros, sizeof(zeros), MSG_DONTWAIT | MSG_NOSIGNAL);
    spec->filler = n > 0 ? (size_t)n : 0;
}

/* connect() on a socket that is listening, connected or connecting gets
 * the kernel's answer (EINVAL, EISCONN, EALREADY): only a fresh socket
 * gets a twin (twin.c). */
static bool kernel_must_answer(int fd)
{
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (nl_real.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening)
        return true;
    struct tcp_info info;
    len = sizeof(info);
    if (nl_real.getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0)
        return info.tcpi_state != TCP_CLOSE;
    struct sockaddr_storage peer;
    len = sizeof(peer);
    return nl_real.getpeername(fd, (struct sockaddr *)&peer, &len) == 0;
}

/* The TCP connection itself, on the engine's twin socket: 0 when up (or
 * deferred by TCP_FASTOPEN_CONNECT), 1 when a non-blocking connect is in
 * progress, -1 with the kernel's errno. */
static int connect_twin(int tcp, bool nonblocking, const struct sockaddr *addr, socklen_t len)
{
    if (nl_real.connect(tcp, addr, len) == 0)
        return 0;
    if (errno == EINPROGRESS && nonblocking)
        return 1;
    if (errno == EINTR && !nonblocking)
        return finish_interrupted_connect(tcp);
    return -1;
}

static int wrap_connect(int fd, int family, const struct sockaddr *addr, socklen_t len,
                        const struct nl_rule *rule, const char *hostname)
{
    if (kernel_must_answer(fd))
        return nl_real.connect(fd, addr, len);
    int status_flags = fcntl(fd, F_GETFL);
    int fd_flags = fcntl(fd, F_GETFD);
    bool nonblocking = status_flags >= 0 && (status_flags & O_NONBLOCK);

    int tcp = nl_twin_socket(fd, family, nonblocking);
    if (tcp < 0)
        return -1;
    int connected = connect_twin(tcp, nonblocking, addr, len);
    bool in_progress = connected == 1;
    int prog_end, engine_end;
    if (connected < 0 || nl_pair_open(&prog_end, &engine_end) != 0) {
        int saved = errno;
        nl_pair_abort(tcp, -1);
        errno = saved;
        return -1; /* the program's socket is untouched and unconnected */
    }
    struct nl_sock *sock = nl_pair_sock(tcp, family, addr, len);
    struct nl_waiter waiter;
    struct nl_conn_spec spec = {
        .role = NL_ROLE_CLIENT,
        .rule = rule,
        .tcp_fd = tcp,
        .app_fd = engine_end,
        .prog_fd = fd,
        .prog_hold = -1,
        .sock = sock,
        .tcp_connecting = in_progress,
        .peer_name = hostname,
        .local = sock ? (const struct sockaddr *)&sock->local : NULL,
        .peer = addr,
        .waiter = nonblocking ? NULL : &waiter,
    };
    if (nonblocking)
        hold_program_end(prog_end, &spec);

    /* Swap the file behind the program's descriptor, keeping its flags and
     * its epoll registrations. */
    struct nl_epoll_saved *saved = nl_epoll_detach(fd);
    if (sock == NULL ||
        nl_real.dup3(prog_end, fd, (fd_flags >= 0 && (fd_flags & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0) {
        int e = sock ? errno : ENOMEM;
        nl_epoll_reattach(fd, saved);
        nl_pair_abort(tcp, engine_end);
        if (spec.prog_hold >= 0)
            nl_pair_abort(spec.prog_hold, -1);
        nl_real.close(prog_end);
        if (sock)
            nl_sock_put(sock);
        errno = e;
        return -1;
    }
    nl_real.close(prog_end);
    if (nonblocking)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    nl_wrapped_add(fd, sock);
    nl_epoll_reattach(fd, saved);

    if (!nonblocking)
        nl_waiter_init(&waiter);
    if (nl_engine_submit(&spec) != 0) {
        int e = errno;
        nl_pair_abort(tcp, engine_end);
        if (spec.prog_hold >= 0)
            nl_pair_abort(spec.prog_hold, -1);
        nl_wrapped_remove(fd);
        nl_sock_put(sock);
        if (!nonblocking)
            nl_waiter_destroy(&waiter);
        errno = e;
        return -1;
    }
    if (nonblocking) {
        errno = EINPROGRESS;
        return -1;
    }
    int err = nl_waiter_wait(&waiter, 0);
    nl_waiter_destroy(&waiter);
    if (err != 0) {
        /* connect said it: SO_ERROR has nothing more to report, and the
         * socket may connect again (see repeated_connect). */
        nl_sock_lock();
        sock->so_error = 0;
        nl_sock_unlock();
        errno = err;
        return -1;
    }
    return 0;
}

/* connect() again on a wrapped descriptor: answer as TCP would while a
 * non-blocking connect completes (EALREADY, then EISCONN or the failure,
 * reported once as SO_ERROR would be). Returns 1 when the connection
 * failed, has ended, and its failure was reported: Linux then lets the
 * socket connect again (asyncio's happy eyeballs and retry loops do). */
static int repeated_connect(struct nl_sock *s)
{
    nl_sock_lock();
    int failure = s->failure, up = s->established, pending = s->so_error;
    bool ended = s->engine_conn == NULL && s->tcp_fd < 0;
    if (pending)
        s->so_error = 0;
    nl_sock_unlock();
    if (failure && !pending && ended && !s->listener) {
        nl_sock_put(s);
        return 1;
    }
    nl_sock_put(s);
    errno = pending ? pending : failure ? failure : up ? EISCONN : EALREADY;
    return -1;
}

/* A wrapped descriptor whose connection failed connects again: a fresh
 * socket of the same family and protocol takes its number (flags kept;
 * options set on the old one are not), and the connect takes the road a
 * fresh socket takes. */
static int renew_socket(int fd)
{
    struct nl_sock *s = nl_wrapped_get(fd);
    if (s == NULL)
        return -1;
    int family = s->family, protocol = s->protocol;
    nl_sock_put(s);
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    int fresh = socket(family, SOCK_STREAM | SOCK_CLOEXEC | (fl >= 0 && (fl & O_NONBLOCK) ? SOCK_NONBLOCK : 0),
                       protocol);
    if (fresh < 0)
        return -1;
    struct nl_epoll_saved *saved = nl_epoll_detach(fd);
    nl_wrapped_remove(fd);
    int r = nl_real.dup3(fresh, fd, fdfl >= 0 && (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0);
    int e = errno;
    nl_real.close(fresh);
    nl_epoll_reattach(fd, saved);
    errno = e;
    return r < 0 ? -1 : 0;
}

/* A TCP (or MPTCP) socket connecting to an IPv4/IPv6 address: the
 * connections the policy decides. */
static bool tcp_to_inet(int fd, const struct sockaddr *addr, socklen_t len, int *family)
{
    return addr != NULL && len >= sizeof(sa_family_t) &&
           (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) &&
           nl_is_tcp_socket(fd, family);
}

/* A vfork/CLONE_VM child cannot start a connection of its own (the engine
 * is its parent's): where the policy would wrap, it is refused rather
 * than sent in plaintext. */
static int vfork_child_connect(int fd, const struct sockaddr *addr, socklen_t len, bool *plaintext)
{
    int family;
    if (tcp_to_inet(fd, addr, len, &family)) {
        /* Decided as the parent would: with the name resolved for it. */
        char host[NL_HOST_MAX];
        if (nl_decide_client(addr, host, sizeof(host)).action != NL_ACTION_PASSTHROUGH) {
            errno = EPERM;
            return -1;
        }
    }
    *plaintext = true;
    return 0;
}

/* A signal handler that interrupted nestls's own locked section on this
 * thread: deciding would wait for a lock the interrupted code holds. A
 * TCP connection is refused (EAGAIN: try again outside the handler);
 * anything else goes to the kernel. */
static int connect_from_handler(int fd, const struct sockaddr *addr, socklen_t len, bool *plaintext)
{
    int family;
    if (tcp_to_inet(fd, addr, len, &family)) {
        errno = EAGAIN;
        return -1;
    }
    *plaintext = true;
    return 0;
}

/* Where a connect to the unspecified address goes: Linux sends it to the
 * socket's bound address if it has one, else to loopback. Decided and
 * verified as that address, so no rule is dodged through 0.0.0.0 or ::. */
static const struct sockaddr *where_it_goes(int fd, const struct sockaddr *addr, socklen_t *len,
                                            struct sockaddr_storage *routed)
{
    bool v4 = addr->sa_family == AF_INET && *len >= sizeof(struct sockaddr_in);
    bool v6 = addr->sa_family == AF_INET6 && *len >= sizeof(struct sockaddr_in6);
    if ((!v4 && !v6) || !nl_addr_is_unspecified(addr))
        return addr;
    memcpy(routed, addr, v4 ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);
    bool bound = nl_real.getsockname(fd, (struct sockaddr *)&local, &local_len) == 0 &&
                 local.ss_family == addr->sa_family;
    if (v4) {
        struct sockaddr_in *r = (struct sockaddr_in *)routed;
        in_addr_t src = bound ? ((struct sockaddr_in *)&local)->sin_addr.s_addr : htonl(INADDR_ANY);
        r->sin_addr.s_addr = src != htonl(INADDR_ANY) ? src : htonl(INADDR_LOOPBACK);
    } else {
        struct sockaddr_in6 *r = (struct sockaddr_in6 *)routed;
        const struct in6_addr *src = &((struct sockaddr_in6 *)&local)->sin6_addr;
        if (bound && !IN6_IS_ADDR_UNSPECIFIED(src))
            r->sin6_addr = *src;
        else if (IN6_IS_ADDR_V4MAPPED(&r->sin6_addr))
            r->sin6_addr.s6_addr32[3] = htonl(INADDR_LOOPBACK);
        else
            r->sin6_addr = in6addr_loopback;
    }
    *len = v4 ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    return (const struct sockaddr *)routed;
}

int nl_connect_road(int fd, const struct sockaddr *addr, socklen_t len, bool *plaintext)
{
    int family;
    *plaintext = false;
    if (nl_lock_held_here())
        return connect_from_handler(fd, addr, len, plaintext);
    if (nl_in_vfork_child())
        return vfork_child_connect(fd, addr, len, plaintext);
    struct nl_sock *wrapped = nl_wrapped_get(fd);
    if (wrapped != NULL) {
        int r = repeated_connect(wrapped);
        if (r != 1)
            return r;
        if (renew_socket(fd) != 0)
            return -1;
    }
    if (nl_policy == NULL || !tcp_to_inet(fd, addr, len, &family)) {
        *plaintext = true;
        return 0;
    }
    struct sockaddr_storage routed;
    addr = where_it_goes(fd, addr, &len, &routed);

    char host[NL_HOST_MAX];
    struct nl_decision d = nl_decide_client(addr, host, sizeof(host));
    const char *hostname = d.peer_name;
    switch (d.action) {
    case NL_ACTION_PASSTHROUGH:
        log_decision("passed through in plaintext", &d, addr);
        *plaintext = true;
        return 0;
    case NL_ACTION_DENY:
        log_decision("denied", &d, addr);
        errno = EPERM;
        return -1;
    case NL_ACTION_WRAP:
        log_decision("wrapped", &d, addr);
        break;
    }
    return wrap_connect(fd, family, addr, len, d.rule, hostname);
}

NL_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (!nl_started())
        return nl_real.connect(fd, addr, len);
    bool plaintext;
    int r = nl_connect_road(fd, addr, len, &plaintext);
    return plaintext ? nl_real.connect(fd, addr, len) : r;
}

/* glibc exports connect under a second name too: the same road. */
NL_EXPORT int __connect(int fd, const struct sockaddr *addr, socklen_t len)
    __attribute__((alias("connect")));
