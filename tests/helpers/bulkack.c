/* bulkack: bulk transfers that must arrive whole, or say where they stalled.
 *
 *   bulkack recv PORT COUNT PLAN
 *   bulkack send HOST PORT COUNT PLAN [STALL_SECONDS [SECONDS]]
 *
 * The receiver listens on 127.0.0.1:PORT (0: the kernel picks; "port N"
 * is printed) and takes COUNT connections one after the other; the sender
 * makes them. PLAN says what each transfer is, and both ends must be given
 * the same one:
 *   SIZE (64M, 100000, ...): SIZE bytes up, written in 64 KiB write()
 *       calls, then the sender waits for the receiver's one-line answer
 *       (the shape of the three-layer stall once seen: nothing more is
 *       written until the answer comes);
 *   random:SEED: per transfer, sizes up and down drawn from SEED (0 to
 *       8 MiB up, 0 to 2 MiB down, both log-uniform), random write sizes,
 *       and one of three endings:
 *         ack   the sender waits for "ok" plus the down bytes, then closes;
 *         half  the sender shuts down writing (SHUT_WR) at once, then reads
 *               the down bytes and the receiver's EOF;
 *         close the sender closes at once; the receiver must still get
 *               every byte, then EOF.
 * Every byte is checked against the test stream (pattern.h; the down
 * direction is the stream from offset 2^40), so a lost, repeated or
 * reordered byte fails the transfer as surely as a SHA-256 would.
 * Each connection starts with the transfer's number (8 bytes, before the
 * up bytes): a server wrapped by nestls accepts connections in the order
 * their layers come up, and a "close" transfer does not wait for the
 * receiver, so the next one may be accepted first.
 *
 * The sender stops early, after a whole transfer, once SECONDS have passed
 * (the receiver prints "done K" after each transfer, to be waited for).
 * Either end that waits STALL_SECONDS (default 20) without a byte prints
 * "stall in transfer K: ..." and exits 3; a wrong byte or early EOF exits
 * 1; "ok COUNT" and exit 0 when all are done. Plaintext only: run it under
 * nestls to put layers around it. */
#define _GNU_SOURCE
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "netutil.h"
#include "pattern.h"

#define CHUNK (64 * 1024)
#define DOWN_BASE (1ULL << 40)

enum ending { ACK, HALF, CLOSE };
static const char *ending_name[] = {"ack", "half", "close"};

struct transfer {
    long long up, down;
    enum ending ending;
    uint64_t rng; /* write sizes */
};

static int stall_ms = 20000;
static long run_ms; /* the sender's time bound, or 0 */

static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* 0, or a size between 1 and max, log-uniform. */
static long long log_uniform(uint64_t *s, long long max)
{
    if (next_random(s) % 8 == 0)
        return 0;
    int bits = 1 + (int)(next_random(s) % 63 % (64 - __builtin_clzll((uint64_t)max)));
    long long n = (long long)(next_random(s) & ((1ULL << bits) - 1)) + 1;
    return n > max ? max : n;
}

/* What transfer k of PLAN is; false when PLAN is not understood. */
static bool plan_of(const char *plan, long k, struct transfer *t)
{
    if (strncmp(plan, "random:", 7) == 0) {
        uint64_t s = strtoull(plan + 7, NULL, 10) * 1000003ULL + (uint64_t)k;
        t->up = log_uniform(&s, 8LL << 20);
        t->down = log_uniform(&s, 2LL << 20);
        t->ending = (enum ending)(next_random(&s) % 3);
        if (t->ending == CLOSE)
            t->down = 0;
        t->rng = next_random(&s);
        return true;
    }
    *t = (struct transfer){.up = pattern_parse_size(plan), .ending = ACK};
    return t->up >= 0;
}

