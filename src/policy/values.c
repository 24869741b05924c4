/* Scalar values: strings, booleans, bounded integers, enumerations, TLS
 * versions and file paths. Each getter checks the node's type first, so a
 * list where a string belongs is reported as such, at the value. */
#include "policy/loader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/sys.h"

/* Not an errno: the file exists but is a FIFO, device or socket. */
#define EFTYPE_NOT_REGULAR (-1)

char *nl_strdup(struct nl_loader *L, const yaml_node_t *at, const char *s)
{
    char *copy = strdup(s);
    if (copy == NULL)
        nl_fail(L, at, "out of memory");
    return copy;
}

/* The scalar text of v, or NULL after an error naming what was expected. */
static const char *scalar(struct nl_loader *L, const yaml_node_t *v, const char *key,
                          const char *expected)
{
    char kind[64];
    if (nl_yaml_is_null(v)) {
        nl_fail(L, v, "'%s' needs a value: %s", key, expected);
        return NULL;
    }
    if (v->type != YAML_SCALAR_NODE) {
        nl_fail(L, v, "'%s' must be %s (got %s)", key, expected,
                nl_yaml_kind(v, kind, sizeof(kind)));
        return NULL;
    }
    const char *s = (const char *)v->data.scalar.value;
    if (strlen(s) != v->data.scalar.length) {
        nl_fail(L, v, "'%s' contains a NUL byte", key);
        return NULL;
    }
    return s;
}

int nl_get_string(struct nl_loader *L, const yaml_node_t *v, const char *key, char **out)
{
    const char *s = scalar(L, v, key, "a string");
    if (s == NULL)
        return -1;
    if (s[0] == '\0')
        return nl_fail(L, v, "'%s' must not be empty", key);
    *out = nl_strdup(L, v, s);
    return *out == NULL ? -1 : 0;
}

int nl_get_bool(struct nl_loader *L, const yaml_node_t *v, const char *key, bool *out)
{
    const char *s = scalar(L, v, key, "true or false");
    if (s == NULL)
        return -1;
    /* YAML 1.1 spellings, as libyaml users expect. */
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return nl_fail(L, v, "'%s' must be true or false (got '%s')", key, s);
}

int nl_get_uint(struct nl_loader *L, const yaml_node_t *v, const char *key, unsigned lo,
                unsigned hi, unsigned *out)
{
    char expected[64];
    snprintf(expected, sizeof(expected), "a whole number from %u to %u", lo, hi);
    const char *s = scalar(L, v, key, expected);
    if (s == NULL)
        return -1;
    unsigned long long n = 0;
    bool ok = s[0] != '\0';
    for (const char *c = s; *c != '\0' && ok; c++) {
        ok = *c >= '0' && *c <= '9';
        n = n * 10 + (unsigned)(*c - '0');
        if (n > hi)
            break; /* out of range: stop before it can overflow */
    }
    if (!ok)
        return nl_fail(L, v, "'%s' must be %s (got '%s')", key, expected, s);
    if (n < lo || n > hi)
        return nl_fail(L, v, "'%s' is out of range: must be from %u to %u (got %s)", key, lo,
                       hi, s);
    *out = (unsigned)n;
    return 0;
}

int nl_get_enum(struct nl_loader *L, const yaml_node_t *v, const char *key,
                const char *const names[], int *out)
{
    char expected[160] = "";
    size_t used = 0;
    for (int i = 0; names[i] != NULL; i++) {
        const char *sep = i == 0 ? "" : names[i + 1] == NULL ? " or " : ", ";
        used += (size_t)snprintf(expected + used, sizeof(expected) - used, "%s%s", sep, names[i]);
        if (used >= sizeof(expected))
            break;
    }
    const char *s = scalar(L, v, key, expected);
    if (s == NULL)
        return -1;
    for (int i = 0; names[i] != NULL; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return nl_fail(L, v, "bad value '%s' for '%s': expected %s", s, key, expected);
}

int nl_get_tls_version(struct nl_loader *L, const yaml_node_t *v, const char *key, int *out)
{
    static const char *const names[] = {"TLSv1.2", "TLSv1.3", NULL};
    int which;
    NL_GUARD(nl_get_enum(L, v, key, names, &which));
    *out = which == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
    return 0;
}

char *nl_resolve_path(struct nl_loader *L, const char *path)
{
    char *abs;
    if (path[0] == '/')
        abs = strdup(path);
    else if (asprintf(&abs, "%s/%s", L->dir, path) < 0)
        abs = NULL;
    if (abs == NULL)
        nl_fail_mark(L, 1, 1, "out of memory");
    return abs;
}

int nl_get_file(struct nl_loader *L, const yaml_node_t *v, const char *key, char **out)
{
    char *written = NULL;
    NL_GUARD(nl_get_string(L, v, key, &written));
    char *abs = nl_resolve_path(L, written);
    if (abs == NULL) {
        free(written);
        return -1;
    }
    /* open(2) with O_NONBLOCK: a FIFO named here must not block the loader
     * (and every wrapped program's start-up) forever; raw close: close(2)
     * is hooked in the preloaded library, which is not ready yet. */
    int error = 0;
    int fd = open(abs, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0)
        error = errno;
    else if (fstat(fd, &st) != 0)
        error = errno;
    else if (S_ISDIR(st.st_mode))
        error = EISDIR;
    else if (!S_ISREG(st.st_mode))
        error = EFTYPE_NOT_REGULAR;
    if (fd >= 0)
        nl_sys_close(fd);
    if (error == EFTYPE_NOT_REGULAR) {
        nl_fail(L, v, "cannot read '%s' file '%s': not a regular file", key, written);
        free(written);
        free(abs);
        return -1;
    }
    if (error != 0) {
        nl_fail(L, v, "cannot read '%s' file '%s': %s", key, written, strerror(error));
        free(written);
        free(abs);
        return -1;
    }
    free(written);
    *out = abs;
    return 0;
}
