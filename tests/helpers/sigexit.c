/* sigexit PORT HZ SIGNALS: signal handlers that write to a wrapped socket
 * and then _exit, while the main thread writes to it.
 *
 * Connects to 127.0.0.1:PORT and writes 64 KiB blocks as fast as it can
 * (nestls encrypts many of them in this very thread, holding the engine's
 * lock while it does). A timer fires SIGALRM HZ times a second; its
 * handler writes a few bytes to the same socket (write or sendto), asks
 * getsockopt and getpeername about it and, at the SIGNALS-th signal,
 * calls _exit(0): all async-signal-safe, so all must work wherever the
 * signal lands. A handler that blocked on a lock the
 * interrupted code holds would hang here forever (the test bounds it). */
#define _GNU_SOURCE
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/time.h>

#include "netutil.h"

static int sock = -1;
static volatile sig_atomic_t fired, limit;

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    /* write, and sendto without an address (which is send) in turn. */
    ssize_t w = fired % 2 ? write(sock, "signal\n", 7) : sendto(sock, "signal\n", 7, 0, NULL, 0);
    (void)w;
    /* Asking about the socket is async-signal-safe too. */
    int v;
    socklen_t len = sizeof(v);
    getsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &v, &len);
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof(peer);
    getpeername(sock, (struct sockaddr *)&peer, &peer_len);
    if (++fired >= limit)
        _exit(0);
    errno = saved;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    sock = connect_loopback("sigexit", argv[1]);
    if (sock < 0)
        return 1;
    limit = atoi(argv[3]);
    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &sa, NULL);
    long usec = 1000000L / atol(argv[2]);
    struct itimerval it = {{0, usec}, {0, usec}};
    setitimer(ITIMER_REAL, &it, NULL);
    static char block[64 * 1024];
    memset(block, 'x', sizeof(block));
    for (;;)
        if (write_all(sock, block, sizeof(block)) != 0 && errno != EINTR) {
            perror("sigexit: write");
            return 1;
        }
}
