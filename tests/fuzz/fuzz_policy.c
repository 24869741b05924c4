/* libFuzzer target: the policy loader (nl_policy_load), then the matcher
 * and the descriptions `nestls check` prints, on whatever loaded.
 *
 * nl_policy_load takes a path, so each input is written to a file in a
 * private directory under $FUZZ_TMPDIR (default /dev/shm), laid out so
 * that the relative certificate paths of the seeds resolve: the file is
 * DIR/a/b/c/policy.yaml and both DIR/a/b/certs (for "../certs/..." in policy/) and DIR/certs (for
 * "../../../certs/..." in tests/fixtures/policy/) link to the demo PKI
 * ($NESTLS_CERTS, default ./certs).
 *
 * A policy is trusted configuration, and the loader reads every file it
 * names to its end; an input naming a device or /proc file that never
 * ends (/dev/kmsg, /proc/kmsg...) would only make the fuzzer wait. Inputs
 * that could spell such a path (the words dev, proc, sys/, run/, or a YAML
 * escape that could hide them) are skipped. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/log.h"
#include "policy/policy.h"

static char dir[PATH_MAX], leaf[PATH_MAX], file[PATH_MAX];
static FILE *devnull;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void cleanup(void)
{
    char path[PATH_MAX];
    unlink(file);
    snprintf(path, sizeof(path), "%s/a/b/certs", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/certs", dir);
    unlink(path);
    rmdir(leaf);
    snprintf(path, sizeof(path), "%s/a/b", dir);
    rmdir(path);
    snprintf(path, sizeof(path), "%s/a", dir);
    rmdir(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char certs[PATH_MAX], path[PATH_MAX];
    const char *c = getenv("NESTLS_CERTS");
    if (realpath(c ? c : "certs", certs) == NULL)
        die("fuzz_policy: the demo certificates (NESTLS_CERTS, default ./certs)");
    const char *tmp = getenv("FUZZ_TMPDIR"); /* run-fuzz.sh's, removed after */
    snprintf(dir, sizeof(dir), "%s/nestls-fuzz-policy-XXXXXX", tmp ? tmp : "/dev/shm");
    if (mkdtemp(dir) == NULL)
        die("fuzz_policy: mkdtemp");
    atexit(cleanup);
    snprintf(leaf, sizeof(leaf), "%s/a/b/c", dir);
    snprintf(path, sizeof(path), "%s/a", dir);
    if (mkdir(path, 0700) != 0)
        die("fuzz_policy: mkdir");
    snprintf(path, sizeof(path), "%s/a/b", dir);
    if (mkdir(path, 0700) != 0 || mkdir(leaf, 0700) != 0)
        die("fuzz_policy: mkdir");
    snprintf(path, sizeof(path), "%s/a/b/certs", dir);
    if (symlink(certs, path) != 0)
        die("fuzz_policy: symlink");
    snprintf(path, sizeof(path), "%s/certs", dir);
    if (symlink(certs, path) != 0)
        die("fuzz_policy: symlink");
    snprintf(file, sizeof(file), "%s/policy.yaml", leaf);
    devnull = fopen("/dev/null", "w");
    if (devnull == NULL)
        die("fuzz_policy: /dev/null");
    /* The key-permission warning is not what is being tested. */
    nl_log_configure(NL_LOG_ERROR, "stderr");
    return 0;
}

static bool contains(const uint8_t *data, size_t size, const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i + n <= size; i++)
        if (memcmp(data + i, word, n) == 0)
            return true;
    return false;
}

static bool could_name_an_endless_file(const uint8_t *data, size_t size)
{
    static const char *const words[] = {"dev", "proc", "sys/", "run/", "\\x", "\\u", "\\U",
                                        "\\\n", "\\\r", NULL};
    for (size_t i = 0; words[i] != NULL; i++)
        if (contains(data, size, words[i]))
            return true;
    return false;
}

/* What `nestls check` and `explain` do with a loaded policy. */
static void use(const struct nl_policy *p)
{
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(9000),
                             .sin_addr = {htonl(0x7f000001)}};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
    v6.sin6_addr.s6_addr[15] = 1;
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6, .sin6_port = htons(5432)};
    memcpy(&mapped.sin6_addr.s6_addr[10], "\xff\xff\x0a\x01\x02\x03", 6);
    const struct sockaddr *addrs[] = {(struct sockaddr *)&v4, (struct sockaddr *)&v6,
                                      (struct sockaddr *)&mapped};
    const char *names[] = {NULL, "localhost", "a.db.internal.example"};
    for (int role = NL_ROLE_CLIENT; role <= NL_ROLE_SERVER; role++)
        for (size_t a = 0; a < 3; a++) {
            struct nl_conn_query q = {.role = (enum nl_role)role, .addr = addrs[a],
                                      .hostname = names[a], .program = "redis-cli"};
            nl_policy_match(p, &q);
        }
    for (size_t r = 0; r < p->n_rules; r++) {
        const struct nl_rule *rule = &p->rules[r];
        nl_cli_print_match(devnull, rule, "  ");
        for (size_t i = 0; i < rule->n_layers; i++)
            nl_cli_print_layer(devnull, &rule->layers[i], i, rule->n_layers, rule->role,
                               i % 2 ? "resolved.example" : NULL, "    ");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (could_name_an_endless_file(data, size))
        return -1; /* not added to the corpus */
    FILE *f = fopen(file, "w");
    if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        die("fuzz_policy: writing the input");
    struct nl_policy *p = NULL;
    char err[NL_ERR_MAX];
    err[0] = '\0';
    if (nl_policy_load(file, &p, err, sizeof(err)) == 0) {
        if (p == NULL)
            abort(); /* success must hand out a policy */
        use(p);
        nl_policy_free(p);
    } else if (p != NULL || err[0] == '\0' || strlen(err) >= sizeof(err) ||
               strchr(err, '\n') != NULL) {
        /* Failure: no policy, and exactly one line saying why. */
        fprintf(stderr, "bad failure report: policy %p, error '%s'\n", (void *)p, err);
        abort();
    }
    return 0;
}
