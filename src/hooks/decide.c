/* Deciding whether a connection is ours: TCP over IPv4/IPv6, then the
 * policy's first matching rule, else its default action. */
#include <netinet/in.h>

#include "common/real.h"
#include "common/util.h"
#include "engine/engine.h"
#include "hooks/hooks.h"

bool nl_is_tcp_socket(int fd, int *family)
{
    int type = 0, domain = 0, protocol = 0;
    socklen_t len = sizeof(int);
    if (nl_real.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
        return false;
    len = sizeof(int);
    if (nl_real.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 ||
        (domain != AF_INET && domain != AF_INET6))
        return false;
    len = sizeof(int);
    if (nl_real.getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0 ||
        protocol != IPPROTO_TCP)
        return false;
    if (family)
        *family = domain;
    return true;
}

struct nl_decision nl_decide(enum nl_role role, const struct sockaddr *addr, const char *hostname)
{
    struct nl_conn_query q = {
        .role = role,
        .addr = addr,
        .hostname = hostname,
        .program = nl_program_name(),
    };
    const struct nl_rule *rule = nl_policy_match(nl_policy, &q);
    struct nl_decision d = {.rule = rule,
                            .action = rule ? rule->action : nl_policy->settings.default_action};
    return d;
}
