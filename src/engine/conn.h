/* One wrapped connection inside the engine: the program's socketpair end
 * on one side, the TCP socket on the other, the onion in between. */
#ifndef NESTLS_CONN_H
#define NESTLS_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/engine.h"
#include "engine/onion.h"
#include "engine/starttls.h"

/* A connection quiet this long gives its grown buffers back (trimming on
 * every pause would free and regrow them between every two records). */
#define NL_IDLE_TRIM_MS 200

/* How many rounds (TCP in, pump, to the program, from the program, TCP
 * out) one run of a connection may take before the others get their
 * turn. A run that ends with bytes still moving sets run_again, and the
 * engine runs it again before it sleeps. A variable so that the in-memory
 * liveness test can starve runs on purpose (tests/unit/test_relay.c). */
#define NL_ROUNDS_PER_RUN 32
extern unsigned nl_conn_rounds_per_run;

/* See last_delivery in struct nl_conn. */
#define NL_DIRECT_READ_MAX (16 * 1024)

/* How much of the program's data one recv() takes. */
#define NL_APP_READ (64 * 1024)

enum nl_conn_state {
    NL_CONN_TCP_CONNECTING,
    NL_CONN_STARTTLS,    /* the rule's plaintext prelude (engine/starttls.c) */
    NL_CONN_HANDSHAKING,
    NL_CONN_OPEN,
    NL_CONN_CLOSING, /* close_notify queued on every layer; flushing, then FIN */
    NL_CONN_LINGER,  /* FIN sent; reading until the peer's FIN or the deadline */
    NL_CONN_DONE,
};

struct nl_conn;

/* What an epoll registration points at: one side of one connection. */
struct nl_conn_end {
    struct nl_conn *conn;
    int fd;
    uint32_t events;       /* interest the connection wants */
    uint32_t last_events;  /* interest epoll has */
    bool registered;
    bool retired;          /* done with: the loop unregisters, then closes it */
    struct nl_listener *listener; /* conn == NULL: a listener's end (listener.c) */
};

struct nl_conn {
    struct nl_conn *next, *prev;
    enum nl_conn_state state;
    enum nl_role role;
    const struct nl_rule *rule;
    struct nl_onion onion;
    struct nl_starttls *starttls; /* the rule's starttls, until its work is done; or NULL */
    struct nl_conn_end tcp, app;
    int prog_fd;            /* program's descriptor number, for resets */
    int prog_hold;          /* our copy of the program's end during the handshake, or -1 */
    struct nl_listener *listener; /* server: accepted by the engine, not handed over yet */
    size_t filler;          /* bytes queued to make the program's end unwritable */
    int prog_sndbuf;        /* its send buffer size to restore, or 0 */
    unsigned handshake_timeout_ms;
    struct nl_sock *sock;
    struct nl_waiter *waiter;
    bool answered;          /* the waiter's answer is decided ... */
    int answer;             /* ... and given once retired sides are closed */
    bool app_blocked;       /* the program's socket is full: wait for EPOLLOUT */
    unsigned char *leftover; /* plaintext a short send left, or NULL */
    size_t leftover_off, leftover_len;
    bool net_blocked;       /* the TCP socket is full: wait for EPOLLOUT */
    /* The last read of that side found it empty (EAGAIN, or a short read
     * of TCP): it is not read again until an event on it (or a run for no
     * event) says there may be more. A syscall saved per side and run;
     * level-triggered epoll reports what came in meanwhile. */
    bool tcp_drained, app_drained;
    bool app_eof;           /* program will write no more (EOF or exiting) */
    bool app_gone;          /* program closed its end entirely */
    bool app_reset;         /* ... with bytes for it unread: end with a TCP reset */
    bool app_shut;          /* we sent EOF to the program */
    bool tcp_eof;           /* TCP peer sent FIN (or TCP failed: tcp_error) */
    int tcp_error;          /* TCP was reset (or failed) while open: reported to
                               the program once what arrived before is delivered */
    bool exiting;           /* process exit: treat "nothing pending" as EOF */
    bool prog_shut_wr;      /* the program called shutdown(SHUT_WR) */
    uint64_t started_us;
    uint64_t deadline_ms;   /* handshake or linger deadline; 0 = none */
    uint64_t active_ms;     /* when bytes last moved */
    bool trimmed;           /* buffers given back since then */
    bool run_again;         /* the last run ended on its round budget, not idle */
    /* Program threads blocked in a read that wait for TCP input themselves
     * (engine/direct_read.c): while there are any, the engine does not
     * listen for it. read_gen is bumped when the engine takes TCP input
     * back from readers that stopped answering (a longjmp out of a signal
     * handler, a cancelled thread); read_since_ms: when the last began. */
    unsigned direct_readers;
    unsigned read_gen;
    uint64_t read_since_ms;
    /* Plaintext the last run that delivered any gave the program: runs of
     * more than NL_DIRECT_READ_MAX mean a bulk stream, which the engine
     * thread decrypts while the program reads (two cores), so waiting
     * threads leave those to it. */
    uint64_t last_delivery;
    uint64_t bytes_out, bytes_in; /* plaintext each way */
    const char *end_reason;
    char desc[200];         /* "rule 'x': client A -> B" */
};

