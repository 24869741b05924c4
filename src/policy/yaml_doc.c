/* The YAML side of the loader: the file becomes one libyaml document (the
 * document API resolves anchors and aliases for us), and mappings are
 * checked for stray and repeated keys before anything reads them.
 *
 * The document API makes an alias a second reference to the same node,
 * so a small file can stand for a huge tree: our walkers visit the node
 * once per reference (and an alias inside its own anchor makes a cycle).
 * libyaml's scanner also slows down with depth (quadratically: 100,000
 * nested '[' take about ten seconds). So one pass over libyaml's events comes
 * first, in constant memory, and stops at the first bound broken: depth,
 * anchors, and nodes with every alias counted as a copy (loader.h). */
#include "policy/loader.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The character at (line, column), both 0-based as libyaml counts them
 * (column in characters, not bytes), or 0 past the text. */
static unsigned char char_at(const yaml_parser_t *parser, size_t line, size_t column)
{
    const unsigned char *p = parser->input.string.start, *end = parser->input.string.end;
    if (p == NULL)
        return 0;
    for (size_t l = 0; l < line && p < end; p++)
        if (*p == '\n')
            l++;
    for (size_t c = 0; p < end && *p != '\n'; p++) {
        if ((*p & 0xc0) == 0x80)
            continue; /* inside a UTF-8 character */
        if (c++ == column)
            return *p;
    }
    return 0;
}

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
    /* libyaml's words for a tab ("found character that cannot start any
     * token", "found a tab character that violates indentation") do not
     * say what to do. */
    if (char_at(parser, parser->problem_mark.line, parser->problem_mark.column) == '\t')
        return nl_fail_mark(L, line, col, "tab characters are not allowed for indentation in "
                                          "YAML: indent with spaces");
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

/* --- the bounds pass -------------------------------------------------- */

struct anchor {
    char *name;
    size_t nodes; /* its tree, aliases expanded */
    bool open;    /* still being read: an alias to it is a cycle */
};

struct open_node {
    size_t nodes_before; /* the count when this collection started */
    int anchor;          /* index in anchors[], or -1 */
};

struct bounds {
    struct nl_loader *L;
    size_t nodes;
    int depth;
    struct open_node open[NL_YAML_MAX_DEPTH];
    struct anchor anchors[NL_YAML_MAX_ANCHORS];
    int n_anchors;
};

