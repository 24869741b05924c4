/* readwait MODE PORT: a signal arrives while the main thread is blocked in
 * read() on a wrapped connection to an echo server at 127.0.0.1:PORT.
 * A second thread sends SIGALRM to it after 300 ms, then writes "ping\n"
 * 300 ms later; the echo comes back.
 *
 *   restart   the handler has SA_RESTART: read() goes on waiting and
 *             returns the echo. Prints "read 5 signals 1".
 *   interrupt no SA_RESTART: read() fails with EINTR, the next read gets
 *             the echo. Prints "read -1 EINTR, then 5".
 *   longjmp   the handler siglongjmp()s out of read(); then select()
 *             (which nestls does not stand in for) waits 5 s at most for
 *             the echo. Prints "select 1 read 5".
 * Exits 1 on anything else, with what happened. */
#define _GNU_SOURCE
#include <sys/select.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "netutil.h"

static int sock = -1;
static pthread_t reader;
static volatile sig_atomic_t signals;
static sigjmp_buf out;
static int jumping;

static void on_alarm(int sig)
{
    (void)sig;
    signals++;
    if (jumping)
        siglongjmp(out, 1);
}

static void *poke(void *arg)
{
    (void)arg;
    usleep(300 * 1000);
    pthread_kill(reader, SIGALRM);
    usleep(300 * 1000);
    if (write_all(sock, "ping\n", 5) != 0)
        perror("readwait: write");
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: readwait restart|interrupt|longjmp PORT\n");
        return 2;
    }
    const char *mode = argv[1];
    sock = connect_loopback("readwait", argv[2]);
    if (sock < 0)
        return 1;
    struct sigaction sa = {.sa_handler = on_alarm};
    sa.sa_flags = strcmp(mode, "restart") == 0 ? SA_RESTART : 0;
    sigaction(SIGALRM, &sa, NULL);
    jumping = strcmp(mode, "longjmp") == 0;
    reader = pthread_self();
    pthread_t poker;
    pthread_create(&poker, NULL, poke, NULL);

    char buf[64];
    ssize_t n;
    if (jumping) {
        if (sigsetjmp(out, 1) == 0) {
            n = read(sock, buf, sizeof(buf));
            printf("read %zd before the signal\n", n);
            return 1;
        }
        fd_set in;
        FD_ZERO(&in);
        FD_SET(sock, &in);
        struct timeval limit = {.tv_sec = 5};
        int ready = select(sock + 1, &in, NULL, NULL, &limit);
        n = ready == 1 ? read(sock, buf, sizeof(buf)) : -1;
        printf("select %d read %zd\n", ready, n);
        pthread_join(poker, NULL);
        return ready == 1 && n == 5 ? 0 : 1;
    }
    n = read(sock, buf, sizeof(buf));
    if (strcmp(mode, "restart") == 0) {
        printf("read %zd signals %d\n", n, (int)signals);
        pthread_join(poker, NULL);
        return n == 5 && signals == 1 ? 0 : 1;
    }
    int err = errno;
    ssize_t next = read(sock, buf, sizeof(buf));
    printf("read %zd %s, then %zd\n", n, n < 0 && err == EINTR ? "EINTR" : strerror(err), next);
    pthread_join(poker, NULL);
    return n < 0 && err == EINTR && next == 5 ? 0 : 1;
}
