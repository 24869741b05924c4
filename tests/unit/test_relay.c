/* The engine's relay in memory: liveness under adversarial scheduling.
 *
 * Two engine connections (src/engine/conn.c, the code the engine thread
 * runs), a client and a server of 1 to 8 layers, each between a
 * socketpair standing for its TCP socket and one standing for the
 * program's end. This test is everything around them, in one thread:
 *  - the network: it takes what each side sends and delivers it to the
 *    other in adversarial pieces (1 byte, each outer record boundary -1,
 *    0 or +1, random sizes, everything, or nothing for a while), through
 *    socket buffers of random, often tiny, sizes;
 *  - the two programs: random write sizes (through the socketpair, or the
 *    program-thread "direct write" path when the engine allows it), random
 *    read sizes, pauses, then a half-close, a close, or neither (the
 *    program waits for an answer: the shape of the stall once seen at
 *    three layers);
 *  - the engine loop: it runs a connection when poll() reports an event
 *    the connection asked for, or when its last run ended on its round
 *    budget (run_again). The budget is made tiny at random, so that runs
 *    end in the middle of the work as often as possible.
 * The invariant under test (src/engine/conn.h): when nothing is ready and
 * no run is owed, nothing may be left to do. So whenever the whole system
 * is quiet (nobody can move a byte), every byte written must have arrived
 * and nothing may be held inside either onion; otherwise the case fails
 * with every layer's buffers. Every case also checks every byte.
 *
 * Cases are seeded (NESTLS_RELAY_SEED=first, NESTLS_RELAY_CASES=count);
 * a failure prints the seed that replays it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/real.h"
#include "common/util.h"
#include "engine/conn.h"
#include "unit.h"

/* engine.c owns this; this test is the engine loop itself. */
const struct nl_policy *nl_policy;

/* What the loop does after each run: retired sides leave its (here:
 * poll's, so nothing to undo) watch, then close. */
static void run(struct nl_conn *c, struct nl_conn_end *end, uint32_t events, uint64_t now)
{
    nl_conn_run(c, end, events, now);
    nl_conn_close_retired(c);
}

#define MAX_STEPS 400000
#define QUEUE_CAP (1 << 20)

static char certs[PATH_MAX];
static char tmpdir[] = "/tmp/nestls-relay-XXXXXX";
static struct nl_policy *policies[NL_MAX_LAYERS + 1][2]; /* [layers][tls12] */
static uint64_t rng;

static uint64_t next_random(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A number in [lo, hi]. */
static size_t pick(size_t lo, size_t hi)
{
    return lo + (size_t)(next_random() % (hi - lo + 1));
}

/* Byte p of the stream sent in direction dir (0: client to server). */
static unsigned char stream_byte(int dir, uint64_t p)
{
    uint64_t w = (p / 8) * 0x9e3779b97f4a7c15ull + (uint64_t)dir * 0x632be59bd9b4e019ull;
    w = (w ^ (w >> 31)) * 0xbf58476d1ce4e5b9ull;
    return (unsigned char)(w >> (8 * (p % 8)));
}

static struct nl_policy *load_policy(size_t n, bool tls12)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/p%zu%s.yaml", tmpdir, n, tls12 ? "-12" : "");
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return NULL;
    fprintf(f, "version: 1\nsettings: {log_level: error, linger_ms: 60000}\nrules:\n");
    fprintf(f, "  - name: srv\n    match: {role: server}\n    layers:\n");
    for (size_t i = 0; i < n; i++) {
        const char *pki = i % 2 ? "inner" : "outer";
        fprintf(f, "      - {cert: %s/%s-server.pem, key: %s/%s-server.key%s}\n", certs, pki,
                certs, pki, tls12 && i % 2 == 0 ? ", max_version: TLSv1.2" : "");
    }
    fprintf(f, "  - name: cli\n    match: {role: client}\n    layers:\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "      - {ca: %s/%s-ca.pem, server_name: localhost}\n", certs,
                i % 2 ? "inner" : "outer");
    fclose(f);
    struct nl_policy *p = NULL;
    char err[NL_ERR_MAX];
    if (nl_policy_load(path, &p, err, sizeof(err)) != 0) {
        printf("# policy: %s\n", err);
        return NULL;
    }
    return p;
}

/* ------------------------------------------------------------ the network */

/* One direction: bytes the sender's engine wrote to its TCP socket, taken
 * by the test and delivered to the receiver's TCP socket in pieces. */