static int fail_at(struct bounds *b, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_at(struct bounds *b, yaml_mark_t mark, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return nl_fail_mark(b->L, (int)mark.line + 1, (int)mark.column + 1, "%s", what);
}

/* An anchor names a node of its own document only. */
static void forget_anchors(struct bounds *b)
{
    for (int i = 0; i < b->n_anchors; i++)
        free(b->anchors[i].name);
    b->n_anchors = 0;
}

/* The latest anchor of that name (a later one hides an earlier). */
static struct anchor *find_anchor(struct bounds *b, const char *name)
{
    for (int i = b->n_anchors - 1; i >= 0; i--)
        if (strcmp(b->anchors[i].name, name) == 0)
            return &b->anchors[i];
    return NULL;
}

/* *index: the new anchor's, or -1 when the node has none. */
static int define_anchor(struct bounds *b, const yaml_char_t *name, yaml_mark_t at, int *index)
{
    *index = -1;
    if (name == NULL)
        return 0;
    if (b->n_anchors == NL_YAML_MAX_ANCHORS)
        return fail_at(b, at, "more than %d anchors (&%s is one too many), the limit for a "
                              "policy", NL_YAML_MAX_ANCHORS, (const char *)name);
    struct anchor *a = &b->anchors[b->n_anchors];
    a->name = strdup((const char *)name);
    if (a->name == NULL)
        return nl_fail_mark(b->L, 1, 1, "out of memory while reading the policy");
    a->nodes = 1;
    a->open = false;
    *index = b->n_anchors++;
    return 0;
}

/* alias: the alias that adds the n nodes, or NULL for a node of its own. */
static int count_nodes(struct bounds *b, size_t n, yaml_mark_t at, const char *alias)
{
    b->nodes += n;
    if (b->nodes <= NL_YAML_MAX_NODES)
        return 0;
    if (alias != NULL)
        return fail_at(b, at, "alias *%s takes the policy past %d nodes, the limit (an alias "
                              "counts as a copy of what it names)", alias, NL_YAML_MAX_NODES);
    return fail_at(b, at, "the policy has more than %d nodes, the limit", NL_YAML_MAX_NODES);
}

static int on_alias(struct bounds *b, const yaml_event_t *e)
{
    const char *name = (const char *)e->data.alias.anchor;
    const struct anchor *a = find_anchor(b, name);
    if (a == NULL)
        return count_nodes(b, 1, e->start_mark, NULL); /* the loader reports it */
    if (a->open)
        return fail_at(b, e->start_mark, "alias *%s is inside the node it names: the policy "
                                         "would never end", name);
    return count_nodes(b, a->nodes, e->start_mark, name);
}

static int on_scalar(struct bounds *b, const yaml_event_t *e)
{
    int index;
    NL_GUARD(count_nodes(b, 1, e->start_mark, NULL));
    return define_anchor(b, e->data.scalar.anchor, e->start_mark, &index);
}

static int on_collection_start(struct bounds *b, const yaml_event_t *e, const yaml_char_t *anchor)
{
    if (b->depth == NL_YAML_MAX_DEPTH)
        return fail_at(b, e->start_mark, "nested more than %d levels deep, the limit for a "
                                         "policy", NL_YAML_MAX_DEPTH);
    size_t before = b->nodes;
    int index;
    NL_GUARD(count_nodes(b, 1, e->start_mark, NULL));
    NL_GUARD(define_anchor(b, anchor, e->start_mark, &index));
    if (index >= 0)
        b->anchors[index].open = true;
    b->open[b->depth++] = (struct open_node){.nodes_before = before, .anchor = index};
    return 0;
}

static void on_collection_end(struct bounds *b)
{
    if (b->depth == 0)
        return; /* libyaml pairs them; never index below the stack */
    struct open_node *o = &b->open[--b->depth];
    if (o->anchor >= 0) {
        b->anchors[o->anchor].nodes = b->nodes - o->nodes_before;
        b->anchors[o->anchor].open = false;
    }
}

static int on_event(struct bounds *b, const yaml_event_t *e)
{
    switch (e->type) {
    case YAML_DOCUMENT_START_EVENT:
        forget_anchors(b);
        return 0;
    case YAML_ALIAS_EVENT:
        return on_alias(b, e);
    case YAML_SCALAR_EVENT:
        return on_scalar(b, e);
    case YAML_SEQUENCE_START_EVENT:
        return on_collection_start(b, e, e->data.sequence_start.anchor);
    case YAML_MAPPING_START_EVENT:
        return on_collection_start(b, e, e->data.mapping_start.anchor);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        on_collection_end(b);
        return 0;
    default:
        return 0;
    }
}

/* Every document of the stream (the loader reads a second one too, only
 * to refuse it). A syntax error is reported exactly as the loader would. */
static int check_bounds(struct nl_loader *L, const unsigned char *text, size_t len)
{
    struct bounds *b = calloc(1, sizeof(*b)); /* ~8 KiB: not on a caller's stack */
    yaml_parser_t parser;
    if (b == NULL || !yaml_parser_initialize(&parser)) {
        free(b);
        return nl_fail_mark(L, 1, 1, "out of memory while reading the policy");
    }
    yaml_parser_set_input_string(&parser, text, len);
    b->L = L;
    int rc = 0;
    for (bool done = false; !done && rc == 0;) {
        yaml_event_t e;
        if (!yaml_parser_parse(&parser, &e)) {
            rc = syntax_error(L, &parser);
            break;
        }
        rc = on_event(b, &e);
        done = e.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&e);
    }
    forget_anchors(b);
    free(b);
    yaml_parser_delete(&parser);
    return rc;
}

/* --- the document ------------------------------------------------------ */

int nl_yaml_load(struct nl_loader *L, const unsigned char *text, size_t len, yaml_node_t **root)
{
    NL_GUARD(check_bounds(L, text, len));
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return nl_fail_mark(L, 1, 1, "out of memory while reading the policy");
    yaml_parser_set_input_string(&parser, text, len);

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
            if (nl_suggest_place(key_text(key), valid, hint, sizeof(hint)))
                return nl_fail_raw(L, key, "misplaced key '%s' %s: %s", key_text(key), where,
                                   hint);
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
