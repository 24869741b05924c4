/* flood client HOST PORT NBYTES MARKER GOFILE | flood server PORT NBYTES MARKER GOFILE:
 * a plaintext program that keeps writing to a peer that reads nothing,
 * and watches its own memory meanwhile.
 *
 * The stream it sends is MARKER, a newline, then NBYTES of the test stream
 * (pattern.h). The server listens on 127.0.0.1:PORT (0: the kernel picks),
 * prints "port N" when ready and serves one connection; the client
 * connects (blocking).
 *  1. Stalled: with O_NONBLOCK it offers the stream in write()s of 1 MiB
 *     until the write()s have offered at least NBYTES in total (a write()
 *     offers its whole length, however much it takes); after each EAGAIN
 *     it waits for POLLOUT up to 10 ms. VmRSS is sampled all along.
 *  2. It creates GOFILE (the peer starts reading when it appears), then
 *     writes the rest of the stream with blocking write()s, shuts down
 *     writing and reads until the peer's EOF.
 * stdout lines (the tests read them):
 *   "stalled: offered O B in W writes, accepted A B, EAGAIN E times"
 *   "stalled: VmRSS start R0 kB, max R1 kB"
 *   "sent S B; VmRSS max R2 kB while the peer read"
 * Exit status 0 when it sent everything and saw a clean EOF; 1 usage;
 * 3 connect/accept failed; 4 an I/O error (named on stderr). */
#define _GNU_SOURCE /* strerrorname_np */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netutil.h"
#include "pattern.h"

#define OFFER (1 << 20)

static char e[128];

static long vm_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* The bytes of the whole stream (marker line, then the test stream) from
 * offset pos, len of them. */
static void stream_fill(unsigned char *buf, size_t len, long long pos, const char *head, size_t head_len)
{
    while (len > 0 && pos < (long long)head_len) {
        *buf++ = (unsigned char)head[pos++];
        len--;
    }
    pattern_fill(buf, len, (uint64_t)(pos - (long long)head_len));
}

static int connect_to(const char *host, const char *port)
{
    struct addrinfo *ai;
    int fd = tcp_socket_for("flood", host, port, 0, &ai);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "flood: connect: %s\n", errno_text(errno, e, sizeof(e)));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static int accept_one(const char *port)
{
    int lfd = listen_loopback(port);
    if (lfd < 0) {
        fprintf(stderr, "flood: listen: %s\n", errno_text(errno, e, sizeof(e)));
        return -1;
    }
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        fprintf(stderr, "flood: accept: %s\n", errno_text(errno, e, sizeof(e)));
    close(lfd);
    return fd;
}

int main(int argc, char **argv)
{
    int server = argc == 6 && strcmp(argv[1], "server") == 0;
    int client = argc == 7 && strcmp(argv[1], "client") == 0;
    long long nbytes = server || client ? pattern_parse_size(argv[argc - 3]) : -1;
    if (nbytes < 0) {
        fprintf(stderr, "usage: flood client HOST PORT NBYTES MARKER GOFILE | "
                        "flood server PORT NBYTES MARKER GOFILE\n");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    char head[256];
    size_t head_len = (size_t)snprintf(head, sizeof(head), "%s\n", argv[argc - 2]);
    const char *gofile = argv[argc - 1];
    long long total = nbytes + (long long)head_len;
    static unsigned char buf[OFFER];
    memset(buf, 0, sizeof(buf)); /* touched now: not growth later */

    int fd = server ? accept_one(argv[2]) : connect_to(argv[2], argv[3]);
    if (fd < 0)
        return 3;

    /* 1. The peer reads nothing. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    long rss0 = vm_rss_kb(), rss_max = rss0;
    long long offered = 0, pos = 0, writes = 0, eagain = 0;
    while (offered < nbytes) {
        size_t len = total - pos < OFFER ? (size_t)(total - pos) : OFFER;
        if (len == 0)
            break; /* everything taken: nothing held it back */
        stream_fill(buf, len, pos, head, head_len);
        ssize_t n = write(fd, buf, len);
        writes++;
        offered += (long long)len;
        if (n > 0) {
            pos += n;
        } else if (n < 0 && errno == EAGAIN) {
            eagain++;
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, 10);
        } else if (n < 0 && errno != EINTR) {
            fprintf(stderr, "flood: write after %lld bytes: %s\n", pos, errno_text(errno, e, sizeof(e)));
            return 4;
        }
        long rss = vm_rss_kb();
        if (rss > rss_max)
            rss_max = rss;
    }
    printf("stalled: offered %lld B in %lld writes, accepted %lld B, EAGAIN %lld times\n", offered,
           writes, pos, eagain);
    printf("stalled: VmRSS start %ld kB, max %ld kB\n", rss0, rss_max);

    /* 2. The peer reads: the rest, blocking. */
    int go = open(gofile, O_WRONLY | O_CREAT, 0644);
    if (go < 0) {
        fprintf(stderr, "flood: %s: %s\n", gofile, errno_text(errno, e, sizeof(e)));
        return 4;
    }
    close(go);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    long rss_max2 = 0;
    for (int k = 0; pos < total; k++) {
        size_t len = total - pos < OFFER ? (size_t)(total - pos) : OFFER;
        stream_fill(buf, len, pos, head, head_len);
        if (write_all(fd, buf, len) != 0) {
            fprintf(stderr, "flood: write after %lld bytes: %s\n", pos, errno_text(errno, e, sizeof(e)));
            return 4;
        }
        pos += (long long)len;
        if (k % 8 == 0) {
            long rss = vm_rss_kb();
            if (rss > rss_max2)
                rss_max2 = rss;
        }
    }
    if (shutdown(fd, SHUT_WR) != 0) {
        fprintf(stderr, "flood: shutdown: %s\n", errno_text(errno, e, sizeof(e)));
        return 4;
    }
    ssize_t n;
    char sink[4096];
    while ((n = read(fd, sink, sizeof(sink))) > 0)
        ;
    if (n < 0) {
        fprintf(stderr, "flood: read: %s\n", errno_text(errno, e, sizeof(e)));
        return 4;
    }
    printf("sent %lld B; VmRSS max %ld kB while the peer read\n", pos, rss_max2);
    close(fd);
    return 0;
}
