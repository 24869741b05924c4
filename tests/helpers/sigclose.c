/* sigclose PORT ROUNDS: a signal handler closes a wrapped, established
 * socket while the code it interrupted is inside malloc or free.
 *
 * Each round connects to 127.0.0.1:PORT, sets SO_LINGER {1, 0} (so the
 * close resets the connection, and nestls's close() waits for the engine
 * to send the reset), writes a line, arms a one-shot
 * SIGALRM a few hundred microseconds ahead and then allocates and frees
 * memory in a loop until the handler has run; the handler close()s the
 * socket (async-signal-safe in libc, so it must work wherever the signal
 * lands). A close() that ran OpenSSL or took malloc's lock in the handler
 * would wait for ever on the lock the interrupted free() holds (the test
 * bounds each run). nestls bounds its wait at 100 ms; a close that took
 * that long was not woken by the engine but gave up, which is what
 * happens when the engine itself waits for malloc's lock before telling.
 * Prints "closed N, M waited out" (N: rounds whose close returned 0; M:
 * closes that took 100 ms or more). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include "netutil.h"

static int sock = -1;
static volatile sig_atomic_t done, closed_ok, waited_out, slowest_close;

static long elapsed_ms(const struct timespec *from)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - from->tv_sec) * 1000L + (now.tv_nsec - from->tv_nsec) / 1000000L;
}

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start); /* async-signal-safe */
    if (close(sock) == 0)
        closed_ok++;
    long took = elapsed_ms(&start);
    if (took >= 100)
        waited_out++;
    if (took > slowest_close)
        slowest_close = (sig_atomic_t)took;
    done = 1;
    errno = saved;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int rounds = atoi(argv[2]);
    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &sa, NULL);
    /* Where the time goes, for a run that is slow: the slowest connect
     * (it waits for the layers' handshakes) and round. */
    long slowest_connect = 0, slowest_round = 0;
    struct timespec all;
    clock_gettime(CLOCK_MONOTONIC, &all);
    for (int r = 0; r < rounds; r++) {
        struct addrinfo *ai;
        struct timespec round;
        clock_gettime(CLOCK_MONOTONIC, &round);
        sock = tcp_socket_for("sigclose", "127.0.0.1", argv[1], 0, &ai);
        if (sock < 0 || connect(sock, ai->ai_addr, ai->ai_addrlen) != 0) {
            perror("sigclose: connect");
            return 1;
        }
        freeaddrinfo(ai);
        long took = elapsed_ms(&round);
        slowest_connect = took > slowest_connect ? took : slowest_connect;
        struct linger reset = {.l_onoff = 1, .l_linger = 0};
        setsockopt(sock, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
        if (write_all(sock, "hello\n", 6) != 0) {
            perror("sigclose: write");
            return 1;
        }
        done = 0;
        struct itimerval it = {{0, 0}, {0, 100 + (r * 37) % 400}};
        setitimer(ITIMER_REAL, &it, NULL);
        while (!done) {
            void *p[16];
            for (int k = 0; k < 16; k++)
                p[k] = malloc(64 + (size_t)k * 512);
            for (int k = 0; k < 16; k++)
                free(p[k]);
        }
        took = elapsed_ms(&round);
        slowest_round = took > slowest_round ? took : slowest_round;
    }
    printf("closed %d, %d waited out\n", (int)closed_ok, (int)waited_out);
    fprintf(stderr, "sigclose: %ld ms in all; slowest connect %ld ms, close %d ms, round %ld ms\n",
            elapsed_ms(&all), slowest_connect, (int)slowest_close, slowest_round);
    return 0;
}
