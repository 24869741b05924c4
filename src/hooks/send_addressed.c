/* sendto(), sendmsg(), sendmmsg(): sends that may carry an address.
 *
 * On a TCP socket, an address with MSG_FASTOPEN is a connect: TCP Fast
 * Open sends the data in the SYN. Had these calls gone to the kernel as
 * they are, connect() would never have run and the data would leave in
 * clear. So such a send is decided by the policy as connect() is
 * (nl_connect_road): passed through as it is, refused (EPERM), or wrapped,
 * and then the data travels inside the layers once they are up. A
 * non-blocking wrapped one returns EINPROGRESS without sending, as the
 * kernel's TFO does when it has no cookie yet: the program sends again
 * once the socket turns writable. (TCP_FASTOPEN_CONNECT + connect() is
 * connect() and needs nothing here.)
 *
 * On a wrapped descriptor the address is ignored, as TCP ignores it on a
 * connected socket (the socketpair underneath would refuse it with
 * EISCONN), MSG_FASTOPEN gets TCP's EISCONN, and a send after
 * shutdown(SHUT_WR) gets EPIPE.
 *
 * A signal handler that interrupted nestls's own locked section sends
 * without nestls, except that a MSG_FASTOPEN connect is decided, and
 * refused with EAGAIN where it would need a lock (nl_connect_road).
 *
 * errno contract: the kernel's; connect()'s (connect.c) for the connect
 * that MSG_FASTOPEN makes. */
#include <errno.h>
#include <string.h>

#include "common/fdtable.h"
#include "common/locking.h"
#include "common/real.h"
#include "hooks/export.h"
#include "hooks/hooks.h"
#include "hooks/roads.h"

static bool addressed(const void *to, socklen_t tolen)
{
    return to != NULL && tolen >= sizeof(sa_family_t);
}

/* The program's socket is wrapped: 1 and *shut when it is (a reference
 * is not kept; the caller only needs the facts now). Not asked in a
 * vfork child, nor in a signal handler inside nestls's locked section
 * (the table's lock may be held): there the send goes as it is. */
static bool is_wrapped(int fd, bool *shut)
{
    if (!nl_wrapped_maybe(fd) || nl_lock_held_here() || nl_in_vfork_child())
        return false;
    struct nl_sock *s = nl_wrapped_get(fd);
    if (s == NULL)
        return false;
    *shut = __atomic_load_n(&s->shut_wr, __ATOMIC_ACQUIRE);
    nl_sock_put(s);
    return true;
}

ssize_t nl_sendto_road(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                       socklen_t tolen)
{
    bool shut;
    if (is_wrapped(fd, &shut)) {
        if (flags & MSG_FASTOPEN) {
            errno = EISCONN;
            return -1;
        }
        return nl_send_road(fd, buf, len, flags);
    }
    /* Without an address sendto is send, handler-safe way included. */
    if (to == NULL)
        return nl_send_road(fd, buf, len, flags);
    if (!(flags & MSG_FASTOPEN) || !addressed(to, tolen))
        return nl_real.sendto(fd, buf, len, flags, to, tolen);
    bool plaintext;
    int r = nl_connect_road(fd, to, tolen, &plaintext);
    if (plaintext)
        return nl_real.sendto(fd, buf, len, flags, to, tolen);
    if (r != 0)
        return -1;
    return nl_send_road(fd, buf, len, flags & ~MSG_FASTOPEN);
}

/* A copy of msg without its address: what TCP does with it on a
 * connected socket. */
static ssize_t sendmsg_unaddressed(int fd, const struct msghdr *msg, int flags)
{
    struct msghdr bare = *msg;
    bare.msg_name = NULL;
    bare.msg_namelen = 0;
    return nl_real.sendmsg(fd, &bare, flags);
}

ssize_t nl_sendmsg_road(int fd, const struct msghdr *msg, int flags)
{
    bool shut;
    if (msg == NULL)
        return nl_real.sendmsg(fd, msg, flags);
    if (is_wrapped(fd, &shut)) {
        if (flags & MSG_FASTOPEN) {
            errno = EISCONN;
            return -1;
        }
        if (shut)
            return nl_broken_pipe(flags);
        return sendmsg_unaddressed(fd, msg, flags);
    }
    if (!(flags & MSG_FASTOPEN) || !addressed(msg->msg_name, msg->msg_namelen))
        return nl_real.sendmsg(fd, msg, flags);
    bool plaintext;
    int r = nl_connect_road(fd, msg->msg_name, msg->msg_namelen, &plaintext);
    if (plaintext)
        return nl_real.sendmsg(fd, msg, flags);
    if (r != 0)
        return -1;
    return sendmsg_unaddressed(fd, msg, flags & ~MSG_FASTOPEN);
}

/* Message by message, so that the first one's MSG_FASTOPEN connect is
 * decided before anything is sent; the answer is the number of messages
 * sent, or -1 if the first failed, as the kernel's. */
int nl_sendmmsg_road(int fd, struct mmsghdr *vec, unsigned vlen, int flags)
{
    if (vec == NULL || (!(flags & MSG_FASTOPEN) && (nl_lock_held_here() || !nl_wrapped_maybe(fd))))
        return nl_real.sendmmsg(fd, vec, vlen, flags);
    unsigned i;
    for (i = 0; i < vlen; i++) {
        ssize_t n = nl_sendmsg_road(fd, &vec[i].msg_hdr, i == 0 ? flags : flags & ~MSG_FASTOPEN);
        if (n < 0) {
            if (i == 0)
                return -1;
            break;
        }
        vec[i].msg_len = (unsigned)n;
    }
    return (int)i;
}

NL_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                         socklen_t tolen)
{
    if (!nl_started())
        return nl_real.sendto(fd, buf, len, flags, to, tolen);
    return nl_sendto_road(fd, buf, len, flags, to, tolen);
}

NL_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (!nl_started())
        return nl_real.sendmsg(fd, msg, flags);
    return nl_sendmsg_road(fd, msg, flags);
}

NL_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned vlen, int flags)
{
    if (!nl_started())
        return nl_real.sendmmsg(fd, vec, vlen, flags);
    return nl_sendmmsg_road(fd, vec, vlen, flags);
}
