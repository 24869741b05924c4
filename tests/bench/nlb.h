/* nlbench: the project's own load tool for `make bench` (tests/bench/).
 *
 * One binary, one subcommand per role: `serve` (sink + echo server on one or
 * more ports) and the clients `bulk`, `pingpong`, `connrate` and `hold`.
 * Everything is plaintext unless --tls is given; then the program speaks
 * TLS 1.3 itself with OpenSSL (the "in-process OpenSSL" reference row).
 *
 * Wire protocol (the first byte a client sends picks the mode):
 *   'S' + 8-byte little-endian length N: the server reads N bytes of the
 *       pattern stream (pattern.c), then answers with two 8-byte
 *       little-endian counts: bytes received, and bytes that matched the
 *       pattern before the first one that did not. The client wants N and
 *       N. No half-close is needed, so every relay on the path behaves the
 *       same;
 *   'E': the server echoes every byte, the 'E' included, until EOF. */
#ifndef NLB_H
#define NLB_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The one suite and key-exchange group every path in the benchmark is
 * configured for (tests/bench/paths.py says the same). P-256, not X25519:
 * socat's server side forces P-256 whatever OpenSSL's configuration says. */
#define NLB_SUITE "TLS_AES_128_GCM_SHA256"
#define NLB_GROUPS "P-256"

/* Largest single read or write of the stream clients and the server. */
#define NLB_CHUNK (256 * 1024)
/* Period of the bulk payload (a prime: see pattern.c). */
#define NLB_PATTERN_PERIOD 65521
/* Size of the sink's answer to an 'S' request. */
#define NLB_ANSWER 16

#define NLB_MAX_PORTS 1024

struct nlb_opts {
    const char *host;
    int ports[NLB_MAX_PORTS]; /* --port, repeated or from --ports-file */
    int n_ports;
    bool tls;                  /* speak TLS in-process */
    const char *ca, *cert, *key, *name;
    bool resume;               /* connrate: resume the previous session */
    int conns;                 /* concurrent connections (bulk, pingpong, hold) */
    uint64_t bytes;            /* bulk: total over all connections */
    long rounds;               /* pingpong: total round trips (all connections) */
    double seconds;            /* time bound of pingpong and connrate */
    int listen_n;              /* serve: how many ports to listen on */
};

/* A connection, plaintext (ssl == NULL) or TLS. */
struct nlb_sock {
    int fd;
    SSL *ssl;
};

/* Results of the non-blocking calls below. */
#define NLB_AGAIN (-2) /* would block: wait for *want (EPOLLIN or EPOLLOUT) */
#define NLB_ERR (-1)

/* tls.c */
SSL_CTX *nlb_client_ctx(const struct nlb_opts *o);
SSL_CTX *nlb_server_ctx(const struct nlb_opts *o);

/* pattern.c: the bulk payload and its check at the sink */
const unsigned char *nlb_pattern_at(uint64_t offset); /* NLB_CHUNK bytes from offset */
size_t nlb_pattern_match(uint64_t offset, const unsigned char *data, size_t len);

/* io.c */
double nlb_now(void);
void nlb_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void nlb_set_nonblock(int fd);
void nlb_put_u64(unsigned char *p, uint64_t v); /* little-endian, as on the wire */
uint64_t nlb_get_u64(const unsigned char *p);
ssize_t nlb_read(struct nlb_sock *s, void *buf, size_t len, int *want);
ssize_t nlb_write(struct nlb_sock *s, const void *buf, size_t len, int *want);
int nlb_read_full(struct nlb_sock *s, void *buf, size_t len);
int nlb_write_full(struct nlb_sock *s, const void *buf, size_t len);
int nlb_connect(const struct nlb_opts *o, int port, SSL_CTX *ctx, SSL_SESSION *session,
                struct nlb_sock *out);
void nlb_close(struct nlb_sock *s);
void nlb_print_cpu(void);

/* server.c */
int nlb_serve(const struct nlb_opts *o);

/* stream.c: bulk and pingpong over N concurrent connections */
int nlb_bulk(const struct nlb_opts *o);
int nlb_pingpong(const struct nlb_opts *o);

/* sequential.c: connrate and hold */
int nlb_connrate(const struct nlb_opts *o);
int nlb_hold(const struct nlb_opts *o);

#endif
