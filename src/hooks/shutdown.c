/* shutdown(): the program's half-close of a wrapped socket.
 *
 * SHUT_WR is carried out by the engine (relay what was written, then
 * close_notify on the innermost layer) instead of on the socketpair: the
 * program's end must stay able to carry the byte that lets the engine
 * report a later failure or truncation as ECONNRESET rather than a clean
 * EOF (see engine/reset.c). SHUT_RD is applied to the program's end as is.
 * A write after shutdown(SHUT_WR) fails with EPIPE (and SIGPIPE), as the
 * kernel's would: write.c checks shut_wr for write, send and sendto.
 * (writev, sendmsg and sendfile are not hooked: what they write after it
 * is dropped by the engine, never sent.)
 *
 * errno contract: the kernel's; a descriptor this process's engine does not
 * serve (e.g. inherited across fork) gets the real shutdown. */
#include <errno.h>
#include <sys/socket.h>

#include "common/fdtable.h"
#include "common/locking.h"
#include "common/real.h"
#include "engine/engine.h"
#include "engine/listener.h"
#include "hooks/export.h"
#include "hooks/hooks.h"

static int nl_shutdown(int fd, int how)
{
    /* A vfork child, or a signal handler that interrupted nestls holding
     * a lock: the program end's own shutdown; its EOF reaches the engine. */
    if (nl_lock_held_here() || !nl_wrapped_maybe(fd) || nl_in_vfork_child())
        return nl_real.shutdown(fd, how);
    struct nl_sock *s = nl_wrapped_get(fd);
    if (s != NULL && s->listener) {
        /* A listener shut down for reading stops listening (Linux): the
         * queue ends, so blocked accepts return EINVAL, and so does the
         * TCP listener. Shut down for writing: not connected. */
        int r = -1;
        if (how == SHUT_WR) {
            errno = ENOTCONN;
        } else if ((r = nl_real.shutdown(fd, how)) == 0) {
            nl_engine_listener_shut(s);
        }
        nl_sock_put(s);
        return r;
    }
    if (s == NULL || (how != SHUT_WR && how != SHUT_RDWR)) {
        if (s)
            nl_sock_put(s);
        return nl_real.shutdown(fd, how);
    }
    int handled = nl_engine_half_close(s); /* sets s->shut_wr when it does */
    nl_sock_put(s);
    if (!handled)
        return nl_real.shutdown(fd, how);
    return how == SHUT_RDWR ? nl_real.shutdown(fd, SHUT_RD) : 0;
}

NL_EXPORT int shutdown(int fd, int how)
{
    if (!nl_started())
        return nl_real.shutdown(fd, how);
    return nl_shutdown(fd, how);
}
