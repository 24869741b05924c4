#include "hooks/pair.h"

#include <string.h>
#include <unistd.h>

#include "common/real.h"

int nl_pair_open(int *prog_end, int *engine_end)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    int high = nl_guard_dup_high(sv[1]);
    nl_real.close(sv[1]);
    if (high < 0) {
        nl_real.close(sv[0]);
        return -1;
    }
    *prog_end = sv[0];
    *engine_end = high;
    return 0;
}

struct nl_sock *nl_pair_sock(int tcp_fd, int family, const struct sockaddr *peer, socklen_t peer_len)
{
    struct nl_sock *s = nl_sock_new(family);
    if (s == NULL)
        return NULL;
    s->local_len = sizeof(s->local);
    if (nl_real.getsockname(tcp_fd, (struct sockaddr *)&s->local, &s->local_len) != 0)
        s->local_len = 0;
    if (peer_len > sizeof(s->peer))
        peer_len = sizeof(s->peer);
    memcpy(&s->peer, peer, peer_len);
    s->peer_len = peer_len;
    socklen_t len = sizeof(s->protocol);
    if (nl_real.getsockopt(tcp_fd, SOL_SOCKET, SO_PROTOCOL, &s->protocol, &len) != 0)
        s->protocol = IPPROTO_TCP;
    s->tcp_fd = tcp_fd;
    return s;
}

void nl_pair_abort(int tcp_fd, int engine_end)
{
    if (tcp_fd >= 0) {
        nl_guard_remove(tcp_fd);
        nl_real.close(tcp_fd);
    }
    if (engine_end >= 0) {
        nl_guard_remove(engine_end);
        nl_real.close(engine_end);
    }
}