/* Wait until fd is readable; false (and a "stall" line) after stall_ms. */
static bool wait_readable(int fd, long k, const char *what, long long done, long long of)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    while ((r = poll(&p, 1, stall_ms)) < 0 && errno == EINTR)
        ;
    if (r == 0)
        printf("stall in transfer %ld: %s: %lld of %lld bytes after %d s without one\n", k + 1,
               what, done, of, stall_ms / 1000);
    return r > 0;
}

/* Read exactly n bytes of the stream at base and check each one; then,
 * with want_eof, EOF. 0, 1 (wrong or missing bytes), 3 (stall). */
static int read_stream(int fd, long k, const char *what, long long n, uint64_t base, bool want_eof)
{
    static unsigned char buf[CHUNK], expect[CHUNK];
    long long got = 0;
    while (got < n || want_eof) {
        if (!wait_readable(fd, k, what, got, n))
            return 3;
        size_t room = got < n ? (size_t)(n - got < CHUNK ? n - got : CHUNK) : CHUNK;
        ssize_t r = read(fd, buf, room);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0 && got == n)
            return 0; /* the EOF wanted */
        if (r <= 0) {
            printf("transfer %ld: %s: %s after %lld of %lld bytes\n", k + 1, what,
                   r == 0 ? "EOF" : strerror(errno), got, n);
            return 1;
        }
        if (got + r > n) {
            printf("transfer %ld: %s: more than the %lld bytes sent\n", k + 1, what, n);
            return 1;
        }
        pattern_fill(expect, (size_t)r, base + (uint64_t)got);
        if (memcmp(buf, expect, (size_t)r) != 0) {
            ssize_t at = 0;
            while (buf[at] == expect[at])
                at++;
            printf("transfer %ld: %s: wrong byte at offset %lld\n", k + 1, what, got + at);
            return 1;
        }
        got += r;
    }
    return 0;
}

/* Write n bytes of the stream at base, in 64 KiB calls or, with rng, in
 * random sizes (1 byte to 256 KiB). */
static int write_stream(int fd, long long n, uint64_t base, uint64_t *rng)
{
    static unsigned char buf[4 * CHUNK];
    for (long long off = 0; off < n;) {
        size_t len = rng ? 1 + next_random(rng) % (next_random(rng) % 2 ? sizeof(buf) : 1500)
                         : CHUNK;
        if ((long long)len > n - off)
            len = (size_t)(n - off);
        pattern_fill(buf, len, base + (uint64_t)off);
        if (write_all(fd, buf, len) != 0) {
            printf("write: %s after %lld of %lld bytes\n", strerror(errno), off, n);
            return 1;
        }
        off += (long long)len;
    }
    return 0;
}

static int serve_one(int fd, long k, const struct transfer *t, bool random_writes)
{
    uint64_t rng = t->rng ^ 0x5555;
    int rc = read_stream(fd, k, "up", t->up, 0, t->ending != ACK);
    if (rc != 0)
        return rc;
    if (t->ending == ACK && write_all(fd, "ok\n", 3) != 0)
        return 1;
    if (write_stream(fd, t->down, DOWN_BASE, random_writes ? &rng : NULL) != 0)
        return 1;
    if (t->ending == ACK) /* the sender closes once it has all */
        return read_stream(fd, k, "sender's close", 0, 0, true);
    return 0;
}

/* The transfer number a connection starts with. */
static bool read_index(int fd, long *k)
{
    uint64_t v;
    size_t got = 0;
    while (got < sizeof(v)) {
        if (!wait_readable(fd, -1, "transfer number", (long long)got, sizeof(v)))
            return false;
        ssize_t r = read(fd, (char *)&v + got, sizeof(v) - got);
        if (r <= 0) {
            printf("connection: no transfer number (%s)\n", r == 0 ? "EOF" : strerror(errno));
            return false;
        }
        got += (size_t)r;
    }
    *k = (long)v;
    return true;
}

