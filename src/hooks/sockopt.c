/* What the program asks of its socket stays true to TCP.
 *
 * A wrapped descriptor is an AF_UNIX socket underneath; these hooks answer
 * for it as the TCP socket would: its addresses, SO_DOMAIN/SO_PROTOCOL,
 * the connect result in SO_ERROR, and TCP/IP-level options (and the
 * socket-level ones that shape the connection: device, mark, priority,
 * keepalive, reuse) applied to the engine's real TCP socket. Other
 * socket-level options (timeouts, buffers, linger) stay on the program's
 * own end, where they take effect.
 *
 * errno contract: as the kernel's; ENOTCONN for a TCP option once the
 * connection is gone. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "common/fdtable.h"
#include "common/real.h"
#include "engine/engine.h"
#include "hooks/export.h"
#include "hooks/hooks.h"

static int copy_addr(const struct sockaddr_storage *src, socklen_t src_len, struct sockaddr *addr,
                     socklen_t *addrlen)
{
    if (addr == NULL || addrlen == NULL) {
        errno = EFAULT;
        return -1;
    }
    socklen_t n = *addrlen < src_len ? *addrlen : src_len;
    memcpy(addr, src, n);
    *addrlen = src_len;
    return 0;
}

static int nl_getpeername(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    struct nl_sock *s = nl_wrapped_get(fd);
    if (s == NULL)
        return nl_real.getpeername(fd, addr, addrlen);
    nl_sock_lock();
    /* A listening TCP socket has no peer, nor has one whose connection
     * failed or was reset (TCP_CLOSE). The TCP socket, while this process
     * has it, says so the moment the kernel took the reset, before the
     * engine has run. */
    struct sockaddr_storage ignored;
    socklen_t ignored_len = sizeof(ignored);
    bool noted = s->listener || s->failure != 0;
    bool reset = !noted && s->tcp_fd >= 0 &&
                 nl_real.getpeername(s->tcp_fd, (struct sockaddr *)&ignored, &ignored_len) != 0 &&
                 errno == ENOTCONN;
    nl_sock_unlock();
    /* Reset, maybe before the engine has delivered the bytes that came
     * ahead of the reset: those first, as TCP has them queued by then. */
    if (reset || (noted && !s->listener))
        nl_engine_await_reset(s);
    if (noted || reset) {
        nl_sock_put(s);
        errno = ENOTCONN;
        return -1;
    }
    int r = copy_addr(&s->peer, s->peer_len, addr, addrlen);
    nl_sock_put(s);
    return r;
}

static int nl_getsockname(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    struct nl_sock *s = nl_wrapped_get(fd);
    if (s == NULL)
        return nl_real.getsockname(fd, addr, addrlen);
    int r = copy_addr(&s->local, s->local_len, addr, addrlen);
    nl_sock_put(s);
    return r;
}

/* Socket-level options that shape the TCP connection itself (the ones
 * twin.c carries over at connect) are the TCP socket's too: set there,
 * and read back from there. */
static bool applies_to_tcp(int level, int name)
{
    if (level == SOL_SOCKET)
        return name == SO_KEEPALIVE || name == SO_BINDTODEVICE || name == SO_MARK ||
               name == SO_PRIORITY || name == SO_REUSEADDR || name == SO_REUSEPORT ||
               name == SO_DONTROUTE || name == SO_INCOMING_CPU;
    return level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6;
}

/* A listener taken over (hooks/listen.c): every option is the TCP
 * listener's (accepted connections inherit buffer sizes and the like from
 * it), except the accept timeouts, which belong to the descriptor the
 * program accepts from. */
static bool listener_option_on_tcp(const struct nl_sock *s, int level, int name)
{
    return s->listener &&
           !(level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO));
}

static int put_int(void *val, socklen_t *len, int v)
{
    if (val == NULL || len == NULL || *len < (socklen_t)sizeof(int)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(val, &v, sizeof(int));
    *len = sizeof(int);
    return 0;
}

/* Run a TCP-level option on the engine's socket, holding the lock that the
 * engine takes before closing it, so the number cannot be reused under us. */
static int on_tcp_socket(struct nl_sock *s, int set, int level, int name, void *val, socklen_t *len,
                         socklen_t set_len)
{
    nl_sock_lock();
    int r;
    if (s->tcp_fd < 0) {
        errno = ENOTCONN;
        r = -1;
    } else if (set) {
        r = nl_real.setsockopt(s->tcp_fd, level, name, val, set_len);
    } else {
        r = nl_real.getsockopt(s->tcp_fd, level, name, val, len);
    }
    nl_sock_unlock();
    return r;
}

static int nl_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    struct nl_sock *s = nl_wrapped_get(fd);
    if (s == NULL)
        return nl_real.getsockopt(fd, level, name, val, len);
    int r;
    if (level == SOL_SOCKET && name == SO_DOMAIN) {
        r = put_int(val, len, s->family);
    } else if (level == SOL_SOCKET && name == SO_PROTOCOL) {
        r = put_int(val, len, s->protocol);
    } else if (level == SOL_SOCKET && name == SO_TYPE) {
        r = put_int(val, len, SOCK_STREAM); /* a listener's queue is SOCK_SEQPACKET */
    } else if (level == SOL_SOCKET && name == SO_ACCEPTCONN) {
        r = put_int(val, len, s->listener);
    } else if (level == SOL_SOCKET && name == SO_ERROR) {
        nl_sock_lock();
        int err = s->so_error;
        s->so_error = 0;
        nl_sock_unlock();
        if (err != 0)
            r = put_int(val, len, err);
        else
            r = nl_real.getsockopt(fd, level, name, val, len);
    } else if (applies_to_tcp(level, name) || listener_option_on_tcp(s, level, name)) {
        r = on_tcp_socket(s, 0, level, name, val, len, 0);
    } else {
        r = nl_real.getsockopt(fd, level, name, val, len);
    }
    nl_sock_put(s);
    return r;
}

