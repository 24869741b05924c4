/* nestls run: validate the policy, then exec the program with libnestls.so
 * preloaded. The policy is loaded here first so that a broken policy is
 * reported once, by us, before anything runs — the library would refuse it
 * too, but only after the program had started. The program is looked at
 * first too (reach.c): one the library cannot reach would never refuse. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

#define LIB_NAME "libnestls.so"

/* The library next to the nestls binary, as an absolute path. */
static int find_library(char *out, size_t len)
{
    char exe[PATH_MAX];
    if (realpath("/proc/self/exe", exe) == NULL) {
        nl_cli_error("cannot find the nestls executable (/proc/self/exe): %s", strerror(errno));
        return -1;
    }
    char *slash = strrchr(exe, '/');
    if (slash != NULL)
        *slash = '\0';
    if ((size_t)snprintf(out, len, "%s/%s", exe, LIB_NAME) >= len) {
        nl_cli_error("path too long: %s/%s", exe, LIB_NAME);
        return -1;
    }
    if (access(out, R_OK) != 0) {
        nl_cli_error("cannot use %s: %s (build it with make, next to nestls)", out,
                     strerror(errno));
        return -1;
    }
    return 0;
}

/* True when list (space or colon separated, as ld.so reads it) holds path. */
static int preload_has(const char *list, const char *path)
{
    size_t n = strlen(path);
    for (const char *p = list; (p = strstr(p, path)) != NULL; p += n) {
        int starts = p == list || p[-1] == ' ' || p[-1] == ':';
        int ends = p[n] == '\0' || p[n] == ' ' || p[n] == ':';
        if (starts && ends)
            return 1;
    }
    return 0;
}

/* Length of a leading sanitizer runtime entry in an LD_PRELOAD list (it
 * must stay first for its interceptors to work), or 0. */
static size_t sanitizer_prefix(const char *list)
{
    size_t n = strcspn(list, " :");
    const char *base = list;
    for (const char *p = list; p < list + n; p++)
        if (*p == '/')
            base = p + 1;
    if (strncmp(base, "libasan", 7) == 0 || strncmp(base, "libclang_rt.asan", 16) == 0)
        return n;
    return 0;
}

/* Ours first, so its hooks see calls before any other preloaded shim;
 * only a sanitizer runtime stays ahead of it. */
static int set_preload(const char *lib)
{
    const char *old = getenv("LD_PRELOAD");
    if (old == NULL || *old == '\0')
        return setenv("LD_PRELOAD", lib, 1);
    if (preload_has(old, lib))
        return 0;
    size_t len = strlen(lib) + 1 + strlen(old) + 2;
    char *joined = malloc(len);
    if (joined == NULL)
        return -1;
    size_t keep = sanitizer_prefix(old);
    if (keep > 0)
        snprintf(joined, len, "%.*s %s%s", (int)keep, old, lib, old + keep);
    else
        snprintf(joined, len, "%s %s", lib, old);
    int rc = setenv("LD_PRELOAD", joined, 1);
    free(joined);
    return rc;
}

static struct nl_policy *load_policy(const char *path)
{
    struct nl_policy *policy = NULL;
    char err[NL_ERR_MAX];
    if (nl_policy_load(path, &policy, err, sizeof(err)) != 0) {
        nl_cli_error("%s", err);
        return NULL;
    }
    return policy;
}

/* A program the preload cannot reach would talk plaintext where the policy
 * says TLS, and exit 0: refuse it, unless the policy says, spelled out as
 * insecure, to run it anyway. */
static int check_reach(const struct nl_policy *policy, const char *cmd, const char *lib)
{
    char why[NL_REACH_WHY_MAX];
    if (!nl_policy_restricts(policy) || !nl_reach_refuses(cmd, lib, why, sizeof(why)))
        return 0;
    if (policy->settings.allow_unhookable) {
        nl_cli_error("warning: running %s anyway (insecure_allow_unhookable: true): %s", cmd, why);
        return 0;
    }
    nl_cli_error("refusing to run %s: %s (set insecure_allow_unhookable: true in settings to run "
                 "it anyway, in plaintext)", cmd, why);
    return -1;
}

int nl_cli_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *policy = NULL;
    int verbose = 0;

    /* getopt wants the program name in argv[0]; "+" stops at CMD, so the
     * program's own options are never taken for ours. */
    char **args = argv - 1;
    int nargs = argc + 1;
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(nargs, args, "+p:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            policy = optarg;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'h':
            nl_cli_usage(stdout);
            return NL_EXIT_OK;
        default:
            if (optopt == 'p')
                nl_cli_error("run: -p needs a policy FILE");
            else
                nl_cli_error("run: unknown option '%s'", args[optind - 1]);
            nl_cli_usage_of("run");
            return NL_EXIT_USAGE;
        }
    }
    if (optind >= nargs) {
        nl_cli_error("run: no command given");
        nl_cli_usage_of("run");
        return NL_EXIT_USAGE;
    }
    char **cmd = args + optind;

    if (policy == NULL || *policy == '\0')
        policy = getenv("NESTLS_POLICY");
    if (policy == NULL || *policy == '\0') {
        nl_cli_error("no policy: use -p FILE or set NESTLS_POLICY");
        return NL_EXIT_CONFIG;
    }
    struct nl_policy *loaded = load_policy(policy);
    if (loaded == NULL)
        return NL_EXIT_CONFIG;
    char lib[PATH_MAX];
    int status = NL_EXIT_OK;
    if (find_library(lib, sizeof(lib)) != 0)
        status = NL_EXIT_FAIL;
    else if (check_reach(loaded, cmd[0], lib) != 0)
        status = NL_EXIT_CONFIG;
    nl_policy_free(loaded);
    if (status != NL_EXIT_OK)
        return status;

    char abs_policy[PATH_MAX];
    if (realpath(policy, abs_policy) == NULL) {
        nl_cli_error("%s: %s", policy, strerror(errno));
        return NL_EXIT_CONFIG;
    }

    if (setenv("NESTLS_POLICY", abs_policy, 1) != 0 || set_preload(lib) != 0 ||
        (verbose && setenv("NESTLS_LOG", "debug", 1) != 0)) {
        nl_cli_error("cannot set the environment: %s", strerror(errno));
        return NL_EXIT_FAIL;
    }

    execvp(cmd[0], cmd);
    int saved = errno;
    nl_cli_error("cannot run %s: %s", cmd[0], strerror(saved));
    return saved == EACCES ? NL_EXIT_NOEXEC : NL_EXIT_NOTFOUND;
}
