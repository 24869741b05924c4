/* accept()/accept4(): the server role.
 *
 * The listener is untouched: readiness and load-balancing stay the
 * kernel's. A connection accepted on a listener that a server rule wraps is
 * handed to the engine, which runs the server side of every layer under
 * handshake_timeout_ms; the program gets a socketpair end at once, with the
 * flags accept4 asked for and the TCP peer's address, and its accept loop
 * never waits for a handshake. A client that fails is dropped and logged:
 * the program sees ECONNRESET on that descriptor.
 *
 * errno contract: the kernel's accept errors; ENOMEM/EMFILE when the
 * wrapper itself cannot be built (the TCP connection is then closed, never
 * passed on in plaintext). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/real.h"
#include "common/util.h"
#include "engine/engine.h"
#include "hooks/export.h"
#include "hooks/hooks.h"
#include "hooks/pair.h"
#include "hooks/roads.h"

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
    if (!(flags & SOCK_CLOEXEC))
        fcntl(prog_end, F_SETFD, 0);
    if (flags & SOCK_NONBLOCK)
        fcntl(prog_end, F_SETFL, fcntl(prog_end, F_GETFL) | O_NONBLOCK);
    if (addr != NULL && addrlen != NULL) {
        socklen_t n = *addrlen < peer_len ? *addrlen : peer_len;
        memcpy(addr, &peer, n);
        *addrlen = peer_len;
    }
    return prog_end;
}

int nl_accept_road(int listener, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    if (nl_policy == NULL)
        return nl_real.accept4(listener, addr, addrlen, flags);
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
    if (d.action == NL_ACTION_DENY) {
        char a[80], b[80];
        nl_format_addr((struct sockaddr *)&local, a, sizeof(a));
        nl_format_addr((struct sockaddr *)&peer, b, sizeof(b));
        nl_warn("%s%s%s: server %s <- %s denied", d.rule ? "rule '" : "default action",
                d.rule ? d.rule->name : "", d.rule ? "'" : "", a, b);
        nl_real.close(conn);
        errno = ECONNABORTED; /* what accept reports for a connection gone before use */
        return -1;
    }
    if (d.action == NL_ACTION_PASSTHROUGH && nl_log_enabled(NL_LOG_DEBUG)) {
        char a[80];
        nl_format_addr((struct sockaddr *)&local, a, sizeof(a));
        nl_debug("%s%s%s: server %s passed through in plaintext", d.rule ? "rule '" : "default action",
                 d.rule ? d.rule->name : "", d.rule ? "'" : "", a);
    }
as_is:
    if (!(flags & SOCK_CLOEXEC))
        fcntl(conn, F_SETFD, 0);
    if (addr != NULL && addrlen != NULL) {
        socklen_t n = *addrlen < peer_len ? *addrlen : peer_len;
        memcpy(addr, &peer, n);
        *addrlen = peer_len;
    }
    return conn;
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
