/* nl_policy_load: the file, its top level and settings; the rules are read
 * in rules.c and layers.c. Nothing partial ever escapes: on any error the
 * tree built so far is freed and the caller gets one line saying why. */
#include "policy/loader.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sys.h"

const char *const nl_top_keys[] = {"version", "settings", "rules", NULL};
const char *const nl_settings_keys[] = {
    "log_level", "log_file", "default_action", "handshake_timeout_ms", "linger_ms", "keylog_file",
    "insecure_allow_unhookable", "allow_io_uring", "reload", NULL,
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
    NL_GUARD(nl_yaml_check_mapping(L, v, nl_settings_keys, "in settings"));

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
    if ((x = nl_yaml_get(L, v, "insecure_allow_unhookable", NULL)) != NULL)
        NL_GUARD(nl_get_bool(L, x, "insecure_allow_unhookable", &s->allow_unhookable));
    if ((x = nl_yaml_get(L, v, "allow_io_uring", NULL)) != NULL)
        NL_GUARD(nl_get_bool(L, x, "allow_io_uring", &s->allow_io_uring));
    if ((x = nl_yaml_get(L, v, "reload", NULL)) != NULL) {
        static const char *const on_off[] = {"off", "on", NULL};
        NL_GUARD(nl_get_enum(L, x, "reload", on_off, &choice));
        s->reload = choice == 1;
    }
    return 0;
}

/* The layers of every rule together, before any is built: each loads its
 * files and builds its SSL_CTXs in every wrapped program, and aliases can
 * repeat a rule cheaply. A rule's own excess (more than NL_MAX_LAYERS) is
 * left to layers.c, which points at it; anything malformed, to rules.c. */
static int check_total_layers(struct nl_loader *L, const yaml_node_t *rules)
{
    if (rules == NULL || rules->type != YAML_SEQUENCE_NODE)
        return 0;
    size_t total = 0;
    for (yaml_node_item_t *r = rules->data.sequence.items.start;
         r < rules->data.sequence.items.top; r++) {
        const yaml_node_t *rule = nl_yaml_node(L, *r);
        const yaml_node_t *layers =
            rule->type == YAML_MAPPING_NODE ? nl_yaml_get(L, rule, "layers", NULL) : NULL;
        if (layers == NULL || layers->type != YAML_SEQUENCE_NODE)
            continue;
        yaml_node_item_t *items = layers->data.sequence.items.start;
        size_t n = (size_t)(layers->data.sequence.items.top - items);
        n = n < NL_MAX_LAYERS ? n : NL_MAX_LAYERS;
        if (total + n > NL_POLICY_MAX_TOTAL_LAYERS)
            return nl_fail_raw(L, nl_yaml_node(L, items[NL_POLICY_MAX_TOTAL_LAYERS - total]),
                               "more than %d TLS layers in all rules together, the limit for a "
                               "policy (each is built in every wrapped program at start-up)",
                               NL_POLICY_MAX_TOTAL_LAYERS);
        total += n;
    }
    return 0;
}

static int parse_top(struct nl_loader *L, const yaml_node_t *root, struct nl_policy *p)
{
    char kind[64];
    if (root->type != YAML_MAPPING_NODE)
        return nl_fail_raw(L, root, "a policy is a mapping with 'version', 'settings' and "
                                    "'rules' (got %s)", nl_yaml_kind(root, kind, sizeof(kind)));
    NL_GUARD(nl_yaml_check_mapping(L, root, nl_top_keys, "at top level"));
    NL_GUARD(parse_version(L, root));
    NL_GUARD(parse_settings(L, nl_yaml_get(L, root, "settings", NULL), &p->settings));
    const yaml_node_t *rules = nl_yaml_get(L, root, "rules", NULL);
    NL_GUARD(check_total_layers(L, rules));
    return rules != NULL ? nl_parse_rules(L, rules, p) : 0;
}

/* The policy's absolute path and directory (symbolic links resolved, so
 * relative paths inside mean the same from any working directory). */
static int locate(struct nl_loader *L, const char *path, struct nl_policy *p)
{
    p->path = realpath(path, NULL);
    if (p->path == NULL)
        return nl_fail_mark(L, 1, 1, "cannot read policy: %s", strerror(errno));
    char cwd[PATH_MAX];
    if (path[0] == '/')
        p->source = strdup(path);
    else if (getcwd(cwd, sizeof(cwd)) != NULL && asprintf(&p->source, "%s/%s", cwd, path) < 0)
        p->source = NULL;
    if (p->source == NULL)
        p->source = strdup(p->path); /* no working directory: the file itself */
    if (p->source == NULL)
        return nl_fail_mark(L, 1, 1, "out of memory");
    p->dir = strdup(p->path);
    if (p->dir == NULL)
        return nl_fail_mark(L, 1, 1, "out of memory");
    char *slash = strrchr(p->dir, '/');
    slash[slash == p->dir ? 1 : 0] = '\0'; /* "/p.yaml" lives in "/" */
    L->dir = p->dir;
    return 0;
}

