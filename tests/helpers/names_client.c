/* names_client [-c] [-t|-r] PORT NAME [OTHER...]: a plain TCP client that
 * resolves more than the one name it connects to, as programs do.
 *
 * Resolves NAME (IPv4, getaddrinfo), then each OTHER, keeping every
 * result list until the end, and connects to NAME's first address:
 *       the ai_addr pointer of NAME's list itself (C programs looping over
 *       ai_next do so);
 *   -c  a copy of it (Python and curl connect to a copy);
 *   -t  the OTHER names are resolved by a second thread, still running
 *       when NAME is connected (a later lookup elsewhere in the program);
 *   -r  NAME is resolved by a helper thread that then ends, and a copy is
 *       connected from the main thread (curl's threaded resolver);
 *       implies -c.
 * Then copies stdin to the socket, half-closes it, and the socket to
 * stdout until EOF. stderr: "names_client: connect: EACCES (...)".
 * Exit status: 0 clean EOF; 1 usage; 3 resolving or connect failed; 4 I/O. */
#define _GNU_SOURCE /* strerrorname_np */
#include <pthread.h>
#include <signal.h>

#include "netutil.h"

struct lookup {
    const char *name, *port;
    struct addrinfo *res;
    int rc;
};

/* -t: the second thread resolves, says so, then runs until told to end. */
struct others {
    struct lookup *l;
    size_t n;
    int resolved[2], end[2]; /* pipes */
};

static void *resolve(void *arg)
{
    struct lookup *l = arg;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    l->rc = getaddrinfo(l->name, l->port, &hints, &l->res);
    if (l->rc != 0)
        fprintf(stderr, "names_client: getaddrinfo %s: %s\n", l->name, gai_strerror(l->rc));
    return NULL;
}

/* Resolve in this thread, or in a new one that has ended on return. */
static int resolve_all(struct lookup *l, size_t n, int in_thread)
{
    pthread_t t;
    for (size_t i = 0; i < n; i++) {
        if (in_thread) {
            if (pthread_create(&t, NULL, resolve, &l[i]) != 0 || pthread_join(t, NULL) != 0)
                return -1;
        } else {
            resolve(&l[i]);
        }
        if (l[i].rc != 0)
            return -1;
    }
    return 0;
}

static void *resolve_and_stay(void *arg)
{
    struct others *o = arg;
    char c = resolve_all(o->l, o->n, 0) == 0;
    if (write(o->resolved[1], &c, 1) != 1 || read(o->end[0], &c, 1) < 0)
        return NULL;
    return NULL;
}

/* -t: start the second thread; true once it has resolved every OTHER. */
static int start_others(struct others *o, pthread_t *t)
{
    char ok = 0;
    if (pipe(o->resolved) != 0 || pipe(o->end) != 0 ||
        pthread_create(t, NULL, resolve_and_stay, o) != 0)
        return 0;
    return read(o->resolved[0], &ok, 1) == 1 && ok;
}

static void stop_others(struct others *o, pthread_t t)
{
    close(o->end[1]);
    pthread_join(t, NULL);
}

static int copy(int in, int out)
{
    char buf[1 << 14];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (write_all(out, buf, (size_t)n) != 0)
            return -1;
    return n == 0 ? 0 : -1;
}

static int exchange(int fd)
{
    char e[128];
    if (copy(STDIN_FILENO, fd) != 0 || shutdown(fd, SHUT_WR) != 0 || copy(fd, STDOUT_FILENO) != 0) {
        fprintf(stderr, "names_client: I/O: %s\n", errno_text(errno, e, sizeof(e)));
        return 4;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int copied = 0, other_thread = 0, resolver_thread = 0, opt;
    while ((opt = getopt(argc, argv, "ctr")) != -1) {
        copied |= opt == 'c' || opt == 'r';
        other_thread |= opt == 't';
        resolver_thread |= opt == 'r';
        if (opt == '?')
            return 1;
    }
    if (argc - optind < 2) {
        fprintf(stderr, "usage: names_client [-c] [-t|-r] PORT NAME [OTHER...]\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    const char *port = argv[optind];
    size_t n = (size_t)(argc - optind - 1);
    struct lookup *l = calloc(n, sizeof(*l));
    for (size_t i = 0; i < n; i++)
        l[i] = (struct lookup){.name = argv[optind + 1 + i], .port = port};
    struct others others = {.l = l + 1, .n = n - 1};
    pthread_t other;
    if (resolve_all(l, 1, resolver_thread) != 0 ||
        (other_thread ? !start_others(&others, &other) : resolve_all(l + 1, n - 1, 0) != 0)) {
        for (size_t i = 0; i < n; i++)
            if (l[i].res != NULL)
                freeaddrinfo(l[i].res);
        free(l);
        return 3;
    }

    const struct addrinfo *ai = l[0].res;
    struct sockaddr_storage copy_of;
    const struct sockaddr *to = ai->ai_addr;
    if (copied) {
        memcpy(&copy_of, ai->ai_addr, ai->ai_addrlen);
        to = (const struct sockaddr *)&copy_of;
    }
    char e[128];
    int rc = 3;
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0 || connect(fd, to, ai->ai_addrlen) != 0)
        fprintf(stderr, "names_client: connect: %s\n", errno_text(errno, e, sizeof(e)));
    else
        rc = exchange(fd);
    if (fd >= 0)
        close(fd);
    if (other_thread)
        stop_others(&others, other);
    for (size_t i = 0; i < n; i++)
        freeaddrinfo(l[i].res);
    free(l);
    return rc;
}
