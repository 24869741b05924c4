/* sigstorm client HOST PORT NBYTES | sigstorm server PORT NBYTES: a
 * plaintext program that moves NBYTES each way over one TCP connection
 * with blocking calls while it takes 1000 signals a second.
 *
 * SIGALRM (from setitimer, every 1 ms) and SIGUSR1 (for a sender outside)
 * share one handler installed WITHOUT SA_RESTART, so every blocking call a
 * signal interrupts before it moved a byte fails with EINTR; the program
 * counts that and retries, as a careful program does. The timer runs from
 * before connect/accept until after close.
 *
 * The server listens on 127.0.0.1:PORT (0: the kernel picks) and prints
 * "port N" when ready, then serves one connection. On the connection both
 * sides do the same: a writer thread writes NBYTES of the test stream
 * (pattern.h) with blocking write()s of 64 KiB, then shutdown(SHUT_WR); the
 * main thread reads with blocking read()s and checks every byte against
 * the stream as it arrives, then expects EOF.
 *
 * stdout, at the end:
 *   "signals N in MS ms"               handled by this process, from the
 *                                      timer's start to its stop
 *   "signals during connect N"         (client) while connect() ran
 *   "eintr accept A connect C poll P read R write W shutdown S close X"
 *   "short writes N"
 *   "sent N received N intact"
 * Errors name errno on stderr. Exit status: 0 every byte intact; 1 usage;
 * 3 connect/accept failed; 4 an I/O error other than EINTR; 5 the bytes
 * received are not the stream (or too few or too many). */
#define _GNU_SOURCE /* strerrorname_np */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "netutil.h"
#include "pattern.h"

#define CHUNK (64 * 1024)

static atomic_long signals;
static atomic_long eintr_accept, eintr_connect, eintr_poll, eintr_read, eintr_write,
    eintr_shutdown, eintr_close, short_writes;

static void on_signal(int sig)
{
    (void)sig;
    atomic_fetch_add(&signals, 1);
}

static void start_storm(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: interrupted calls fail with EINTR */
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    struct itimerval every_ms = {.it_interval = {0, 1000}, .it_value = {0, 1000}};
    setitimer(ITIMER_REAL, &every_ms, NULL);
}

static void stop_storm(void)
{
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
}

static void die_errno(const char *what, int status)
{
    char e[128];
    fprintf(stderr, "sigstorm: %s: %s\n", what, errno_text(errno, e, sizeof(e)));
    exit(status);
}

struct writer {
    int fd;
    long long total;
    int status; /* 0, or 4 with a message printed */
};

static void *write_stream(void *arg)
{
    struct writer *w = arg;
    static unsigned char buf[CHUNK];
    long long done = 0;
    while (done < w->total) {
        size_t len = w->total - done < CHUNK ? (size_t)(w->total - done) : CHUNK;
        pattern_fill(buf, len, (uint64_t)done);
        size_t off = 0;
        while (off < len) {
            ssize_t n = write(w->fd, buf + off, len - off);
            if (n < 0 && errno == EINTR) {
                atomic_fetch_add(&eintr_write, 1);
                continue;
            }
            if (n < 0) {
                char e[128];
                fprintf(stderr, "sigstorm: write after %lld bytes: %s\n", done + (long long)off,
                        errno_text(errno, e, sizeof(e)));
                w->status = 4;
                return NULL;
            }
            if ((size_t)n < len - off)
                atomic_fetch_add(&short_writes, 1);
            off += (size_t)n;
        }
        done += (long long)len;
    }
    while (shutdown(w->fd, SHUT_WR) != 0) {
        if (errno != EINTR) {
            char e[128];
            fprintf(stderr, "sigstorm: shutdown: %s\n", errno_text(errno, e, sizeof(e)));
            w->status = 4;
            return NULL;
        }
        atomic_fetch_add(&eintr_shutdown, 1);
    }
    return NULL;
}

