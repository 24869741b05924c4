/* fdhygiene: what a program that lists, closes or dup2s over "every
 * descriptor" sees of nestls (tests/process_descriptors.bats).
 *
 *   fdhygiene fds
 *       Prints "fds: N N ..." (every descriptor >= 3 but the one reading
 *       /proc/self/fd), or "fds: none".
 *
 *   fdhygiene log HOW LOGFILE PORT1 PORT2 OUTFILE
 *       Connects to 127.0.0.1:PORT1 (nothing listens: under NESTLS_LOG=debug
 *       the decision line opens LOGFILE), finds the descriptor holding
 *       LOGFILE, then does HOW to it:
 *         closefrom | close_range | close_loop        libc: close every fd >= 3
 *         raw_close_range | raw_close                 the same through syscall()
 *         asm_close                                   a system call no hook sees
 *       then opens OUTFILE and puts it on the log descriptor's number (dup2,
 *       or for raw_* syscall(SYS_dup2), for asm_close the system call
 *       itself), and connects to 127.0.0.1:PORT2 (a second decision line).
 *       Prints "log fd N", then "ok". OUTFILE must stay empty.
 *
 *   fdhygiene wrapped HOW PORT OUTFILE
 *       Connects to 127.0.0.1:PORT (wrapped by the policy; the peer echoes
 *       each line reversed, openssl s_server -rev), checks one line, moves
 *       the connection to descriptor 0, then closes every descriptor >= 3
 *       (HOW: libc close_range, or raw: syscall(SYS_close_range)), opens
 *       OUTFILE and dup2s it (HOW: dup2, or syscall(SYS_dup3)) over every
 *       descriptor still open >= 3 (nestls's own), and checks another line
 *       on the connection. Prints "kept N", "echo ok", "ok".
 *
 * Exit status: 0 ok; 1 usage; 2 a step failed (named on stderr). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "netutil.h"

static int failed(const char *what)
{
    char e[128];
    fprintf(stderr, "fdhygiene: %s: %s\n", what, errno_text(errno, e, sizeof(e)));
    return 2;
}

/* Every open descriptor >= 3, ascending, into fds (at most cap). */
static int list_fds(int *fds, int cap)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL && n < cap) {
        if (ent->d_name[0] == '.')
            continue;
        int fd = atoi(ent->d_name);
        if (fd >= 3 && fd != dirfd(d))
            fds[n++] = fd;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: a handful of numbers */
        for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
            int t = fds[j];
            fds[j] = fds[j - 1];
            fds[j - 1] = t;
        }
    return n;
}

static int show_fds(void)
{
    int fds[256];
    int n = list_fds(fds, 256);
    if (n < 0)
        return failed("/proc/self/fd");
    printf("fds:");
    for (int i = 0; i < n; i++)
        printf(" %d", fds[i]);
    printf("%s\n", n == 0 ? " none" : "");
    return 0;
}

/* A connect to 127.0.0.1:port, whatever its result: it makes the decision
 * line nestls logs at debug level. */
static void touch_port(const char *port)
{
    struct addrinfo *ai;
    int fd = tcp_socket_for("fdhygiene", "127.0.0.1", port, 0, &ai);
    if (fd < 0)
        return;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != ECONNREFUSED)
        perror("fdhygiene: connect");
    freeaddrinfo(ai);
    close(fd);
}

static int find_fd_of(const char *path)
{
    char want[PATH_MAX];
    if (realpath(path, want) == NULL)
        return -1;
    int fds[256];
    int n = list_fds(fds, 256);
    for (int i = 0; i < n; i++) {
        char link[64], target[PATH_MAX];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fds[i]);
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (strcmp(target, want) == 0)
            return fds[i];
    }
    return -1;
}

/* The highest descriptor number worth closing one by one. */
static int fd_ceiling(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur > 65536)
        return 65536;
    return (int)rl.rlim_cur;
}

#if defined(__x86_64__)
/* A system call made without libc: no preloaded hook sees it. */
static long asm_syscall2(long n, long a, long b)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return r;
}
#endif

