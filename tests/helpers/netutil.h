/* What the plaintext test clients share: resolving HOST PORT with
 * getaddrinfo (so a preloaded library sees the name, as with any real
 * client) and naming errno values exactly ("EACCES (Permission denied)"),
 * which is what the tests assert. */
#ifndef NESTLS_TEST_NETUTIL_H
#define NESTLS_TEST_NETUTIL_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* "ECONNREFUSED (Connection refused)" */
static inline const char *errno_text(int err, char *buf, size_t len)
{
    const char *name = strerrorname_np(err);
    snprintf(buf, len, "%s (%s)", name != NULL ? name : "E?", strerror(err));
    return buf;
}

/* A TCP socket for HOST:PORT's first address (not yet connected), with
 * that address in *ai (freeaddrinfo it). -1 and a message on failure. */
static inline int tcp_socket_for(const char *prog, const char *host, const char *port,
                                 int extra_type, struct addrinfo **ai)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    int rc = getaddrinfo(host, port, &hints, ai);
    if (rc != 0) {
        fprintf(stderr, "%s: getaddrinfo %s %s: %s\n", prog, host, port, gai_strerror(rc));
        return -1;
    }
    int fd = socket((*ai)->ai_family, (*ai)->ai_socktype | extra_type, (*ai)->ai_protocol);
    if (fd < 0) {
        char e[128];
        fprintf(stderr, "%s: socket: %s\n", prog, errno_text(errno, e, sizeof(e)));
        freeaddrinfo(*ai);
    }
    return fd;
}

/* A TCP socket connected to 127.0.0.1:PORT (blocking). -1 and a message
 * on failure. */
static inline int connect_loopback(const char *prog, const char *port)
{
    struct addrinfo *ai;
    int fd = tcp_socket_for(prog, "127.0.0.1", port, 0, &ai);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        char e[128];
        fprintf(stderr, "%s: connect: %s\n", prog, errno_text(errno, e, sizeof(e)));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* Write all of buf; 0, or -1 with errno. */
static inline int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Milliseconds on the monotonic clock. */
static inline long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* How many descriptors this process holds, and how many are sockets. */
static inline int count_fds(int *sockets)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0, s = 0;
    struct dirent *ent;
    if (d == NULL)
        return -1;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.' || atoi(ent->d_name) == dirfd(d))
            continue;
        char path[300], target[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%s", ent->d_name);
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        if (len > 0 && strncmp(target, "socket:", 7) == 0)
            s++;
        n++;
    }
    closedir(d);
    *sockets = s;
    return n;
}

/* A listening TCP socket on 127.0.0.1:PORT (0: the kernel picks), with
 * "port N" printed and flushed for the test; -1 with errno on failure. */
static inline int listen_loopback(const char *port)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    if (lfd < 0)
        return -1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 4) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
        int saved = errno;
        close(lfd);
        errno = saved;
        return -1;
    }
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    return lfd;
}

#endif
