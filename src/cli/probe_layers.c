/* --layer SPEC: a layer stack on the command line. Each SPEC is
 * KEY=VALUE,KEY=VALUE with the keys of a policy layer. The SPECs become a
 * one-rule policy, written to a private temporary file and read by the
 * policy loader itself: a layer from the command line is checked and
 * built exactly as the same layer in a policy file, with the same
 * defaults (versions, cipher list) and the same messages. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/probe.h"

/* The keys a client layer has, in the policy's spelling. */
static const char *const STRING_KEYS[] = {
    "server_name", "min_version", "max_version", "ciphers", "ciphersuites", "groups", "ocsp",
    "padding", NULL,
};
static const char *const FILE_KEYS[] = {"ca", "cert", "key", "crl", NULL};
#define KEY_LIST "server_name, ca, cert, key, verify, min_version, max_version, ciphers, " \
                 "ciphersuites, groups, alpn, crl, ocsp, padding"

static bool listed(const char *const keys[], const char *key)
{
    for (size_t i = 0; keys[i] != NULL; i++)
        if (strcmp(keys[i], key) == 0)
            return true;
    return false;
}

/* A double-quoted YAML scalar: the value is taken literally. */
static void yaml_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* A relative path means the working directory, as for any command (the
 * loader would read it against the temporary file's directory). */
static void yaml_path(FILE *f, const char *path)
{
    char cwd[PATH_MAX], full[2 * PATH_MAX];
    if (path[0] != '/' && strcmp(path, "system") != 0 && getcwd(cwd, sizeof(cwd)) != NULL) {
        snprintf(full, sizeof(full), "%s/%s", cwd, path);
        path = full;
    }
    yaml_quoted(f, path);
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"on", "true", "yes", NULL};
    static const char *const no[] = {"off", "false", "no", NULL};
    if (listed(yes, v))
        *out = true;
    else if (listed(no, v))
        *out = false;
    else
        return -1;
    return 0;
}

/* One SPEC as a YAML flow mapping on its own line. Returns 0 or a usage
 * failure status. */
static int write_layer(const struct nl_cli_ctx *c, FILE *f, size_t index, const char *spec)
{
    char *copy = strdup(spec), *save = NULL;
    bool first = true, alpn = false, verify = true;
    int rc = 0;
    if (copy == NULL)
        return nl_cli_fail(c, NL_EXIT_FAIL, "out of memory");
    fputs("      - {", f);
    for (char *item = strtok_r(copy, ",", &save); item != NULL && rc == 0;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (eq == NULL || eq == item || eq[1] == '\0') {
            rc = nl_cli_usage_fail(c, "--layer %zu: expected KEY=VALUE, got '%s'", index + 1,
                                   item);
            break;
        }
        *eq = '\0';
        const char *key = item, *value = eq + 1;
        if (strcmp(key, "alpn") == 0) {
            alpn = true; /* written at the end, as one list */
            continue;
        }
        if (strcmp(key, "verify") == 0) {
            if (parse_bool(value, &verify) != 0)
                rc = nl_cli_usage_fail(c, "--layer %zu: verify must be on or off, got '%s'",
                                       index + 1, value);
            continue;
        }
        if (!listed(STRING_KEYS, key) && !listed(FILE_KEYS, key)) {
            rc = nl_cli_usage_fail(c, "--layer %zu: unknown key '%s' (keys: " KEY_LIST ")",
                                   index + 1, key);
            break;
        }
        fprintf(f, "%s%s: ", first ? "" : ", ", key);
        if (listed(FILE_KEYS, key))
            yaml_path(f, value);
        else
            yaml_quoted(f, value);
        first = false;
    }
    /* verify=off is the probe's question "what does the peer show?": no
     * data is sent, so the policy's insecure: true is implied. */
    if (rc == 0 && !verify) {
        fprintf(f, "%sverify: false, insecure: true", first ? "" : ", ");
        first = false;
    }
    if (rc == 0 && alpn) {
        fprintf(f, "%salpn: [", first ? "" : ", ");
        strcpy(copy, spec);
        bool any = false;
        for (char *item = strtok_r(copy, ",", &save); item != NULL;
             item = strtok_r(NULL, ",", &save)) {
            if (strncmp(item, "alpn=", 5) != 0)
                continue;
            fputs(any ? ", " : "", f);
            yaml_quoted(f, item + 5);
            any = true;
        }
        fputc(']', f);
    }
    fputs("}\n", f);
    free(copy);
    return rc;
}

/* The loader's "FILE:LINE:COL: layer K of rule 'x': why" about the
 * temporary file, as "--layer K: why". */
static void translate(const char *err, const char *file, int first_line, char *out, size_t len)
{
    size_t flen = strlen(file);
    int line = 0, col = 0, used = 0;
    if (strncmp(err, file, flen) != 0 ||
        sscanf(err + flen, ":%d:%d: %n", &line, &col, &used) < 2 || used == 0) {
        snprintf(out, len, "--layer: %s", err);
        return;
    }
    const char *why = err + flen + used;
    const char *after = strstr(why, " of rule 'command line': ");
    if (strncmp(why, "layer ", 6) == 0 && after != NULL)
        why = after + strlen(" of rule 'command line': ");
    if (line >= first_line)
        snprintf(out, len, "--layer %d: %s", line - first_line + 1, why);
    else
        snprintf(out, len, "--layer: %s", why);
}

int nl_probe_layers_policy(const struct nl_cli_ctx *c, char **specs, size_t n,
                           struct nl_policy **out)
{
    const char *tmpdir = getenv("TMPDIR");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/nestls-probe-XXXXXX",
             tmpdir != NULL && *tmpdir == '/' ? tmpdir : "/tmp");
    int fd = mkstemp(path); /* mode 0600: the file names the keys to use */
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        int saved = errno;
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        return nl_cli_fail(c, NL_EXIT_FAIL, "probe: cannot write a temporary file in %s: %s",
                           tmpdir ? tmpdir : "/tmp", strerror(saved));
    }
    const int first_line = 7; /* the line of the first layer, below */
    fputs("version: 1\n"
          "rules:\n"
          "  - name: command line\n"
          "    match:\n"
          "      role: client\n"
          "    layers:\n", f);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = write_layer(c, f, i, specs[i]);
    if (fclose(f) != 0 && rc == 0)
        rc = nl_cli_fail(c, NL_EXIT_FAIL, "probe: cannot write %s: %s", path, strerror(errno));
    if (rc == 0) {
        char err[NL_ERR_MAX], shown[NL_ERR_MAX + 64];
        if (nl_policy_load(path, out, err, sizeof(err)) != 0) {
            translate(err, path, first_line, shown, sizeof(shown));
            rc = nl_cli_fail(c, NL_EXIT_CONFIG, "%s", shown);
        }
    }
    unlink(path);
    return rc;
}
