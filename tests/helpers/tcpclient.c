/* tcpclient [-n] HOST PORT: a plain TCP client whose errors name errno.
 *
 * Connects to HOST:PORT, copies stdin to the socket, half-closes it
 * (shutdown SHUT_WR) at the end of stdin, then copies the socket to stdout
 * until EOF.
 *   -n  non-blocking connect: stdin (read whole, keep it small) is written
 *       at once, before the connection is up, as event-driven programs do;
 *       then the result is taken from poll + getsockopt(SO_ERROR), and on
 *       failure one read shows what the socket gives afterwards.
 * stderr lines the tests read:
 *   "tcpclient: connect: EACCES (Permission denied)"
 *   "tcpclient: early write: 6 bytes" | "tcpclient: early write: EAGAIN (...)"
 *   "tcpclient: read after failure: ECONNRESET (Connection reset by peer)"
 *   "tcpclient: read: ECONNRESET (...)" (mid-stream)
 *   "tcpclient: write: EPIPE (...)" (SIGPIPE is ignored, so errors are named)
 * Exit status: 0 clean EOF; 1 usage; 3 connect failed; 4 I/O error. */
#define _GNU_SOURCE /* strerrorname_np */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netutil.h"

static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL)
            return NULL;
        ssize_t r = read(STDIN_FILENO, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    *len = n;
    return buf;
}

/* Copy in to out until EOF on in; 0, or -1 with errno (the read's or write's). */
static int copy(int in, int out, const char **what)
{
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *what = "read";
            return -1;
        }
        if (n == 0)
            return 0;
        if (write_all(out, buf, (size_t)n) != 0) {
            *what = "write";
            return -1;
        }
    }
}

/* The non-blocking connect of -n: early write, then wait for the result. */
static int connect_nonblocking(int fd, const struct addrinfo *ai, const char *data, size_t len,
                               size_t *written)
{
    char e[128];
    *written = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        fprintf(stderr, "tcpclient: connect: %s\n", errno_text(errno, e, sizeof(e)));
        return -1;
    }
    if (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n >= 0) {
            *written = (size_t)n;
            fprintf(stderr, "tcpclient: early write: %zd bytes\n", n);
        } else {
            fprintf(stderr, "tcpclient: early write: %s\n", errno_text(errno, e, sizeof(e)));
        }
    }
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int rc = poll(&p, 1, 60000);
    if (rc <= 0) {
        fprintf(stderr, "tcpclient: connect: no result after 60 s\n");
        return -1;
    }
    int err = 0;
    socklen_t elen = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
        err = errno;
    if (err != 0) {
        fprintf(stderr, "tcpclient: connect: %s\n", errno_text(err, e, sizeof(e)));
        char c;
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        ssize_t n = read(fd, &c, 1);
        if (n < 0)
            fprintf(stderr, "tcpclient: read after failure: %s\n", errno_text(errno, e, sizeof(e)));
        else
            fprintf(stderr, "tcpclient: read after failure: %zd bytes\n", n);
        return -1;
    }
    return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
}

/* Connect, send all of stdin (or data), half-close, copy the reply to
 * stdout. 0, or the exit status with a message printed. */
static int exchange(int fd, const struct addrinfo *ai, int nonblocking, const char *data,
                    size_t len)
{
    char e[128];
    const char *what = "";
    size_t written = 0;
    if (nonblocking) {
        if (connect_nonblocking(fd, ai, data, len, &written) != 0)
            return 3;
    } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "tcpclient: connect: %s\n", errno_text(errno, e, sizeof(e)));
        return 3;
    }
    if (nonblocking) {
        if (write_all(fd, data + written, len - written) != 0) {
            fprintf(stderr, "tcpclient: write: %s\n", errno_text(errno, e, sizeof(e)));
            return 4;
        }
    } else if (copy(STDIN_FILENO, fd, &what) != 0) {
        fprintf(stderr, "tcpclient: %s: %s\n", strcmp(what, "read") == 0 ? "stdin" : "write",
                errno_text(errno, e, sizeof(e)));
        return 4;
    }
    if (shutdown(fd, SHUT_WR) != 0) {
        fprintf(stderr, "tcpclient: shutdown: %s\n", errno_text(errno, e, sizeof(e)));
        return 4;
    }
    if (copy(fd, STDOUT_FILENO, &what) != 0) {
        fprintf(stderr, "tcpclient: %s: %s\n", strcmp(what, "read") == 0 ? "read" : "stdout",
                errno_text(errno, e, sizeof(e)));
        return 4;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int nonblocking = argc == 4 && strcmp(argv[1], "-n") == 0;
    if (argc != 3 + nonblocking) {
        fprintf(stderr, "usage: tcpclient [-n] HOST PORT < data\n");
        return 1;
    }
    const char *host = argv[1 + nonblocking], *port = argv[2 + nonblocking];
    signal(SIGPIPE, SIG_IGN);
    char e[128];
    size_t len = 0;
    char *data = NULL;
    if (nonblocking && (data = read_stdin(&len)) == NULL) {
        fprintf(stderr, "tcpclient: reading stdin: %s\n", errno_text(errno, e, sizeof(e)));
        return 4;
    }
    struct addrinfo *ai;
    int fd = tcp_socket_for("tcpclient", host, port, nonblocking ? SOCK_NONBLOCK : 0, &ai);
    if (fd < 0) {
        free(data);
        return 3;
    }
    int rc = exchange(fd, ai, nonblocking, data, len);
    freeaddrinfo(ai);
    free(data);
    if (close(fd) != 0 && rc == 0)
        rc = 4;
    return rc;
}