/* Read to EOF, checking each byte against the stream. 0, 4 or 5. */
static int read_stream(int fd, long long total, long long *received)
{
    static unsigned char buf[CHUNK], want[CHUNK];
    long long done = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            atomic_fetch_add(&eintr_read, 1);
            continue;
        }
        if (n < 0) {
            char e[128];
            fprintf(stderr, "sigstorm: read after %lld bytes: %s\n", done, errno_text(errno, e, sizeof(e)));
            *received = done;
            return 4;
        }
        if (n == 0)
            break;
        if (done + n > total) {
            fprintf(stderr, "sigstorm: more than %lld bytes received\n", total);
            *received = done + n;
            return 5;
        }
        pattern_fill(want, (size_t)n, (uint64_t)done);
        if (memcmp(buf, want, (size_t)n) != 0) {
            ssize_t k = 0;
            while (buf[k] == want[k])
                k++;
            fprintf(stderr, "sigstorm: byte %lld differs from the stream\n", done + k);
            *received = done + n;
            return 5;
        }
        done += n;
    }
    *received = done;
    if (done != total) {
        fprintf(stderr, "sigstorm: EOF after %lld of %lld bytes\n", done, total);
        return 5;
    }
    return 0;
}

/* A blocking connect interrupted by a signal goes on in the kernel: wait
 * for its result as connect(2) says to. */
static int connect_to(const char *host, const char *port)
{
    struct addrinfo *ai;
    int fd = tcp_socket_for("sigstorm", host, port, 0, &ai);
    if (fd < 0)
        exit(3);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINTR)
            die_errno("connect", 3);
        atomic_fetch_add(&eintr_connect, 1);
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        while (poll(&p, 1, -1) < 0) {
            if (errno != EINTR)
                die_errno("poll", 3);
            atomic_fetch_add(&eintr_poll, 1);
        }
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            errno = err;
            die_errno("connect", 3);
        }
    }
    freeaddrinfo(ai);
    return fd;
}

static int accept_one(const char *port)
{
    int lfd = listen_loopback(port);
    if (lfd < 0)
        die_errno("listen", 3);
    int fd;
    while ((fd = accept(lfd, NULL, NULL)) < 0) {
        if (errno != EINTR)
            die_errno("accept", 3);
        atomic_fetch_add(&eintr_accept, 1);
    }
    close(lfd);
    return fd;
}

int main(int argc, char **argv)
{
    bool server = argc == 4 && strcmp(argv[1], "server") == 0;
    bool client = argc == 5 && strcmp(argv[1], "client") == 0;
    long long total = server || client ? pattern_parse_size(argv[argc - 1]) : -1;
    if (total < 0) {
        fprintf(stderr, "usage: sigstorm client HOST PORT NBYTES | sigstorm server PORT NBYTES\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    long t0 = now_ms();
    start_storm();
    long before = atomic_load(&signals);
    int fd = server ? accept_one(argv[2]) : connect_to(argv[2], argv[3]);
    long during_connect = atomic_load(&signals) - before;

    struct writer w = {.fd = fd, .total = total};
    pthread_t t;
    if (pthread_create(&t, NULL, write_stream, &w) != 0)
        die_errno("pthread_create", 4);
    long long received = 0;
    int status = read_stream(fd, total, &received);
    pthread_join(t, NULL);
    if (status == 0)
        status = w.status;
    if (close(fd) != 0) {
        if (errno == EINTR)
            atomic_fetch_add(&eintr_close, 1);
        else if (status == 0)
            status = 4;
    }
    stop_storm();

    printf("signals %ld in %ld ms\n", atomic_load(&signals), now_ms() - t0);
    if (client)
        printf("signals during connect %ld\n", during_connect);
    printf("eintr accept %ld connect %ld poll %ld read %ld write %ld shutdown %ld close %ld\n",
           atomic_load(&eintr_accept), atomic_load(&eintr_connect), atomic_load(&eintr_poll),
           atomic_load(&eintr_read), atomic_load(&eintr_write), atomic_load(&eintr_shutdown),
           atomic_load(&eintr_close));
    printf("short writes %ld\n", atomic_load(&short_writes));
    if (status == 0)
        printf("sent %lld received %lld intact\n", total, received);
    return status;
}