/* The file's bytes, read whole (then parsed from memory, twice). */
struct policy_text {
    unsigned char *bytes;
    size_t len;
};

static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "a special file";
}

static int too_big(struct nl_loader *L, unsigned long long size, bool at_least)
{
    return nl_fail_mark(L, 1, 1, "cannot read policy: it is %s%llu bytes, over the limit of "
                                 "%d bytes (1 MiB) for a policy", at_least ? "at least " : "",
                        size, NL_POLICY_MAX_BYTES);
}

/* Only a regular file of at most NL_POLICY_MAX_BYTES: a FIFO would block
 * start-up forever, /dev/zero would never end. O_NONBLOCK, so that even
 * opening a FIFO nobody writes to returns at once; it changes nothing for
 * a regular file. open(2) and read(2) are not hooked; close is, so the
 * descriptor is closed with a raw system call. */
static int open_policy(struct nl_loader *L, const char *path, off_t *size)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return nl_fail_mark(L, 1, 1, "cannot read policy: %s", strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = nl_fail_mark(L, 1, 1, "cannot read policy: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = nl_fail_mark(L, 1, 1, "cannot read policy: it is %s, not a regular file",
                          file_kind(st.st_mode));
    else if (st.st_size > NL_POLICY_MAX_BYTES)
        rc = too_big(L, (unsigned long long)st.st_size, false);
    if (rc < 0) {
        nl_sys_close(fd);
        return -1;
    }
    *size = st.st_size;
    return fd;
}

/* Up to one byte past the limit: the file may have grown since fstat, and
 * files in /proc say they are empty. */
static int read_all(struct nl_loader *L, int fd, off_t size, struct policy_text *text)
{
    size_t cap = (size_t)size + 1 < 4096 ? 4096 : (size_t)size + 1;
    text->bytes = malloc(cap);
    if (text->bytes == NULL)
        return nl_fail_mark(L, 1, 1, "out of memory");
    for (;;) {
        if (text->len == cap) {
            if (cap > NL_POLICY_MAX_BYTES)
                return too_big(L, text->len, true);
            cap = cap * 2 < NL_POLICY_MAX_BYTES + 1 ? cap * 2 : NL_POLICY_MAX_BYTES + 1;
            unsigned char *more = realloc(text->bytes, cap);
            if (more == NULL)
                return nl_fail_mark(L, 1, 1, "out of memory");
            text->bytes = more;
        }
        ssize_t n = read(fd, text->bytes + text->len, cap - text->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return nl_fail_mark(L, 1, 1, "cannot read policy: %s", strerror(errno));
        if (n == 0)
            return 0;
        text->len += (size_t)n;
    }
}

static int read_policy(struct nl_loader *L, const char *path, struct policy_text *text)
{
    off_t size = 0;
    int fd = open_policy(L, path, &size);
    if (fd < 0)
        return -1;
    int rc = read_all(L, fd, size, text);
    nl_sys_close(fd);
    return rc;
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
    p->settings.log_level = NL_LOG_DEFAULT;
    p->settings.default_action = NL_ACTION_PASSTHROUGH;
    p->settings.handshake_timeout_ms = 10000;
    p->settings.linger_ms = 2000;
    p->settings.reload = true;

    int rc = -1;
    yaml_node_t *root;
    struct policy_text text = {NULL, 0};
    if (read_policy(&L, path, &text) < 0)
        goto out;
    if (locate(&L, path, p) < 0)
        goto out;
    p->settings.log_file = strdup("stderr");
    if (p->settings.log_file == NULL) {
        nl_fail_mark(&L, 1, 1, "out of memory");
        goto out;
    }
    if (nl_yaml_load(&L, text.bytes, text.len, &root) < 0 || parse_top(&L, root, p) < 0)
        goto out;
    /* What a reload compares against (engine/reload.c); each layer's
     * files were hashed before its contexts were built (layers.c). */
    EVP_Digest(text.bytes, text.len, p->text_hash, NULL, EVP_sha256(), NULL);
    rc = 0;
out:
    free(text.bytes);
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
    free(l->crl);
    free(l->ocsp_staple);
    free(l->staple);
    for (size_t i = 0; i < l->n_certs; i++) {
        struct nl_sni_cert *e = &l->certs[i];
        free(e->cert);
        free(e->key);
        for (size_t k = 0; k < e->n_names; k++)
            free(e->names[k]);
        free(e->names);
        if (i > 0) /* the first is the layer's server_ctx, freed below */
            SSL_CTX_free(e->ctx);
    }
    free(l->certs);
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
    free(policy->source);
    free(policy->dir);
    free(policy);
}
