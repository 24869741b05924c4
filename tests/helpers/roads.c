/* roads MODE PORT MARKER: take one road to 127.0.0.1:PORT, an echo
 * server, and say on stdout what each call answered and what came back.
 * Knows nothing of TLS: run under nestls, MARKER must never be on the wire
 * in clear (tests/roads_wire.bats).
 *
 *   tfo-sendto     sendto(MSG_FASTOPEN, address) on a fresh TCP socket
 *   tfo-sendmsg    the same with sendmsg and msg_name
 *   tfo-sendmmsg   the same with sendmmsg, two messages
 *   tfo-nonblock   non-blocking sendto(MSG_FASTOPEN): EINPROGRESS, then send
 *   tfo-connect    TCP_FASTOPEN_CONNECT, then connect and send
 *   mptcp          an IPPROTO_MPTCP socket: connect, send
 *   syscall        syscall(SYS_connect), syscall(SYS_sendto)
 *   alias          glibc's second name, __connect
 *   addressed      connect, then sendto/sendmsg with the address again
 *   dup-before     dup() before connect; MARKER written on the copy
 *   fork-before    fork() before connect; MARKER written by the child
 *   bound          bind to a fixed local port first (SO_REUSEADDR), connect
 *   uring-syscall  syscall(SYS_io_uring_setup)
 *   uring-lib      liburing's io_uring_queue_init (dlopen, global scope)
 *
 * Echo lines read back are printed as "echo: TEXT". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

static struct sockaddr_in peer;
static const char *marker;

static void said(const char *what, long r)
{
    if (r < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
    fflush(stdout);
}

/* Read back n bytes of echo (or up to EOF/error) and print them. */
static void echo_back(int fd, size_t n)
{
    char buf[512];
    size_t got = 0;
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) {
            said("read", r);
            break;
        }
        got += (size_t)r;
    }
    buf[got] = '\0';
    printf("echo: %s\n", buf);
    fflush(stdout);
}

static int tcp_socket(int protocol)
{
    int fd = socket(AF_INET, SOCK_STREAM, protocol);
    if (fd < 0) {
        perror("socket");
        exit(2);
    }
    return fd;
}

static void connected_echo(int fd)
{
    said("send", send(fd, marker, strlen(marker), 0));
    echo_back(fd, strlen(marker));
}

static void tfo_sendmsg(int fd)
{
    struct iovec iov = {.iov_base = (void *)marker, .iov_len = strlen(marker)};
    struct msghdr m = {.msg_name = &peer, .msg_namelen = sizeof(peer), .msg_iov = &iov, .msg_iovlen = 1};
    said("sendmsg", sendmsg(fd, &m, MSG_FASTOPEN));
    echo_back(fd, strlen(marker));
}

static void tfo_sendmmsg(int fd)
{
    size_t half = strlen(marker) / 2;
    struct iovec iov[2] = {{(void *)marker, half}, {(void *)(marker + half), strlen(marker) - half}};
    struct mmsghdr v[2];
    memset(v, 0, sizeof(v));
    for (int i = 0; i < 2; i++) {
        v[i].msg_hdr.msg_name = &peer;
        v[i].msg_hdr.msg_namelen = sizeof(peer);
        v[i].msg_hdr.msg_iov = &iov[i];
        v[i].msg_hdr.msg_iovlen = 1;
    }
    said("sendmmsg", sendmmsg(fd, v, 2, MSG_FASTOPEN));
    echo_back(fd, strlen(marker));
}

static void tfo_nonblock(int fd)
{
    fcntl(fd, F_SETFL, O_NONBLOCK);
    said("sendto", sendto(fd, marker, strlen(marker), MSG_FASTOPEN, (struct sockaddr *)&peer,
                          sizeof(peer)));
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    said("poll", poll(&p, 1, 10000));
    fcntl(fd, F_SETFL, 0);
    connected_echo(fd);
}

static void tfo_connect(int fd)
{
    int one = 1;
    said("setsockopt", setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one)));
    said("connect", connect(fd, (struct sockaddr *)&peer, sizeof(peer)));
    connected_echo(fd);
}

static void by_syscall(int fd)
{
    said("syscall connect", syscall(SYS_connect, fd, &peer, sizeof(peer)));
    said("syscall sendto", syscall(SYS_sendto, fd, marker, strlen(marker), 0, NULL, 0));
    echo_back(fd, strlen(marker));
}

extern int __connect(int, const struct sockaddr *, socklen_t);

static void addressed(int fd)
{
    said("connect", connect(fd, (struct sockaddr *)&peer, sizeof(peer)));
    size_t half = strlen(marker) / 2;
    said("sendto", sendto(fd, marker, half, 0, (struct sockaddr *)&peer, sizeof(peer)));
    struct iovec iov = {.iov_base = (void *)(marker + half), .iov_len = strlen(marker) - half};
    struct msghdr m = {.msg_name = &peer, .msg_namelen = sizeof(peer), .msg_iov = &iov, .msg_iovlen = 1};
    said("sendmsg", sendmsg(fd, &m, 0));
    echo_back(fd, strlen(marker));
}