static int do_recv(const char *port, long count, const char *plan)
{
    int srv = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    if (bind(srv, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(srv, 16) != 0 ||
        getsockname(srv, (struct sockaddr *)&a, &alen) != 0) {
        perror("bulkack recv: listen");
        return 1;
    }
    printf("port %d\n", ntohs(a.sin_port));
    for (long done = 0; done < count; done++) {
        int fd = accept(srv, NULL, NULL);
        if (fd < 0) {
            perror("bulkack recv: accept");
            return 1;
        }
        long k;
        struct transfer t;
        if (!read_index(fd, &k) || k < 0 || k >= count || !plan_of(plan, k, &t)) {
            close(fd);
            return 1;
        }
        int rc = serve_one(fd, k, &t, strncmp(plan, "random:", 7) == 0);
        close(fd);
        if (rc == 0)
            printf("done %ld\n", done + 1);
        if (rc != 0) {
            printf("(transfer %ld: %lld up, %lld down, ending %s)\n", k + 1, t.up, t.down,
                   ending_name[t.ending]);
            return rc;
        }
    }
    printf("ok %ld\n", count);
    return 0;
}

static int send_one(int fd, long k, struct transfer *t, bool random_writes)
{
    if (write_stream(fd, t->up, 0, random_writes ? &t->rng : NULL) != 0)
        return 1;
    if (t->ending == CLOSE)
        return 0;
    if (t->ending == HALF) {
        shutdown(fd, SHUT_WR);
        return read_stream(fd, k, "down", t->down, DOWN_BASE, true);
    }
    char ok[3];
    size_t got = 0;
    while (got < sizeof(ok)) {
        if (!wait_readable(fd, k, "answer", (long long)got, sizeof(ok)))
            return 3;
        ssize_t r = read(fd, ok + got, sizeof(ok) - got);
        if (r <= 0) {
            printf("transfer %ld: no answer (%s)\n", k + 1, r == 0 ? "EOF" : strerror(errno));
            return 1;
        }
        got += (size_t)r;
    }
    if (memcmp(ok, "ok\n", 3) != 0) {
        printf("transfer %ld: wrong answer\n", k + 1);
        return 1;
    }
    return read_stream(fd, k, "down", t->down, DOWN_BASE, false);
}

static int do_send(const char *host, const char *port, long count, const char *plan)
{
    long until = run_ms ? now_ms() + run_ms : 0;
    for (long k = 0; k < count; k++) {
        if (until && now_ms() >= until) {
            count = k;
            break;
        }
        struct transfer t;
        if (!plan_of(plan, k, &t))
            return 2;
        struct addrinfo *ai;
        int fd = tcp_socket_for("bulkack send", host, port, 0, &ai);
        if (fd < 0)
            return 1;
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
        if (rc != 0) {
            perror("bulkack send: connect");
            return 1;
        }
        uint64_t index = (uint64_t)k;
        rc = write_all(fd, &index, sizeof(index)) != 0 ? 1
                                                         : send_one(fd, k, &t, strncmp(plan, "random:", 7) == 0);
        close(fd);
        if (rc != 0) {
            printf("(transfer %ld: %lld up, %lld down, ending %s)\n", k + 1, t.up, t.down,
                   ending_name[t.ending]);
            return rc;
        }
    }
    printf("ok %ld\n", count);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 5 && strcmp(argv[1], "recv") == 0)
        return do_recv(argv[2], atol(argv[3]), argv[4]);
    if (argc >= 6 && argc <= 8 && strcmp(argv[1], "send") == 0) {
        if (argc >= 7)
            stall_ms = atoi(argv[6]) * 1000;
        if (argc == 8)
            run_ms = atol(argv[7]) * 1000;
        return do_send(argv[2], argv[3], atol(argv[4]), argv[5]);
    }
    fprintf(stderr, "usage: bulkack recv PORT COUNT PLAN | send HOST PORT COUNT PLAN [STALL_S [SECONDS]]\n");
    return 2;
}
