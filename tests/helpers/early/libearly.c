/* libnl_early.so: a library whose constructor uses sockets before any
 * other library's constructor may have run, as libcap-ng's and libaudit's
 * do (sshd, postgres, setpriv, su link them). Preloaded nestls sees these
 * calls before its own constructor has run.
 *
 * Always: close() of a descriptor that is not open, socket(), dup(),
 * close() of both, getaddrinfo("localhost"). Then, when EARLY_CONNECT is
 * set to a port on 127.0.0.1: connect, write EARLY_MARKER and a newline,
 * and read one line back. What happened is left in early_report for the
 * program (early_main.c) to print. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

char early_report[512];

static void early_connect(const char *port, const char *marker)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        snprintf(early_report, sizeof(early_report), "early connect: %s", strerror(errno));
        close(fd);
        return;
    }
    char line[256];
    int n = snprintf(line, sizeof(line), "%s\n", marker ? marker : "early");
    if (write(fd, line, (size_t)n) != n) {
        snprintf(early_report, sizeof(early_report), "early write: %s", strerror(errno));
        close(fd);
        return;
    }
    char back[256];
    ssize_t got = 0, r;
    while (got < n && (r = read(fd, back + got, sizeof(back) - 1 - (size_t)got)) > 0)
        got += r;
    back[got > 0 ? got : 0] = '\0';
    snprintf(early_report, sizeof(early_report), "early echo: %s",
             got == n && memcmp(back, line, (size_t)n) == 0 ? "ok" : "wrong or missing");
    close(fd);
}

__attribute__((constructor)) static void early(void)
{
    close(1000); /* libcap-ng closes descriptors it does not own */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int d = dup(s);
    close(d);
    close(s);
    struct addrinfo *ai = NULL;
    if (getaddrinfo("localhost", "80", NULL, &ai) == 0)
        freeaddrinfo(ai);
    snprintf(early_report, sizeof(early_report), "early calls: done");
    const char *port = getenv("EARLY_CONNECT");
    if (port != NULL)
        early_connect(port, getenv("EARLY_MARKER"));
}
