/* rules: a list of {name, match, action, layers}. A rule's label ("rule
 * 'db'", or "rule 3" when unnamed) prefixes every error inside it. */
#include "policy/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const nl_rule_keys[] = {"name", "match", "action", "layers", "starttls", NULL};
const char *const nl_match_keys[] = {"role", "address", "port", "program", NULL};
/* In enum nl_action order. */
static const char *const ACTIONS[] = {"wrap", "passthrough", "deny", NULL};
/* enum nl_role minus one: "any" is not written, it is the absence of role. */
static const char *const ROLES[] = {"client", "server", NULL};
/* enum nl_starttls_proto minus one: no key is NL_STARTTLS_NONE. */
static const char *const STARTTLS[] = {"smtp", "imap", "pop3", "ftp", "postgres", NULL};

static void set_where(struct nl_loader *L, const char *prefix, const char *label)
{
    snprintf(L->where, sizeof(L->where), "%s%s", prefix, label);
}

static int parse_match(struct nl_loader *L, const yaml_node_t *v, struct nl_rule *rule,
                       const char *label)
{
    char kind[64], where[160];
    if (nl_yaml_is_null(v))
        return 0; /* "match:" with nothing under it matches everything */
    if (v->type != YAML_MAPPING_NODE)
        return nl_fail(L, v, "'match' must be a mapping of role, address, port, program (got %s)",
                       nl_yaml_kind(v, kind, sizeof(kind)));
    snprintf(where, sizeof(where), "in match of %s", label);
    NL_GUARD(nl_yaml_check_mapping(L, v, nl_match_keys, where));
    set_where(L, "match of ", label);

    const yaml_node_t *x;
    if ((x = nl_yaml_get(L, v, "role", NULL)) != NULL) {
        int role;
        NL_GUARD(nl_get_enum(L, x, "role", ROLES, &role));
        rule->role = (enum nl_role)(role + 1);
    }
    if ((x = nl_yaml_get(L, v, "address", NULL)) != NULL) {
        NL_GUARD(nl_parse_addresses(L, x, rule));
        /* A server knows only the address a connection arrived on, never a
         * name: such an entry could never match, so say so now. */
        for (size_t i = 0; rule->role == NL_ROLE_SERVER && i < rule->n_addrs; i++)
            if (rule->addrs[i].kind == NL_ADDR_HOST)
                return nl_fail(L, x, "host name '%s' can never match a server connection "
                                     "(they carry only addresses); use an IP or CIDR",
                               rule->addrs[i].host);
    }
    if ((x = nl_yaml_get(L, v, "port", NULL)) != NULL)
        NL_GUARD(nl_parse_ports(L, x, rule));
    if ((x = nl_yaml_get(L, v, "program", NULL)) != NULL) {
        NL_GUARD(nl_get_string(L, x, "program", &rule->program));
        if (strchr(rule->program, '/') != NULL)
            return nl_fail(L, x, "'program' is the executable's base name, like 'redis-cli' "
                                 "(got '%s')", rule->program);
    }
    return 0;
}

/* The action, explicit or implied, and whether layers fit with it. */
static int parse_action(struct nl_loader *L, const yaml_node_t *rule_node, struct nl_rule *rule,
                        const char *label, const yaml_node_t **layers_out)
{
    yaml_node_t *layers_key;
    const yaml_node_t *layers = nl_yaml_get(L, rule_node, "layers", &layers_key);
    const yaml_node_t *action = nl_yaml_get(L, rule_node, "action", NULL);
    char kind[64];

    if (action != NULL) {
        int a;
        NL_GUARD(nl_get_enum(L, action, "action", ACTIONS, &a));
        rule->action = (enum nl_action)a;
    } else if (layers != NULL) {
        rule->action = NL_ACTION_WRAP;
    } else {
        return nl_fail_raw(L, rule_node, "%s needs 'layers' (to wrap the connection) or "
                                         "'action: passthrough' or 'action: deny'", label);
    }

    *layers_out = NULL;
    if (rule->action != NL_ACTION_WRAP) {
        if (layers != NULL)
            return nl_fail(L, layers_key, "'layers' has no effect with action: %s",
                           ACTIONS[rule->action]);
        return 0;
    }
    if (layers == NULL)
        return nl_fail_raw(L, rule_node, "%s has action: wrap but no 'layers' (give 1 to %d)",
                           label, NL_MAX_LAYERS);
    if (layers->type != YAML_SEQUENCE_NODE)
        return nl_fail(L, layers, "'layers' must be a list of 1 to %d layers (got %s)",
                       NL_MAX_LAYERS, nl_yaml_kind(layers, kind, sizeof(kind)));
    if (layers->data.sequence.items.top == layers->data.sequence.items.start)
        return nl_fail(L, layers, "'layers' is empty: action wrap needs 1 to %d layers",
                       NL_MAX_LAYERS);
    *layers_out = layers;
    return 0;
}

