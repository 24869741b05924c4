/* A wrapped connect never connects the program's own socket.
 *
 * Another reference to that socket may exist: a dup() made before connect,
 * a child forked before connect, a descriptor passed over AF_UNIX. Had the
 * program's socket been connected (and then moved behind the engine), each
 * of those references would write straight into the TCP connection, in
 * clear, and break the TLS stream too. So the engine connects a twin: a new
 * socket of the same family and protocol, with the options the program set
 * and bound where the program bound its socket. The program's socket stays
 * unconnected; the program's descriptor number then moves onto the
 * socketpair (connect.c) and any other reference left on the original gets
 * the kernel's EPIPE / ENOTCONN, never the wire.
 *
 * What cannot be carried over is refused, not dropped: an option that
 * cannot be set on the twin fails the connect with its errno and a log line.
 * Options the kernel cannot report back (TCP_MD5SIG, TCP-AO keys) are not
 * carried; the README says so. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "common/fdtable.h"
#include "common/log.h"
#include "common/real.h"
#include "common/util.h"
#include "hooks/twin.h"

#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif

struct carried_option {
    int level, name;
    const char *label;
    bool doubled; /* the kernel reports twice what was set (buffer sizes) */
};

/* Everything a program may set before connect that changes how or where
 * the connection is made. Compared with a fresh socket's value, so only
 * what the program changed is set. */
