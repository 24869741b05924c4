/* forkstress PORT FORKS: forks while other threads hold nestls's locks.
 *
 * Three threads loop until the end: getaddrinfo("localhost") (the name
 * table's lock), epoll_ctl ADD/DEL of a socket (the epoll registry's),
 * and connect + echo + close to an echo server on 127.0.0.1:PORT (the
 * descriptor table's, the engine's and the session cache's). Meanwhile
 * the main thread forks FORKS times; each child connects to 127.0.0.1,
 * echoes a line and _exit()s 0 (1 if the echo is wrong). A child that has not ended
 * after 10 s is hung on a lock that was held at fork: it is killed and
 * reported. Prints "ok FORKS" and exits 0, else says what and exits 1. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#include "netutil.h"

static const char *port;
static atomic_bool stop;
static atomic_long thread_errors;

static int echo_once(const char *text)
{
    struct addrinfo *ai;
    int fd = tcp_socket_for("forkstress", "127.0.0.1", port, 0, &ai);
    if (fd < 0)
        return -1;
    int ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    freeaddrinfo(ai);
    char line[64], back[64];
    int n = snprintf(line, sizeof(line), "%s\n", text), got = 0;
    if (ok && write_all(fd, line, (size_t)n) == 0) {
        while (got < n) {
            ssize_t r = read(fd, back + got, sizeof(back) - (size_t)got);
            if (r <= 0)
                break;
            got += (int)r;
        }
    }
    close(fd);
    return ok && got == n && memcmp(line, back, (size_t)n) == 0 ? 0 : -1;
}

/* The child connects by address, without getaddrinfo: glibc's own
 * getaddrinfo is not safe after fork in a threaded program (a resolver
 * thread may hold its interface-list lock at fork: the child then hangs
 * in __check_pf, with or without nestls). Its connect still takes every
 * lock of nestls's that the other threads hammer: the name table (looked
 * up for the rule and the SNI), the descriptor table, the engine's, and
 * the TLS session cache. */
static int child_echo(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        return -1;
    char back[6];
    int got = 0;
    if (write_all(fd, "child\n", 6) == 0)
        while (got < 6) {
            ssize_t r = read(fd, back + got, sizeof(back) - (size_t)got);
            if (r <= 0)
                break;
            got += (int)r;
        }
    close(fd);
    return got == 6 && memcmp(back, "child\n", 6) == 0 ? 0 : -1;
}

static void *resolver(void *arg)
{
    (void)arg;
    while (!stop) {
        struct addrinfo *ai;
        if (getaddrinfo("localhost", port, NULL, &ai) == 0)
            freeaddrinfo(ai);
    }
    return NULL;
}

static void *poller(void *arg)
{
    (void)arg;
    int ep = epoll_create1(EPOLL_CLOEXEC), s = socket(AF_INET, SOCK_STREAM, 0);
    while (!stop) {
        struct epoll_event ev = {.events = EPOLLIN};
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
        epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
    }
    close(s);
    close(ep);
    return NULL;
}

static void *connector(void *arg)
{
    (void)arg;
    while (!stop)
        if (echo_once("thread") != 0)
            thread_errors++;
    return NULL;
}

/* 0: exited 0; 1: failed; 2: hung (killed). */
static int reap(pid_t pid)
{
    for (int waited = 0; waited < 1000; waited++) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    port = argv[1];
    int forks = atoi(argv[2]);
    pthread_t t[3];
    pthread_create(&t[0], NULL, resolver, NULL);
    pthread_create(&t[1], NULL, poller, NULL);
    pthread_create(&t[2], NULL, connector, NULL);
    int failed = 0, hung = 0;
    for (int k = 0; k < forks && hung == 0; k++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_echo() == 0 ? 0 : 1);
        int r = pid < 0 ? 1 : reap(pid);
        failed += r == 1;
        hung += r == 2;
        if (r == 2)
            printf("fork %d: the child hung (killed after 10 s)\n", k + 1);
    }
    stop = true;
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    if (failed || hung || thread_errors) {
        printf("%d children failed, %d hung, %ld thread echoes failed\n", failed, hung,
               (long)thread_errors);
        return 1;
    }
    printf("ok %d\n", forks);
    return 0;
}