struct wire {
    int from, to;            /* the test's ends of the two TCP socketpairs */
    unsigned char *q;        /* taken, not yet delivered */
    size_t len, cap;         /* queued bytes; the most the test takes */
    uint64_t taken, given;   /* stream offsets */
    uint64_t bounds[4096];   /* outer record starts not yet delivered */
    size_t nbounds, next_hdr;
    uint64_t parsed;         /* next record header's stream offset */
    unsigned char hdr[5];    /* that header, as far as it has arrived */
    int pause;               /* steps to deliver nothing */
    bool eof, eof_passed;
};

/* Remember where each outer record starts: read each record's header as
 * its bytes arrive (they may be delivered before the header is whole). */
static void parse_records(struct wire *w, uint64_t from)
{
    uint64_t o = from > w->parsed ? from : w->parsed;
    while (o < w->taken) {
        if (o < w->parsed + 5) {
            w->hdr[o - w->parsed] = w->q[o - w->given];
            o++;
            continue;
        }
        if (w->nbounds < NL_ARRAY_LEN(w->bounds))
            w->bounds[w->nbounds++] = w->parsed;
        w->parsed += 5 + ((size_t)w->hdr[3] << 8 | w->hdr[4]);
        if (o < w->parsed)
            o = w->parsed;
    }
    if (o >= w->parsed + 5) { /* a header completed on the last byte */
        if (w->nbounds < NL_ARRAY_LEN(w->bounds))
            w->bounds[w->nbounds++] = w->parsed;
        w->parsed += 5 + ((size_t)w->hdr[3] << 8 | w->hdr[4]);
    }
}

static size_t next_boundary(struct wire *w)
{
    while (w->next_hdr < w->nbounds && w->bounds[w->next_hdr] <= w->given)
        w->next_hdr++;
    if (w->next_hdr == w->nbounds) {
        w->next_hdr = w->nbounds = 0; /* all behind us: start over */
        return w->len;
    }
    return (size_t)(w->bounds[w->next_hdr] - w->given);
}

static bool wire_step(struct wire *w)
{
    bool moved = false;
    while (!w->eof && w->len < w->cap) {
        ssize_t n = read(w->from, w->q + w->len, w->cap - w->len);
        if (n > 0) {
            w->len += (size_t)n;
            w->taken += (uint64_t)n;
            parse_records(w, w->taken - (uint64_t)n);
            moved = true;
        } else {
            if (n == 0)
                w->eof = moved = true;
            break;
        }
    }
    if (w->pause > 0) {
        w->pause--;
        return true; /* it will act later: not quiet */
    }
    if (w->len > 0) {
        size_t piece;
        switch (pick(0, 9)) {
        case 0: piece = 1; break;
        case 1: piece = next_boundary(w) - 1; break;
        case 2: piece = next_boundary(w); break;
        case 3: piece = next_boundary(w) + 1; break;
        case 4: case 5: piece = pick(1, w->len); break;
        case 6: w->pause = (int)pick(1, 30); return true;
        default: piece = w->len; break;
        }
        if (piece == 0)
            piece = 1;
        if (piece > w->len)
            piece = w->len;
        ssize_t n = write(w->to, w->q, piece);
        if (n > 0) {
            memmove(w->q, w->q + n, w->len - (size_t)n);
            w->len -= (size_t)n;
            w->given += (uint64_t)n;
            moved = true;
        }
    }
    if (w->eof && w->len == 0 && !w->eof_passed) {
        shutdown(w->to, SHUT_WR); /* the sender's FIN */
        w->eof_passed = moved = true;
    }
    return moved;
}

/* ------------------------------------------------------------ the programs */

enum ending { END_WAIT, END_HALF_CLOSE, END_CLOSE };

struct program {
    int dir;                 /* the stream it sends */
    int fd;                  /* its end of the program socketpair, or -1 */
    struct nl_conn *conn;    /* its engine connection (for direct writes) */
    uint64_t to_send, sent, to_get, got;
    enum ending ending;
    bool ended, eof, bad;
    uint64_t bad_at;
    int pause;
};

