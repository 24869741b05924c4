/* `nlbench bulk` and `nlbench pingpong`: N concurrent connections driven by
 * one thread with epoll. Connections are set up first (blocking connect and
 * handshake, one after the other), so the timed part measures only the
 * data phase.
 *
 *   bulk:     each connection announces and sends its share of --bytes of
 *             the pattern stream (pattern.c); the clock stops when the last
 *             connection has the server's answer, which says it received
 *             and checked every byte: delivered, end to end throughput.
 *   pingpong: every connection keeps one byte in flight (a counter, so a
 *             stale or foreign echo is caught); each round trip is one
 *             sample, until --rounds samples or --seconds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "nlb.h"

struct peer {
    struct nlb_sock s;
    uint64_t sent, left;  /* bulk: stream offset, bytes still to send */
    unsigned char ack[NLB_ANSWER]; /* bulk: the server's answer */
    int ack_got;
    unsigned char seq;    /* pingpong: the byte in flight */
    double t0;            /* pingpong: when the byte in flight left */
    bool busy;            /* has something outstanding */
    uint32_t events;
};

static struct peer *open_peers(const struct nlb_opts *o, SSL_CTX *ctx)
{
    struct peer *p = calloc((size_t)o->conns, sizeof(*p));
    if (p == NULL)
        nlb_die("out of memory");
    for (int i = 0; i < o->conns; i++) {
        if (nlb_connect(o, o->ports[i % o->n_ports], ctx, NULL, &p[i].s) != 0)
            nlb_die("connection %d of %d failed", i + 1, o->conns);
    }
    return p;
}

static void watch(int ep, struct peer *p, uint32_t ev)
{
    if (p->events == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = p};
    if (epoll_ctl(ep, p->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, p->s.fd, &e) != 0)
        nlb_die("epoll_ctl: %s", strerror(errno));
    p->events = ev;
}

