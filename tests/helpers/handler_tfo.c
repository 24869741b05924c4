/* handler_tfo SECONDS WRAPPED_PORT PASS_PORT MARKER: while the main
 * thread resolves names and connects (nestls holds its own locks there),
 * a 2 ms timer's signal handler sends MARKER with sendto(MSG_FASTOPEN) to
 * 127.0.0.1:WRAPPED_PORT on a fresh socket. Prints how the handler's
 * sends ended: "clear N" counts those that went to the kernel as they
 * were (the socket behind the descriptor is still TCP: plaintext on the
 * wire), then "wrapped N" and "refused N". Stops early at the first clear
 * one. (tests/roads_wire.bats) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t clear, wrapped, refused;
static struct sockaddr_in target;
static const char *marker;

static void send_from_handler(int sig)
{
    (void)sig;
    int saved = errno;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t n = sendto(fd, marker, strlen(marker), MSG_FASTOPEN | MSG_NOSIGNAL,
                       (struct sockaddr *)&target, sizeof(target));
    /* Asked of the kernel itself, past nestls's getsockopt hook. */
    int domain = 0;
    socklen_t len = sizeof(domain);
    syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
    if (n < 0)
        refused++;
    else if (domain == AF_UNIX)
        wrapped++;
    else
        clear++;
    close(fd);
    errno = saved;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: handler_tfo SECONDS WRAPPED_PORT PASS_PORT MARKER\n");
        return 2;
    }
    marker = argv[4];
    target = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(atoi(argv[2])),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in pass = target;
    pass.sin_port = htons(atoi(argv[3]));
    struct sigaction sa = {.sa_handler = send_from_handler, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = {{0, 2000}, {0, 2000}}, stop = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &every, NULL);
    time_t end = time(NULL) + atoi(argv[1]);
    while (time(NULL) < end && clear == 0) {
        struct addrinfo *res;
        if (getaddrinfo("localhost", argv[3], NULL, &res) == 0)
            freeaddrinfo(res);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        connect(fd, (struct sockaddr *)&pass, sizeof(pass)); /* refused, in plaintext */
        close(fd);
    }
    setitimer(ITIMER_REAL, &stop, NULL);
    printf("clear %d\nwrapped %d\nrefused %d\n", (int)clear, (int)wrapped, (int)refused);
    return 0;
}
