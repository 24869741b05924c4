/* Deciding whether a connection is ours: TCP over IPv4/IPv6, then the
 * policy's first matching rule, else its default action.
 *
 * A client rule may match the host name the program resolved, and that
 * name is what the layers verify. nl_decide_client() takes it from names.c
 * for every road to the wire; where it is unknown, the address alone
 * decides, and where several names are candidates, none is trusted: the
 * strictest of their decisions applies and the address is verified, so a
 * second lookup can neither dodge a rule nor get its certificate taken. */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
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
    /* MPTCP is TCP to the program and to the policy: a plaintext road
     * otherwise (socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)). */
    if (nl_real.getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0 ||
        (protocol != IPPROTO_TCP && protocol != IPPROTO_MPTCP))
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

/* --- several candidate names: the strictest decision ----------------- */

static int strictness(enum nl_action action)
{
    switch (action) {
    case NL_ACTION_PASSTHROUGH:
        return 0;
    case NL_ACTION_WRAP:
        return 1;
    case NL_ACTION_DENY:
        break;
    }
    return 2;
}

/* a over b: the stricter action; between equal actions the rule earlier in
 * the file (first match wins; the default comes after every rule). */
static bool stricter(const struct nl_decision *a, const struct nl_decision *b)
{
    if (strictness(a->action) != strictness(b->action))
        return strictness(a->action) > strictness(b->action);
    if (a->rule == NULL || b->rule == NULL)
        return a->rule != NULL && b->rule == NULL;
    return a->rule < b->rule;
}

struct candidates {
    const struct sockaddr *addr;
    size_t n;                  /* distinct names */
    char first[NL_HOST_MAX];   /* the newest, and the next (for the log) */
    char second[NL_HOST_MAX];
    struct nl_decision strictest; /* over the names seen */
};

/* nl_name_fn: runs under the names lock, so only the lock-free matcher. */
static void consider(const char *name, void *ctx)
{
    struct candidates *c = ctx;
    if (c->n < 2)
        snprintf(c->n == 0 ? c->first : c->second, NL_HOST_MAX, "%s", name);
    struct nl_decision d = nl_decide(NL_ROLE_CLIENT, c->addr, name);
    if (c->n++ == 0 || stricter(&d, &c->strictest))
        c->strictest = d;
}

/* --- logging: one line, only where the name matters ------------------ */

/* Whether some layer verifies the connection's own name (no server_name). */
static bool uses_peer_name(const struct nl_decision *d)
{
    if (d->action != NL_ACTION_WRAP || d->rule == NULL)
        return false;
    for (size_t i = 0; i < d->rule->n_layers; i++)
        if (d->rule->layers[i].server_name == NULL)
            return true;
    return false;
}

static void describe(const struct nl_decision *d, char *buf, size_t len)
{
    char who[300] = "the default action";
    if (d->rule != NULL)
        snprintf(who, sizeof(who), "rule '%s'", d->rule->name);
    switch (d->action) {
    case NL_ACTION_PASSTHROUGH:
        snprintf(buf, len, "%s passes it through in plaintext", who);
        return;
    case NL_ACTION_DENY:
        snprintf(buf, len, "%s denies it", who);
        return;
    case NL_ACTION_WRAP:
        break;
    }
    snprintf(buf, len, "%s wraps it%s", who,
             uses_peer_name(d) ? ", verifying the address itself" : "");
}

/* A "*.example.com" pattern's sample name, "x.example.com". */
static void sample_name(const char *pattern, char *buf, size_t len)
{
    bool wild = pattern[0] == '*';
    snprintf(buf, len, "%s%s", wild ? "x" : "", pattern + wild);
}

/* The first rule, before the one the address alone meets, that a host name
 * would have selected: a rule by name that this connection misses. */
