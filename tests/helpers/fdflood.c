/* fdflood: a plaintext program that runs out of descriptors
 * (RLIMIT_NOFILE, set from outside with prlimit) on purpose.
 *
 * fdflood client HOST PORT MARKER [--one-free]
 *   Opens blocking TCP connections to HOST:PORT, an echo server, and keeps
 *   them, until socket() or connect() fails (at most 4096). If connect()
 *   failed, it writes MARKER on that descriptor anyway, as a careless
 *   program might: that must not reach the peer. With --one-free it then
 *   squeezes the table further: it opens /dev/null until that fails,
 *   closes one, so exactly one descriptor is free, and tries socket() and
 *   connect() once more (writing MARKER again if connect() fails), then
 *   closes the /dev/null copies. Then it checks that every
 *   connection it kept still echoes, closes them all, waits (up to 10 s)
 *   until it holds no more sockets than at the start, and opens one new
 *   connection that must echo too.
 * fdflood server PORT
 *   An echo server on 127.0.0.1:PORT (0: the kernel picks; prints
 *   "port N" when ready), one poll() loop, no limit of its own. When
 *   accept() fails it prints the error and
 *   leaves the listener alone for 50 ms; connections it holds keep being
 *   served. Runs until killed.
 *
 * Client stdout lines (the tests read them):
 *   "limit L"                        the soft RLIMIT_NOFILE
 *   "descriptors at start D, sockets S"
 *   "opened N connections"
 *   "connection N+1: socket|connect: EMFILE (Too many open files)"
 *   "write after the failed connect: EPIPE (...)" | "... sent K bytes"
 *   "one descriptor free: socket|connect: ..." | "one descriptor free: connected"
 *   "write after the failed connect: ..." (again, if connect failed)
 *                                    (these two with --one-free)
 *   "N of N connections echo"
 *   "sockets left after closing: S (after T ms)"
 *   "descriptors at the end D"
 *   "a new connection echoes" | "new connection: ..."
 * Exit status 0 when every check above passed; 1 usage; 4 otherwise. */
#define _GNU_SOURCE /* strerrorname_np */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "netutil.h"

#define MAX_CONNS 4096

static char e[128]; /* errno_text's buffer: one message at a time */

/* One line out and back; 0, or -1 with a message printed. */
static int echo_once(int fd, int k)
{
    char line[64], back[64];
    int len = snprintf(line, sizeof(line), "fdflood %d\n", k);
    if (write_all(fd, line, (size_t)len) != 0) {
        printf("connection %d: write: %s\n", k, errno_text(errno, e, sizeof(e)));
        return -1;
    }
    int got = 0;
    while (got < len) {
        ssize_t n = read(fd, back + got, (size_t)(len - got));
        if (n <= 0) {
            printf("connection %d: read: %s\n", k, n == 0 ? "EOF" : errno_text(errno, e, sizeof(e)));
            return -1;
        }
        got += (int)n;
    }
    if (memcmp(line, back, (size_t)len) != 0) {
        printf("connection %d: the echo differs\n", k);
        return -1;
    }
    return 0;
}

/* socket + blocking connect; the descriptor, or -1 with *what and errno
 * set (*failed_fd keeps a socket whose connect failed). */
static int open_conn(const struct addrinfo *ai, const char **what, int *failed_fd)
{
    *failed_fd = -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0) {
        *what = "socket";
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        *what = "connect";
        *failed_fd = fd;
        return -1;
    }
    return fd;
}

/* A careless program writes on the socket whose connect() failed: say
 * what happened, close it; true when nothing was sent. */
static int write_after_failure(int failed_fd, const char *marker)
{
    if (failed_fd < 0)
        return 1;
    char line[256];
    int len = snprintf(line, sizeof(line), "%s\n", marker);
    ssize_t w = write(failed_fd, line, (size_t)len);
    if (w >= 0)
        printf("write after the failed connect: sent %zd bytes\n", w);
    else
        printf("write after the failed connect: %s\n", errno_text(errno, e, sizeof(e)));
    close(failed_fd);
    return w < 0;
}