/* Bulk: advance one connection. 1 when it has its answer. */
static int bulk_step(int ep, struct peer *p)
{
    int w = EPOLLOUT;
    while (p->left > 0) {
        /* After a partial or retried TLS write the pointer moves but the
         * bytes at it are the same (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
        size_t chunk = p->left < NLB_CHUNK ? (size_t)p->left : NLB_CHUNK;
        ssize_t n = nlb_write(&p->s, nlb_pattern_at(p->sent), chunk, &w);
        if (n == NLB_AGAIN) {
            watch(ep, p, (uint32_t)w);
            return 0;
        }
        if (n <= 0)
            nlb_die("bulk: write failed");
        p->left -= (uint64_t)n;
        p->sent += (uint64_t)n;
    }
    while (p->ack_got < NLB_ANSWER) {
        ssize_t n = nlb_read(&p->s, p->ack + p->ack_got, (size_t)(NLB_ANSWER - p->ack_got), &w);
        if (n == NLB_AGAIN) {
            watch(ep, p, (uint32_t)w);
            return 0;
        }
        if (n <= 0)
            nlb_die("bulk: the server's answer did not come");
        p->ack_got += (int)n;
    }
    return 1;
}

int nlb_bulk(const struct nlb_opts *o)
{
    SSL_CTX *ctx = nlb_client_ctx(o);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct peer *p = open_peers(o, ctx);
    nlb_pattern_at(0); /* builds the pattern before the clock starts */
    uint64_t share = o->bytes / (uint64_t)o->conns;
    for (int i = 0; i < o->conns; i++) {
        p[i].left = i == o->conns - 1 ? o->bytes - share * (uint64_t)(o->conns - 1) : share;
        unsigned char hdr[9] = {'S'};
        nlb_put_u64(hdr + 1, p[i].left);
        if (nlb_write_full(&p[i].s, hdr, sizeof(hdr)) != 0)
            nlb_die("bulk: header write failed");
        nlb_set_nonblock(p[i].s.fd);
    }
    double t0 = nlb_now();
    int done = 0;
    for (int i = 0; i < o->conns; i++)
        done += bulk_step(ep, &p[i]);
    struct epoll_event ev[256];
    while (done < o->conns) {
        int n = epoll_wait(ep, ev, 256, -1);
        if (n < 0 && errno != EINTR)
            nlb_die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct peer *q = ev[i].data.ptr;
            if (q->ack_got < NLB_ANSWER && bulk_step(ep, q))
                done++;
        }
    }
    double secs = nlb_now() - t0;
    uint64_t counted = 0, checked = 0;
    for (int i = 0; i < o->conns; i++) {
        uint64_t got = nlb_get_u64(p[i].ack), good = nlb_get_u64(p[i].ack + 8);
        if (got != p[i].sent || good != p[i].sent)
            nlb_die("bulk: connection %d sent %llu bytes; the server received %llu, the first "
                    "%llu of them as sent", i + 1, (unsigned long long)p[i].sent,
                    (unsigned long long)got, (unsigned long long)good);
        counted += got;
        checked += good;
        nlb_close(&p[i].s);
    }
    if (counted != o->bytes || checked != o->bytes)
        nlb_die("bulk: the server counted %llu bytes of %llu", (unsigned long long)counted,
                (unsigned long long)o->bytes);
    printf("bytes %llu\nchecked %llu\nconns %d\nsecs %.6f\nmbps %.1f\n",
           (unsigned long long)o->bytes, (unsigned long long)checked, o->conns, secs,
           (double)o->bytes / secs / 1e6);
    nlb_print_cpu();
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void ping(int ep, struct peer *p)
{
    int w = 0;
    p->seq++;
    p->t0 = nlb_now();
    if (nlb_write(&p->s, &p->seq, 1, &w) != 1)
        nlb_die("pingpong: write failed"); /* one byte always fits */
    p->busy = true;
    watch(ep, p, EPOLLIN);
}

int nlb_pingpong(const struct nlb_opts *o)
{
    SSL_CTX *ctx = nlb_client_ctx(o);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct peer *p = open_peers(o, ctx);
    for (int i = 0; i < o->conns; i++) { /* echo mode, and the path is up end to end */
        char c = 'E';
        if (nlb_write_full(&p[i].s, &c, 1) != 0 || nlb_read_full(&p[i].s, &c, 1) != 0 ||
            c != 'E')
            nlb_die("pingpong: no echo on connection %d", i + 1);
        nlb_set_nonblock(p[i].s.fd);
    }
    /* The first rounds warm caches and the scheduler: not counted. */
    long warm = o->conns > 100 ? o->conns : 100;
    long total = o->rounds + warm, started = 0, done = 0, kept = 0;
    double *rtt = malloc(sizeof(double) * (size_t)o->rounds);
    if (rtt == NULL)
        nlb_die("out of memory");
    double t_start = nlb_now(), deadline = t_start + o->seconds, t_warm = t_start;
    for (int i = 0; i < o->conns && started < total; i++, started++)
        ping(ep, &p[i]);
    struct epoll_event ev[256];
    while (done < started) {
        int n = epoll_wait(ep, ev, 256, -1);
        if (n < 0 && errno != EINTR)
            nlb_die("epoll_wait: %s", strerror(errno));
        double now = nlb_now();
        for (int i = 0; i < n; i++) {
            struct peer *q = ev[i].data.ptr;
            unsigned char c;
            int w = 0;
            ssize_t r = nlb_read(&q->s, &c, 1, &w);
            if (r == NLB_AGAIN)
                continue;
            if (r != 1)
                nlb_die("pingpong: the echo did not come");
            if (c != q->seq)
                nlb_die("pingpong: sent byte %u, the echo was %u", q->seq, c);
            now = nlb_now();
            q->busy = false;
            done++;
            if (done == warm)
                t_warm = now;
            else if (done > warm && kept < o->rounds)
                rtt[kept++] = (now - q->t0) * 1e6;
            if (started < total && now < deadline) {
                ping(ep, q);
                started++;
            }
        }
    }
    double secs = nlb_now() - t_warm;
    if (kept == 0)
        nlb_die("pingpong: no round trip measured within %.1f s", o->seconds);
    qsort(rtt, (size_t)kept, sizeof(double), cmp_double);
    double sum = 0;
    for (long i = 0; i < kept; i++)
        sum += rtt[i];
    printf("conns %d\nrounds %ld\nsecs %.6f\nrtt_med_us %.1f\nrtt_p99_us %.1f\n"
           "rtt_mean_us %.1f\n", o->conns, kept, secs, rtt[kept / 2],
           rtt[(long)((double)kept * 0.99)], sum / (double)kept);
    for (int i = 0; i < o->conns; i++)
        nlb_close(&p[i].s);
    nlb_print_cpu();
    return 0;
}
