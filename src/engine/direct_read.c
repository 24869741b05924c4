/* The read side's direct path: a program thread that is about to sleep
 * until a wrapped socket has something to read (a blocking read, poll,
 * epoll_wait) waits for the connection's TCP input itself, and when it
 * comes runs the connection in its own thread, instead of the engine
 * thread waking, decrypting, and then waking the program.
 *
 * What the program reads still comes through its end of the socketpair:
 * the run delivers there, and the hook that waited looks again. So poll,
 * epoll, FIONREAD and MSG_PEEK on the program's descriptor keep telling
 * the truth, and order is the engine's.
 *
 * While a thread waits so, the engine leaves the TCP socket's input to it
 * (nl_engine_set_interest) and looks every NL_READ_CHECK_MS: input that
 * has waited unread that long means the thread stopped waiting without
 * coming back here (a longjmp out of a signal handler, a cancelled
 * thread), and the engine takes the input back. */
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "common/fdtable.h"
#include "common/locking.h"
#include "common/real.h"
#include "common/util.h"
#include "engine/engine.h"
#include "engine/engine_state.h"
#include "engine/tls_error.h"

size_t nl_engine_claim_input(struct nl_sock *const *socks, size_t n, struct nl_input_claim *claims,
                             struct pollfd *tcp)
{
    if (!nl_engine.running || n == 0)
        return 0;
    /* This thread is about to sleep anyway, so it waits for the engine's
     * lock: the engine holds it a little while after each delivery, and
     * a thread that went the usual way then would leave the next input to
     * the engine again, and so on for ever. */
    nl_mutex_lock(&nl_engine.lock);
    size_t claimed = 0;
    uint64_t now = nl_now_ms();
    for (size_t i = 0; i < n && !nl_engine.frozen && !nl_engine.relay_mode; i++) {
        struct nl_conn *c = nl_engine_conn_of(socks[i]);
        if (c == NULL || !nl_conn_awaits_tcp_input(c))
            continue;
        c->direct_readers++;
        c->read_since_ms = now;
        nl_engine_set_interest(&c->tcp);
        claims[claimed] = (struct nl_input_claim){.sock = socks[i], .gen = c->read_gen};
        tcp[claimed] = (struct pollfd){.fd = c->tcp.fd, .events = POLLIN};
        claimed++;
    }
    /* An engine asleep with no end in sight would never check on us. */
    if (claimed > 0 && nl_engine.sleep_until_ms > now + 2 * NL_READ_CHECK_MS)
        nl_engine_wake();
    nl_mutex_unlock(&nl_engine.lock);
    return claimed;
}

/* Run c after its TCP socket reported `revents` to a waiting thread
 * (engine lock held); c may be freed. */
static void run_for_waiter(struct nl_conn *c, uint32_t revents)
{
    bool was_trimmed = c->trimmed;
    if (revents && c->state != NL_CONN_DONE)
        nl_conn_run(c, &c->tcp, revents, nl_now_ms());
    /* What only the engine thread plans or does: trimming once quiet
     * again, a run the round budget cut short. */
    if ((was_trimmed && !c->trimmed) || c->run_again)
        nl_engine_wake();
    if (c->state == NL_CONN_DONE)
        nl_engine.epoch++; /* the engine thread may hold events for it */
    nl_engine_settle(c);
}

void nl_engine_release_input(const struct nl_input_claim *claims, const struct pollfd *tcp, size_t n)
{
    if (n == 0)
        return;
    nl_mutex_lock(&nl_engine.lock);
    nl_err_program_begin(); /* the program's OpenSSL errors stay its own */
    for (size_t i = 0; i < n; i++) {
        struct nl_conn *c = nl_engine_conn_of(claims[i].sock);
        /* Gone, or taken back by the engine (nl_direct_read_check). */
        if (c == NULL || c->read_gen != claims[i].gen)
            continue;
        c->direct_readers--;
        /* Not while an exec hands the connections to a relay, which may
         * already be reading this TCP socket (and shares the epoll set):
         * touch nothing. */
        if (nl_engine.frozen || nl_engine.relay_mode)
            continue;
        /* A thread cancelled in its wait (tcp NULL) only gives the input
         * back. poll's revents bits are epoll's (POLLIN == EPOLLIN, ...). */
        run_for_waiter(c, tcp != NULL ? (uint32_t)tcp[i].revents : 0);
    }
    nl_err_program_end();
    nl_mutex_unlock(&nl_engine.lock);
}

uint64_t nl_direct_read_due(const struct nl_conn *c, uint64_t now_ms)
{
    return c->direct_readers > 0 ? now_ms + NL_READ_CHECK_MS : 0;
}

void nl_direct_read_take_back(struct nl_conn *c, bool closing)
{
    if (c->direct_readers == 0)
        return;
    c->direct_readers = 0;
    c->read_gen++;
    /* A waiting thread's ppoll holds the TCP socket open (a reset or FIN
     * would leave only when it lets go) and is woken by nothing that
     * comes after the close: shutting the reading side wakes it, and
     * sends nothing. */
    if (closing && c->tcp.fd >= 0)
        nl_real.shutdown(c->tcp.fd, SHUT_RD);
}

void nl_direct_read_check(struct nl_conn *c, uint64_t now_ms)
{
    if (c->direct_readers == 0 || c->state == NL_CONN_DONE || now_ms - c->read_since_ms < NL_READ_CHECK_MS)
        return;
    struct pollfd tcp = {.fd = c->tcp.fd, .events = POLLIN};
    if (c->tcp.fd < 0 || nl_real.poll(&tcp, 1, 0) != 1)
        return;
    /* Input a waiting thread would have taken within microseconds. */
    nl_direct_read_take_back(c, false);
    nl_conn_run(c, &c->tcp, (uint32_t)tcp.revents, now_ms);
}
