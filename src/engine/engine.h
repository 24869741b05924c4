/* The engine: one thread per process that runs the TLS onion of every
 * wrapped connection between the program's socketpair end and TCP. */
#ifndef NESTLS_ENGINE_H
#define NESTLS_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "common/fdtable.h"
#include "policy/policy.h"

struct nl_listener; /* engine/listener.c */

/* A blocking connect() waits on this until every layer is up or failed. */
struct nl_waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int err; /* 0, or the errno connect() returns */
};

struct nl_conn_spec {
    enum nl_role role;
    const struct nl_rule *rule;
    int tcp_fd;            /* guarded engine descriptor (TCP) */
    int app_fd;            /* guarded engine end of the socketpair */
    int prog_fd;           /* the program's descriptor number */
    int prog_hold;         /* a copy of the program's end for the handshake, or -1 */
    size_t filler;         /* bytes the hook queued to hold the program's writes */
    int prog_sndbuf;       /* program end's SO_SNDBUF to restore once up, or 0 */
    struct nl_sock *sock;  /* reference handed to the engine */
    bool tcp_connecting;   /* client: TCP connect still in progress */
    const char *peer_name; /* resolved host name, or NULL */
    const struct sockaddr *local, *peer;
    struct nl_waiter *waiter; /* NULL: do not report back */
    struct nl_listener *listener; /* server: hand over through it once up */
};

/* Hand a connection to the engine (starting it if needed). On failure the
 * caller still owns the descriptors; returns -1 with errno. */
int nl_engine_submit(const struct nl_conn_spec *spec);

void nl_waiter_init(struct nl_waiter *w);
/* Wait until done or timeout_ms; returns the errno to report (ETIMEDOUT). */
int nl_waiter_wait(struct nl_waiter *w, unsigned timeout_ms);
void nl_waiter_destroy(struct nl_waiter *w);

/* The program's thread writes to a wrapped socket: when nothing it wrote
 * earlier still waits in the socketpair and the layers have room, encrypt
 * and send right here (one thread hop and two copies fewer). Returns the
 * bytes taken (the caller writes the rest to the socketpair as usual), or
 * -1 when this write must go the usual way entirely. */
ssize_t nl_engine_write_direct(struct nl_sock *s, const void *buf, size_t len);

/* A program thread about to sleep until wrapped sockets have something to
 * read (a blocking read, poll, epoll_wait: hooks/wait.c) may wait for
 * their connections' TCP input itself (engine/direct_read.c). claim takes
 * over the input of each connection of socks[0..n) that waits for nothing
 * else, and fills claims[] and tcp[] (POLLIN on its TCP socket) for those
 * it took: it returns how many. The thread then polls the tcp[] entries
 * with what it waits for, and gives them back with release, which runs
 * each connection whose TCP socket reported something, in this thread:
 * what it decrypted is then readable on the program's descriptor. The
 * caller holds its references to the socks until release returns. */
struct pollfd;
struct nl_input_claim {
    struct nl_sock *sock;
    unsigned gen;
};
size_t nl_engine_claim_input(struct nl_sock *const *socks, size_t n, struct nl_input_claim *claims,
                             struct pollfd *tcp);
void nl_engine_release_input(const struct nl_input_claim *claims, const struct pollfd *tcp, size_t n);

/* Process exit: deliver what the program wrote and close every layer
 * cleanly, waiting at most the policy's linger_ms. */
void nl_engine_drain_at_exit(void);

/* fork (called by hooks/forking.c, which owns the order of every lock):
 * prepare locks the engine (it is between events), parent unlocks, child
 * makes the lock new, forgets every connection (the parent keeps serving
 * them) and closes the child's copies of engine descriptors. */
void nl_engine_fork_prepare(void);
void nl_engine_fork_parent(void);
void nl_engine_fork_child(void);

/* exec: hand live connections to a relay process that keeps serving them
 * after this process image is replaced. Returns true with the engine held
 * still until exec; if the exec call fails, call nl_engine_exec_failed(). */
bool nl_engine_handoff_before_exec(void);
void nl_engine_exec_failed(void);

/* The program closed a descriptor of a wrapped socket whose layers are
 * not up yet: the engine lets go of its own copy of the program's end, so
 * that when no other copy is left (the program gave up on a non-blocking
 * connect) the engine sees it and ends the connection at once. */
void nl_engine_program_closed(struct nl_sock *s);

/* The program closed a descriptor of a wrapped socket whose layers are
 * up, and the close resets the connection (SO_LINGER {1, 0}, or bytes
 * left unread); called after the real close. When that was its last copy,
 * wait (briefly, bounded) until the engine has acted on it, the way TCP's
 * close() sends its reset before it returns: what the program wrote, then
 * the reset, are on the wire when close() returns, for a peer that checks
 * at once (getpeername() says ENOTCONN, the bytes are readable). A clean
 * close does not wait: a peer learns of close_notify through its own TLS
 * stack anyway, and the wait would slow every short connection. */
void nl_engine_await_close(struct nl_sock *s);

/* getpeername() found the TCP socket of s reset (ENOTCONN): wait
 * (briefly, bounded) until the engine has taken the reset in and
 * delivered what arrived before it, so that a program which learns of
 * the reset finds those bytes readable, as on a TCP socket. */
void nl_engine_await_reset(struct nl_sock *s);

/* The program's shutdown(SHUT_WR) on a wrapped socket this engine serves:
 * relay what it wrote, then close_notify on the innermost layer. Returns 1
 * when handled, 0 when no live connection of this process matches. */
int nl_engine_half_close(struct nl_sock *s);

/* The program sized a buffer of a wrapped socket this engine serves
 * (SO_RCVBUF or SO_SNDBUF, `bytes` as it passed them). SO_RCVBUF: bytes
 * bound for the program queue in the engine's end of the socket pair, so
 * that end's send buffer gets the same size; either way the layers hold
 * no more than that per layer (nl_onion_limit). SO_SNDBUF while the engine
 * holds the program's end unwritable (a connect whose layers are not up):
 * kept for the moment it lets go, and 1 is returned (the caller must not
 * set it now); otherwise 0. */
int nl_engine_size_buffer(struct nl_sock *s, int name, int bytes);

/* Move an engine descriptor off `fd` (the program wants that number).
 * Returns 0, or -1 when fd is not the engine's or cannot be moved. */
int nl_engine_relocate_fd(int fd);

/* The active policy (set once by the constructor). */
extern const struct nl_policy *nl_policy;

#endif
