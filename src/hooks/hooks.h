/* Internal interfaces between the hook families. */
#ifndef NESTLS_HOOKS_H
#define NESTLS_HOOKS_H

#include <stdbool.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>

#include "common/fdtable.h"
#include "common/locking.h"
#include "hooks/epoll_registry.h"
#include "policy/policy.h"

/* init.c: every exported hook starts with
 *     if (!nl_started()) return nl_real.x(...);
 * The first hook called (possibly from another library's constructor,
 * before ours) runs nestls's start-up: real functions bound, policy
 * loaded, or the process stopped with exit status 78. False only for a
 * hook that start-up itself calls on its own thread: pass it through. */
extern bool nl_started_flag;
bool nl_started_slow(void);
static inline bool nl_started(void)
{
    return __atomic_load_n(&nl_started_flag, __ATOMIC_ACQUIRE) || nl_started_slow();
}

/* init.c: true in a child that shares our memory without being ours: a
 * vfork() or posix_spawn() child, or any CLONE_VM child (Python's
 * subprocess starts children so), between its birth and its exec or exit.
 * Everything nestls keeps there is the parent's, live: such a child must
 * not take, change or free any of it. Hooks that would touch state pass
 * straight to libc instead; the parent's engine goes on serving the
 * descriptors the child inherits (as after fork). Costs a getpid(), so
 * hooks ask only on paths that would touch state. */
bool nl_in_vfork_child(void);
void nl_owner_is_me(void); /* start-up, and a fork child */

/* A signal handler that interrupted nestls's own locked section on this
 * thread, about a descriptor that may be wrapped: it must not wait for
 * nestls's locks (the interrupted code holds them), so the hooks answer
 * without them. Takes no lock (async-signal-safe). */
static inline bool nl_handler_inside_nestls(int fd)
{
    return nl_lock_held_here() && nl_wrapped_maybe(fd);
}

/* sockopt.c: the program has set SO_RCVLOWAT above 1 on some socket. */
extern bool nl_rcvlowat_seen;

/* wait.c: wait as ppoll(prog, nprog, timeout_ms, mask or the thread's
 * own mask) would, while standing in for the engine on the TCP input of
 * socks (see engine/direct_read.c): the connections whose input came are
 * run in this thread before it returns. NL_WAIT_USUAL: it could stand in for
 * none of them, nothing was waited for. */
enum nl_wait_result {
    NL_WAIT_USUAL,
    NL_WAIT_WOKEN,     /* something came: ask the kernel again */
    NL_WAIT_TIMED_OUT,
    NL_WAIT_FAILED,    /* errno set (EINTR: a signal) */
};
/* Around every nl_wait_with_input of one hook call: signals blocked and
 * cancellation off, except inside the wait (see wait.c). */
struct nl_wait_guard {
    sigset_t mask; /* the thread's own */
    int cancel;    /* its cancellation state */
};
void nl_wait_guard_begin(struct nl_wait_guard *g);
void nl_wait_guard_end(const struct nl_wait_guard *g);
struct pollfd;
int nl_wait_with_input(const struct pollfd *prog, size_t nprog, struct nl_sock *const *socks,
                       size_t nsocks, int timeout_ms, const sigset_t *mask, const struct nl_wait_guard *g);

/* names.c: the host names the program resolved to an address, for a
 * connection to it (see names.c for why there may be several). Callers
 * decide through nl_decide_client() below, not through this. */
#define NL_HOST_MAX 256 /* a host name and its NUL */
enum nl_names_source {
    NL_NAMES_NONE,          /* no lookup gave this address */
    NL_NAMES_EXACT,         /* addr is an ai_addr of a getaddrinfo list still
                               held: that lookup's name, certainly */
    NL_NAMES_THIS_THREAD,   /* an address copied: names this thread, or a
                               thread that has ended, resolved */
};
/* Called once per distinct name, newest first, under the names lock: it
 * must take no lock and call no hook. */
typedef void nl_name_fn(const char *name, void *ctx);
enum nl_names_source nl_names_for(const struct sockaddr *addr, nl_name_fn *each, void *ctx);

/* epoll.c: move the program's epoll registrations of fd across a swap of
 * the file behind it. detach before the swap, reattach after. */
struct nl_epoll_saved;
struct nl_epoll_saved *nl_epoll_detach(int fd);
void nl_epoll_reattach(int fd, struct nl_epoll_saved *saved);

/* fork (forking.c): each table's lock held across fork, released in the
 * parent, made new in the child. */
void nl_names_fork_lock(void);
void nl_names_fork_unlock(void);
void nl_names_after_fork(void);
void nl_forking_install(void);

/* process.c */
void nl_hooks_install_exit_handler(void);

/* decide.c: which rule and action apply to a connection. */
struct nl_decision {
    const struct nl_rule *rule; /* NULL: the default action */
    enum nl_action action;
    /* client: the name the layers send as SNI and verify (unless a layer
     * sets server_name), or NULL to verify the peer's address itself. */
    const char *peer_name;
};
/* The one entry for every road that connects a client socket to addr
 * (connect, a vfork child's connect, sendto/sendmsg with MSG_FASTOPEN):
 * the name this program resolved for this connection, if it is known,
 * decides; name_buf (NL_HOST_MAX bytes) holds peer_name. Unknown: the
 * address alone decides. Ambiguous (several names): the strictest of what
 * each name and the address alone would get, and peer_name NULL. Either
 * is logged in one line when it matters. It records nothing (it only
 * reads under the names lock), so the vfork-child connect may call it. */
struct nl_decision nl_decide_client(const struct sockaddr *addr, char *name_buf, size_t len);
/* The bare matcher, for one role and a name already known (accept). */
struct nl_decision nl_decide(enum nl_role role, const struct sockaddr *addr, const char *hostname);
bool nl_is_tcp_socket(int fd, int *family);

#endif
