/* Which descriptors belong to whom.
 *
 * - Guarded descriptors are nestls's own (engine TCP sockets, engine ends of
 *   socketpairs, epoll and wake-up descriptors, the log file). Programs that
 *   close or dup2 over "every descriptor" must not take them away.
 * - Wrapped descriptors are the program's ends of socketpairs standing in
 *   for TCP sockets; each maps to the facts a TCP socket would report
 *   (addresses, pending SO_ERROR, the engine's TCP descriptor). */
#ifndef NESTLS_FDTABLE_H
#define NESTLS_FDTABLE_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

struct nl_sock {
    int refs;                        /* guarded by the table lock */
    int family;                      /* AF_INET or AF_INET6 */
    int protocol;                    /* IPPROTO_TCP or IPPROTO_MPTCP */
    struct sockaddr_storage local;   /* the TCP socket's own address */
    socklen_t local_len;
    struct sockaddr_storage peer;    /* the TCP peer */
    socklen_t peer_len;
    int tcp_fd;                      /* engine's TCP socket; -1 once closed */
    int so_error;                    /* failure to report once via SO_ERROR */
    int failure;                     /* the failure, kept for a repeated connect() */
    bool established;                /* every layer is up */
    bool shut_wr;                    /* the program called shutdown(SHUT_WR) (atomic) */
    bool abort_on_close;             /* SO_LINGER {1, 0}: its close resets the connection */
    bool owns_tcp_fd;                /* tcp_fd is this sock's own guarded copy
                                        (a connection another process's engine
                                        serves: hooks/accept.c); closed with it */
    bool listener;                   /* a listening descriptor the engine serves
                                        (hooks/listen.c); tcp_fd is the TCP
                                        listener while this process has it */
    int rcvbuf, sndbuf;              /* a listener's SO_RCVBUF/SO_SNDBUF as the
                                        program set them (0: never), for the
                                        socket pairs of what it accepts */
    int engine_acted;                /* 1: the engine took in the program's
                                        close, or the peer's reset; 2: not yet,
                                        and a hook waits (atomic, a futex:
                                        engine/direct.c) */
    void *engine_conn;               /* the engine's connection, or NULL */
    dev_t dev;                       /* identity of the program's end */
    ino_t ino;
    struct nl_sock *next_unused;     /* on the list of those to free (fdtable.c) */
};

struct nl_sock *nl_sock_new(int family);
/* Fill local, peer, family and protocol from a TCP socket. */
void nl_sock_facts_of(int tcp_fd, struct nl_sock *s);
void nl_sock_put(struct nl_sock *s);
/* Free the socks whose last reference went (nl_sock_put only lists them:
 * it may run in a signal handler that interrupted malloc). Called where
 * allocating is safe: the engine's loop, nl_sock_new. */
void nl_sock_free_unused(void);

/* Wrapped program descriptors. get() returns a new reference or NULL; it
 * checks the descriptor still is the same file (a number may be reused). */
int nl_wrapped_add(int fd, struct nl_sock *s);
struct nl_sock *nl_wrapped_get(int fd);
void nl_wrapped_remove(int fd);
/* Every wrapped descriptor in [first, last]: a walk of the table, not of
 * the number space. */
void nl_wrapped_remove_range(unsigned first, unsigned last);
void nl_wrapped_dup(int oldfd, int newfd);
/* The wrapped connections' descriptors (listeners left out), into fds:
 * how many there are, or max + 1 when there are more than max (a walk of
 * the table, which stops there). */
size_t nl_wrapped_fds(int *fds, size_t max);
/* Process exit: close this process's copies of every listening
 * descriptor the engine serves (hooks/listen.c), so that a hang-up on the
 * engine's end tells whether another process still holds one. */
void nl_wrapped_close_listeners(void);
/* A relay: it has no program, so it forgets every wrapped descriptor (and
 * closes the TCP copies some of them own). */
void nl_wrapped_release_all(void);
bool nl_wrapped_any(void);
/* False when fd is surely not wrapped; takes no lock (async-signal-safe). */
bool nl_wrapped_maybe(int fd);

/* Engine-owned descriptors. */
void nl_guard_add(int fd);
void nl_guard_remove(int fd);
bool nl_guard_has(int fd);
/* The lowest guarded descriptor in [from, last], or -1. */
int nl_guard_next(unsigned from, unsigned last);

/* Duplicate fd to a high, close-on-exec number and guard the copy.
 * Returns the new descriptor, or -1 with errno set. */
int nl_guard_dup_high(int fd);

/* Close every descriptor that is not guarded (a relay process keeps only
 * the engine's). */
void nl_close_all_but_guarded(void);

/* Lock/unlock around fork; reset forgets everything in a child. */
void nl_fdtable_lock(void);
void nl_fdtable_unlock(void);
void nl_fdtable_after_fork(void); /* the child: a new, free lock */

/* Guarded descriptors and socket facts shared with nl_sock: hooks read
 * tcp_fd/so_error under this lock. */
void nl_sock_lock(void);
void nl_sock_unlock(void);

#endif