static const struct carried_option CARRIED[] = {
    {SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", false},
    {SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT", false},
    {SOL_SOCKET, SO_BINDTODEVICE, "SO_BINDTODEVICE", false},
    {SOL_SOCKET, SO_MARK, "SO_MARK", false},
    {SOL_SOCKET, SO_PRIORITY, "SO_PRIORITY", false},
    {SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", false},
    {SOL_SOCKET, SO_LINGER, "SO_LINGER", false},
    {SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", true},
    {SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF", true},
    {SOL_SOCKET, SO_SNDTIMEO, "SO_SNDTIMEO", false}, /* bounds a blocking connect */
    {SOL_SOCKET, SO_DONTROUTE, "SO_DONTROUTE", false},
    {SOL_SOCKET, SO_INCOMING_CPU, "SO_INCOMING_CPU", false},
    {IPPROTO_IP, IP_TOS, "IP_TOS", false},
    {IPPROTO_IP, IP_TTL, "IP_TTL", false},
    {IPPROTO_IP, IP_FREEBIND, "IP_FREEBIND", false},
    {IPPROTO_IP, IP_TRANSPARENT, "IP_TRANSPARENT", false},
    {IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, "IP_BIND_ADDRESS_NO_PORT", false},
    {IPPROTO_IP, IP_MTU_DISCOVER, "IP_MTU_DISCOVER", false},
    {IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY", false},
    {IPPROTO_IPV6, IPV6_TCLASS, "IPV6_TCLASS", false},
    {IPPROTO_IPV6, IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS", false},
    {IPPROTO_IPV6, IPV6_FREEBIND, "IPV6_FREEBIND", false},
    {IPPROTO_IPV6, IPV6_TRANSPARENT, "IPV6_TRANSPARENT", false},
    {IPPROTO_IPV6, IPV6_MTU_DISCOVER, "IPV6_MTU_DISCOVER", false},
    {IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY", false},
    {IPPROTO_TCP, TCP_MAXSEG, "TCP_MAXSEG", false},
    {IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", false},
    {IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL", false},
    {IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", false},
    {IPPROTO_TCP, TCP_SYNCNT, "TCP_SYNCNT", false},
    {IPPROTO_TCP, TCP_LINGER2, "TCP_LINGER2", false},
    {IPPROTO_TCP, TCP_WINDOW_CLAMP, "TCP_WINDOW_CLAMP", false},
    {IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT", false},
    {IPPROTO_TCP, TCP_NOTSENT_LOWAT, "TCP_NOTSENT_LOWAT", false},
    {IPPROTO_TCP, TCP_CONGESTION, "TCP_CONGESTION", false},
    {IPPROTO_TCP, TCP_FASTOPEN_CONNECT, "TCP_FASTOPEN_CONNECT", false},
};

#define OPTION_MAX 64 /* bytes: the largest value above (a device name) */

/* Copy one option from orig to twin if the program changed it. An option
 * orig cannot report (not its family, not this kernel) was never set. */
static int carry_option(int orig, int twin, const struct carried_option *o)
{
    unsigned char want[OPTION_MAX], have[OPTION_MAX];
    socklen_t want_len = sizeof(want), have_len = sizeof(have);
    memset(want, 0, sizeof(want));
    memset(have, 0, sizeof(have));
    if (nl_real.getsockopt(orig, o->level, o->name, want, &want_len) != 0)
        return 0;
    if (nl_real.getsockopt(twin, o->level, o->name, have, &have_len) == 0 && have_len == want_len &&
        memcmp(want, have, want_len) == 0)
        return 0;
    if (o->doubled && want_len == sizeof(int)) {
        int v;
        memcpy(&v, want, sizeof(v));
        v /= 2;
        memcpy(want, &v, sizeof(v));
    }
    if (o->level == SOL_SOCKET && o->name == SO_BINDTODEVICE && want_len == 0)
        return 0; /* no device: nothing was bound */
    if (nl_real.setsockopt(twin, o->level, o->name, want, want_len) == 0)
        return 0;
    int e = errno;
    nl_error("client connect: cannot carry %s over to the TLS connection's socket: %s", o->label,
             strerror(e));
    errno = e;
    return -1;
}

static bool is_bound(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        return in->sin_port != 0 || in->sin_addr.s_addr != htonl(INADDR_ANY);
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
        return in6->sin6_port != 0 || !IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
    }
    return false;
}

static int set_reuse(int fd, int on)
{
    return nl_real.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
}

/* Bind the twin where the program bound orig. orig keeps its port (it
 * is never connected, so no two connections share a 4-tuple): the port is
 * shared with SO_REUSEADDR on both for the moment of the bind, then each
 * socket gets back the program's own setting. */
static int bind_like(int orig, int twin)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    if (nl_real.getsockname(orig, (struct sockaddr *)&local, &len) != 0)
        return -1;
    if (!is_bound(&local))
        return 0;
    int reuse = 0;
    socklen_t rlen = sizeof(reuse);
    nl_real.getsockopt(orig, SOL_SOCKET, SO_REUSEADDR, &reuse, &rlen);
    bool has_port = ((const struct sockaddr_in *)&local)->sin_port != 0; /* same offset in v6 */
    if (has_port)
        (void)(set_reuse(orig, 1) | set_reuse(twin, 1));
    int r = bind(twin, (struct sockaddr *)&local, len);
    int e = errno;
    if (has_port)
        (void)(set_reuse(orig, reuse) | set_reuse(twin, reuse));
    if (r != 0) {
        char a[80];
        nl_format_addr((struct sockaddr *)&local, a, sizeof(a));
        nl_error("client connect: cannot bind the TLS connection's socket to %s, where the "
                 "program bound its own: %s",
                 a, strerror(e));
        errno = e;
    }
    return r;
}

int nl_twin_socket(int orig, int family, bool nonblocking)
{
    int protocol = IPPROTO_TCP;
    socklen_t plen = sizeof(protocol);
    if (nl_real.getsockopt(orig, SOL_SOCKET, SO_PROTOCOL, &protocol, &plen) != 0)
        return -1;
    int fresh = socket(family, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0),
                       protocol);
    if (fresh < 0)
        return -1;
    int twin = nl_guard_dup_high(fresh);
    int e = errno;
    nl_real.close(fresh);
    if (twin < 0) {
        errno = e;
        return -1;
    }
    for (size_t i = 0; i < sizeof(CARRIED) / sizeof(CARRIED[0]); i++)
        if (carry_option(orig, twin, &CARRIED[i]) != 0)
            goto fail;
    if (bind_like(orig, twin) != 0)
        goto fail;
    return twin;
fail:
    e = errno;
    nl_guard_remove(twin);
    nl_real.close(twin);
    errno = e;
    return -1;
}
