/* Reading and writing one connection, plaintext or TLS, blocking or not;
 * connecting (TCP, then the TLS handshake when asked); small utilities. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nlb.h"

double nlb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void nlb_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nlbench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

void nlb_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        nlb_die("fcntl: %s", strerror(errno));
}

void nlb_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

uint64_t nlb_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* What an SSL_* result means for the caller. */
static ssize_t ssl_result(SSL *ssl, int r, int *want)
{
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        *want = EPOLLIN;
        return NLB_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = EPOLLOUT;
        return NLB_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        return NLB_ERR;
    }
}

ssize_t nlb_read(struct nlb_sock *s, void *buf, size_t len, int *want)
{
    if (s->ssl != NULL) {
        size_t got = 0;
        int r = SSL_read_ex(s->ssl, buf, len, &got);
        return r == 1 ? (ssize_t)got : ssl_result(s->ssl, r, want);
    }
    for (;;) {
        ssize_t n = read(s->fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            *want = EPOLLIN;
            return NLB_AGAIN;
        }
        return NLB_ERR;
    }
}

ssize_t nlb_write(struct nlb_sock *s, const void *buf, size_t len, int *want)
{
    if (s->ssl != NULL) {
        size_t put = 0;
        int r = SSL_write_ex(s->ssl, buf, len, &put);
        return r == 1 ? (ssize_t)put : ssl_result(s->ssl, r, want);
    }
    for (;;) {
        ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            *want = EPOLLOUT;
            return NLB_AGAIN;
        }
        return NLB_ERR;
    }
}

/* Blocking forms (the socket is blocking). 0, or -1 on error or EOF. */
int nlb_read_full(struct nlb_sock *s, void *buf, size_t len)
{
    char *p = buf;
    int want;
    while (len > 0) {
        ssize_t n = nlb_read(s, p, len, &want);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int nlb_write_full(struct nlb_sock *s, const void *buf, size_t len)
{
    const char *p = buf;
    int want;
    while (len > 0) {
        ssize_t n = nlb_write(s, p, len, &want);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Blocking TCP connect to host:port, then (ctx != NULL) the TLS handshake,
 * offering session when given. The socket stays blocking. 0 or -1. */
int nlb_connect(const struct nlb_opts *o, int port, SSL_CTX *ctx, SSL_SESSION *session,
                struct nlb_sock *out)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        nlb_die("--host must be an IPv4 address: %s", o->host);
    out->ssl = NULL;
    out->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (out->fd < 0) {
        fprintf(stderr, "nlbench: socket: %s\n", strerror(errno));
        return -1;
    }
    /* Latency tests need it; every path gets the same. */
    int one = 1;
    setsockopt(out->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(out->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "nlbench: connect 127.0.0.1:%d: %s\n", port, strerror(errno));
        close(out->fd);
        return -1;
    }
    if (ctx == NULL)
        return 0;
    out->ssl = SSL_new(ctx);
    if (out->ssl == NULL || SSL_set_fd(out->ssl, out->fd) != 1)
        nlb_die("SSL_new");
    if (o->name != NULL) {
        SSL_set_tlsext_host_name(out->ssl, o->name);
        SSL_set1_host(out->ssl, o->name);
    }
    if (session != NULL)
        SSL_set_session(out->ssl, session);
    if (SSL_connect(out->ssl) != 1) {
        fprintf(stderr, "nlbench: TLS handshake with port %d failed\n", port);
        ERR_print_errors_fp(stderr);
        nlb_close(out);
        return -1;
    }
    return 0;
}

/* TLS: send close_notify (without waiting for the peer's), then close. */
void nlb_close(struct nlb_sock *s)
{
    if (s->ssl != NULL) {
        SSL_shutdown(s->ssl);
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

/* The CPU this process used (all its threads: under nestls, the engine
 * thread too), for the driver's CPU-per-GiB figure. */
void nlb_print_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("cpu_s %.3f\n", (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
}
