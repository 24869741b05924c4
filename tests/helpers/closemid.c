/* closemid HOST PORT COUNT MARKER: a plaintext program that gives up on
 * its connections before they are up.
 *
 * COUNT times: a non-blocking socket, connect() (EINPROGRESS expected),
 * MARKER and a newline written at once (it waits in the socket, as early
 * bytes do; MARKER "-": nothing written), then close(). Then it waits, up to 20 s, until it holds no
 * more sockets than at the start, and stays alive meanwhile (so whoever
 * serves those connections in this process has to let go of them).
 *
 * stdout lines (the tests read them):
 *   "descriptors at start D, sockets S"
 *   "connection K: connect: EINPROGRESS (...)" (or 0, "connected")
 *   "connection K: early write: N bytes" | "... early write: EAGAIN (...)"
 *   | "connection K: no early write"
 *   "closed COUNT connections; sockets now S"
 *   "sockets left: S after T ms"
 *   "descriptors at the end D"
 * Exit status 0 when no socket was left at the end; 1 usage; 3 socket()
 * failed; 4 sockets were left after 20 s. */
#define _GNU_SOURCE /* strerrorname_np */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "netutil.h"

int main(int argc, char **argv)
{
    int count = argc == 5 ? atoi(argv[3]) : 0;
    if (count <= 0) {
        fprintf(stderr, "usage: closemid HOST PORT COUNT MARKER\n");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char e[128], line[256];
    int len = snprintf(line, sizeof(line), "%s\n", argv[4]);
    int sockets0 = 0, sockets = 0;
    printf("descriptors at start %d, sockets %d\n", count_fds(&sockets0), sockets0);

    for (int k = 1; k <= count; k++) {
        struct addrinfo *ai;
        int fd = tcp_socket_for("closemid", argv[1], argv[2], SOCK_NONBLOCK, &ai);
        if (fd < 0)
            return 3;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            printf("connection %d: connected\n", k);
        else
            printf("connection %d: connect: %s\n", k, errno_text(errno, e, sizeof(e)));
        freeaddrinfo(ai);
        ssize_t n = 0;
        if (strcmp(argv[4], "-") == 0)
            printf("connection %d: no early write\n", k);
        else if ((n = write(fd, line, (size_t)len)) >= 0)
            printf("connection %d: early write: %zd bytes\n", k, n);
        else
            printf("connection %d: early write: %s\n", k, errno_text(errno, e, sizeof(e)));
        if (close(fd) != 0)
            printf("connection %d: close: %s\n", k, errno_text(errno, e, sizeof(e)));
    }
    count_fds(&sockets);
    printf("closed %d connections; sockets now %d\n", count, sockets - sockets0);

    long t0 = now_ms();
    while (count_fds(&sockets) >= 0 && sockets > sockets0 && now_ms() - t0 < 20000)
        usleep(20000);
    printf("sockets left: %d after %ld ms\n", sockets - sockets0, now_ms() - t0);
    printf("descriptors at the end %d\n", count_fds(&sockets));
    return sockets == sockets0 ? 0 : 4;
}