static bool program_write(struct program *p, uint64_t now)
{
    unsigned char buf[100000];
    if (p->sent == p->to_send || p->fd < 0)
        return false;
    size_t n = pick(1, 4) == 1 ? pick(1, 64) : pick(1, sizeof(buf));
    if (n > p->to_send - p->sent)
        n = (size_t)(p->to_send - p->sent);
    for (size_t k = 0; k < n; k++)
        buf[k] = stream_byte(p->dir, p->sent + k);
    ssize_t w = -1;
    if (pick(0, 2) == 0 && nl_conn_takes_direct(p->conn)) {
        w = nl_conn_write_direct(p->conn, buf, n, now);
        nl_conn_close_retired(p->conn); /* as engine.c's settle does after it */
    }
    if (w <= 0)
        w = send(p->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w <= 0)
        return false;
    p->sent += (uint64_t)w;
    return true;
}

static bool program_read(struct program *p)
{
    unsigned char buf[100000];
    if (p->eof || p->fd < 0)
        return false;
    size_t n = pick(1, 4) == 1 ? pick(1, 100) : pick(1, sizeof(buf));
    ssize_t r = recv(p->fd, buf, n, MSG_DONTWAIT);
    if (r == 0) {
        p->eof = true;
        return true;
    }
    if (r < 0)
        return false;
    for (ssize_t k = 0; k < r && !p->bad; k++)
        if (buf[k] != stream_byte(!p->dir, p->got + (uint64_t)k)) {
            p->bad = true;
            p->bad_at = p->got + (uint64_t)k;
        }
    p->got += (uint64_t)r;
    return true;
}

/* Once everything is sent: half-close or close, as the case says. */
static bool program_end(struct program *p)
{
    if (p->ended || p->sent < p->to_send)
        return false;
    if (p->ending == END_WAIT) {
        p->ended = true; /* it waits for the answer; it closes when all is quiet */
        return false;
    }
    if (p->ending == END_HALF_CLOSE) {
        /* What hooks/shutdown.c does: the program's end stays open, the
         * engine learns of the half-close and runs the connection. */
        p->conn->prog_shut_wr = true;
        p->conn->run_again = true;
    } else if (p->ending == END_CLOSE && p->got == p->to_get) {
        close(p->fd); /* the program is done: its last copy of the end */
        p->fd = -1;
    } else {
        return false;
    }
    p->ended = true;
    return true;
}

static bool program_step(struct program *p, uint64_t now)
{
    if (p->pause > 0) {
        p->pause--;
        return true;
    }
    if (pick(0, 40) == 0) {
        p->pause = (int)pick(1, 50);
        return true;
    }
    bool moved = false;
    for (int k = (int)pick(1, 3); k > 0; k--)
        moved |= program_write(p, now);
    for (int k = (int)pick(1, 3); k > 0; k--)
        moved |= program_read(p);
    return program_end(p) || moved;
}

/* ------------------------------------------------------------ the engine */

static uint32_t poll_to_epoll(short r)
{
    return (r & POLLIN ? EPOLLIN : 0) | (r & POLLOUT ? EPOLLOUT : 0) |
           (r & POLLHUP ? EPOLLHUP : 0) | (r & POLLERR ? EPOLLERR : 0);
}

/* What epoll would report for one side now (level-triggered), or 0. */
static uint32_t ready(struct nl_conn *c, struct nl_conn_end *e)
{
    if (e->fd < 0 || (e == &c->app && c->app_gone))
        return 0; /* not registered (see engine.c set_interest) */
    struct pollfd p = {.fd = e->fd, .events = (short)((e->events & EPOLLIN ? POLLIN : 0) |
                                                      (e->events & EPOLLOUT ? POLLOUT : 0))};
    if (poll(&p, 1, 0) != 1)
        return 0;
    return poll_to_epoll(p.revents);
}

static bool engine_step(struct nl_conn *c, uint64_t now)
{
    if (c->state == NL_CONN_DONE)
        return false;
    bool ran = false;
    uint32_t ev;
    if ((ev = ready(c, &c->tcp)) != 0) {
        run(c, &c->tcp, ev, now);
        ran = true;
    }
    if (c->state != NL_CONN_DONE && (ev = ready(c, &c->app)) != 0) {
        run(c, &c->app, ev, now);
        ran = true;
    }
    if (c->state != NL_CONN_DONE && c->run_again) {
        run(c, NULL, 0, now);
        ran = true;
    }
    return ran;
}

/* ------------------------------------------------------------ one case */

struct side {
    struct nl_conn *conn;
    struct program prog;
    int tcp_test_end;
};

