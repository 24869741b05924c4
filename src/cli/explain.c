/* nestls explain: ask the policy's own matcher which rule a connection
 * would meet, and show the layer stack it would get. A client host name
 * is resolved only when the decision depends on its address
 * (match_name.c); the words of the text output are in explain_print.c. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/explain.h"

/* The policy's own matcher on one query. */
static const struct nl_rule *match(const struct nl_policy *policy, enum nl_role role,
                                   const struct nl_cli_target *t, const char *name,
                                   const char *program)
{
    struct nl_conn_query q = {
        .role = role,
        .addr = (const struct sockaddr *)&t->addr,
        .hostname = name,
        .program = program,
    };
    return nl_policy_match(policy, &q);
}

/* A client given by name: decide by the name (resolving it only when an
 * earlier rule could claim the connection by address), and by the
 * address alone when it is known. Returns 0 or a failure status. */
static int decide_by_name(struct explain *e, const struct nl_cli_ctx *c)
{
    struct nl_cli_target *t = &e->target;
    const struct nl_rule *rule, *needs;
    char why[600];
    if (nl_cli_match_by_name(e->policy, t->name, t->port, e->program, &rule, &needs)) {
        e->outcomes[e->n++] = (struct outcome){"host_name", rule, t->name, NULL};
    } else {
        e->resolve_reason = needs;
        if (nl_cli_target_resolve(t, why, sizeof(why)) != 0)
            return nl_cli_fail(c, NL_EXIT_FAIL,
                               "explain: %s (its address is needed: rule %zu \"%s\", line %d, "
                               "matches by address); give HOST as an IP address",
                               why, (size_t)(needs - e->policy->rules) + 1, needs->name,
                               needs->pos.line);
        e->outcomes[e->n++] = (struct outcome){
            "host_name", match(e->policy, NL_ROLE_CLIENT, t, t->name, e->program), t->name,
            t->ip};
    }
    /* curl answers localhost names itself, with loopback (RFC 6761): that
     * address is known without asking anyone. */
    if (!t->have_addr && nl_cli_is_localhost(t->name)) {
        struct in_addr loopback = {htonl(INADDR_LOOPBACK)};
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = loopback};
        nl_cli_target_set_addr(t, (const struct sockaddr *)&sin);
        e->loopback_assumed = true;
    }
    if (t->have_addr)
        e->outcomes[e->n++] = (struct outcome){
            "address", match(e->policy, NL_ROLE_CLIENT, t, NULL, e->program), NULL, t->ip};
    return 0;
}

static int decide(struct explain *e, const struct nl_cli_ctx *c)
{
    struct nl_cli_target *t = &e->target;
    char why[600];
    if (e->role == NL_ROLE_CLIENT && t->name != NULL)
        return decide_by_name(e, c);
    /* A server rule never matches a name: the local address decides. */
    if (nl_cli_target_resolve(t, why, sizeof(why)) != 0)
        return nl_cli_fail(c, NL_EXIT_FAIL, "explain: %s", why);
    e->outcomes[e->n++] = (struct outcome){
        "address", match(e->policy, e->role, t, NULL, e->program), NULL, t->ip};
    return 0;
}

#define OPT_JSON 256
#define OPT_PROGRAM 257

/* Options anywhere (getopt permutes); positionals: [FILE] ROLE HOST:PORT. */
static int parse_args(int argc, char **argv, const struct nl_cli_ctx *c, struct explain *e,
                      const char **file, const char **role, const char **target)
{
    static const struct option longopts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"program", required_argument, NULL, OPT_PROGRAM},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char shortopts[] = ":p:h";
    char **args = argv - 1;
    int opt;
    optind = 0;
    opterr = 0;
    while ((opt = getopt_long(argc + 1, args, shortopts, longopts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            *file = optarg;
            break;
        case OPT_PROGRAM:
            e->program = optarg;
            break;
        case OPT_JSON:
            break; /* seen by nl_cli_json_requested */
        case 'h':
            nl_cli_usage(stdout);
            return -1;
        default:
            return nl_cli_bad_option(c, opt, args, shortopts);
        }
    }
    char **pos = args + optind;
    int n = argc + 1 - optind, want = *file != NULL ? 2 : 3;
    if (n > want)
        return nl_cli_usage_fail(c, "unexpected argument: %s", pos[want]);
    if (n < want)
        return nl_cli_usage_fail(c, "expected %sclient|server HOST:PORT",
                                 *file != NULL ? "" : "FILE (or -p FILE) ");
    if (*file == NULL)
        *file = *pos++;
    *role = pos[0];
    *target = pos[1];
    return 0;
}

int nl_cli_explain(int argc, char **argv)
{
    struct nl_cli_ctx c = {"explain", nl_cli_json_requested(argc, argv)};
    struct explain e = {0};
    const char *role = NULL, *target = NULL;
    int rc = parse_args(argc, argv, &c, &e, &e.file, &role, &target);
    if (rc != 0)
        return rc < 0 ? NL_EXIT_OK : rc; /* -1: --help was printed */

    if (strcmp(role, "client") == 0)
        e.role = NL_ROLE_CLIENT;
    else if (strcmp(role, "server") == 0)
        e.role = NL_ROLE_SERVER;
    else
        return nl_cli_usage_fail(&c, "the role must be client or server: %s", role);
    char why[600];
    if (nl_cli_target_parse(target, &e.target, why, sizeof(why)) != 0)
        return nl_cli_usage_fail(&c, "%s", why);

    char err[NL_ERR_MAX];
    if (nl_policy_load(e.file, &e.policy, err, sizeof(err)) != 0)
        return nl_cli_fail(&c, NL_EXIT_FAIL, "%s", err);
    rc = decide(&e, &c);
    if (rc == 0) {
        if (c.json)
            nl_cli_explain_json(stdout, &e);
        else
            nl_cli_explain_text(stdout, &e);
    }
    nl_policy_free(e.policy);
    fflush(stdout);
    return rc;
}