/* SO_LINGER stays on the program's end, where close() honours its
 * timeout; {1, 0} also tells the engine that the program's close means a
 * reset, as it would of a TCP socket (engine/conn.c). */
static void note_linger(struct nl_sock *s, const void *val)
{
    struct linger l;
    memcpy(&l, val, sizeof(l)); /* the kernel took it: val holds a whole one */
    nl_sock_lock();
    s->abort_on_close = l.l_onoff != 0 && l.l_linger == 0;
    nl_sock_unlock();
}

static bool sizes_buffer(int level, int name)
{
    return level == SOL_SOCKET && (name == SO_RCVBUF || name == SO_SNDBUF ||
                                   name == SO_RCVBUFFORCE || name == SO_SNDBUFFORCE);
}

/* A listener's buffer sizes are the TCP listener's (its connections
 * inherit them); kept too for the socket pairs of the connections it
 * hands over (engine/listener.c). */
static int size_listener_buffer(struct nl_sock *s, int name, const void *val, socklen_t len)
{
    int r = on_tcp_socket(s, 1, SOL_SOCKET, name, (void *)val, NULL, len);
    if (r != 0)
        return r;
    int bytes;
    memcpy(&bytes, val, sizeof(bytes)); /* the kernel took it: an int is there */
    nl_sock_lock();
    if (name == SO_RCVBUF || name == SO_RCVBUFFORCE)
        s->rcvbuf = bytes;
    else
        s->sndbuf = bytes;
    nl_sock_unlock();
    return 0;
}

/* A program that shrinks its buffers counts on its peer, or itself,
 * blocking after that many bytes (asyncio's sendfile tests do). Between
 * the program and the wire the bytes also wait in the engine's TCP socket
 * and, inbound, in the engine's end of the socket pair: each gets the
 * size the program asked for, besides the program's own end. */
static int size_buffer(struct nl_sock *s, int fd, int name, const void *val, socklen_t len)
{
    if (val == NULL || len < (socklen_t)sizeof(int))
        return nl_real.setsockopt(fd, SOL_SOCKET, name, val, len); /* the kernel's EINVAL/EFAULT */
    int bytes, base = (name == SO_RCVBUF || name == SO_RCVBUFFORCE) ? SO_RCVBUF : SO_SNDBUF;
    memcpy(&bytes, val, sizeof(bytes));
    /* (SO_SNDBUFFORCE goes to the kernel now: it alone knows whether
     * the program may.) */
    bool kept = name == SO_SNDBUF && nl_engine_size_buffer(s, SO_SNDBUF, bytes);
    if (!kept && nl_real.setsockopt(fd, SOL_SOCKET, name, val, len) != 0)
        return -1;
    int saved = errno;
    on_tcp_socket(s, 1, SOL_SOCKET, name, (void *)val, NULL, len); /* gone: nothing to size */
    if (base == SO_RCVBUF || name == SO_SNDBUFFORCE)
        nl_engine_size_buffer(s, base, bytes);
    errno = saved;
    return 0;
}

bool nl_rcvlowat_seen;

static int nl_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    /* (On any socket: it may be wrapped later; see hooks/read.c.) */
    if (level == SOL_SOCKET && name == SO_RCVLOWAT && val != NULL && len >= sizeof(int) &&
        *(const int *)val > 1)
        __atomic_store_n(&nl_rcvlowat_seen, true, __ATOMIC_RELAXED);
    if (!applies_to_tcp(level, name) && !nl_wrapped_maybe(fd))
        return nl_real.setsockopt(fd, level, name, val, len);
    struct nl_sock *s = nl_wrapped_get(fd);
    if (s != NULL && sizes_buffer(level, name)) {
        int r = s->listener ? size_listener_buffer(s, name, val, len)
                            : size_buffer(s, fd, name, val, len);
        nl_sock_put(s);
        return r;
    }
    if (s == NULL || (!applies_to_tcp(level, name) && !listener_option_on_tcp(s, level, name))) {
        int r = nl_real.setsockopt(fd, level, name, val, len);
        if (s && r == 0 && level == SOL_SOCKET && name == SO_LINGER)
            note_linger(s, val);
        if (s)
            nl_sock_put(s);
        return r;
    }
    int r = on_tcp_socket(s, 1, level, name, (void *)val, NULL, len);
    nl_sock_put(s);
    return r;
}

/* From a signal handler inside nestls's locked section (hooks.h), these
 * answer for the socketpair instead of waiting forever for the table's
 * lock. */
NL_EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    if (!nl_started() || nl_handler_inside_nestls(fd))
        return nl_real.getpeername(fd, addr, addrlen);
    return nl_getpeername(fd, addr, addrlen);
}

NL_EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    if (!nl_started() || nl_handler_inside_nestls(fd))
        return nl_real.getsockname(fd, addr, addrlen);
    return nl_getsockname(fd, addr, addrlen);
}

NL_EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    if (!nl_started() || nl_handler_inside_nestls(fd))
        return nl_real.getsockopt(fd, level, name, val, len);
    return nl_getsockopt(fd, level, name, val, len);
}

NL_EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    if (!nl_started() || nl_handler_inside_nestls(fd))
        return nl_real.setsockopt(fd, level, name, val, len);
    return nl_setsockopt(fd, level, name, val, len);
}