static void small_buffers(int fd)
{
    if (pick(0, 2) != 0)
        return;
    int size = (int)pick(1024, 256 * 1024);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

static bool make_side(struct side *s, enum nl_role role, const struct nl_rule *rule)
{
    int tcp[2], app[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tcp) != 0)
        return false;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, app) != 0)
        return false;
    for (int k = 0; k < 2; k++) {
        small_buffers(tcp[k]);
        small_buffers(app[k]);
    }
    nl_set_nonblock(tcp[1], true);
    nl_set_nonblock(app[1], true);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct nl_conn_spec spec = {
        .role = role, .rule = rule, .tcp_fd = tcp[0], .app_fd = app[0], .prog_fd = -1,
        .prog_hold = -1, .peer_name = role == NL_ROLE_CLIENT ? "localhost" : NULL,
        .local = (struct sockaddr *)&a, .peer = (struct sockaddr *)&a,
    };
    s->conn = nl_conn_new(&spec, 60000);
    s->tcp_test_end = tcp[1];
    s->prog = (struct program){.dir = role == NL_ROLE_SERVER, .fd = app[1], .conn = s->conn};
    return s->conn != NULL;
}

static void describe_side(const char *name, struct side *s, char *out, size_t len)
{
    char dump[800];
    nl_onion_dump(&s->conn->onion, dump, sizeof(dump));
    const struct nl_conn *c = s->conn;
    snprintf(out, len,
             "%s: state %d, sent %llu/%llu, got %llu/%llu, eof %d; engine: program end "
             "%s%s%s%s, %zu B held back, TCP %s; %s",
             name, (int)c->state, (unsigned long long)s->prog.sent,
             (unsigned long long)s->prog.to_send, (unsigned long long)s->prog.got,
             (unsigned long long)s->prog.to_get, s->prog.eof, c->app_blocked ? "full" : "open",
             c->app_eof ? ", its EOF read" : "", c->app_gone ? ", closed" : "",
             c->prog_shut_wr ? ", half-closed" : "", c->leftover_len,
             c->net_blocked ? "full" : "open", dump);
}

static bool transfer_done(struct side *sd)
{
    for (int k = 0; k < 2; k++) {
        struct program *p = &sd[k].prog;
        if (p->got < p->to_get || p->sent < p->to_send || !p->ended)
            return false;
        /* The peer's half-close or close must reach the program as EOF. */
        if (sd[!k].prog.ending != END_WAIT && p->fd >= 0 && !p->eof)
            return false;
    }
    return true;
}

