/* iozoo HOST PORT: a plaintext client that uses a wrapped connection the
 * many ways real programs do, against a byte-echo server. Prints one line
 * per check ("ok NAME" / "not ok NAME: why") and exits with the number of
 * failed checks. It knows nothing of TLS. */
#define _GNU_SOURCE /* sendfile, SO_DOMAIN, SO_PROTOCOL */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *name, const char *fmt, ...)
{
    if (ok) {
        printf("ok %s\n", name);
    } else {
        va_list ap;
        va_start(ap, fmt);
        printf("not ok %s: ", name);
        vprintf(fmt, ap);
        printf("\n");
        va_end(ap);
        failures++;
    }
    fflush(stdout);
}

/* Read exactly n bytes (blocking descriptor). */
static int read_exact(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int connect_to(const char *host, const char *port, int flags, struct addrinfo **out)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | flags, 0);
    if (fd < 0)
        return -1;
    int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (r != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    *out = ai;
    return fd;
}

static void socket_facts(int fd, const struct addrinfo *ai)
{
    struct sockaddr_storage peer = {0}, local = {0};
    socklen_t pl = sizeof(peer), ll = sizeof(local);
    check(getpeername(fd, (struct sockaddr *)&peer, &pl) == 0 && pl == ai->ai_addrlen &&
              memcmp(&peer, ai->ai_addr, pl) == 0,
          "getpeername_is_the_tcp_peer", "family %d len %u", peer.ss_family, pl);
    check(getsockname(fd, (struct sockaddr *)&local, &ll) == 0 && local.ss_family == ai->ai_family,
          "getsockname_is_tcp", "family %d", local.ss_family);
    int v = 0;
    socklen_t l = sizeof(v);
    check(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) == 0 && v == ai->ai_family, "so_domain_is_inet",
          "got %d", v);
    l = sizeof(v);
    check(getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l) == 0 && v == IPPROTO_TCP, "so_protocol_is_tcp",
          "got %d", v);
    l = sizeof(v);
    check(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) == 0 && v == SOCK_STREAM, "so_type_is_stream",
          "got %d", v);
    int one = 1;
    v = 0;
    l = sizeof(v);
    check(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0 &&
              getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l) == 0 && v != 0,
          "tcp_nodelay_reaches_the_tcp_socket", "errno %s value %d", strerror(errno), v);
}

static void io_calls(int fd)
{
    char buf[256];
    /* write/read */
    check(write(fd, "plain\n", 6) == 6 && read_exact(fd, buf, 6) == 0 && memcmp(buf, "plain\n", 6) == 0,
          "write_read", "%s", strerror(errno));
    /* send/recv */
    check(send(fd, "sendrecv", 8, 0) == 8 && recv(fd, buf, 8, MSG_WAITALL) == 8 &&
              memcmp(buf, "sendrecv", 8) == 0,
          "send_recv", "%s", strerror(errno));
    /* writev/readv */
    struct iovec w[2] = {{"abc", 3}, {"defgh", 5}};
    char r1[4], r2[4];
    struct iovec r[2] = {{r1, 4}, {r2, 4}};
    ssize_t n = writev(fd, w, 2);
    size_t got = 0;
    while (n == 8 && got < 8) {
        ssize_t k = readv(fd, r, 2);
        if (k <= 0)
            break;
        got += (size_t)k;
        if (got < 8) { /* rare: short read; finish with read */
            char rest[8];
            if (read_exact(fd, rest, 8 - got) != 0)
                break;
            memcpy((char *)r1 + got, rest, 8 - got < 4 ? 8 - got : 4);
            got = 8;
        }
    }
    check(n == 8 && got == 8 && memcmp(r1, "abcd", 4) == 0 && memcmp(r2, "efgh", 4) == 0, "writev_readv",
          "n=%zd got=%zu", n, got);
    /* sendmsg/recvmsg */
    struct iovec mi = {"msg!", 4};
    struct msghdr m = {.msg_iov = &mi, .msg_iovlen = 1};
    char mr[4];
    struct iovec ri = {mr, 4};
    struct msghdr rm = {.msg_iov = &ri, .msg_iovlen = 1};
    check(sendmsg(fd, &m, 0) == 4 && recvmsg(fd, &rm, MSG_WAITALL) == 4 && memcmp(mr, "msg!", 4) == 0,
          "sendmsg_recvmsg", "%s", strerror(errno));
    /* sendfile from a temporary file */
    char path[] = "/tmp/iozoo-XXXXXX";
    int tf = mkstemp(path);
    char data[100000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)('a' + i % 26);
    ssize_t wr = tf >= 0 ? write(tf, data, sizeof(data)) : -1;
    off_t off = 0;
    ssize_t sent = 0;
    while (wr == (ssize_t)sizeof(data) && sent < (ssize_t)sizeof(data)) {
        ssize_t k = sendfile(fd, tf, &off, sizeof(data) - (size_t)sent);
        if (k <= 0)
            break;
        sent += k;
    }
    static char back[100000];
    check(sent == (ssize_t)sizeof(data) && read_exact(fd, back, sizeof(back)) == 0 &&
              memcmp(back, data, sizeof(data)) == 0,
          "sendfile", "sent %zd", sent);
    if (tf >= 0) {
        close(tf);
        unlink(path);
    }
}

