/* One connection's life in the engine: TCP connect, handshakes, relaying
 * both ways with back-pressure, and the close rules:
 *  - program EOF (close or SHUT_WR): close_notify on the innermost layer;
 *  - peer's innermost close_notify: EOF for the program (SHUT_WR on its end);
 *  - both directions done, or the program gone: close_notify on every
 *    layer, innermost first, then FIN, then linger for the peer's FIN;
 *  - TCP EOF or an outer close_notify before the innermost close_notify:
 *    truncation, reported to the program as ECONNRESET. */
#include "engine/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/real.h"
#include "common/sys.h"
#include "common/util.h"
#include "engine/reset.h"

static void describe(struct nl_conn *c, const struct sockaddr *local, const struct sockaddr *peer)
{
    char l[80], p[80];
    nl_format_addr(local, l, sizeof(l));
    nl_format_addr(peer, p, sizeof(p));
    if (c->role == NL_ROLE_CLIENT)
        snprintf(c->desc, sizeof(c->desc), "rule '%s': client %s -> %s", c->rule->name, l, p);
    else
        snprintf(c->desc, sizeof(c->desc), "rule '%s': server %s <- %s", c->rule->name, l, p);
}

/* Once TCP is connected: the rule's STARTTLS prelude first, if any. */
static enum nl_conn_state tcp_connected_state(const struct nl_conn *c)
{
    return c->starttls != NULL ? NL_CONN_STARTTLS : NL_CONN_HANDSHAKING;
}