/* One seeded case; returns NULL or what went wrong. */
static const char *run_case(uint64_t seed, char *why, size_t why_len)
{
    rng = seed;
    size_t layers = pick(1, 4) == 1 ? pick(4, NL_MAX_LAYERS) : pick(1, 3);
    bool tls12 = pick(0, 4) == 0;
    nl_conn_rounds_per_run = (unsigned)(pick(0, 3) == 0 ? NL_ROUNDS_PER_RUN : pick(1, 3));
    struct nl_policy *p = policies[layers][tls12];
    struct side sd[2];
    if (!make_side(&sd[0], NL_ROLE_CLIENT, &p->rules[1]) ||
        !make_side(&sd[1], NL_ROLE_SERVER, &p->rules[0])) {
        snprintf(why, why_len, "cannot set up: %s", strerror(errno));
        return why;
    }
    size_t most = layers > 3 ? 96 * 1024 : 400 * 1024;
    for (int k = 0; k < 2; k++) {
        sd[k].prog.to_send = pick(0, 5) == 0 ? pick(0, 100) : pick(1, most);
        sd[k].prog.ending = (enum ending)pick(0, 2);
    }
    sd[0].prog.to_get = sd[1].prog.to_send;
    sd[1].prog.to_get = sd[0].prog.to_send;
    struct wire w[2] = {
        {.from = sd[0].tcp_test_end, .to = sd[1].tcp_test_end, .cap = pick(1, 4) * 65536},
        {.from = sd[1].tcp_test_end, .to = sd[0].tcp_test_end, .cap = pick(1, 4) * 65536},
    };
    unsigned char *queues = malloc(2 * QUEUE_CAP);
    w[0].q = queues;
    w[1].q = queues + QUEUE_CAP;
    /* The engine's first look at a new connection (engine.c submit). */
    for (int k = 0; k < 2; k++) {
        sd[k].conn->tcp.events = EPOLLIN | EPOLLOUT;
        run(sd[k].conn, &sd[k].conn->tcp, EPOLLOUT, nl_now_ms());
    }
    const char *result = NULL;
    int steps;
    for (steps = 0; steps < MAX_STEPS; steps++) {
        uint64_t now = nl_now_ms();
        bool busy = false;
        for (int k = 0; k < 2; k++) {
            /* A program starts once connect/accept returned (layers up),
             * and goes on reading after the engine is done. */
            if (sd[k].conn->state >= NL_CONN_OPEN)
                busy |= program_step(&sd[k].prog, now);
            busy |= wire_step(&w[k]);
        }
        for (int k = 0; k < 2; k++)
            busy |= engine_step(sd[k].conn, now);
        for (int k = 0; k < 2; k++)
            if (sd[k].prog.bad) {
                snprintf(why, why_len, "side %d read a wrong byte at offset %llu", k,
                         (unsigned long long)sd[k].prog.bad_at);
                result = why;
            }
        if (result != NULL)
            break;
        if (busy)
            continue;
        /* Quiet: nobody can move a byte, no run is owed. */
        if (!transfer_done(sd) || nl_conn_stranded(sd[0].conn) || nl_conn_stranded(sd[1].conn)) {
            char a[1200], b[1200];
            describe_side("client", &sd[0], a, sizeof(a));
            describe_side("server", &sd[1], b, sizeof(b));
            snprintf(why, why_len,
                     "stalled: nothing ready, no run owed, transfer unfinished or bytes held "
                     "(%zu layers, %u rounds per run); %s | %s | wire c->s %zu B queued, s->c %zu B",
                     layers, nl_conn_rounds_per_run, a, b, w[0].len, w[1].len);
            result = why;
            break;
        }
        /* Done: the programs that waited for an answer close now. */
        bool closing = false;
        for (int k = 0; k < 2; k++)
            if (sd[k].prog.fd >= 0) {
                close(sd[k].prog.fd);
                sd[k].prog.fd = -1;
                closing = true;
            }
        if (!closing && sd[0].conn->state == NL_CONN_DONE && sd[1].conn->state == NL_CONN_DONE)
            break;
        if (!closing) {
            snprintf(why, why_len, "both programs closed, yet the connections are in states %d "
                     "and %d with nothing to do", (int)sd[0].conn->state, (int)sd[1].conn->state);
            result = why;
            break;
        }
    }
    if (steps == MAX_STEPS && result == NULL) {
        snprintf(why, why_len, "no end after %d steps", MAX_STEPS);
        result = why;
    }
    for (int k = 0; k < 2; k++) {
        if (sd[k].conn->state != NL_CONN_DONE && result == NULL) {
            snprintf(why, why_len, "side %d never finished", k);
            result = why;
        }
        if (sd[k].prog.fd >= 0)
            close(sd[k].prog.fd);
        close(sd[k].tcp_test_end);
        nl_conn_free(sd[k].conn);
    }
    free(queues);
    return result;
}

static uint64_t first_seed;
static unsigned cases;

static void adversarial_cases_deliver_every_byte_and_strand_none(void)
{
    char why[4096];
    for (unsigned k = 0; k < cases; k++) {
        uint64_t seed = first_seed + k;
        const char *err = run_case(seed, why, sizeof(why));
        CHECK(err == NULL, "seed %llu (replay: NESTLS_RELAY_SEED=%llu NESTLS_RELAY_CASES=1): %s",
              (unsigned long long)seed, (unsigned long long)seed, err);
    }
    printf("# %u seeded cases from seed %llu\n", cases, (unsigned long long)first_seed);
}

int main(void)
{
    if (!unit_certs_and_tmpdir(certs, tmpdir))
        return 1;
    nl_real_bind();
    nl_log_configure(NL_LOG_ERROR, "stderr");
    for (size_t n = 1; n <= NL_MAX_LAYERS; n++)
        for (int v = 0; v < 2; v++)
            if ((policies[n][v] = load_policy(n, v)) == NULL) {
                printf("Bail out! policy with %zu layers did not load\n", n);
                return 1;
            }
    nl_policy = policies[1][0];
    const char *s = getenv("NESTLS_RELAY_SEED"), *c = getenv("NESTLS_RELAY_CASES");
    first_seed = s ? strtoull(s, NULL, 10) : 1;
    cases = c ? (unsigned)strtoul(c, NULL, 10) : 3000;
    RUN(adversarial_cases_deliver_every_byte_and_strand_none);
    for (size_t n = 1; n <= NL_MAX_LAYERS; n++)
        for (int v = 0; v < 2; v++)
            nl_policy_free(policies[n][v]);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", tmpdir);
    return unit_summary();
}
