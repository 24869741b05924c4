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

/* libnestls.so, as an absolute path: next to the nestls binary (the build
 * tree), else in ../lib/nestls beside the binary's directory (an install
 * under any PREFIX, or staged under a DESTDIR), else in NESTLS_LIBDIR, the
 * install directory the Makefile compiled in (packaging/install.mk). */
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
    const char *const places[][2] = {
        {exe, ""},
        {exe, "/../lib/nestls"},
#ifdef NESTLS_LIBDIR
        {NESTLS_LIBDIR, ""},
#endif
    };
    char tried[3 * PATH_MAX] = "";
    for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
        char path[PATH_MAX], found[PATH_MAX];
        if ((size_t)snprintf(path, sizeof(path), "%s%s/%s", places[i][0], places[i][1],
                             LIB_NAME) >= sizeof(path))
            continue;
        if (access(path, R_OK) == 0 && realpath(path, found) != NULL &&
            (size_t)snprintf(out, len, "%s", found) < len)
            return 0;
        size_t used = strlen(tried);
        snprintf(tried + used, sizeof(tried) - used, "%s%s", used > 0 ? ", " : "", path);
    }
    nl_cli_error("cannot find %s (tried %s): build it with make, or install it with make install",
                 LIB_NAME, tried);
    return -1;
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
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char shortopts[] = "+:p:vqh";
    struct nl_cli_ctx c = {"run", false};
    const char *policy = NULL;
    /* The log level -v or -q asks for; NULL leaves NESTLS_LOG as it is. */
    const char *log_level = NULL;

    /* getopt wants the program name in argv[0]; "+" stops at CMD, so the
     * program's own options are never taken for ours. */
    char **args = argv - 1;
    int nargs = argc + 1;
    optind = 0;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(nargs, args, shortopts, longopts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            policy = optarg;
            break;
        case 'v':
        case 'q':
            /* Both would be a contradiction nobody means: say so. */
            if (log_level != NULL && strcmp(log_level, opt == 'v' ? "debug" : "error") != 0)
                return nl_cli_usage_fail(&c, "-v and -q cannot be used together");
            log_level = opt == 'v' ? "debug" : "error";
            break;
        case 'h':
            nl_cli_usage(stdout);
            return NL_EXIT_OK;
        default:
            return nl_cli_bad_option(&c, opt, args, shortopts);
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

    /* Absolute, but links not followed: the programs (and their reloads)
     * read the file by the name given, as a ConfigMap's links change. */
    char abs_policy[2 * PATH_MAX], cwd[PATH_MAX];
    if (policy[0] == '/')
        snprintf(abs_policy, sizeof(abs_policy), "%s", policy);
    else if (getcwd(cwd, sizeof(cwd)) != NULL)
        snprintf(abs_policy, sizeof(abs_policy), "%s/%s", cwd, policy);
    else if (realpath(policy, abs_policy) == NULL) {
        nl_cli_error("%s: %s", policy, strerror(errno));
        return NL_EXIT_CONFIG;
    }

    if (setenv("NESTLS_POLICY", abs_policy, 1) != 0 || set_preload(lib) != 0 ||
        (log_level != NULL && setenv("NESTLS_LOG", log_level, 1) != 0)) {
        nl_cli_error("cannot set the environment: %s", strerror(errno));
        return NL_EXIT_FAIL;
    }

    execvp(cmd[0], cmd);
    int saved = errno;
    nl_cli_error("cannot run %s: %s", cmd[0], strerror(saved));
    return saved == EACCES ? NL_EXIT_NOEXEC : NL_EXIT_NOTFOUND;
}
