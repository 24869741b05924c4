/* sendpattern HOST PORT NBYTES END: connect, write NBYTES of the test
 * stream (pattern.h), then end as END says:
 *   close   close(2) the socket, then return from main
 *   exit    exit(0) at once, the socket still open
 *   _exit   _exit(0) at once, the socket still open (no atexit handlers)
 * The last two prove that bytes a program wrote reach the peer even when it
 * exits right after writing them. Exit status 3: connect failed; 4: write
 * failed (each with the errno named on stderr). */
#define _GNU_SOURCE /* strerrorname_np */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netutil.h"
#include "pattern.h"

int main(int argc, char **argv)
{
    long long total = argc == 5 ? pattern_parse_size(argv[3]) : -1;
    const char *end = argc == 5 ? argv[4] : "";
    if (total < 0 || (strcmp(end, "close") != 0 && strcmp(end, "exit") != 0 &&
                      strcmp(end, "_exit") != 0)) {
        fprintf(stderr, "usage: sendpattern HOST PORT NBYTES[K|M|G] close|exit|_exit\n");
        return 1;
    }
    char e[128];
    struct addrinfo *ai;
    int fd = tcp_socket_for("sendpattern", argv[1], argv[2], 0, &ai);
    if (fd < 0)
        return 3;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "sendpattern: connect %s %s: %s\n", argv[1], argv[2],
                errno_text(errno, e, sizeof(e)));
        return 3;
    }
    freeaddrinfo(ai);

    static unsigned char buf[1 << 16];
    long long done = 0;
    while (done < total) {
        size_t len = total - done < (long long)sizeof(buf) ? (size_t)(total - done) : sizeof(buf);
        pattern_fill(buf, len, (uint64_t)done);
        if (write_all(fd, buf, len) != 0) {
            fprintf(stderr, "sendpattern: write after %lld bytes: %s\n", done,
                    errno_text(errno, e, sizeof(e)));
            return 4;
        }
        done += (long long)len;
    }
    if (strcmp(end, "_exit") == 0)
        _exit(0);
    if (strcmp(end, "exit") == 0)
        exit(0);
    if (close(fd) != 0) {
        fprintf(stderr, "sendpattern: close: %s\n", errno_text(errno, e, sizeof(e)));
        return 4;
    }
    return 0;
}