static const struct nl_rule *rule_missed(const struct sockaddr *addr,
                                         const struct nl_decision *by_address,
                                         const char **pattern)
{
    for (size_t i = 0; i < nl_policy->n_rules; i++) {
        const struct nl_rule *r = &nl_policy->rules[i];
        if (r == by_address->rule)
            break;
        for (size_t j = 0; j < r->n_addrs; j++) {
            char sample[NL_HOST_MAX];
            if (r->addrs[j].kind != NL_ADDR_HOST)
                continue;
            sample_name(r->addrs[j].host, sample, sizeof(sample));
            if (nl_decide(NL_ROLE_CLIENT, addr, sample).rule == r) {
                *pattern = r->addrs[j].host;
                return r;
            }
        }
    }
    return NULL;
}

static void log_unknown(const struct sockaddr *addr, const struct nl_decision *d)
{
    const char *pattern = NULL;
    const struct nl_rule *missed = rule_missed(addr, d, &pattern);
    if (missed == NULL && !nl_log_enabled(NL_LOG_DEBUG))
        return; /* no name would have changed anything */
    char a[80], outcome[400];
    nl_format_addr(addr, a, sizeof(a));
    describe(d, outcome, sizeof(outcome));
    if (missed == NULL) {
        nl_debug("client -> %s: no host name is known for this address: %s", a, outcome);
        return;
    }
    /* A warning when the name rule would have been stricter (plaintext
     * where the policy meant TLS, typically). */
    nl_log(strictness(missed->action) > strictness(d->action) ? NL_LOG_WARN : NL_LOG_INFO,
           "client -> %s: no host name is known for this address (the program did not "
           "resolve it through getaddrinfo or gethostbyname), so rule '%s' (address %s) does "
           "not match; by the address alone, %s",
           a, missed->name, pattern, outcome);
}

static void log_ambiguous(const struct sockaddr *addr, const struct candidates *c,
                          const struct nl_decision *d)
{
    char a[80], more[40] = "", outcome[400];
    nl_format_addr(addr, a, sizeof(a));
    if (c->n > 2)
        snprintf(more, sizeof(more), " (and %zu more)", c->n - 2);
    if (!uses_peer_name(d)) {
        /* No layer verifies a name: which one it is does not matter. */
        describe(d, outcome, sizeof(outcome));
        nl_debug("client -> %s: names '%s' and '%s'%s resolve to this address; the strictest "
                 "of their decisions: %s",
                 a, c->first, c->second, more, outcome);
        return;
    }
    nl_warn("rule '%s': client -> %s: names '%s' and '%s'%s %s resolve to this address; which "
            "one this connection is for is unknown, so the address itself is verified (set "
            "server_name in the layer to choose)",
            d->rule->name, a, c->first, c->second, more, c->n > 2 ? "all" : "both");
}

static const char *source_name(enum nl_names_source source)
{
    switch (source) {
    case NL_NAMES_EXACT:
        return "the getaddrinfo result it connects to";
    case NL_NAMES_THIS_THREAD:
        return "resolved by this thread or one that has ended";
    case NL_NAMES_NONE:
        break;
    }
    return "?";
}

struct nl_decision nl_decide_client(const struct sockaddr *addr, char *name_buf, size_t len)
{
    struct candidates c = {.addr = addr};
    enum nl_names_source source = nl_names_for(addr, consider, &c);
    if (c.n == 1 && strlen(c.first) < len) {
        snprintf(name_buf, len, "%s", c.first);
        c.strictest.peer_name = name_buf;
        if (nl_log_enabled(NL_LOG_DEBUG)) {
            char a[80];
            nl_format_addr(addr, a, sizeof(a));
            nl_debug("client -> %s: host name '%s' (%s)", a, name_buf, source_name(source));
        }
        return c.strictest;
    }
    struct nl_decision by_address = nl_decide(NL_ROLE_CLIENT, addr, NULL);
    if (c.n == 0) {
        log_unknown(addr, &by_address);
        return by_address;
    }
    /* Several names: none is trusted, and none may loosen the decision. */
    struct nl_decision d = stricter(&by_address, &c.strictest) ? by_address : c.strictest;
    d.peer_name = NULL;
    if (c.n > 1)
        log_ambiguous(addr, &c, &d);
    return d;
}
