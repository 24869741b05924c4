/* waitstress MODE PORT [N]: what a program thread waiting on a wrapped
 * socket may do to nestls, which now runs the connection in that thread
 * (src/hooks/wait.c, src/hooks/read.c). The peer at 127.0.0.1:PORT:
 * an echo server (cancel, smallstack) or one that sends 100 bytes and
 * waits (closereset).
 *
 *   cancel N     N times: a reader thread blocked in read() is cancelled
 *                at a random moment while an echo comes back; then
 *                setsockopt(SO_RCVBUF), which takes the engine's lock,
 *                must return (a watchdog says "stuck" after 5 s). Prints
 *                "cancelled N".
 *   smallstack   a thread with a 64 KiB stack waits in read() for an
 *                echo. Prints "read 5 on a small stack".
 *   closereset   thread A waits in epoll_wait (EPOLLET, 3 s) on the
 *                socket; once A has seen the peer's 100 bytes, the main
 *                thread closes the socket with them unread, which resets
 *                the connection. Prints "closed at T" (CLOCK_MONOTONIC,
 *                seconds), for the peer to time the reset against. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "netutil.h"

static int sock = -1, ep = -1;
static volatile int seen;

static void stuck(int sig)
{
    (void)sig;
    static const char msg[] = "stuck: setsockopt did not return within 5 s\n";
    ssize_t w = write(1, msg, sizeof(msg) - 1);
    (void)w;
    _exit(1);
}

static void *reader(void *arg)
{
    (void)arg;
    char buf[256];
    while (read(sock, buf, sizeof(buf)) > 0)
        ;
    return NULL;
}

static int cancel(int rounds)
{
    signal(SIGALRM, stuck);
    srand(7);
    for (int i = 0; i < rounds; i++) {
        pthread_t t;
        pthread_create(&t, NULL, reader, NULL);
        if (write_all(sock, "ping\n", 5) != 0)
            return 1;
        usleep((useconds_t)(rand() % 400));
        pthread_cancel(t);
        pthread_join(t, NULL);
        alarm(5);
        int size = 65536;
        setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        alarm(0);
    }
    printf("cancelled %d\n", rounds);
    return 0;
}

static void *small_reader(void *arg)
{
    char buf[64];
    *(ssize_t *)arg = read(sock, buf, sizeof(buf));
    return NULL;
}

static int smallstack(void)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t t;
    ssize_t got = -1;
    pthread_create(&t, &attr, small_reader, &got);
    usleep(200 * 1000); /* the thread waits in read() by now */
    if (write_all(sock, "ping\n", 5) != 0)
        return 1;
    pthread_join(t, NULL);
    printf("read %zd on a small stack\n", got);
    return got == 5 ? 0 : 1;
}

static void *epoll_waiter(void *arg)
{
    (void)arg;
    struct epoll_event ev[4];
    for (int i = 0; i < 2; i++)
        if (epoll_wait(ep, ev, 4, 3000) > 0)
            seen = 1;
    return NULL;
}

static int closereset(void)
{
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = sock};
    epoll_ctl(ep, EPOLL_CTL_ADD, sock, &ev);
    pthread_t t;
    pthread_create(&t, NULL, epoll_waiter, NULL);
    for (int i = 0; i < 5000 && !seen; i++)
        usleep(1000);
    usleep(300 * 1000); /* A is back in epoll_wait, the bytes unread */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    close(sock);
    printf("closed at %.3f\n", (double)now.tv_sec + now.tv_nsec / 1e9);
    fflush(stdout);
    pthread_join(t, NULL);
    return seen ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: waitstress cancel|smallstack|closereset PORT [N]\n");
        return 2;
    }
    sock = connect_loopback("waitstress", argv[2]);
    if (sock < 0)
        return 1;
    if (strcmp(argv[1], "cancel") == 0)
        return cancel(argc > 3 ? atoi(argv[3]) : 200);
    if (strcmp(argv[1], "smallstack") == 0)
        return smallstack();
    if (strcmp(argv[1], "closereset") == 0)
        return closereset();
    return 2;
}
