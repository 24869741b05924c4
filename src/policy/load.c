/* nl_policy_load: the file, its top level and settings; the rules are read
 * in rules.c and layers.c. Nothing partial ever escapes: on any error the
 * tree built so far is freed and the caller gets one line saying why. */
#include "policy/loader.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const TOP_KEYS[] = {"version", "settings", "rules", NULL};
static const char *const SETTINGS_KEYS[] = {
    "log_level", "log_file", "default_action", "handshake_timeout_ms", "linger_ms", "keylog_file",
    NULL,
};
/* In enum nl_log_level order. */
static const char *const LOG_LEVELS[] = {"error", "warn", "info", "debug", NULL};
static const char *const DEFAULT_ACTIONS[] = {"passthrough", "deny", NULL};

#define MAX_MS 3600000u /* an hour: anything longer is a typo */

static int parse_version(struct nl_loader *L, const yaml_node_t *root)
{
    const yaml_node_t *v = nl_yaml_get(L, root, "version", NULL);
    char kind[64];
    if (v == NULL)
        return nl_fail_raw(L, root, "missing required key 'version' (the first line of a "
                                    "policy is 'version: 1')");
    if (v->type != YAML_SCALAR_NODE || nl_yaml_is_null(v))
        return nl_fail(L, v, "'version' must be 1 (got %s)", nl_yaml_kind(v, kind, sizeof(kind)));
    if (strcmp((const char *)v->data.scalar.value, "1") != 0)
        return nl_fail(L, v, "unsupported version %s: this nestls reads version 1",
                       nl_yaml_kind(v, kind, sizeof(kind)));
    return 0;
}

/* A file nestls writes (log_file, keylog_file): absolute, in a directory
 * that exists now; "stderr" is kept as is where allowed. */