struct nl_conn *nl_conn_new(const struct nl_conn_spec *spec, unsigned handshake_timeout_ms)
{
    struct nl_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->role = spec->role;
    c->rule = spec->rule;
    if (nl_onion_init(&c->onion, spec->rule, spec->role, spec->peer_name, spec->peer) != 0) {
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    if (spec->rule->starttls != NL_STARTTLS_NONE &&
        (c->starttls = nl_starttls_new(spec->rule->starttls, spec->role)) == NULL) {
        nl_onion_free(&c->onion);
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->tcp = (struct nl_conn_end){.conn = c, .fd = spec->tcp_fd};
    c->app = (struct nl_conn_end){.conn = c, .fd = spec->app_fd};
    c->prog_fd = spec->prog_fd;
    c->prog_hold = spec->prog_hold;
    c->filler = spec->filler;
    c->prog_sndbuf = spec->prog_sndbuf;
    c->sock = spec->sock;
    c->waiter = spec->waiter;
    c->listener = spec->listener;
    c->state = spec->tcp_connecting ? NL_CONN_TCP_CONNECTING : tcp_connected_state(c);
    c->started_us = nl_now_us();
    c->deadline_ms = nl_now_ms() + handshake_timeout_ms;
    c->handshake_timeout_ms = handshake_timeout_ms;
    nl_set_nonblock(c->tcp.fd, true);
    nl_set_nonblock(c->app.fd, true);
    /* A program's MSG_OOB (ftplib's ABOR) marks a byte urgent on the
     * socket pair. TLS has no urgent data: the byte goes inline, in its
     * place, as a TCP peer with SO_OOBINLINE reads it. Left out of band,
     * the engine never read it and the peer waited for it for ever. */
    int oob_inline = 1;
    nl_real.setsockopt(c->app.fd, SOL_SOCKET, SO_OOBINLINE, &oob_inline, sizeof(oob_inline));
    describe(c, spec->local, spec->peer);
    return c;
}

/* A side the connection is done with. The connection does not close it
 * itself: every engine descriptor must leave epoll before it is closed (a
 * child forked a moment ago may hold a copy of the file, and epoll forgets
 * a file only when its last copy closes), and epoll is the loop's. So the
 * connection retires it, and the loop unregisters it and then calls
 * nl_conn_close_retired. */
static void retire_end(struct nl_conn_end *e)
{
    if (e->fd >= 0)
        e->retired = true;
}

/* A blocking connect waits for the answer (0 or an errno). It is kept
 * until the sides this run retired are closed (deliver_answer, from
 * nl_conn_close_retired or nl_conn_free): the program, woken, must find
 * its end already reset, so that a write right after a failed connect
 * fails instead of going into a socketpair nobody reads. */
static void notify_waiter(struct nl_conn *c, int err)
{
    if (c->waiter == NULL || c->answered)
        return;
    c->answered = true;
    c->answer = err;
}

static void deliver_answer(struct nl_conn *c)
{
    struct nl_waiter *w = c->waiter;
    if (w == NULL || !c->answered)
        return;
    c->waiter = NULL;
    pthread_mutex_lock(&w->lock);
    w->err = c->answer;
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void close_end(struct nl_conn_end *e)
{
    if (e->fd < 0)
        return;
    nl_guard_remove(e->fd);
    nl_real.close(e->fd);
    e->fd = -1;
    e->registered = false;
    e->retired = false;
}

void nl_conn_close_retired(struct nl_conn *c)
{
    if (c->tcp.retired)
        close_end(&c->tcp);
    if (c->app.retired)
        close_end(&c->app);
    deliver_answer(c);
}

/* Our copy of the program's end (hooks/connect.c) is a guarded engine
 * descriptor like the others: it leaves the guard table when it closes,
 * or the program could never close a file that later gets its number. */
static void drop_prog_hold(struct nl_conn *c)
{
    if (c->prog_hold < 0)
        return;
    nl_guard_remove(c->prog_hold);
    nl_real.close(c->prog_hold);
    c->prog_hold = -1;
}

/* The engine has acted on s: wake whoever waits in close() or
 * getpeername() (engine/direct.c). The system call only when someone
 * does wait (2): not once for every connection. */
static void tell_acted(struct nl_sock *s)
{
    if (__atomic_load_n(&s->engine_acted, __ATOMIC_ACQUIRE) == 1)
        return;
    if (__atomic_exchange_n(&s->engine_acted, 1, __ATOMIC_ACQ_REL) == 2)
        nl_sys_futex_wake(&s->engine_acted);
}

void nl_conn_free(struct nl_conn *c)
{
    nl_sock_lock();
    if (c->sock) {
        c->sock->tcp_fd = -1; /* hooks must not touch the number again */
        c->sock->engine_conn = NULL;
    }
    nl_sock_unlock();
    close_end(&c->tcp);
    close_end(&c->app);
    drop_prog_hold(c);
    /* Its end (a reset: this close) is on the wire. Told before anything
     * is freed: the waiter may be a signal handler whose thread was
     * interrupted inside malloc, holding the lock free() would wait for. */
    if (c->sock)
        tell_acted(c->sock);
    deliver_answer(c);
    nl_onion_free(&c->onion);
    nl_starttls_free(c->starttls);
    if (c->sock)
        nl_sock_put(c->sock);
    free(c->leftover);
    free(c);
}

/* The program's end is made unwritable while handshakes run (see
 * hooks/connect.c); once the layers are up, drop the filler bytes and give
 * its send buffer back, so poll() reports "connected" exactly then. */
static void release_program_end(struct nl_conn *c)
{
    /* The send buffer first: the end turns writable as the filler goes,
     * and a write in between would meet the smallest buffer there is (a
     * short count, which a non-blocking writer such as Python's send()
     * with a timeout hands to a program that may never retry). */
    if (c->prog_hold >= 0 && c->prog_sndbuf > 0)
        nl_real.setsockopt(c->prog_hold, SOL_SOCKET, SO_SNDBUF, &c->prog_sndbuf,
                           sizeof(c->prog_sndbuf));
    unsigned char junk[4096];
    while (c->filler > 0) {
        ssize_t n = recv(c->app.fd, junk, c->filler < sizeof(junk) ? c->filler : sizeof(junk),
                         MSG_DONTWAIT);
        if (n <= 0)
            break;
        c->filler -= (size_t)n;
    }
    drop_prog_hold(c);
}

/* Our copy of the program's end keeps its file open through the
 * handshake (see hooks/connect.c). When the program closes a descriptor of
 * it before the layers are up, let go of that copy, so that the program's
 * last close shows as a hang-up. Other copies may be left (a dup, even one
 * made with fcntl, or a child's): their send buffer stays small and the
 * filler stays queued, so they stay unwritable until the layers are up,
 * as before; only the send buffer is not given back then. */
void nl_conn_program_closed(struct nl_conn *c)
{
    if (c->state < NL_CONN_OPEN)
        drop_prog_hold(c);
}

/* The program's end says ECONNRESET once ours closes with the byte
 * unread (engine/reset.c): poke it, then retire our end. */
static void reset_program(struct nl_conn *c)
{
    if (c->app.fd < 0 || c->app.retired)
        return;
    nl_reset_poke(c->prog_hold, c->prog_fd, c->sock);
    retire_end(&c->app);
}

static void finish(struct nl_conn *c, const char *reason)
{
    if (c->state == NL_CONN_DONE)
        return;
    c->state = NL_CONN_DONE;
    if (c->end_reason == NULL)
        c->end_reason = reason;
}

/* The program closed every copy of its end before the layers were up.
 * With nothing written, the connection is abandoned (a happy-eyeballs
 * client gave up on this address): end it now, quietly, instead of
 * finishing or timing out a handshake nobody waits for. Bytes it wrote
 * early are still delivered once the layers are up (TCP would too). */
static bool abandoned(struct nl_conn *c)
{
    if (!c->app_gone || c->state >= NL_CONN_OPEN || c->state == NL_CONN_DONE)
        return false;
    int queued = 0;
    if (ioctl(c->app.fd, FIONREAD, &queued) != 0 || (size_t)queued > c->filler)
        return false;
    nl_info("%s abandoned by the program before layer %zu was up", c->desc,
            nl_onion_handshaking_layer(&c->onion) + 1);
    notify_waiter(c, ECONNABORTED);
    finish(c, "abandoned");
    return true;
}

static void log_closed(struct nl_conn *c, const char *how)
{
    double secs = (double)(nl_now_us() - c->started_us) / 1e6;
    nl_info("%s closed: sent %llu B, received %llu B in %.3f s (%s)", c->desc,
            (unsigned long long)c->bytes_out, (unsigned long long)c->bytes_in, secs, how);
}

/* Something failed: tell the program (errno for a waiting connect, SO_ERROR
 * and a reset socket otherwise), log one line, and end. */
static void fail(struct nl_conn *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct nl_conn *c, int err, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    bool established = c->state >= NL_CONN_OPEN;
    /* A client failing our server's handshake (a scanner, a plaintext
     * request, a client trusting another CA), or gone before the program
     * accepted it, is the client's business: the program never hears of
     * it, and a healthy server stays quiet. */
    if ((!established || c->listener != NULL) && c->role == NL_ROLE_SERVER)
        nl_info("%s %s", c->desc, what);
    else
        nl_error("%s %s", c->desc, what);
    if (established)
        log_closed(c, "error");
    nl_sock_lock();
    if (c->sock) {
        c->sock->so_error = err;
        c->sock->failure = err;
    }
    nl_sock_unlock();
    reset_program(c);
    notify_waiter(c, err);
    finish(c, "error");
}

/* A failed handshake leaves OpenSSL's alert ("certificate revoked",
 * "unknown CA") in the outer layer's output: send what TCP takes now, so
 * the peer learns why. Then drop what the peer had already sent: closing
 * a socket with bytes unread sends a reset, which can overtake the alert
 * in the peer's receive queue. Best effort, never blocking. */
static void send_alert(struct nl_conn *c)
{
    if (c->tcp.fd < 0 || c->tcp_error)
        return;
    const unsigned char *data;
    size_t n;
    while ((n = nl_onion_net_out_peek(&c->onion, &data)) > 0) {
        ssize_t w = nl_real.send(c->tcp.fd, data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w <= 0)
            return;
        nl_onion_net_out_consume(&c->onion, (size_t)w);
    }
    unsigned char junk[4096];
    for (int i = 0; i < 16 && recv(c->tcp.fd, junk, sizeof(junk), MSG_DONTWAIT) > 0; i++)
        ;
}

static void fail_tls(struct nl_conn *c)
{
    struct nl_onion *o = &c->onion;
    send_alert(c);
    fail(c, o->fail_errno, "layer %d: %s", o->failed_layer + 1, o->fail_reason);
}

static void fail_net(struct nl_conn *c, int err)
{
    if (c->state < NL_CONN_OPEN)
        fail(c, err, "TCP: %s (during the handshake of layer %zu)", strerror(err),
             nl_onion_handshaking_layer(&c->onion) + 1);
    else
        fail(c, ECONNRESET, "TCP: %s", strerror(err));
}

/* The prelude's state is kept only while the program's greeting is still
 * to be dropped (server role, see take_from_app). */
static void drop_starttls_when_done(struct nl_conn *c)
{
    if (c->starttls != NULL && !nl_starttls_swallowing(c->starttls)) {
        nl_starttls_free(c->starttls);
        c->starttls = NULL;
    }
}

/* The rule's plaintext prelude (engine/starttls.c), before layer 1.
 * Returns 1 when it is done (the handshake starts), 0 while it waits,
 * -1 when it failed as a handshake fails. */
static int run_starttls(struct nl_conn *c)
{
    int r = nl_starttls_run(c->starttls, c->tcp.fd);
    if (r < 0) {
        int err;
        const char *why = nl_starttls_error(c->starttls, &err);
        fail(c, err, "%s", why);
    } else if (r == 1) {
        c->state = NL_CONN_HANDSHAKING;
    }
    return r;
}

static void established(struct nl_conn *c)
{
    c->state = NL_CONN_OPEN;
    c->deadline_ms = 0;
    nl_sock_lock();
    if (c->sock)
        c->sock->established = true;
    nl_sock_unlock();
    if (c->listener == NULL) /* else the hand-over drops our copy (listener.c) */
        release_program_end(c);
    if (c->starttls != NULL) {
        /* Client role: a plaintext client waits for the greeting, and the
         * server sends none after STARTTLS: the program reads the one of
         * the prelude first, through the path of a short send's tail. */
        size_t n;
        unsigned char *greeting = nl_starttls_take_greeting(c->starttls, &n);
        if (greeting != NULL) {
            c->leftover = greeting;
            c->leftover_off = 0;
            c->leftover_len = n;
        }
        drop_starttls_when_done(c);
    }
    char layers[1600];
    nl_onion_describe(&c->onion, layers, sizeof(layers));
    double ms = (double)(nl_now_us() - c->started_us) / 1e3;
    nl_info("%s up in %.1f ms: %s", c->desc, ms, layers);
    notify_waiter(c, 0);
}

void nl_conn_handed_over(struct nl_conn *c)
{
    drop_prog_hold(c);
}

void nl_conn_end_unclaimed(struct nl_conn *c)
{
    if (c->state < NL_CONN_OPEN)
        notify_waiter(c, ECONNABORTED);
    finish(c, "its listener closed");
}

/* TCP was reset (or failed) while the connection was open. TCP's own
 * reader still gets the bytes that arrived before the reset, then
 * ECONNRESET; so does the program: the engine reads everything the kernel
 * still holds (no more than the socket's receive buffer, which a reset
 * socket no longer fills), delivers it, and only then resets the
 * program's end (advance_close). getpeername() says ENOTCONN at once, as
 * TCP's does. */
static void note_tcp_error(struct nl_conn *c, int err)
{
    if (c->tcp_error != 0)
        return;
    c->tcp_error = err;
    nl_sock_lock();
    if (c->sock)
        c->sock->failure = err;
    nl_sock_unlock();
    /* The program's writes fail now (EPIPE), as on the reset TCP socket,
     * while it still reads what arrived before the reset. The byte that
     * will reset its end once that is delivered (reset_program) goes in
     * first: the program's end cannot send it after the shutdown. */
    if (c->app.fd >= 0 && !c->app.retired) {
        nl_reset_poke(c->prog_hold, c->prog_fd, c->sock);
        nl_real.shutdown(c->app.fd, SHUT_RD);
    }
}

static int read_tcp(struct nl_conn *c)
{
    /* (Only an open connection skips: a handshake that finds its peer gone
     * must read why, the EOF or the reset, before a send fails on it.) */
    if (c->tcp_eof || (c->tcp_drained && c->state == NL_CONN_OPEN))
        return 0;
    unsigned char buf[NL_ONION_CAP];
    size_t room = c->state == NL_CONN_LINGER || c->tcp_error ? sizeof(buf)
                                                             : nl_onion_net_in_room(&c->onion);
    if (room == 0)
        return 0;
    size_t want = room < sizeof(buf) ? room : sizeof(buf);
    ssize_t n = nl_real.recv(c->tcp.fd, buf, want, MSG_DONTWAIT);
    if (n > 0) {
        c->tcp_drained = (size_t)n < want;
        /* After our close, only wait for FIN; but a program that closed
         * its end must learn of data sent to it (data_after_close). */
        if (c->state != NL_CONN_LINGER ||
            (c->app_gone && nl_onion_net_in_room(&c->onion) >= (size_t)n))
            nl_onion_feed_net(&c->onion, buf, (size_t)n);
        return 1;
    }
    if (n == 0) {
        c->tcp_eof = true;
        return 1;
    }
    if (errno == EAGAIN || errno == EINTR) {
        c->tcp_drained = errno == EAGAIN;
        return 0;
    }
    if (c->state == NL_CONN_LINGER) {
        c->tcp_eof = true;
        return 1;
    }
    if (c->state == NL_CONN_OPEN) {
        note_tcp_error(c, errno);
        c->tcp_eof = true;
        return 1;
    }
    fail_net(c, errno);
    return -1;
}

/* Ciphertext goes to TCP straight from the outer layer's buffer. */
static int flush_to_net(struct nl_conn *c)
{
    int moved = 0;
    if (c->tcp_error) /* nothing reaches a reset peer: fail when delivered */
        return 0;
    for (;;) {
        const unsigned char *data;
        size_t n = nl_onion_net_out_peek(&c->onion, &data);
        if (n == 0) {
            c->net_blocked = false;
            return moved;
        }
        ssize_t w = nl_real.send(c->tcp.fd, data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            nl_onion_net_out_consume(&c->onion, (size_t)w);
            moved = 1;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            c->net_blocked = true;
            return moved;
        }
        if (w < 0 && c->state == NL_CONN_OPEN && (errno == EPIPE || errno == ECONNRESET)) {
            note_tcp_error(c, ECONNRESET); /* what arrived before it is still read */
            return moved;
        }
        /* Nothing shuts TCP for writing before its last flush: EPIPE
         * means the peer reset it (a connect then fails with that). */
        fail_net(c, w < 0 && errno != EPIPE ? errno : ECONNRESET);
        return -1;
    }
}

/* Send what a short send left over. Returns 1 when it is all gone. */
static int send_leftover(struct nl_conn *c)
{
    while (c->leftover_len > 0) {
        ssize_t w = nl_real.send(c->app.fd, c->leftover + c->leftover_off, c->leftover_len,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            c->leftover_off += (size_t)w;
            c->leftover_len -= (size_t)w;
            c->bytes_in += (uint64_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        c->app_gone = true; /* EPIPE: the program closed its end */
        c->leftover_len = 0;
    }
    free(c->leftover);
    c->leftover = NULL;
    c->leftover_off = 0;
    return 1;
}

/* Bytes for the program found its end closed. TCP answers data for a
 * closed socket with a reset, and so does the engine: the peer must not
 * take the close for a clean one (a sender would go on writing into a
 * connection nobody reads). A program that only shut its end for reading
 * (SHUT_RD) has not closed it: no hang-up on ours. */
static void note_bytes_unread(struct nl_conn *c)
{
    struct pollfd p = {.fd = c->app.fd, .events = 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & POLLHUP))
        c->app_reset = true;
}

/* Plaintext goes to the program in batches of up to 64 KiB (one wake-up
 * of the reader instead of one per record). The rare tail a full socket
 * does not take is kept in a buffer allocated only for that moment. */
static int deliver_to_app(struct nl_conn *c)
{
    int moved = 0;
    bool dropped = false; /* bytes for a program that closed its end */
    unsigned char buf[NL_APP_READ];
    c->app_blocked = false;
    while (!c->app_gone) {
        if (c->leftover != NULL && !send_leftover(c)) {
            c->app_blocked = true;
            break;
        }
        dropped = c->app_gone; /* the leftover could not be sent */
        size_t n = 0;
        while (n < sizeof(buf)) {
            ssize_t r = nl_onion_read_plain(&c->onion, buf + n, sizeof(buf) - n);
            if (r < 0) {
                fail_tls(c);
                return -1;
            }
            if (r == 0)
                break;
            n += (size_t)r;
        }
        if (n == 0)
            break;
        moved = 1;
        ssize_t w = nl_real.send(c->app.fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            c->app_gone = true;
            dropped = true;
            break;
        }
        size_t sent = w > 0 ? (size_t)w : 0;
        c->bytes_in += sent;
        if (sent < n) {
            c->leftover = malloc(n - sent);
            if (c->leftover == NULL) {
                fail(c, ENOMEM, "out of memory");
                return -1;
            }
            memcpy(c->leftover, buf + sent, n - sent);
            c->leftover_len = n - sent;
            c->app_blocked = true;
            break;
        }
    }
    if (c->app_gone) { /* nobody reads: keep the network flowing */
        free(c->leftover);
        c->leftover = NULL;
        c->leftover_len = 0;
        while (nl_onion_read_plain(&c->onion, buf, sizeof(buf)) > 0) {
            dropped = true;
            moved = 1;
        }
        if (dropped)
            note_bytes_unread(c);
    }
    if (nl_onion_inner_eof(&c->onion) && !c->app_blocked && !c->app_shut && !c->app_gone) {
        nl_real.shutdown(c->app.fd, SHUT_WR);
        c->app_shut = true;
        moved = 1;
    }
    return moved;
}

static bool program_asked_reset(struct nl_conn *c)
{
    nl_sock_lock();
    bool abort = c->sock && c->sock->abort_on_close;
    nl_sock_unlock();
    return abort;
}

static int take_from_app(struct nl_conn *c)
{
    int moved = 0;
    /* Large reads: OpenSSL cuts them into records, one syscall feeds many. */
    unsigned char buf[NL_APP_READ];
    /* After shutdown(SHUT_WR) or at exit, "nothing left now" means EOF. */
    bool must_look = c->exiting || c->prog_shut_wr;
    if (c->tcp_error)
        return 0; /* the program's writes fail: advance_close */
    if (c->app_drained && !must_look)
        return 0;
    while (!c->app_eof && nl_onion_can_take_plain(&c->onion)) {
        ssize_t n = nl_real.recv(c->app.fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            size_t skip = 0;
            if (nl_starttls_swallowing(c->starttls)) {
                /* Server role: the client had our greeting in the prelude
                 * and speaks first after STARTTLS; the program's own
                 * greeting would reach it as an answer to its command. */
                long k = nl_starttls_swallow(c->starttls, buf, (size_t)n);
                if (k < 0) {
                    fail(c, EPROTO, "%s", nl_starttls_error(c->starttls, NULL));
                    return -1;
                }
                skip = (size_t)k;
                drop_starttls_when_done(c);
            }
            c->bytes_out += (uint64_t)n - skip;
            if (skip < (size_t)n &&
                nl_onion_write_plain(&c->onion, buf + skip, (size_t)n - skip) < 0) {
                fail_tls(c);
                return -1;
            }
            moved = 1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && !must_look) {
            c->app_drained = true;
            break;
        }
        if (n < 0 && errno == ECONNRESET) {
            /* Closed with bytes unread (reset.c says how the socketpair
             * tells): no close_notify, the connection is reset. */
            c->app_reset = true;
            c->app_eof = true;
            return 1;
        }
        /* EOF before its hang-up event came in (this run was for TCP, or
         * a nudge): closed or only shut? SO_LINGER {1, 0} asks a reset of
         * a close only, and then no close_notify may go first. */
        struct pollfd end = {.fd = c->app.fd};
        if (n == 0 && !c->app_gone && poll(&end, 1, 0) == 1 && (end.revents & POLLHUP))
            c->app_gone = true;
        if (c->app_gone && program_asked_reset(c)) {
            c->app_reset = true; /* SO_LINGER {1, 0}, then close */
            c->app_eof = true;
            return 1;
        }
        /* EOF, an error, or nothing left after the program's
         * shutdown(SHUT_WR) or while the process exits. */
        c->app_eof = true;
        nl_onion_close_inner(&c->onion);
        moved = 1;
    }
    return moved;
}

/* Bytes the program wrote after its shutdown(SHUT_WR) through calls
 * nestls does not hook (writev, sendmsg, sendfile): never sent, as TCP
 * would refuse them. Read and dropped before our end closes, or the
 * program's end would report ECONNRESET instead of a clean EOF. */
static void discard_late_writes(struct nl_conn *c)
{
    unsigned char junk[4096];
    if (c->app_gone || c->app.fd < 0)
        return;
    while (recv(c->app.fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
        ;
}

static void begin_closing(struct nl_conn *c)
{
    nl_onion_close_all(&c->onion);
    c->state = NL_CONN_CLOSING;
}

/* The TCP socket's close, when it comes, sends a reset. */
static void reset_on_close(struct nl_conn *c)
{
    /* The program's last bytes must go before the reset, which drops
     * whatever TCP still holds: Nagle holds a small record while an
     * earlier one (a session ticket, say) waits for its ACK. TCP_NODELAY
     * sends it now. */
    int push = 1;
    nl_real.setsockopt(c->tcp.fd, IPPROTO_TCP, TCP_NODELAY, &push, sizeof(push));
    struct linger now = {.l_onoff = 1, .l_linger = 0};
    nl_real.setsockopt(c->tcp.fd, SOL_SOCKET, SO_LINGER, &now, sizeof(now));
}

/* The program closed its end with bytes for it unread: the connection
 * ends as TCP's close ends it then, with a reset and without
 * close_notify, so the peer does not take it for a clean end. */
static void reset_by_program(struct nl_conn *c)
{
    reset_on_close(c);
    log_closed(c, "reset: the program closed its end with bytes unread");
    finish(c, "reset by the program");
}

/* Lingering after the program closed its end: the peer's close_notify
 * is expected, its data is not. TCP resets a closed socket that receives
 * data, telling the sender nobody reads it; so does the engine. */
static int data_after_close(struct nl_conn *c)
{
    unsigned char buf[4096];
    bool data = false;
    if (nl_onion_pump(&c->onion) < 0) /* the peer's data cannot be read either */
        data = true;
    while (!data && nl_onion_read_plain(&c->onion, buf, sizeof(buf)) > 0)
        data = true;
    if (!data)
        return 0;
    reset_on_close(c);
    nl_info("%s: data arrived after the program closed its end: reset, as TCP does", c->desc);
    finish(c, "reset after close");
    return 1;
}

static int advance_close(struct nl_conn *c, uint64_t now_ms)
{
    struct nl_onion *o = &c->onion;
    switch (c->state) {
    case NL_CONN_OPEN:
        if (c->app_reset || (c->app_gone && c->app_eof && program_asked_reset(c))) {
            reset_by_program(c);
            return 1;
        }
        if (c->tcp_error && c->tcp_eof) {
            /* Deliver first (note_tcp_error), while the program reads. */
            if (!c->app_gone && !c->exiting && c->app_blocked)
                return 0;
            fail_net(c, c->tcp_error);
            return 1;
        }
        if ((c->tcp_eof && !nl_onion_inner_eof(o)) || nl_onion_outer_cut(o)) {
            /* Deliver what arrived intact first. deliver_to_app has run
             * this round: it stops only when the program's end is full or
             * no layer can produce another byte from what it holds. */
            if (!c->app_gone && c->app_blocked)
                return 0;
            /* not accepted yet (engine/listener.c): the program never knew it */
            nl_log(c->listener ? NL_LOG_INFO : NL_LOG_WARN,
                   "%s layer %zu: connection cut without close_notify", c->desc, c->onion.n);
            log_closed(c, "truncated");
            reset_program(c);
            finish(c, "truncated");
            return 1;
        }
        if ((c->app_gone && c->app_eof) || (c->exiting && c->app_eof) ||
            (c->app_eof && nl_onion_inner_eof(o) && !c->app_blocked)) {
            begin_closing(c);
            return 1;
        }
        return 0;
    case NL_CONN_CLOSING:
        if (nl_onion_net_out_pending(o) > 0)
            return 0;
        nl_real.shutdown(c->tcp.fd, SHUT_WR);
        log_closed(c, "clean");
        discard_late_writes(c);
        retire_end(&c->app);
        c->state = NL_CONN_LINGER;
        c->deadline_ms = now_ms + nl_policy->settings.linger_ms;
        return 1;
    case NL_CONN_LINGER:
        if (c->app_gone && data_after_close(c))
            return 1;
        if (c->tcp_eof) {
            finish(c, "clean");
            return 1;
        }
        return 0;
    default:
        return 0;
    }
}

static void check_deadline(struct nl_conn *c, uint64_t now_ms)
{
    if (c->deadline_ms == 0 || now_ms < c->deadline_ms)
        return;
    if (c->state == NL_CONN_TCP_CONNECTING)
        fail(c, ETIMEDOUT, "TCP connect timed out after %u ms (handshake_timeout_ms)",
             c->handshake_timeout_ms);
    else if (c->state == NL_CONN_STARTTLS)
        fail(c, ETIMEDOUT, "starttls %s: not done after %u ms (handshake_timeout_ms)",
             nl_starttls_proto_name(c->starttls), c->handshake_timeout_ms);
    else if (c->state < NL_CONN_OPEN)
        fail(c, ETIMEDOUT, "layer %zu: handshake timed out after %u ms",
             nl_onion_handshaking_layer(&c->onion) + 1, c->handshake_timeout_ms);
    else if (c->state == NL_CONN_LINGER || c->state == NL_CONN_CLOSING)
        finish(c, "clean");
    else if (c->exiting) {
        log_closed(c, "linger_ms expired at exit");
        finish(c, "linger expired");
    }
}

static void compute_interest(struct nl_conn *c)
{
    uint32_t tcp = 0, app = 0;
    switch (c->state) {
    case NL_CONN_TCP_CONNECTING:
        tcp = EPOLLOUT;
        break;
    case NL_CONN_STARTTLS:
        tcp = nl_starttls_events(c->starttls);
        break;
    case NL_CONN_HANDSHAKING:
    case NL_CONN_OPEN:
    case NL_CONN_CLOSING:
        if (!c->tcp_eof && (c->tcp_error || nl_onion_net_in_room(&c->onion) > 0))
            tcp |= EPOLLIN;
        if (c->net_blocked)
            tcp |= EPOLLOUT;
        if (c->state == NL_CONN_OPEN) {
            if (c->app_blocked && !c->app_gone)
                app |= EPOLLOUT;
            if (!c->app_eof && !c->tcp_error && nl_onion_can_take_plain(&c->onion))
                app |= EPOLLIN;
        }
        break;
    case NL_CONN_LINGER:
        tcp = EPOLLIN;
        break;
    case NL_CONN_DONE:
        break;
    }
    c->tcp.events = tcp;
    c->app.events = app;
}

static void mark_active(struct nl_conn *c, uint64_t now_ms)
{
    c->active_ms = now_ms;
    c->trimmed = false;
}

/* A close() or getpeername() may wait for this (engine/direct.c): the
 * program's close taken in (close_notify and FIN, or the reset, handed to
 * TCP), or the peer's reset. A connection that is done tells when it is
 * freed, once its TCP socket is closed (that close sends the reset). */
static void note_acted(struct nl_conn *c)
{
    if (c->sock && c->state != NL_CONN_DONE &&
        (c->app_gone || c->tcp_error || c->state > NL_CONN_OPEN))
        tell_acted(c->sock);
}

unsigned nl_conn_rounds_per_run = NL_ROUNDS_PER_RUN;

void nl_conn_run(struct nl_conn *c, struct nl_conn_end *end, uint32_t events, uint64_t now_ms)
{
    if (end == &c->app && (events & (EPOLLHUP | EPOLLERR)))
        c->app_gone = true; /* the program's last copy is closed */
    if (end == NULL || (end == &c->tcp && events))
        c->tcp_drained = false;
    if (end == NULL || (end == &c->app && events))
        c->app_drained = false;
    if (abandoned(c)) {
        compute_interest(c);
        return;
    }
    if (c->state == NL_CONN_TCP_CONNECTING) {
        if (end == &c->tcp && events) {
            int err = 0;
            socklen_t len = sizeof(err);
            nl_real.getsockopt(c->tcp.fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                fail(c, err, "TCP connect: %s", strerror(err));
                return;
            }
            c->state = tcp_connected_state(c);
        } else {
            check_deadline(c, now_ms);
            compute_interest(c);
            return;
        }
    }
    if (c->state == NL_CONN_STARTTLS) {
        int r = run_starttls(c); /* its own reads see a TCP error */
        if (r < 0)
            return;
        if (r == 0) {
            check_deadline(c, now_ms);
            compute_interest(c);
            return;
        }
    }
    if (end == &c->tcp && (events & EPOLLERR)) {
        int err = 0;
        socklen_t len = sizeof(err);
        nl_real.getsockopt(c->tcp.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 && c->state == NL_CONN_LINGER) {
            finish(c, "clean");
            compute_interest(c);
            return;
        }
        if (err != 0 && c->state == NL_CONN_OPEN) {
            note_tcp_error(c, err); /* read and deliver what came before it */
        } else if (err != 0) {
            fail_net(c, err);
            return;
        }
    }
    bool moved = false;
    int progress = 0;
    uint64_t delivered_before = c->bytes_in;
    c->run_again = false;
    for (unsigned round = 0; round < nl_conn_rounds_per_run && c->state != NL_CONN_DONE; round++) {
        int r;
        progress = 0;
        if ((r = read_tcp(c)) < 0)
            return;
        progress |= r;
        if (c->state < NL_CONN_LINGER && nl_onion_pump(&c->onion) < 0) {
            fail_tls(c);
            return;
        }
        if (c->state == NL_CONN_HANDSHAKING) {
            if (nl_onion_up(&c->onion)) {
                established(c);
                progress = 1;
            } else if (c->tcp_eof) {
                fail(c, EPROTO, "layer %zu: %s closed the connection during the handshake",
                     nl_onion_handshaking_layer(&c->onion) + 1,
                     c->role == NL_ROLE_CLIENT ? "server" : "client");
                return;
            }
        }
        if (c->state == NL_CONN_OPEN) {
            if ((r = deliver_to_app(c)) < 0)
                return;
            progress |= r;
        }
        if (c->state == NL_CONN_OPEN) {
            if ((r = take_from_app(c)) < 0)
                return;
            progress |= r;
        }
        if (c->state < NL_CONN_LINGER) {
            if ((r = flush_to_net(c)) < 0)
                return;
            progress |= r;
        }
        progress |= advance_close(c, now_ms);
        if (!progress)
            break;
        moved = true;
    }
    /* The budget ran out while bytes still moved: what is left inside may
     * have no event coming (the program wrote its last byte, the peer
     * waits for it), so the engine runs this connection again at once. */
    if (progress && c->state != NL_CONN_DONE)
        c->run_again = true;
    if (moved)
        mark_active(c, now_ms);
    if (c->bytes_in != delivered_before)
        c->last_delivery = c->bytes_in - delivered_before;
    if (c->state == NL_CONN_OPEN && !c->app_blocked && !c->net_blocked)
        nl_onion_release_records(&c->onion);
    check_deadline(c, now_ms);
    compute_interest(c);
    note_acted(c);
}

uint64_t nl_conn_trim_due(const struct nl_conn *c)
{
    if (c->state != NL_CONN_OPEN || c->trimmed)
        return 0;
    return c->active_ms + NL_IDLE_TRIM_MS;
}

/* The liveness invariant, checked where it is cheap: a connection quiet
 * for NL_IDLE_TRIM_MS that waits on neither the program nor the network
 * must hold no ciphertext on its way out and no plaintext for the
 * program, and must have read the end of a program that closed (its end
 * is no longer watched: nothing would wake us for what it wrote last).
 * If not, bytes were stranded: say so with every layer's buffers, and run
 * it (a defect, but the data still gets through). */
bool nl_conn_stranded(const struct nl_conn *c)
{
    if (c->state != NL_CONN_OPEN || c->app_blocked || c->net_blocked)
        return false;
    return nl_onion_held_out(&c->onion) > 0 || (c->app_gone && !c->app_eof) ||
           (!c->app_gone && nl_onion_held_plain(&c->onion) > 0);
}

void nl_conn_trim_if_idle(struct nl_conn *c, uint64_t now_ms)
{
    uint64_t due = nl_conn_trim_due(c);
    if (due == 0 || now_ms < due)
        return;
    if (nl_conn_stranded(c)) {
        char dump[600];
        nl_onion_dump(&c->onion, dump, sizeof(dump));
        nl_error("%s: bytes stranded inside the onion with no event armed (%s%s); "
                 "moving them now - please report this", c->desc, dump,
                 c->app_gone && !c->app_eof ? "; the program's last bytes unread" : "");
        nl_conn_run(c, NULL, 0, now_ms);
        mark_active(c, now_ms); /* at most one such line per quiet period */
        return;
    }
    /* Blocked either way, it is not idle: it holds data on purpose. */
    if (!c->app_blocked && !c->net_blocked)
        nl_onion_trim(&c->onion);
    c->trimmed = true;
}

bool nl_conn_awaits_tcp_input(const struct nl_conn *c)
{
    /* Anything on its way to the program (a held delivery, plaintext in
     * the layers) or a connection that no longer wants TCP input (a layer's
     * input full, an EOF) is the engine's to finish: a reader's wait would
     * never be ended by TCP, or would spin on input nobody takes. So is a
     * bulk stream (see last_delivery). */
    return c->state == NL_CONN_OPEN && c->listener == NULL && !c->app_blocked &&
           c->leftover == NULL && !c->app_shut && !c->app_gone && !c->tcp_eof && !c->tcp_error &&
           !c->exiting && !c->run_again && c->last_delivery <= NL_DIRECT_READ_MAX &&
           (c->tcp.events & EPOLLIN) && c->tcp.fd >= 0 &&
           !c->tcp.retired && c->app.fd >= 0 && !c->app.retired &&
           nl_onion_held_plain(&c->onion) == 0 && !nl_starttls_swallowing(c->starttls);
}

bool nl_conn_takes_direct(const struct nl_conn *c)
{
    /* Every byte the program wrote before must be ahead of these: nothing
     * of its may wait in the socketpair (FIONREAD on our end), and none
     * after shutdown(SHUT_WR) or at exit is sent at all. */
    if (c->state != NL_CONN_OPEN || c->app_eof || c->app_gone || c->prog_shut_wr ||
        c->exiting || c->tcp_error || !nl_onion_can_take_plain(&c->onion) ||
        nl_starttls_swallowing(c->starttls))
        return false;
    int queued = 0;
    return ioctl(c->app.fd, FIONREAD, &queued) == 0 && queued == 0;
}

ssize_t nl_conn_write_direct(struct nl_conn *c, const void *buf, size_t len, uint64_t now_ms)
{
    size_t taken = 0;
    const unsigned char *p = buf;
    while (taken < len && nl_onion_can_take_plain(&c->onion)) {
        size_t n = len - taken < NL_APP_READ ? len - taken : NL_APP_READ;
        if (nl_onion_write_plain(&c->onion, p + taken, n) < 0) {
            fail_tls(c);
            break;
        }
        taken += n;
        c->bytes_out += n;
        if (flush_to_net(c) < 0)
            break;
    }
    /* The pump stops when the layer below is full (the onion's cap): once
     * TCP has taken that, move the rest outward too, until TCP is full or
     * nothing is left; nobody else would (the engine only runs on events,
     * and this connection may have none coming). */
    while (c->state == NL_CONN_OPEN && !c->net_blocked) {
        if (nl_onion_pump(&c->onion) < 0) {
            fail_tls(c);
            break;
        }
        int f = flush_to_net(c);
        if (f <= 0)
            break;
    }
    /* Whatever TCP did not take now waits for EPOLLOUT, as usual. */
    mark_active(c, now_ms);
    check_deadline(c, now_ms);
    compute_interest(c);
    return (ssize_t)taken;
}

void nl_conn_begin_exit(struct nl_conn *c, uint64_t deadline_ms)
{
    c->exiting = true;
    if (c->deadline_ms == 0 || c->deadline_ms > deadline_ms)
        c->deadline_ms = deadline_ms;
}