static void readiness(int fd)
{
    char buf[16];
    /* poll and select see the echoed bytes */
    check(write(fd, "p", 1) == 1, "write_for_poll", "%s", strerror(errno));
    struct pollfd p = {.fd = fd, .events = POLLIN};
    check(poll(&p, 1, 5000) == 1 && (p.revents & POLLIN) && read(fd, buf, 1) == 1, "poll_sees_data",
          "revents %x", p.revents);
    check(write(fd, "s", 1) == 1, "write_for_select", "%s", strerror(errno));
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(fd, &rs);
    struct timeval tv = {5, 0};
    check(fd < FD_SETSIZE && select(fd + 1, &rs, NULL, NULL, &tv) == 1 && read(fd, buf, 1) == 1,
          "select_sees_data", "%s", strerror(errno));
    /* edge-triggered epoll: one event per arrival, all bytes readable */
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    check(write(fd, "edge", 4) == 4, "write_for_epoll", "%s", strerror(errno));
    struct epoll_event out;
    size_t got = 0;
    for (int i = 0; i < 50 && got < 4; i++) {
        if (epoll_wait(ep, &out, 1, 5000) != 1)
            break;
        ssize_t k;
        while ((k = read(fd, buf + got, sizeof(buf) - got)) > 0)
            got += (size_t)k;
    }
    check(got == 4 && memcmp(buf, "edge", 4) == 0, "epoll_edge_triggered", "got %zu", got);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    close(ep);
}

static void stdio_and_dup(int fd)
{
    int d = dup(fd);
    FILE *f = fdopen(d, "r+");
    char line[64] = "";
    int ok = f != NULL && fprintf(f, "stdio line\n") > 0 && fflush(f) == 0 &&
             fgets(line, sizeof(line), f) != NULL && strcmp(line, "stdio line\n") == 0;
    check(ok, "stdio_on_fdopen_of_a_dup", "got '%s'", line);
    if (f)
        fclose(f);
    /* dup2 onto a low number keeps working */
    int low = dup2(fd, 40);
    char buf[4];
    check(low == 40 && write(40, "dup2", 4) == 4 && read_exact(fd, buf, 4) == 0 && memcmp(buf, "dup2", 4) == 0,
          "dup2_copy_works", "%s", strerror(errno));
    struct sockaddr_storage peer = {0};
    socklen_t pl = sizeof(peer);
    check(getpeername(40, (struct sockaddr *)&peer, &pl) == 0 &&
              (peer.ss_family == AF_INET || peer.ss_family == AF_INET6),
          "dup2_copy_keeps_tcp_facts", "family %d", peer.ss_family);
    close(40);
}

/* A program that closes "every descriptor" must not break its connection. */
static void close_everything_else(int fd)
{
    for (int i = 3; i < 4096; i++)
        if (i != fd)
            close(i);
    char buf[5];
    check(write(fd, "alive", 5) == 5 && read_exact(fd, buf, 5) == 0 && memcmp(buf, "alive", 5) == 0,
          "survives_closing_every_other_descriptor", "%s", strerror(errno));
}

/* A registration made before connect() must follow the socket: epoll
 * watches files, and connect() swaps the file behind the descriptor. */
static void epoll_before_connect(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        check(0, "epoll_registration_made_before_connect_follows_the_socket", "getaddrinfo");
        return;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    connect(fd, ai->ai_addr, ai->ai_addrlen);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int ok = poll(&p, 1, 10000) == 1 && write(fd, "reg", 3) == 3;
    struct epoll_event out;
    char buf[3];
    ok = ok && epoll_wait(ep, &out, 1, 10000) == 1 && out.data.fd == fd;
    for (int i = 0; ok && i < 100; i++) { /* bytes may arrive in pieces */
        ssize_t n = recv(fd, buf, 3, MSG_PEEK);
        if (n == 3)
            break;
        poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 100);
    }
    ok = ok && read(fd, buf, 3) == 3 && memcmp(buf, "reg", 3) == 0;
    check(ok, "epoll_registration_made_before_connect_follows_the_socket", "%s", strerror(errno));
    close(ep);
    close(fd);
    freeaddrinfo(ai);
}

static void nonblocking_connect(const char *host, const char *port)
{
    struct addrinfo *ai;
    int fd = connect_to(host, port, SOCK_NONBLOCK, &ai);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int err = -1;
    socklen_t l = sizeof(err);
    int ready = fd >= 0 && poll(&p, 1, 10000) == 1;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
    check(ready && err == 0, "nonblocking_connect_completes", "ready %d SO_ERROR %d", ready, err);
    errno = 0;
    int again = connect(fd, ai->ai_addr, ai->ai_addrlen);
    check(again == -1 && errno == EISCONN, "connect_again_says_eisconn", "%d %s", again, strerror(errno));
    freeaddrinfo(ai);
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: iozoo HOST PORT\n");
        return 2;
    }
    nonblocking_connect(argv[1], argv[2]);
    epoll_before_connect(argv[1], argv[2]);
    struct addrinfo *ai;
    int fd = connect_to(argv[1], argv[2], 0, &ai);
    check(fd >= 0, "blocking_connect", "%s", strerror(errno));
    if (fd < 0)
        return 1;
    socket_facts(fd, ai);
    io_calls(fd);
    readiness(fd);
    stdio_and_dup(fd);
    close_everything_else(fd);
    shutdown(fd, SHUT_WR);
    char buf[8];
    check(read(fd, buf, sizeof(buf)) == 0, "half_close_then_clean_eof", "%s", strerror(errno));
    freeaddrinfo(ai);
    close(fd);
    return failures;
}
