/* The words of `nestls explain` (text output). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "cli/explain.h"

static bool is_ip(const char *s)
{
    unsigned char raw[16];
    return inet_pton(AF_INET, s, raw) == 1 || inet_pton(AF_INET6, s, raw) == 1;
}

void nl_cli_verify_name(const struct nl_layer *layer, const struct outcome *o,
                        struct verify_name *v)
{
    if (layer->server_name != NULL)
        *v = (struct verify_name){layer->server_name, "server_name", !is_ip(layer->server_name)};
    else if (o->name != NULL)
        *v = (struct verify_name){o->name, "host_name", true};
    else
        *v = (struct verify_name){o->ip, "ip_address", false};
}

static void client_name(const struct nl_layer *layer, const struct outcome *o, char *buf,
                        size_t len)
{
    struct verify_name v;
    nl_cli_verify_name(layer, o, &v);
    const char *checked = !layer->verify ? "not verified"
                          : v.sni        ? "SNI and verification"
                                         : "no SNI; the certificate must name this IP";
    if (strcmp(v.source, "server_name") == 0)
        snprintf(buf, len, "%s (server_name; %s)", v.name, checked);
    else if (strcmp(v.source, "host_name") == 0)
        snprintf(buf, len, "%s (the host name; %s)", v.name, checked);
    else
        snprintf(buf, len, "IP address %s (%s)", v.name ? v.name : "?",
                 layer->verify ? checked : "no SNI, not verified");
}

static void print_outcome(FILE *out, const struct explain *e, const struct outcome *o)
{
    const struct nl_rule *rule = o->rule;
    char name[600];
    if (rule == NULL) {
        fprintf(out, "match:   no rule matches\n");
        fprintf(out, "action:  %s (the default action)\n",
                nl_action_name(e->policy->settings.default_action));
        return;
    }
    fprintf(out, "match:   rule %zu \"%s\" at %s:%d\n", (size_t)(rule - e->policy->rules) + 1,
            rule->name, e->file, rule->pos.line);
    switch (rule->action) {
    case NL_ACTION_PASSTHROUGH:
        fprintf(out, "action:  passthrough (plain TCP, not wrapped)\n");
        return;
    case NL_ACTION_DENY:
        fprintf(out, "action:  deny (the connection is refused)\n");
        return;
    case NL_ACTION_WRAP:
        break;
    }
    fprintf(out, "action:  wrap in %zu TLS layer%s, outermost first\n", rule->n_layers,
            rule->n_layers == 1 ? "" : "s");
    nl_cli_print_starttls(out, rule, "");
    for (size_t i = 0; i < rule->n_layers; i++) {
        const struct nl_layer *layer = &rule->layers[i];
        client_name(layer, o, name, sizeof(name));
        nl_cli_print_layer(out, layer, i, rule->n_layers, e->role,
                           e->role == NL_ROLE_CLIENT ? name : NULL, "  ");
    }
}

static void print_query(FILE *out, const struct explain *e)
{
    const struct nl_cli_target *t = &e->target;
    const char *verb = e->role == NL_ROLE_CLIENT ? "client connects to" : "server accepts on";
    if (!t->have_addr || e->loopback_assumed)
        fprintf(out, "query:   %s %s port %u (not resolved: the decision by name does not "
                     "need its address)", verb, t->name, t->port);
    else if (t->name != NULL)
        fprintf(out, "query:   %s %s port %u, %s %s", verb, t->ip, t->port,
                e->role == NL_ROLE_CLIENT ? "host name" : "resolved from", t->name);
    else
        fprintf(out, "query:   %s %s port %u", verb, t->ip, t->port);
    fprintf(out, ", program %s\n", e->program ? e->program : "(not given)");
    if (e->loopback_assumed)
        fprintf(out, "         localhost names stay on loopback (RFC 6761): the address alone "
                     "is taken as %s\n", t->ip);
    if (e->resolve_reason != NULL)
        fprintf(out, "         %s resolved to %s: rule %zu \"%s\" matches by address, so "
                     "the address decides\n", t->name, t->ip,
                (size_t)(e->resolve_reason - e->policy->rules) + 1, e->resolve_reason->name);
}

/* The library sees a client's host name only when the program resolves it
 * through libc: say so, and show both outcomes, so that a wrap promised by
 * a name is never read as a wrap of every connection to that address. */
static void print_names_note(FILE *out, const char *name)
{
    fprintf(out, "names:   the host name counts only for a program that resolves it through "
                 "libc\n         (getaddrinfo, gethostbyname) and connects to what it "
                 "returned.\n");
    if (nl_cli_is_localhost(name))
        fprintf(out, "         curl answers \"localhost\" itself, without libc: for curl this\n"
                     "         connection is decided by the address alone, as is any "
                     "connection\n         whose name nestls does not see.\n");
    else
        fprintf(out, "         A connection whose name nestls does not see (a program with "
                     "its own\n         resolver, or given the bare address) is decided by "
                     "the address alone.\n");
    fprintf(out, "         A program that resolved other names to this address as well gets "
                 "the\n         strictest of their outcomes, and a layer without server_name "
                 "verifies\n         the address itself.\n");
}

void nl_cli_explain_text(FILE *out, const struct explain *e)
{
    const struct nl_cli_target *t = &e->target;
    fprintf(out, "policy:  %s\n", e->policy->path);
    print_query(out, e);
    if (strcmp(e->outcomes[0].basis, "address") == 0) {
        print_outcome(out, e, &e->outcomes[0]);
        return;
    }
    print_names_note(out, t->name);
    fprintf(out, "\nresolved through libc, as %s:\n", t->name);
    print_outcome(out, e, &e->outcomes[0]);
    if (e->n < 2) {
        fprintf(out, "\nby the address alone: not shown, as %s was not resolved (the "
                     "decision by\n         name does not need it); explain IP:%u shows it\n",
                t->name, t->port);
        return;
    }
    fprintf(out, "\nby the address %s alone (%s, or a name nestls does not see):\n", t->ip,
            nl_cli_is_localhost(t->name) ? "curl" : "an IP given");
    print_outcome(out, e, &e->outcomes[1]);
}