/* The copy is written to after the connect: it must not reach the wire. */
static void dup_before(int fd)
{
    int copy = dup(fd);
    said("connect", connect(fd, (struct sockaddr *)&peer, sizeof(peer)));
    said("write on the copy", write(copy, marker, strlen(marker)));
    said("send", send(fd, "hello", 5, 0));
    echo_back(fd, 5);
}

static void fork_before(int fd)
{
    int go[2];
    if (pipe(go) != 0)
        exit(2);
    pid_t child = fork();
    if (child == 0) {
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(2);
        said("child write", write(fd, marker, strlen(marker)));
        _exit(0);
    }
    said("connect", connect(fd, (struct sockaddr *)&peer, sizeof(peer)));
    said("send", send(fd, "hello", 5, 0));
    echo_back(fd, 5);
    if (write(go[1], "g", 1) != 1)
        exit(2);
    int status;
    waitpid(child, &status, 0);
}

static void bound(int fd)
{
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    said("bind", bind(fd, (struct sockaddr *)&local, sizeof(local)));
    socklen_t len = sizeof(local);
    getsockname(fd, (struct sockaddr *)&local, &len);
    unsigned port_before = ntohs(local.sin_port);
    said("connect", connect(fd, (struct sockaddr *)&peer, sizeof(peer)));
    len = sizeof(local);
    getsockname(fd, (struct sockaddr *)&local, &len);
    printf("local port kept: %s\n", ntohs(local.sin_port) == port_before ? "yes" : "no");
    connected_echo(fd);
}

static void uring_syscall(void)
{
    unsigned char params[120]; /* struct io_uring_params */
    memset(params, 0, sizeof(params));
    long r = syscall(SYS_io_uring_setup, 4, params);
    said("io_uring_setup", r);
    if (r >= 0)
        close((int)r);
}

static void uring_lib(void)
{
    if (dlopen("liburing.so.2", RTLD_NOW | RTLD_GLOBAL) == NULL) {
        printf("no liburing: %s\n", dlerror());
        exit(3);
    }
    /* As a program linked with liburing finds it: in the global scope,
     * where a preloaded library comes first. */
    int (*init)(unsigned, void *, unsigned) =
        (int (*)(unsigned, void *, unsigned))dlsym(RTLD_DEFAULT, "io_uring_queue_init");
    static unsigned char ring[4096];
    int r = init(4, ring, 0);
    printf("io_uring_queue_init: %s\n", r < 0 ? strerrorname_np(-r) : "0");
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: roads MODE PORT MARKER\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    alarm(30); /* a road that hangs fails the test instead of hanging it */
    const char *mode = argv[1];
    marker = argv[3];
    peer.sin_family = AF_INET;
    peer.sin_port = htons((unsigned short)atoi(argv[2]));
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (strcmp(mode, "uring-syscall") == 0)
        uring_syscall();
    else if (strcmp(mode, "uring-lib") == 0)
        uring_lib();
    else if (strcmp(mode, "mptcp") == 0) {
        int fd = tcp_socket(IPPROTO_MPTCP);
        said("connect", connect(fd, (struct sockaddr *)&peer, sizeof(peer)));
        int proto = 0;
        socklen_t len = sizeof(proto);
        getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len);
        printf("protocol: %d\n", proto);
        connected_echo(fd);
    } else {
        int fd = tcp_socket(0);
        if (strcmp(mode, "tfo-sendto") == 0) {
            said("sendto", sendto(fd, marker, strlen(marker), MSG_FASTOPEN, (struct sockaddr *)&peer,
                                  sizeof(peer)));
            echo_back(fd, strlen(marker));
        } else if (strcmp(mode, "tfo-sendmsg") == 0)
            tfo_sendmsg(fd);
        else if (strcmp(mode, "tfo-sendmmsg") == 0)
            tfo_sendmmsg(fd);
        else if (strcmp(mode, "tfo-nonblock") == 0)
            tfo_nonblock(fd);
        else if (strcmp(mode, "tfo-connect") == 0)
            tfo_connect(fd);
        else if (strcmp(mode, "syscall") == 0)
            by_syscall(fd);
        else if (strcmp(mode, "alias") == 0) {
            said("__connect", __connect(fd, (struct sockaddr *)&peer, sizeof(peer)));
            connected_echo(fd);
        } else if (strcmp(mode, "addressed") == 0)
            addressed(fd);
        else if (strcmp(mode, "dup-before") == 0)
            dup_before(fd);
        else if (strcmp(mode, "fork-before") == 0)
            fork_before(fd);
        else if (strcmp(mode, "bound") == 0)
            bound(fd);
        else {
            fprintf(stderr, "roads: unknown mode %s\n", mode);
            return 2;
        }
        close(fd);
    }
    return 0;
}
