/* `nestls explain --json`: the decisions of explain.c as one JSON
 * document (docs/json.md, "explain"). */
#include <string.h>

#include "cli/explain.h"
#include "cli/json.h"

static void json_query(struct nl_json *j, const struct explain *e)
{
    const struct nl_cli_target *t = &e->target;
    bool known = t->have_addr && !e->loopback_assumed;
    nl_json_object(j, "query");
    nl_json_str(j, "role", nl_role_name(e->role));
    nl_json_str(j, "host", t->host);
    nl_json_str(j, "host_name", t->name);
    nl_json_str(j, "address", known ? t->ip : NULL);
    nl_json_bool(j, "resolved", known && t->resolved);
    nl_json_int(j, "port", t->port);
    nl_json_str(j, "program", e->program);
    nl_json_end_object(j);
}

static void json_layer(struct nl_json *j, const struct explain *e, const struct outcome *o,
                       const struct nl_rule *rule, size_t i)
{
    const struct nl_layer *layer = &rule->layers[i];
    nl_json_object(j, NULL);
    nl_cli_json_layer_members(j, layer, i, rule->n_layers);
    if (e->role == NL_ROLE_CLIENT) {
        struct verify_name v;
        nl_cli_verify_name(layer, o, &v);
        nl_json_object(j, "verify_name");
        nl_json_str(j, "name", v.name);
        nl_json_str(j, "source", v.source);
        nl_json_bool(j, "sni", v.sni);
        nl_json_bool(j, "verified", layer->verify);
        nl_json_end_object(j);
    } else {
        nl_json_null(j, "verify_name");
    }
    nl_json_end_object(j);
}

static void json_outcome(struct nl_json *j, const struct explain *e, const struct outcome *o)
{
    const struct nl_rule *rule = o->rule;
    nl_json_object(j, NULL);
    nl_json_str(j, "basis", o->basis);
    nl_json_str(j, "address", o->ip);
    if (rule != NULL) {
        nl_json_object(j, "rule");
        nl_cli_json_rule_head(j, rule, (size_t)(rule - e->policy->rules));
        nl_json_end_object(j);
    } else {
        nl_json_null(j, "rule");
    }
    nl_json_bool(j, "default_action", rule == NULL);
    nl_json_str(j, "action", nl_action_name(rule ? rule->action
                                                 : e->policy->settings.default_action));
    nl_json_array(j, "layers");
    if (rule != NULL && rule->action == NL_ACTION_WRAP)
        for (size_t i = 0; i < rule->n_layers; i++)
            json_layer(j, e, o, rule, i);
    nl_json_end_array(j);
    nl_json_end_object(j);
}

void nl_cli_explain_json(FILE *out, const struct explain *e)
{
    struct nl_json j;
    nl_json_init(&j, out);
    nl_json_object(&j, NULL);
    nl_json_null(&j, "error");
    nl_json_str(&j, "policy", e->policy->path);
    json_query(&j, e);
    nl_json_array(&j, "decisions");
    for (size_t i = 0; i < e->n; i++)
        json_outcome(&j, e, &e->outcomes[i]);
    nl_json_end_array(&j);
    nl_json_end_object(&j);
    nl_json_finish(&j);
}