static int run_client(const char *host, const char *port, const char *marker, int one_free)
{
    static int fds[MAX_CONNS];
    int ok = 1, n = 0, sockets0, sockets, failed_fd = -1;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("limit %lld\n", (long long)rl.rlim_cur);
    int fds0 = count_fds(&sockets0);
    printf("descriptors at start %d, sockets %d\n", fds0, sockets0);

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        printf("getaddrinfo %s %s failed\n", host, port);
        return 4;
    }
    const char *what = "";
    while (n < MAX_CONNS) {
        int fd = open_conn(ai, &what, &failed_fd);
        if (fd < 0)
            break;
        fds[n++] = fd;
    }
    int err = errno;
    printf("opened %d connections\n", n);
    printf("connection %d: %s: %s\n", n + 1, what, errno_text(err, e, sizeof(e)));
    ok = write_after_failure(failed_fd, marker) && ok;

    /* Exactly one descriptor free: room for socket() and nothing more. */
    static int nulls[MAX_CONNS];
    int n_nulls = 0, fd;
    while (one_free && n_nulls < MAX_CONNS && (fd = open("/dev/null", O_RDONLY)) >= 0)
        nulls[n_nulls++] = fd;
    if (n_nulls > 0)
        close(nulls[--n_nulls]);
    if (one_free && (fd = open_conn(ai, &what, &failed_fd)) >= 0) {
        printf("one descriptor free: connected\n");
        close(fd);
    } else if (one_free) {
        printf("one descriptor free: %s: %s\n", what, errno_text(errno, e, sizeof(e)));
        ok = write_after_failure(failed_fd, marker) && ok;
    }
    while (n_nulls > 0)
        close(nulls[--n_nulls]);

    int echoed = 0;
    for (int k = 0; k < n; k++)
        if (echo_once(fds[k], k + 1) == 0)
            echoed++;
    printf("%d of %d connections echo\n", echoed, n);
    ok = ok && echoed == n && n > 0;

    for (int k = 0; k < n; k++)
        close(fds[k]);
    long t0 = now_ms();
    while (count_fds(&sockets) >= 0 && sockets > sockets0 && now_ms() - t0 < 10000)
        usleep(20000);
    printf("sockets left after closing: %d (after %ld ms)\n", sockets - sockets0, now_ms() - t0);
    ok = ok && sockets == sockets0;
    printf("descriptors at the end %d\n", count_fds(&sockets));

    fd = open_conn(ai, &what, &failed_fd);
    if (fd < 0) {
        printf("new connection: %s: %s\n", what, errno_text(errno, e, sizeof(e)));
        if (failed_fd >= 0)
            close(failed_fd);
        ok = 0;
    } else if (echo_once(fd, 0) == 0) {
        printf("a new connection echoes\n");
    } else {
        ok = 0;
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return ok ? 0 : 4;
}

static int run_server(const char *port)
{
    static struct pollfd p[MAX_CONNS + 1];
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1, n = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 64) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
        printf("listen: %s\n", errno_text(errno, e, sizeof(e)));
        return 4;
    }
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
    long rest_until = 0; /* a short rest for the listener after accept failed */
    for (;;) {
        long rest = rest_until - now_ms();
        p[0].fd = rest > 0 ? -1 : lfd;
        if (poll(p, (nfds_t)n, rest > 0 ? (int)rest : -1) < 0)
            continue;
        if (p[0].fd >= 0 && (p[0].revents & POLLIN) && n <= MAX_CONNS) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0) {
                p[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
            } else {
                printf("accept: %s\n", errno_text(errno, e, sizeof(e)));
                rest_until = now_ms() + 50;
            }
        }
        for (int k = 1; k < n; k++) {
            if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            ssize_t r = read(p[k].fd, buf, sizeof(buf));
            if (r <= 0 || write_all(p[k].fd, buf, (size_t)r) != 0) {
                close(p[k].fd);
                p[k] = p[--n];
                p[n].revents = 0;
                k--;
            }
        }
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if ((argc == 5 || (argc == 6 && strcmp(argv[5], "--one-free") == 0)) &&
        strcmp(argv[1], "client") == 0)
        return run_client(argv[2], argv[3], argv[4], argc == 6);
    if (argc == 3 && strcmp(argv[1], "server") == 0)
        return run_server(argv[2]);
    fprintf(stderr, "usage: fdflood client HOST PORT MARKER [--one-free] | fdflood server PORT\n");
    return 1;
}