/* starttls: the plaintext prelude before layer 1. Only a rule that wraps
 * has a layer 1 to start: on deny or passthrough it would be a promise
 * that nothing keeps, so it is refused, as 'layers' is there. */
static int parse_starttls(struct nl_loader *L, const yaml_node_t *rule_node, struct nl_rule *rule)
{
    yaml_node_t *key;
    const yaml_node_t *v = nl_yaml_get(L, rule_node, "starttls", &key);
    if (v == NULL)
        return 0;
    if (rule->action != NL_ACTION_WRAP)
        return nl_fail(L, key, "'starttls' has no effect with action: %s (it starts layer 1 "
                               "of a rule that wraps)", ACTIONS[rule->action]);
    int which;
    NL_GUARD(nl_get_enum(L, v, "starttls", STARTTLS, &which));
    rule->starttls = (enum nl_starttls_proto)(which + 1);
    return 0;
}

static int parse_rule(struct nl_loader *L, const yaml_node_t *v, struct nl_rule *rule,
                      size_t index)
{
    char kind[64], label[96], where[128];
    rule->pos = nl_node_pos(v);
    L->where[0] = '\0';
    if (v->type != YAML_MAPPING_NODE)
        return nl_fail(L, v, "rule %zu must be a mapping with 'match' and 'layers' or "
                             "'action' (got %s)", index + 1, nl_yaml_kind(v, kind, sizeof(kind)));

    /* The name first: every later message names the rule by it. */
    const yaml_node_t *name = nl_yaml_get(L, v, "name", NULL);
    if (name != NULL) {
        NL_GUARD(nl_get_string(L, name, "name", &rule->name));
        if (strlen(rule->name) > 60)
            snprintf(label, sizeof(label), "rule '%.57s...'", rule->name);
        else
            snprintf(label, sizeof(label), "rule '%s'", rule->name);
    } else {
        if (asprintf(&rule->name, "rule %zu", index + 1) < 0) {
            rule->name = NULL;
            return nl_fail(L, v, "out of memory");
        }
        snprintf(label, sizeof(label), "%s", rule->name);
    }
    snprintf(where, sizeof(where), "in %s", label);
    NL_GUARD(nl_yaml_check_mapping(L, v, nl_rule_keys, where));

    NL_GUARD(parse_match(L, nl_yaml_get(L, v, "match", NULL), rule, label));
    set_where(L, "", label);
    const yaml_node_t *layers = NULL;
    NL_GUARD(parse_action(L, v, rule, label, &layers));
    if (layers != NULL)
        NL_GUARD(nl_parse_layers(L, layers, rule, index));
    set_where(L, "", label);
    NL_GUARD(parse_starttls(L, v, rule));
    L->where[0] = '\0';
    return 0;
}

int nl_parse_rules(struct nl_loader *L, const yaml_node_t *v, struct nl_policy *p)
{
    char kind[64];
    if (nl_yaml_is_null(v))
        return 0; /* "rules:" alone: no rules, the default action decides */
    if (v->type != YAML_SEQUENCE_NODE)
        return nl_fail(L, v, "'rules' must be a list of rules (got %s)",
                       nl_yaml_kind(v, kind, sizeof(kind)));
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0)
        return 0;
    p->rules = calloc(n, sizeof(*p->rules));
    if (p->rules == NULL)
        return nl_fail(L, v, "out of memory");
    p->n_rules = n;
    for (size_t i = 0; i < n; i++)
        NL_GUARD(parse_rule(L, nl_yaml_node(L, v->data.sequence.items.start[i]), &p->rules[i], i));
    return 0;
}
