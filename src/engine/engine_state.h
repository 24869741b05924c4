/* Inside the engine: its state and the loop's helpers, shared by the
 * loop (engine.c), the program-thread entries (direct.c) and process life
 * (lifecycle.c). Nothing outside src/engine/ includes this.
 *
 * Locking: nl_engine.lock guards the connection list and every
 * connection. The engine thread holds it while it handles events and
 * drops it only inside epoll_wait, so fork (which takes the lock first,
 * see hooks/forking.c) always sees the engine between events, never
 * inside OpenSSL. */
#ifndef NESTLS_ENGINE_STATE_H
#define NESTLS_ENGINE_STATE_H

#include <pthread.h>
#include <stdbool.h>

#include "engine/conn.h"

struct nl_engine_state {
    pthread_mutex_t lock;
    pthread_cond_t changed;  /* a connection ended (exit drain waits on it) */
    bool running;
    bool thread_in;  /* the engine thread has entered its loop (see start) */
    int epfd, wakefd;
    struct nl_conn *conns;
    size_t n_conns;
    bool run_all;
    unsigned epoch;  /* bumped when connections are freed outside the loop */
    bool frozen;     /* exec hand-off: the relay owns the sockets; touch nothing */
    bool relay_mode; /* this process is a relay: stop when idle */
    struct nl_listener *listeners; /* engine/listener.c */
    uint64_t sleep_until_ms; /* when the engine's current sleep ends (UINT64_MAX:
                                no end); 0 while it is awake */
};

extern struct nl_engine_state nl_engine;
extern char nl_engine_wake_marker; /* epoll data of the wake-up eventfd */

/* The condition variable is made once, on first use. */
void nl_engine_init_once(void);
void nl_engine_reinit_cond(void);
void nl_engine_wake(void);
void nl_engine_set_interest(struct nl_conn_end *e);
void nl_engine_unregister(struct nl_conn_end *e);
/* After running a connection: update its epoll interest or reap it. */
void nl_engine_settle(struct nl_conn *c);
/* Start the engine thread (lock held, not running yet); -1 with errno. */
int nl_engine_start_locked(void);
/* Add a connection from inside the engine (lock held, engine running). */
int nl_engine_add_locked(const struct nl_conn_spec *spec);
/* Move an engine descriptor to a higher number (lifecycle.c): one side of
 * a connection or listener (re-registered in epoll), or a plain one. */
int nl_engine_move_end(struct nl_conn_end *e);
int nl_move_guarded(int *fd);
/* The engine's connection of s, or NULL (direct.c). The engine's lock is
 * held: a connection is only freed under it, so the pointer stays valid. */
struct nl_conn *nl_engine_conn_of(struct nl_sock *s);
/* A program thread waiting for a connection's TCP input itself
 * (direct_read.c) is checked on this often: the engine takes the input
 * back when it waits unread for that long. */
#define NL_READ_CHECK_MS 200
/* The loop's part in that (direct_read.c): when it must next look, or 0;
 * and the look itself, for each connection. */
uint64_t nl_direct_read_due(const struct nl_conn *c, uint64_t now_ms);
void nl_direct_read_check(struct nl_conn *c, uint64_t now_ms);
/* The engine takes c's TCP input back from waiting threads: before it
 * closes the TCP socket (closing: their waits are woken) or moves it. */
void nl_direct_read_take_back(struct nl_conn *c, bool closing);
/* The loop itself: returns only in a relay whose last connection ended. */
void *nl_engine_main(void *arg);

#endif
