/* vforker PORT: holds a wrapped connection to an echo server on
 * 127.0.0.1:PORT while starting children with vfork() and with
 * posix_spawnp(): a child whose exec fails through every PATH entry
 * (execvp of a missing name), then _exit()s; a child that execs true; a
 * posix_spawnp of true and of a missing name. After each, the connection
 * must still echo, and a new one must too. Prints "ok" and exits 0, or
 * says what failed and exits 1. */
#define _GNU_SOURCE
#include <spawn.h>
#include <sys/wait.h>

#include "netutil.h"

extern char **environ;

static int connect_to(const char *port)
{
    struct addrinfo *ai;
    int fd = tcp_socket_for("vforker", "127.0.0.1", port, 0, &ai);
    if (fd < 0)
        return -1;
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return rc == 0 ? fd : -1;
}

static int echoes(int fd, const char *what)
{
    char line[64], back[64];
    int n = snprintf(line, sizeof(line), "%s\n", what);
    if (write_all(fd, line, (size_t)n) != 0)
        return 0;
    int got = 0;
    while (got < n) {
        ssize_t r = read(fd, back + got, sizeof(back) - (size_t)got);
        if (r <= 0)
            return 0;
        got += (int)r;
    }
    return memcmp(line, back, (size_t)n) == 0;
}

static int vfork_exec(const char *name)
{
    char *argv[] = {(char *)name, NULL};
    pid_t pid = vfork();
    if (pid == 0) {
        execvp(name, argv);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int spawn(const char *name)
{
    char *argv[] = {(char *)name, NULL};
    pid_t pid;
    if (posix_spawnp(&pid, name, NULL, NULL, argv, environ) != 0)
        return 127;
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    int held = connect_to(argv[1]);
    if (held < 0 || !echoes(held, "before")) {
        printf("no first echo\n");
        return 1;
    }
    for (int k = 0; k < 20; k++) {
        int a = vfork_exec("nestls-no-such-program"), b = vfork_exec("true");
        int c = spawn("true"), d = spawn("nestls-no-such-program");
        if (a != 127 || b != 0 || c != 0 || d != 127) {
            printf("round %d: children exited %d %d %d %d\n", k, a, b, c, d);
            return 1;
        }
        int fresh = connect_to(argv[1]);
        if (!echoes(held, "held") || fresh < 0 || !echoes(fresh, "fresh")) {
            printf("round %d: a connection no longer echoes\n", k);
            return 1;
        }
        close(fresh);
    }
    printf("ok\n");
    return 0;
}
