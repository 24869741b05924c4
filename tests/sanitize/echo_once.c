/* echo_once PORT N: the plaintext echo server of make test-valgrind. It
 * listens on 127.0.0.1:PORT, prints "ready", echoes every byte of N
 * connections (each in its own thread, as clients may hold several at
 * once) until each client's EOF, then joins the threads and returns from
 * main, so that nestls's exit-time cleanup also runs under memcheck. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 64

static void *echo(void *arg)
{
    int c = (int)(intptr_t)arg;
    static __thread char buf[65536];
    ssize_t n;
    while ((n = read(c, buf, sizeof(buf))) > 0)
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(c, buf + off, (size_t)(n - off));
            if (w <= 0)
                goto out;
            off += w;
        }
out:
    close(c);
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc == 3 ? atoi(argv[2]) : 0;
    if (n < 1 || n > MAX_CONNS) {
        fprintf(stderr, "usage: echo_once PORT N (1..%d)\n", MAX_CONNS);
        return 2;
    }
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 16) != 0) {
        perror("echo_once");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    pthread_t threads[MAX_CONNS];
    int started = 0, rc = 0;
    for (; started < n; started++) {
        int c = accept(l, NULL, NULL);
        if (c < 0 || pthread_create(&threads[started], NULL, echo, (void *)(intptr_t)c) != 0) {
            perror("echo_once");
            rc = 1;
            break;
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    close(l);
    return rc;
}
