/* The probe's TCP connection: the target resolved as a program resolves
 * it, the rule chosen for each address as the library chooses it at
 * connect(), and one deadline for the connect and every handshake after. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/probe.h"

double nl_probe_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Milliseconds left until the deadline, for poll. */
static int left(double deadline)
{
    double ms = deadline - nl_probe_now_ms();
    return ms <= 0 ? 0 : ms > 3600000 ? 3600000 : (int)ms + 1;
}

int nl_probe_wait_fd(int fd, short events, double deadline)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    for (;;) {
        int t = left(deadline);
        if (t == 0)
            return 0;
        int r = poll(&pfd, 1, t);
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 ? -1 : r;
    }
}

static int connect_one(struct probe *p, const struct addrinfo *ai, double deadline, char *why,
                       size_t len)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0) {
        snprintf(why, len, "socket: %s", strerror(errno));
        return -1;
    }
    int err = 0;
    socklen_t elen = sizeof(err);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS)
            err = errno;
        else if (nl_probe_wait_fd(fd, POLLOUT, deadline) == 0)
            err = ETIMEDOUT;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
            err = errno;
    }
    if (err != 0) {
        snprintf(why, len, "TCP connect to %s port %u: %s", p->target.ip, p->target.port,
                 strerror(err));
        close(fd);
        return -1;
    }
    p->fd = fd;
    return 0;
}

/* The rule for the address about to be connected to, as the library
 * decides at connect(): by that address and the name that resolved to it.
 * Layers from --layer apply to any address. */
static int choose_rule(struct probe *p, char *why, size_t len)
{
    if (p->from_layers)
        return 0; /* the --layer rule applies to any address */
    struct nl_conn_query q = {
        .role = NL_ROLE_CLIENT,
        .addr = (const struct sockaddr *)&p->target.addr,
        .hostname = p->target.name,
        .program = p->program,
    };
    p->rule = nl_policy_match(p->policy, &q);
    enum nl_action action = p->rule ? p->rule->action : p->policy->settings.default_action;
    if (action == NL_ACTION_WRAP)
        return 0;
    if (p->rule != NULL)
        snprintf(why, len, "no layers to probe: rule %zu \"%s\" (line %d) %s client connections "
                 "to %s port %u", (size_t)(p->rule - p->policy->rules) + 1, p->rule->name,
                 p->rule->pos.line, action == NL_ACTION_DENY ? "denies" : "passes through",
                 p->target.ip, p->target.port);
    else
        snprintf(why, len, "no layers to probe: no rule matches client connections to %s port "
                 "%u (the default action: %s)", p->target.ip, p->target.port,
                 nl_action_name(action));
    return -1;
}

/* Each address in turn, as a program falls back to the next one; an
 * address no rule wraps is skipped (probing it would show nothing), and
 * the last reason stands when none works. */
int nl_probe_connect(struct probe *p, double deadline)
{
    struct addrinfo *res = NULL;
    double start = nl_probe_now_ms();
    if (nl_cli_target_lookup(&p->target, &res, p->error, sizeof(p->error)) != 0)
        return -1;
    int rc = -1;
    const struct nl_rule *wrapping = NULL;
    for (const struct addrinfo *ai = res; ai != NULL && rc != 0; ai = ai->ai_next) {
        nl_cli_target_set_addr(&p->target, ai->ai_addr);
        p->target.resolved = p->target.name != NULL;
        char why[sizeof(p->error)];
        if (choose_rule(p, why, sizeof(why)) != 0) {
            if (wrapping == NULL) /* a connect failure says more */
                snprintf(p->error, sizeof(p->error), "%s", why);
            continue;
        }
        wrapping = p->rule;
        rc = connect_one(p, ai, deadline, p->error, sizeof(p->error));
    }
    /* A failed connect is reported with the layers it would have had. */
    if (rc != 0 && wrapping != NULL)
        p->rule = wrapping;
    freeaddrinfo(res);
    if (rc == 0) {
        p->connected = true;
        p->connect_ms = nl_probe_now_ms() - start;
        p->error[0] = '\0';
    }
    return rc;
}

