/* plain_client [PORT [MESSAGE]]: the smallest plaintext TCP client.
 *
 * tests/roads_unreachable.bats links it statically (no loader, so
 * LD_PRELOAD cannot reach it) and makes setuid, file-capability and
 * Go-marked copies of its dynamic build. It uses no name lookup, so the
 * static link needs nothing from NSS.
 * Prints "plain_client ran"; with PORT it connects to 127.0.0.1:PORT and
 * sends MESSAGE (default "hello") and a newline, in clear. A first
 * argument that is not a number is ignored: it is the script's path when
 * the client serves as a #! interpreter.
 * Exit status: 0 done; 1 usage; 3 connect failed; 4 write failed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int send_line(const char *port, const char *message)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    char *end;
    long p = strtol(port, &end, 10);
    if (*end != '\0' || p < 1 || p > 65535) {
        fprintf(stderr, "plain_client: bad port '%s'\n", port);
        return 1;
    }
    sin.sin_port = htons((unsigned short)p);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        perror("plain_client: connect");
        return 3;
    }
    size_t len = strlen(message);
    if (write(fd, message, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
        perror("plain_client: write");
        return 4;
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    puts("plain_client ran");
    fflush(stdout);
    if (argc < 2 || strspn(argv[1], "0123456789") != strlen(argv[1]))
        return 0;
    return send_line(argv[1], argc > 2 ? argv[2] : "hello");
}