static int log_case(const char *how, const char *logfile, const char *port1, const char *port2,
                    const char *outfile)
{
    touch_port(port1);
    int logfd = find_fd_of(logfile);
    if (logfd < 0) {
        fprintf(stderr, "fdhygiene: no descriptor holds %s\n", logfile);
        return 2;
    }
    printf("log fd %d\n", logfd);
    fflush(stdout);
    bool raw = strncmp(how, "raw_", 4) == 0;
    if (strcmp(how, "closefrom") == 0) {
        closefrom(3);
    } else if (strcmp(how, "close_range") == 0) {
        if (close_range(3, ~0U, 0) != 0)
            return failed("close_range");
    } else if (strcmp(how, "raw_close_range") == 0) {
        if (syscall(SYS_close_range, 3, ~0U, 0) != 0)
            return failed("syscall(SYS_close_range)");
    } else if (strcmp(how, "close_loop") == 0 || strcmp(how, "raw_close") == 0) {
        for (int fd = 3, top = fd_ceiling(); fd < top; fd++)
            raw ? syscall(SYS_close, fd) : close(fd);
    } else if (strcmp(how, "asm_close") == 0) {
#if defined(__x86_64__)
        asm_syscall2(SYS_close, logfd, 0);
#else
        fprintf(stderr, "fdhygiene: asm_close is x86_64 only\n");
        return 1;
#endif
    } else if (strcmp(how, "dup2") != 0 && strcmp(how, "raw_dup2") != 0) {
        fprintf(stderr, "fdhygiene: unknown HOW '%s'\n", how);
        return 1;
    }
    int out = open(outfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        return failed("open OUTFILE");
    long r;
    if (strcmp(how, "asm_close") == 0) {
#if defined(__x86_64__)
        r = asm_syscall2(SYS_dup2, out, logfd);
        if (r < 0)
            errno = (int)-r;
#endif
    } else if (raw) {
        r = syscall(SYS_dup2, out, logfd);
    } else {
        r = dup2(out, logfd);
    }
    if (r != logfd)
        return failed("dup2 OUTFILE onto the log's number");
    touch_port(port2);
    printf("ok\n");
    return 0;
}

/* Send text and a newline, read one line back; true when it is text
 * reversed (s_server -rev). */
static bool reversed_echo(int fd, const char *text)
{
    char line[128], got[128];
    size_t n = (size_t)snprintf(line, sizeof(line), "%s\n", text), have = 0;
    if (write_all(fd, line, n) != 0)
        return false;
    while (have < sizeof(got) - 1 && (have == 0 || got[have - 1] != '\n')) {
        ssize_t r = read(fd, got + have, sizeof(got) - 1 - have);
        if (r <= 0)
            return false;
        have += (size_t)r;
    }
    for (size_t i = 0; i + 1 < n; i++)
        if (got[i] != text[n - 2 - i])
            return false;
    return true;
}

static int wrapped_case(const char *how, const char *port, const char *outfile)
{
    bool raw = strcmp(how, "raw") == 0;
    if (!raw && strcmp(how, "libc") != 0) {
        fprintf(stderr, "fdhygiene: unknown HOW '%s'\n", how);
        return 1;
    }
    struct addrinfo *ai;
    int s = tcp_socket_for("fdhygiene", "127.0.0.1", port, 0, &ai);
    if (s < 0)
        return 2;
    if (connect(s, ai->ai_addr, ai->ai_addrlen) != 0)
        return failed("connect");
    freeaddrinfo(ai);
    if (!reversed_echo(s, "before"))
        return failed("echo before");
    if (dup2(s, 0) != 0)
        return failed("dup2 the connection to 0");
    long r = raw ? syscall(SYS_close_range, 3, ~0U, 0) : close_range(3, ~0U, 0);
    if (r != 0)
        return failed("close_range(3, ~0U, 0)");
    int kept[256];
    int n = list_fds(kept, 256);
    printf("kept %d\n", n);
    int out = open(outfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        return failed("open OUTFILE");
    for (int i = 0; i < n; i++) {
        if (kept[i] == out)
            continue;
        r = raw ? syscall(SYS_dup3, out, kept[i], O_CLOEXEC) : dup2(out, kept[i]);
        if (r != kept[i])
            return failed("dup2 OUTFILE over a descriptor still open");
    }
    if (!reversed_echo(0, "after"))
        return failed("echo after");
    printf("echo ok\n");
    printf("ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "fds") == 0)
        return show_fds();
    if (argc == 7 && strcmp(argv[1], "log") == 0)
        return log_case(argv[2], argv[3], argv[4], argv[5], argv[6]);
    if (argc == 5 && strcmp(argv[1], "wrapped") == 0)
        return wrapped_case(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: fdhygiene fds | log HOW LOGFILE PORT1 PORT2 OUTFILE | "
                    "wrapped HOW PORT OUTFILE\n");
    return 1;
}