struct nl_conn *nl_conn_new(const struct nl_conn_spec *spec, unsigned handshake_timeout_ms);
/* Closes every descriptor the connection still has: the caller has taken
 * them out of any epoll set first (or, in a fork child, knows the set is
 * the parent's and must not be touched). */
void nl_conn_free(struct nl_conn *c);

/* Run the connection after an event on one of its sides (events as epoll
 * reported them, 0 for a timer or a nudge). Afterwards, c->tcp.events and
 * c->app.events hold the interest the connection wants.
 *
 * Liveness, the invariant every change here must keep: when the engine goes
 * back to epoll_wait for a connection, nothing inside it can move without
 * a new event that is armed. Every byte inside is then
 *  - on its way out: in the TCP socket, or in layer 1's output with
 *    EPOLLOUT armed on TCP (net_blocked);
 *  - waiting on a readiness event that is armed: TCP input (EPOLLIN, armed
 *    while layer 1's input has room), the program's writes (EPOLLIN on its
 *    end, armed while every layer's output has room), the program reading
 *    (EPOLLOUT on its end, armed while a delivery is held back:
 *    app_blocked);
 *  - or waiting on a cap whose release runs the pump again: a layer's
 *    input full (released by reading plaintext, which pumps) or a layer's
 *    output full (released when TCP takes layer 1's output, after which
 *    the round loop pumps again).
 * nl_conn_run keeps it by running rounds until one moves nothing; when its
 * round budget runs out first it sets run_again, and the engine runs the
 * connection again before it sleeps. nl_onion_pump keeps it inside the
 * onion the same way (passes until one moves nothing). The direct write
 * path pumps and flushes until TCP is full or nothing is left. Guarded by
 * tests/unit/test_relay.c (this code, in memory, adversarial scheduling),
 * fuzz_onion (a second pump changes nothing), tests/engine_liveness.bats
 * (real processes), and at run time by nl_conn_stranded. */
void nl_conn_run(struct nl_conn *c, struct nl_conn_end *end, uint32_t events, uint64_t now_ms);

/* The loop's part in closing a side (see retire_end in conn.c): once it has
 * taken every retired side out of its epoll set, this closes them, and
 * then wakes a blocking connect whose answer this run decided. */
void nl_conn_close_retired(struct nl_conn *c);

/* The program's own thread writing straight into the onion and onto
 * TCP, skipping the socketpair and the engine thread (engine lock held).
 * takes_direct says whether order and back-pressure allow it now;
 * write_direct takes what the layers have room for (at least one chunk
 * when takes_direct said yes) and returns how much: 0 when the connection
 * failed first (the program then learns it from its socketpair end). */
bool nl_conn_takes_direct(const struct nl_conn *c);
ssize_t nl_conn_write_direct(struct nl_conn *c, const void *buf, size_t len, uint64_t now_ms);

/* Whether a program thread may wait for this connection's TCP input
 * itself and run it (engine/direct_read.c): open, and waiting for nothing
 * but TCP input. */
bool nl_conn_awaits_tcp_input(const struct nl_conn *c);

/* When an open connection's buffers are due to be trimmed (quiet for
 * NL_IDLE_TRIM_MS), or 0; trim_if_idle trims it when that time has come. */
uint64_t nl_conn_trim_due(const struct nl_conn *c);
void nl_conn_trim_if_idle(struct nl_conn *c, uint64_t now_ms);

/* True when the connection waits on neither side yet holds bytes that
 * should be on their way: a broken liveness invariant (see conn.c). */
bool nl_conn_stranded(const struct nl_conn *c);

/* See nl_engine_program_closed (engine lock held). */
void nl_conn_program_closed(struct nl_conn *c);

/* A connection the engine accepted (engine/listener.c): its layers are up
 * and the program's end went down the hand-over queue, so drop our copy
 * (from now on the program's close is an EOF, as for any connection). */
void nl_conn_handed_over(struct nl_conn *c);
/* ... or its listener closed before it could be handed over: end it. */
void nl_conn_end_unclaimed(struct nl_conn *c);

/* Process exit: finish once what the program already wrote is sent. */
void nl_conn_begin_exit(struct nl_conn *c, uint64_t deadline_ms);

#endif
