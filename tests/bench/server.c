/* `nlbench serve`: the sink + echo server of nlb.h's protocol, on
 * --listen N ports of 127.0.0.1 picked by the kernel (printed as
 * "port P" lines, then "ready"). One thread and level-triggered epoll, so
 * an idle connection costs this process almost nothing: the memory the
 * benchmark measures per connection is the path's, not the server's. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nlb.h"

struct conn {
    bool listener;
    struct nlb_sock s;
    bool handshaken;
    uint32_t events;    /* current epoll interest */
    int mode;           /* 0 (between requests), 'S' or 'E' */
    unsigned char hdr[8];
    int hdr_got;
    uint64_t expect, left; /* sink: announced and remaining bytes */
    uint64_t good;         /* sink: leading bytes that matched the pattern */
    unsigned char *out; /* what a write could not take yet */
    size_t out_len, out_off;
};

static int ep;
static SSL_CTX *server_ctx;
static unsigned char buf[NLB_CHUNK];

static void drop(struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->s.fd, NULL);
    nlb_close(&c->s);
    free(c->out);
    free(c);
}

static void want(struct conn *c, uint32_t ev)
{
    if (c->events == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->s.fd, &e);
    c->events = ev;
}

/* Write what is queued. 1: all gone; 0: would block (interest set); -1. */
static int flush(struct conn *c)
{
    while (c->out_len > 0) {
        int w = 0;
        ssize_t n = nlb_write(&c->s, c->out + c->out_off, c->out_len, &w);
        if (n == NLB_AGAIN) {
            want(c, (uint32_t)w);
            return 0;
        }
        if (n <= 0)
            return -1;
        c->out_off += (size_t)n;
        c->out_len -= (size_t)n;
    }
    free(c->out);
    c->out = NULL;
    c->out_off = 0;
    return 1;
}

/* Send data, or queue what the socket does not take now. */
static int emit(struct conn *c, const unsigned char *data, size_t len)
{
    if (c->out_len == 0) {
        int w = 0;
        ssize_t n = nlb_write(&c->s, data, len, &w);
        if (n == NLB_ERR || n == 0)
            return -1;
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
    }
    if (len == 0)
        return 0;
    unsigned char *grown = realloc(c->out, c->out_off + c->out_len + len);
    if (grown == NULL)
        return -1;
    c->out = grown;
    memcpy(c->out + c->out_off + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

/* Act on n bytes the client sent. */
static int consume(struct conn *c, const unsigned char *p, size_t n)
{
    while (n > 0) {
        if (c->mode == 0) {
            c->mode = *p;
            if (c->mode == 'S') {
                c->hdr_got = 0;
                p++, n--;
                continue;
            }
            if (c->mode != 'E')
                return -1;
        }
        if (c->mode == 'E')
            return emit(c, p, n);
        if (c->hdr_got < 8) { /* 'S': the length first */
            c->hdr[c->hdr_got++] = *p++;
            n--;
            if (c->hdr_got == 8) {
                c->expect = c->left = nlb_get_u64(c->hdr);
                c->good = 0;
            }
        } else {
            size_t take = n < c->left ? n : (size_t)c->left;
            uint64_t at = c->expect - c->left; /* stream offset of p */
            if (c->good == at)                 /* no mismatch yet: keep checking */
                c->good += nlb_pattern_match(at, p, take);
            c->left -= take;
            p += take;
            n -= take;
        }
        if (c->hdr_got == 8 && c->left == 0) {
            unsigned char answer[NLB_ANSWER];
            nlb_put_u64(answer, c->expect);
            nlb_put_u64(answer + 8, c->good);
            c->mode = 0; /* answered; another request may follow */
            if (emit(c, answer, sizeof(answer)) < 0)
                return -1;
        }
    }
    return 0;
}

static void serve_conn(struct conn *c)
{
    int w = 0;
    if (!c->handshaken) {
        int r = SSL_do_handshake(c->s.ssl);
        if (r != 1) {
            int e = SSL_get_error(c->s.ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                want(c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
            else
                drop(c);
            return;
        }
        c->handshaken = true;
    }
    for (;;) {
        int f = flush(c);
        if (f < 0) {
            drop(c);
            return;
        }
        if (f == 0)
            return; /* read nothing more until the client takes its echo */
        ssize_t n = nlb_read(&c->s, buf, sizeof(buf), &w);
        if (n == NLB_AGAIN) {
            want(c, (uint32_t)w);
            return;
        }
        if (n <= 0 || consume(c, buf, (size_t)n) < 0) {
            drop(c);
            return;
        }
    }
}

static void accept_all(struct conn *l)
{
    for (;;) {
        int fd = accept4(l->s.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "nlbench serve: accept: %s\n", strerror(errno));
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->s.fd = fd;
        c->handshaken = server_ctx == NULL;
        if (server_ctx != NULL) {
            c->s.ssl = SSL_new(server_ctx);
            if (c->s.ssl == NULL || SSL_set_fd(c->s.ssl, fd) != 1)
                nlb_die("SSL_new");
            SSL_set_accept_state(c->s.ssl);
        }
        c->events = EPOLLIN;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0)
            nlb_die("epoll_ctl: %s", strerror(errno));
    }
}

static void listen_one(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4096) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        nlb_die("listen: %s", strerror(errno));
    struct conn *l = calloc(1, sizeof(*l));
    if (l == NULL)
        nlb_die("out of memory");
    l->listener = true;
    l->s.fd = fd;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = l};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0)
        nlb_die("epoll_ctl: %s", strerror(errno));
    printf("port %d\n", ntohs(sa.sin_port));
}

int nlb_serve(const struct nlb_opts *o)
{
    signal(SIGPIPE, SIG_IGN);
    server_ctx = nlb_server_ctx(o);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        nlb_die("epoll_create1: %s", strerror(errno));
    for (int i = 0; i < (o->listen_n > 0 ? o->listen_n : 1); i++)
        listen_one();
    printf("ready\n");
    fflush(stdout);
    struct epoll_event ev[256];
    for (;;) {
        int n = epoll_wait(ep, ev, 256, -1);
        if (n < 0 && errno != EINTR)
            nlb_die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct conn *c = ev[i].data.ptr;
            if (c->listener)
                accept_all(c);
            else
                serve_conn(c);
        }
    }
}
