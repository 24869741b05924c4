/* nl_policy_match: rules in file order, the first that matches wins. Runs
 * on every connect/accept from any thread; the policy is immutable, so it
 * takes no lock and allocates nothing. */
#include "policy/loader.h"

#include <string.h>
#include <strings.h>

/* The query's address as (family, bytes, port); IPv4-mapped IPv6 becomes
 * IPv4 so that "10.0.0.0/8" matches a dual-stack socket's peer. */
struct query_addr {
    int family;
    unsigned char bytes[16];
    uint16_t port;
};

static bool query_addr(const struct sockaddr *sa, struct query_addr *qa)
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        qa->family = AF_INET;
        memcpy(qa->bytes, &in->sin_addr, 4);
        qa->port = ntohs(in->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        qa->port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            qa->family = AF_INET;
            memcpy(qa->bytes, in6->sin6_addr.s6_addr + 12, 4);
        } else {
            qa->family = AF_INET6;
            memcpy(qa->bytes, in6->sin6_addr.s6_addr, 16);
        }
        return true;
    }
    return false;
}

/* A connect to the unspecified address reaches loopback (Linux routes
 * 0.0.0.0 to 127.0.0.1 and :: to ::1): it is matched as loopback, so a
 * rule for 127.0.0.0/8 or ::1 cannot be dodged by it. */
static void unspecified_is_loopback(struct query_addr *qa)
{
    static const unsigned char zero[16];
    if (memcmp(qa->bytes, zero, qa->family == AF_INET ? 4 : 16) != 0)
        return;
    qa->bytes[qa->family == AF_INET ? 0 : 15] = qa->family == AF_INET ? 127 : 1;
    if (qa->family == AF_INET)
        qa->bytes[3] = 1;
}

static bool cidr_contains(const struct nl_addr_match *m, const struct query_addr *qa)
{
    if (m->family != qa->family)
        return false;
    int full = m->prefix / 8, bits = m->prefix % 8;
    if (memcmp(m->addr, qa->bytes, (size_t)full) != 0)
        return false;
    if (bits == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - bits));
    return (qa->bytes[full] & mask) == m->addr[full];
}

/* "*.example.com" matches "a.example.com" and "a.b.example.com", never
 * "example.com" itself. A trailing dot on the query is ignored. */
static bool host_matches(const char *pattern, const char *name)
{
    size_t len = strlen(name);
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (strncmp(pattern, "*.", 2) != 0)
        return strlen(pattern) == len && strncasecmp(pattern, name, len) == 0;
    const char *suffix = pattern + 1; /* ".example.com" */
    size_t slen = strlen(suffix);
    return len > slen && strncasecmp(name + len - slen, suffix, slen) == 0;
}

static bool address_matches(const struct nl_rule *rule, const struct nl_conn_query *q,
                            const struct query_addr *qa, bool have_addr)
{
    if (rule->n_addrs == 0)
        return true;
    for (size_t i = 0; i < rule->n_addrs; i++) {
        const struct nl_addr_match *m = &rule->addrs[i];
        switch (m->kind) {
        case NL_ADDR_ANY:
            return true;
        case NL_ADDR_CIDR:
            if (have_addr && cidr_contains(m, qa))
                return true;
            break;
        case NL_ADDR_HOST:
            if (q->hostname != NULL && host_matches(m->host, q->hostname))
                return true;
            break;
        }
    }
    return false;
}

static bool port_matches(const struct nl_rule *rule, const struct query_addr *qa, bool have_addr)
{
    if (rule->n_ports == 0)
        return true;
    if (!have_addr)
        return false;
    for (size_t i = 0; i < rule->n_ports; i++)
        if (qa->port >= rule->ports[i].lo && qa->port <= rule->ports[i].hi)
            return true;
    return false;
}

const struct nl_rule *nl_policy_match(const struct nl_policy *policy, const struct nl_conn_query *q)
{
    if (policy == NULL || q == NULL)
        return NULL;
    struct query_addr qa;
    bool have_addr = query_addr(q->addr, &qa);
    if (have_addr && q->role == NL_ROLE_CLIENT)
        unspecified_is_loopback(&qa);
    for (size_t i = 0; i < policy->n_rules; i++) {
        const struct nl_rule *rule = &policy->rules[i];
        if (rule->role != NL_ROLE_ANY && rule->role != q->role)
            continue;
        if (rule->program != NULL && (q->program == NULL || strcmp(rule->program, q->program) != 0))
            continue;
        if (address_matches(rule, q, &qa, have_addr) && port_matches(rule, &qa, have_addr))
            return rule;
    }
    return NULL;
}

bool nl_policy_listener_restricted(const struct nl_policy *policy, const struct nl_conn_query *q)
{
    struct query_addr qa;
    if (!query_addr(q->addr, &qa))
        return false;
    static const unsigned char zero[16];
    bool wildcard = memcmp(qa.bytes, zero, qa.family == AF_INET ? 4 : 16) == 0;
    if (!wildcard) {
        const struct nl_rule *rule = nl_policy_match(policy, q);
        return (rule ? rule->action : policy->settings.default_action) != NL_ACTION_PASSTHROUGH;
    }
    /* Any local address may accept: any rule for this port that restricts
     * might apply (the engine then decides each connection exactly). */
    if (policy->settings.default_action != NL_ACTION_PASSTHROUGH)
        return true;
    for (size_t i = 0; i < policy->n_rules; i++) {
        const struct nl_rule *rule = &policy->rules[i];
        if (rule->role == NL_ROLE_CLIENT || rule->action == NL_ACTION_PASSTHROUGH)
            continue;
        if (rule->program != NULL && (q->program == NULL || strcmp(rule->program, q->program) != 0))
            continue;
        if (port_matches(rule, &qa, true))
            return true;
    }
    return false;
}

bool nl_policy_restricts(const struct nl_policy *policy)
{
    if (policy->settings.default_action != NL_ACTION_PASSTHROUGH)
        return true;
    for (size_t i = 0; i < policy->n_rules; i++)
        if (policy->rules[i].action != NL_ACTION_PASSTHROUGH)
            return true;
    return false;
}
