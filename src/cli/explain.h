/* nestls explain, between deciding (explain.c) and printing
 * (explain_print.c for people, explain_json.c for --json). */
#ifndef NESTLS_CLI_EXPLAIN_H
#define NESTLS_CLI_EXPLAIN_H

#include <stdio.h>

#include "cli/cli.h"

/* One way the connection can be decided. */
struct outcome {
    const char *basis;          /* "host_name": the program resolved the name through
                                   libc; "address": the address alone decides */
    const struct nl_rule *rule; /* NULL: no rule matches, the default action */
    const char *name;           /* the host name layers verify without server_name */
    const char *ip;             /* the address, when known */
};

struct explain {
    const char *file;                    /* the policy as given */
    struct nl_policy *policy;
    enum nl_role role;
    const char *program;                 /* --program, or NULL */
    struct nl_cli_target target;
    const struct nl_rule *resolve_reason; /* the rule that made resolving the name necessary */
    bool loopback_assumed;               /* a localhost name, taken as 127.0.0.1 unresolved */
    struct outcome outcomes[2];
    size_t n;
};

void nl_cli_explain_text(FILE *out, const struct explain *e);
void nl_cli_explain_json(FILE *out, const struct explain *e);

/* What a client layer sends as SNI and checks the certificate against. */
struct verify_name {
    const char *name;   /* NULL when there is nothing to verify against */
    const char *source; /* "server_name", "host_name" or "ip_address" */
    bool sni;           /* sent as SNI (never for an IP address) */
};
void nl_cli_verify_name(const struct nl_layer *layer, const struct outcome *o,
                        struct verify_name *v);

#endif