static int parse_output_file(struct nl_loader *L, const yaml_node_t *v, const char *key,
                             bool stderr_ok, char **out)
{
    char *written = NULL;
    NL_GUARD(nl_get_string(L, v, key, &written));
    if (stderr_ok && strcmp(written, "stderr") == 0) {
        *out = written;
        return 0;
    }
    char *abs = nl_resolve_path(L, written);
    if (abs == NULL) {
        free(written);
        return -1;
    }
    /* The file is opened by the logger (and created if need be); only its
     * directory has to exist now. */
    char *slash = strrchr(abs, '/');
    *slash = '\0';
    const char *dir = abs[0] != '\0' ? abs : "/";
    struct stat st;
    int error = stat(dir, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
    int rc = 0;
    if (error != 0)
        rc = nl_fail(L, v, "cannot use '%s' '%s': directory %s: %s", key, written, dir,
                     strerror(error));
    *slash = '/';
    free(written);
    if (rc == 0)
        *out = abs;
    else
        free(abs);
    return rc;
}

static int parse_settings(struct nl_loader *L, const yaml_node_t *v, struct nl_settings *s)
{
    char kind[64];
    if (nl_yaml_is_null(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return nl_fail(L, v, "'settings' must be a mapping (got %s)",
                       nl_yaml_kind(v, kind, sizeof(kind)));
    NL_GUARD(nl_yaml_check_mapping(L, v, SETTINGS_KEYS, "in settings"));

    const yaml_node_t *x;
    int choice;
    if ((x = nl_yaml_get(L, v, "log_level", NULL)) != NULL) {
        NL_GUARD(nl_get_enum(L, x, "log_level", LOG_LEVELS, &choice));
        s->log_level = (enum nl_log_level)choice;
    }
    if ((x = nl_yaml_get(L, v, "log_file", NULL)) != NULL) {
        free(s->log_file);
        s->log_file = NULL;
        NL_GUARD(parse_output_file(L, x, "log_file", true, &s->log_file));
    }
    if ((x = nl_yaml_get(L, v, "default_action", NULL)) != NULL) {
        NL_GUARD(nl_get_enum(L, x, "default_action", DEFAULT_ACTIONS, &choice));
        s->default_action = choice == 0 ? NL_ACTION_PASSTHROUGH : NL_ACTION_DENY;
    }
    if ((x = nl_yaml_get(L, v, "handshake_timeout_ms", NULL)) != NULL)
        NL_GUARD(nl_get_uint(L, x, "handshake_timeout_ms", 1, MAX_MS, &s->handshake_timeout_ms));
    if ((x = nl_yaml_get(L, v, "linger_ms", NULL)) != NULL)
        NL_GUARD(nl_get_uint(L, x, "linger_ms", 0, MAX_MS, &s->linger_ms));
    if ((x = nl_yaml_get(L, v, "keylog_file", NULL)) != NULL)
        NL_GUARD(parse_output_file(L, x, "keylog_file", false, &s->keylog_file));
    return 0;
}

static int parse_top(struct nl_loader *L, const yaml_node_t *root, struct nl_policy *p)
{
    char kind[64];
    if (root->type != YAML_MAPPING_NODE)
        return nl_fail_raw(L, root, "a policy is a mapping with 'version', 'settings' and "
                                    "'rules' (got %s)", nl_yaml_kind(root, kind, sizeof(kind)));
    NL_GUARD(nl_yaml_check_mapping(L, root, TOP_KEYS, "at top level"));
    NL_GUARD(parse_version(L, root));
    NL_GUARD(parse_settings(L, nl_yaml_get(L, root, "settings", NULL), &p->settings));
    const yaml_node_t *rules = nl_yaml_get(L, root, "rules", NULL);
    return rules != NULL ? nl_parse_rules(L, rules, p) : 0;
}

/* The policy's absolute path and directory (symbolic links resolved, so
 * relative paths inside mean the same from any working directory). */
static int locate(struct nl_loader *L, const char *path, struct nl_policy *p)
{
    p->path = realpath(path, NULL);
    if (p->path == NULL)
        return nl_fail_mark(L, 1, 1, "cannot read policy: %s", strerror(errno));
    p->dir = strdup(p->path);
    if (p->dir == NULL)
        return nl_fail_mark(L, 1, 1, "out of memory");
    char *slash = strrchr(p->dir, '/');
    slash[slash == p->dir ? 1 : 0] = '\0'; /* "/p.yaml" lives in "/" */
    L->dir = p->dir;
    return 0;
}

static FILE *open_policy(struct nl_loader *L, const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        nl_fail_mark(L, 1, 1, "cannot read policy: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(fp);
        nl_fail_mark(L, 1, 1, "cannot read policy: %s", strerror(EISDIR));
        return NULL;
    }
    return fp;
}

int nl_policy_load(const char *path, struct nl_policy **out, char *err, size_t errlen)
{
    struct nl_loader L = {.file = path ? path : "(null)", .err = err, .errlen = errlen};
    if (errlen > 0)
        err[0] = '\0';
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return nl_fail_mark(&L, 1, 1, "no policy file given");

    struct nl_policy *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return nl_fail_mark(&L, 1, 1, "out of memory");
    p->settings.log_level = NL_LOG_INFO;
    p->settings.default_action = NL_ACTION_PASSTHROUGH;
    p->settings.handshake_timeout_ms = 10000;
    p->settings.linger_ms = 2000;

    int rc = -1;
    yaml_node_t *root;
    FILE *fp = open_policy(&L, path);
    if (fp == NULL)
        goto out;
    if (locate(&L, path, p) < 0)
        goto out;
    p->settings.log_file = strdup("stderr");
    if (p->settings.log_file == NULL) {
        nl_fail_mark(&L, 1, 1, "out of memory");
        goto out;
    }
    if (nl_yaml_load(&L, fp, &root) < 0 || parse_top(&L, root, p) < 0)
        goto out;
    rc = 0;
out:
    if (fp != NULL)
        fclose(fp);
    yaml_document_delete(&L.doc);
    ERR_clear_error(); /* leave OpenSSL's queue as empty as we found it */
    if (rc < 0) {
        nl_policy_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

static void free_layer(struct nl_layer *l)
{
    free(l->server_name);
    free(l->ca);
    free(l->cert);
    free(l->key);
    free(l->client_ca);
    free(l->ciphers);
    free(l->ciphersuites);
    free(l->groups);
    for (size_t i = 0; i < l->n_alpn; i++)
        free(l->alpn[i]);
    free(l->alpn);
    free(l->alpn_wire);
    SSL_CTX_free(l->client_ctx);
    SSL_CTX_free(l->server_ctx);
}

void nl_policy_free(struct nl_policy *policy)
{
    if (policy == NULL)
        return;
    for (size_t r = 0; r < policy->n_rules; r++) {
        struct nl_rule *rule = &policy->rules[r];
        free(rule->name);
        for (size_t i = 0; i < rule->n_addrs; i++)
            free(rule->addrs[i].host);
        free(rule->addrs);
        free(rule->ports);
        free(rule->program);
        for (size_t i = 0; i < rule->n_layers; i++)
            free_layer(&rule->layers[i]);
    }
    free(policy->rules);
    free(policy->settings.log_file);
    free(policy->settings.keylog_file);
    free(policy->path);
    free(policy->dir);
    free(policy);
}
