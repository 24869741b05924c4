/* Rules and layers as JSON, for `check --json` and `explain --json`: the
 * same facts describe.c prints, under the names docs/json.md fixes. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/json.h"

static const char *role_json(enum nl_role role)
{
    return role == NL_ROLE_ANY ? "any" : nl_role_name(role);
}

static void json_match(struct nl_json *j, const struct nl_rule *rule)
{
    char buf[300];
    nl_json_object(j, "match");
    nl_json_str(j, "role", role_json(rule->role));
    nl_json_array(j, "addresses");
    for (size_t i = 0; i < rule->n_addrs; i++)
        nl_json_str(j, NULL, nl_cli_addr_str(&rule->addrs[i], buf, sizeof(buf)));
    nl_json_end_array(j);
    nl_json_array(j, "ports");
    for (size_t i = 0; i < rule->n_ports; i++) {
        nl_json_object(j, NULL);
        nl_json_int(j, "low", rule->ports[i].lo);
        nl_json_int(j, "high", rule->ports[i].hi);
        nl_json_end_object(j);
    }
    nl_json_end_array(j);
    nl_json_str(j, "program", rule->program);
    nl_json_end_object(j);
}

void nl_cli_json_rule_head(struct nl_json *j, const struct nl_rule *rule, size_t index)
{
    nl_json_int(j, "index", (long long)index + 1);
    nl_json_str(j, "name", rule->name);
    nl_json_int(j, "line", rule->pos.line);
    json_match(j, rule);
    nl_json_str(j, "action", nl_action_name(rule->action));
    nl_json_str(j, "starttls", nl_starttls_name(rule->starttls)); /* NULL: null */
}

static const char *position_json(size_t index, size_t n)
{
    return n == 1 ? "only" : nl_cli_layer_position(index, n);
}

static void json_path(struct nl_json *j, const char *key, const char *path)
{
    struct nl_shown_path buf;
    nl_json_str(j, key, nl_cli_show_path(path, &buf));
}

void nl_cli_json_layer_members(struct nl_json *j, const struct nl_layer *layer, size_t index,
                               size_t n)
{
    nl_json_int(j, "index", (long long)index + 1);
    nl_json_int(j, "line", layer->pos.line);
    nl_json_str(j, "position", position_json(index, n));
    nl_json_str(j, "server_name", layer->server_name);
    if (nl_cli_ca_is_system(layer->ca))
        nl_json_str(j, "ca", "system");
    else
        json_path(j, "ca", layer->ca);
    nl_json_bool(j, "verify", layer->verify);
    json_path(j, "cert", layer->cert);
    json_path(j, "key", layer->key);
    json_path(j, "client_ca", layer->client_ca);
    nl_json_str(j, "min_version", nl_tls_version_name(layer->min_version));
    nl_json_str(j, "max_version", nl_tls_version_name(layer->max_version));
    nl_json_str(j, "ciphers", layer->ciphers);
    nl_json_str(j, "ciphersuites", layer->ciphersuites);
    nl_json_str(j, "groups", layer->groups);
    nl_json_array(j, "alpn");
    for (size_t i = 0; i < layer->n_alpn; i++)
        nl_json_str(j, NULL, layer->alpn[i]);
    nl_json_end_array(j);
    json_path(j, "crl", layer->crl);
    nl_json_array(j, "certs");
    for (size_t i = 0; i < layer->n_certs; i++) {
        nl_json_object(j, NULL);
        json_path(j, "cert", layer->certs[i].cert);
        json_path(j, "key", layer->certs[i].key);
        nl_json_array(j, "names");
        for (size_t k = 0; k < layer->certs[i].n_names; k++)
            nl_json_str(j, NULL, layer->certs[i].names[k]);
        nl_json_end_array(j);
        nl_json_end_object(j);
    }
    nl_json_end_array(j);
    nl_json_bool(j, "sni_required", layer->sni_required);
    static const char *const ocsp_modes[] = {"off", "prefer", "require"};
    nl_json_str(j, "ocsp", ocsp_modes[layer->ocsp]);
    json_path(j, "ocsp_staple", layer->ocsp_staple);
    if (layer->padding != 0)
        nl_json_int(j, "padding", layer->padding);
    else
        nl_json_null(j, "padding");
}
