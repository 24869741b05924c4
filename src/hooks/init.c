/* Start-up contract: load $NESTLS_POLICY before main, or stop the program.
 *
 * A preloaded program without a valid policy must never run: it would
 * speak plaintext where TLS was intended. Every failure prints one line and
 * exits with status 78 (EX_CONFIG) before main. The policy is immutable
 * from here on, so hooks read it without a lock.
 *
 * "Before main" is not "before every hook": another library's constructor
 * may run first and call close(), socket() or even connect() (libcap-ng
 * and libaudit do, in sshd, postgres, setpriv, su). So start-up runs once,
 * from whichever comes first: our constructor, or the first hook called
 * (nl_started). A connection made that early is decided by the policy
 * like any other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <pthread.h>

#include "common/log.h"
#include "common/real.h"
#include "common/sys.h"
#include "engine/conn.h"
#include "engine/engine.h"
#include "engine/keylog.h"
#include "engine/sessions.h"
#include "hooks/exec_env.h"
#include "hooks/hooks.h"

#define EXIT_CONFIG 78

static void __attribute__((noreturn)) refuse_to_start(const char *what)
{
    nl_error("%s", what);
    nl_sys_exit(EXIT_CONFIG);
}

static int parse_level(const char *s, enum nl_log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0) {
            *out = (enum nl_log_level)i;
            return 0;
        }
    return -1;
}

/* NESTLS_ROUNDS_PER_RUN: how many rounds one run of a connection takes
 * before the others get a turn (conn.h). Only tests change it: small
 * values end runs in the middle of their work, where liveness is tested
 * (tests/engine_liveness.bats). A value that is not 1-1024 is an error. */
static void rounds_from_env(void)
{
    const char *v = secure_getenv("NESTLS_ROUNDS_PER_RUN");
    if (v == NULL || v[0] == '\0')
        return;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end != '\0' || n < 1 || n > 1024)
        refuse_to_start("NESTLS_ROUNDS_PER_RUN must be a number from 1 to 1024");
    nl_conn_rounds_per_run = (unsigned)n;
}

bool nl_started_flag;
/* The process whose memory this is: set at start-up and in every fork
 * child (forking.c). vfork and CLONE_VM children run no atfork handler,
 * so their getpid() differs from it. */
static pid_t owner_pid;

bool nl_in_vfork_child(void)
{
    pid_t owner = __atomic_load_n(&owner_pid, __ATOMIC_RELAXED);
    return owner != 0 && (pid_t)syscall(SYS_getpid) != owner;
}

void nl_owner_is_me(void)
{
    __atomic_store_n(&owner_pid, (pid_t)syscall(SYS_getpid), __ATOMIC_RELAXED);
}

/* --- the environment children inherit -------------------------------- */

extern char **environ;

/* setenv(3) is not enough before main: bash defines its own, which keeps
 * the value in a shell variable that bash then overwrites with what its
 * main() received. So an existing variable is changed in the array main()
 * receives (where glibc's setenv would change it too), and only a new one
 * goes through setenv. Runs at start-up, before main: no other thread
 * reads the environment yet. */
static void export_env(const char *name, const char *value)
{
    size_t n = strlen(name);
    bool replaced = false;
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, name, n) != 0 || (*e)[n] != '=')
            continue;
        char *entry;
        if (asprintf(&entry, "%s=%s", name, value) < 0)
            return; /* out of memory: children will say so at their start */
        *e = entry; /* the environment's now: never freed */
        replaced = true;
    }
    if (!replaced)
        setenv(name, value, 1);
}

/* A relative NESTLS_POLICY names another file once a program changes its
 * directory, and children would load that one: they get the absolute path
 * of the policy this process loaded. */
static void export_absolute_policy(const char *given, const struct nl_policy *policy)
{
    if (given[0] != '/')
        export_env("NESTLS_POLICY", policy->source);
}

/* Whether this process tree was told already about this policy: its
 * start-up notes (the info line below, and warnings such as a key file
 * others can read or a keylog_file) are said once per process tree, not
 * by every program a script starts. NESTLS_ANNOUNCED holds the policy
 * they were said for; a child started under another policy says its own. */
static bool tree_was_told(const char *policy_path)
{
    const char *said = secure_getenv("NESTLS_ANNOUNCED");
    return said != NULL && strcmp(said, policy_path) == 0;
}

/* What governs the process and what happens to a connection no rule
 * matches (a passthrough in plaintext must never be a surprise to whoever
 * asks for info lines). */
static void announce(const struct nl_policy *policy, bool told)
{
    if (!told) {
        bool deny = policy->settings.default_action == NL_ACTION_DENY;
        nl_info("policy %s: %zu rule%s; connections no rule matches are %s", policy->path,
                policy->n_rules, policy->n_rules == 1 ? "" : "s",
                deny ? "denied" : "passed through in plaintext");
    }
    export_env("NESTLS_ANNOUNCED", policy->path);
}

/* --- start-up ---------------------------------------------------------- */

static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static __thread bool starting; /* this thread is inside start_up() */

static void start_up(void)
{
    starting = true;
    nl_real_bind();
    if (getauxval(AT_SECURE))
        refuse_to_start("refusing to run inside a setuid/setgid program "
                        "(its environment cannot be trusted)");
    const char *path = secure_getenv("NESTLS_POLICY");
    if (path == NULL || path[0] == '\0')
        refuse_to_start("NESTLS_POLICY is not set: no policy, no connections "
                        "(run the program with `nestls run -p POLICY -- ...`)");
    struct nl_policy *policy;
    char err[NL_ERR_MAX];
    if (nl_policy_load(path, &policy, err, sizeof(err)) != 0)
        refuse_to_start(err);

    enum nl_log_level level = policy->settings.log_level;
    const char *env_level = secure_getenv("NESTLS_LOG");
    if (env_level != NULL && env_level[0] != '\0' && parse_level(env_level, &level) != 0)
        refuse_to_start("NESTLS_LOG must be one of error, warn, info, debug");
    rounds_from_env();
    nl_sessions_attach(policy);
    /* Its warning is a start-up note too: held with the loader's. */
    if (nl_keylog_attach(policy, err, sizeof(err)) != 0)
        refuse_to_start(err);
    bool told = tree_was_told(policy->path);
    if (told)
        nl_log_drop_held();
    nl_log_set_vfork_probe(nl_in_vfork_child);
    /* Writes the held notes; the log file opens only when a line needs it. */
    nl_log_configure(level, policy->settings.log_file);
    nl_policy = policy;
    nl_owner_is_me();
    nl_forking_install();
    nl_hooks_install_exit_handler();
    nl_debug("policy %s loaded: %zu rule(s), default action %s", policy->path, policy->n_rules,
             nl_action_name(policy->settings.default_action));
    export_absolute_policy(path, policy);
    announce(policy, told);
    nl_exec_env_init(policy->source);
    __atomic_store_n(&nl_started_flag, true, __ATOMIC_RELEASE);
    starting = false;
}

bool nl_started_slow(void)
{
    /* A hook called by start-up itself (the policy loader's own library
     * calls): the real functions are bound by then; pass it through. */
    if (starting)
        return false;
    pthread_once(&start_once, start_up);
    return true;
}

__attribute__((constructor)) static void nl_start(void)
{
    nl_started_slow();
    /* Constructors never run in a vfork child; start-up may have (a
     * library's constructor that vforks and execs before ours): the
     * owner of this memory is this process, now. */
    nl_owner_is_me();
}
