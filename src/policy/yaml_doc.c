/* The YAML side of the loader: the file becomes one libyaml document (the
 * document API resolves anchors and aliases for us), and mappings are
 * checked for stray and repeated keys before anything reads them. */
#include "policy/loader.h"

#include <string.h>

static int syntax_error(struct nl_loader *L, const yaml_parser_t *parser)
{
    const char *problem = parser->problem ? parser->problem : "unknown problem";
    switch (parser->error) {
    case YAML_MEMORY_ERROR:
        return nl_fail_mark(L, 1, 1, "out of memory while reading the policy");
    case YAML_READER_ERROR:
        /* The reader has no line yet, only a byte offset. */
        return nl_fail_mark(L, (int)parser->mark.line + 1, (int)parser->mark.column + 1,
                            "YAML error: %s (at byte %zu)", problem, parser->problem_offset);
    default:
        break;
    }
    int line = (int)parser->problem_mark.line + 1;
    int col = (int)parser->problem_mark.column + 1;
    /* In YAML a leading '*' makes an alias: "*.example.com" and "*" need quotes. */
    bool alias = strstr(problem, "alias") != NULL ||
                 (parser->context != NULL && strstr(parser->context, "alias") != NULL);
    const char *hint = alias ? "; a value starting with '*' must be quoted, like \"*.example.com\""
                             : "";
    if (parser->context != NULL)
        return nl_fail_mark(L, line, col, "YAML syntax error: %s (%s at line %d)%s", problem,
                            parser->context, (int)parser->context_mark.line + 1, hint);
    return nl_fail_mark(L, line, col, "YAML syntax error: %s%s", problem, hint);
}

int nl_yaml_load(struct nl_loader *L, FILE *fp, yaml_node_t **root)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return nl_fail_mark(L, 1, 1, "out of memory while reading the policy");
    yaml_parser_set_input_file(&parser, fp);

    int rc = -1;
    if (!yaml_parser_load(&parser, &L->doc)) {
        memset(&L->doc, 0, sizeof(L->doc));
        syntax_error(L, &parser);
        goto out;
    }
    *root = yaml_document_get_root_node(&L->doc);
    if (*root == NULL) {
        nl_fail_mark(L, 1, 1, "empty policy (expected at least 'version: 1')");
        goto out;
    }

    /* A second document would be silently ignored: refuse it instead. */
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        syntax_error(L, &parser);
        goto out;
    }
    yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
    if (extra_root != NULL)
        nl_fail_mark(L, (int)extra.start_mark.line + 1, (int)extra.start_mark.column + 1,
                     "only one YAML document is allowed in a policy");
    else
        rc = 0;
    yaml_document_delete(&extra);
out:
    yaml_parser_delete(&parser);
    return rc;
}

yaml_node_t *nl_yaml_node(struct nl_loader *L, int index)
{
    return yaml_document_get_node(&L->doc, index);
}

bool nl_yaml_is_null(const yaml_node_t *node)
{
    if (node == NULL)
        return true;
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (strcmp((const char *)node->data.scalar.value, nulls[i]) == 0)
            return true;
    return false;
}

const char *nl_yaml_kind(const yaml_node_t *node, char *buf, size_t size)
{
    if (nl_yaml_is_null(node))
        return "nothing";
    if (node->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (node->type == YAML_SEQUENCE_NODE)
        return "a list";
    const char *s = (const char *)node->data.scalar.value;
    if (strlen(s) > 40)
        snprintf(buf, size, "'%.37s...'", s);
    else
        snprintf(buf, size, "'%s'", s);
    return buf;
}

static const char *key_text(const yaml_node_t *key)
{
    return (const char *)key->data.scalar.value;
}

int nl_yaml_check_mapping(struct nl_loader *L, const yaml_node_t *map,
                          const char *const valid[], const char *where)
{
    yaml_node_pair_t *first = map->data.mapping.pairs.start;
    for (yaml_node_pair_t *pair = first; pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = nl_yaml_node(L, pair->key);
        char kind[64];
        if (key->type != YAML_SCALAR_NODE)
            return nl_fail_raw(L, key, "keys %s must be names (got %s)", where,
                               nl_yaml_kind(key, kind, sizeof(kind)));

        bool known = false;
        for (size_t i = 0; valid[i] != NULL && !known; i++)
            known = strcmp(key_text(key), valid[i]) == 0;
        if (!known) {
            char hint[512];
            nl_suggest_text(key_text(key), valid, hint, sizeof(hint));
            return nl_fail_raw(L, key, "unknown key '%s' %s (%s)", key_text(key), where, hint);
        }

        for (yaml_node_pair_t *earlier = first; earlier < pair; earlier++) {
            yaml_node_t *prev = nl_yaml_node(L, earlier->key);
            if (strcmp(key_text(prev), key_text(key)) == 0)
                return nl_fail_raw(L, key, "duplicate key '%s' %s (first given at line %d)",
                                   key_text(key), where, nl_node_pos(prev).line);
        }
    }
    return 0;
}

yaml_node_t *nl_yaml_get(struct nl_loader *L, const yaml_node_t *map, const char *key,
                         yaml_node_t **key_node)
{
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = nl_yaml_node(L, pair->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(key_text(k), key) == 0) {
            if (key_node != NULL)
                *key_node = k;
            return nl_yaml_node(L, pair->value);
        }
    }
    if (key_node != NULL)
        *key_node = NULL;
    return NULL;
}
