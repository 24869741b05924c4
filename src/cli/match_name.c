/* Deciding a client connection by its host name, without DNS where the
 * policy allows it. A program that resolved NAME connects to an address,
 * and the library matches both: an earlier rule may claim the connection
 * by that address (a CIDR entry) before a later rule names the host. So
 * the address matters only when such a rule comes first; when the first
 * rule that can match does so by name (or matches any address), `explain`
 * can answer without resolving a name it may not be able to resolve here
 * (an internal name, seen from a laptop). */
#include <string.h>

#include "cli/cli.h"

static bool ports_match(const struct nl_rule *rule, unsigned port)
{
    if (rule->n_ports == 0)
        return true;
    for (size_t i = 0; i < rule->n_ports; i++)
        if (port >= rule->ports[i].lo && port <= rule->ports[i].hi)
            return true;
    return false;
}

static bool has_cidr(const struct nl_rule *rule)
{
    for (size_t i = 0; i < rule->n_addrs; i++)
        if (rule->addrs[i].kind == NL_ADDR_CIDR)
            return true;
    return false;
}

/* Whether the rule matches by name alone. The library's own matcher
 * answers, on a one-rule view of the policy and a query without an
 * address, so that names (wildcards, case, trailing dots) are compared
 * exactly as the library compares them. Without an address the matcher
 * cannot see the port, so the view drops the ports, checked above. */
static bool matches_by_name(const struct nl_rule *rule, const char *name, const char *program)
{
    struct nl_rule one = *rule;
    one.n_ports = 0;
    struct nl_policy view = {.rules = &one, .n_rules = 1};
    struct nl_conn_query q = {
        .role = NL_ROLE_CLIENT,
        .addr = NULL,
        .hostname = name,
        .program = program,
    };
    return nl_policy_match(&view, &q) != NULL;
}

static bool role_and_program_match(const struct nl_rule *rule, const char *program)
{
    if (rule->role == NL_ROLE_SERVER)
        return false;
    return rule->program == NULL || (program != NULL && strcmp(rule->program, program) == 0);
}

int nl_cli_match_by_name(const struct nl_policy *policy, const char *name, unsigned port,
                         const char *program, const struct nl_rule **rule,
                         const struct nl_rule **needs_addr)
{
    *rule = NULL;
    *needs_addr = NULL;
    for (size_t i = 0; i < policy->n_rules; i++) {
        const struct nl_rule *r = &policy->rules[i];
        if (!role_and_program_match(r, program) || !ports_match(r, port))
            continue;
        if (matches_by_name(r, name, program)) {
            *rule = r;
            return 1;
        }
        if (has_cidr(r)) {
            *needs_addr = r;
            return 0;
        }
    }
    return 1; /* no rule can match: the default action, whatever the address */
}
