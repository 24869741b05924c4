/* A new program image never loses nestls.
 *
 * A program may exec a child with an environment of its own making: `env
 * -i`, Python's subprocess with env={}, execve with a fresh envp, a
 * posix_spawn with one. Without LD_PRELOAD and NESTLS_POLICY that child
 * would connect in plaintext where the policy says TLS. So the exec and
 * posix_spawn hooks hand the kernel the program's environment with
 * nestls's preload put back (prepended, as `nestls run` does) when it is
 * missing, and NESTLS_POLICY (absolute) when unset. A child may still
 * choose another policy by setting NESTLS_POLICY itself; NESTLS_ANNOUNCED
 * comes along so that it does not repeat the start-up line.
 *
 * The new vector is mapped with mmap, not malloc: a vfork child (Python's
 * subprocess) shares its parent's heap and must not touch its locks. */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/log.h"
#include "hooks/exec_env.h"

#define KEPT 3 /* LD_PRELOAD, NESTLS_POLICY, NESTLS_ANNOUNCED */

static const char *lib_path;   /* this library, as the loader named it */
static char *preload_entry;    /* "LD_PRELOAD=..." to prepend when missing */
static char *policy_entry;     /* "NESTLS_POLICY=/abs/path" */
static char *announced_entry;  /* "NESTLS_ANNOUNCED=..." or NULL */

static char *entry(const char *name, const char *value)
{
    char *e = NULL;
    if (value != NULL && asprintf(&e, "%s=%s", name, value) < 0)
        e = NULL;
    return e;
}

/* Whether the list (space- or colon-separated, as ld.so reads it) names
 * this library. */
static bool preloads_us(const char *list)
{
    size_t n = strlen(lib_path);
    for (const char *p = list; p != NULL && *p;) {
        p += strspn(p, " :");
        size_t len = strcspn(p, " :");
        if (len == n && strncmp(p, lib_path, n) == 0)
            return true;
        p += len;
    }
    return false;
}

void nl_exec_env_init(const char *policy_path)
{
    Dl_info self;
    if (dladdr((void *)nl_exec_env_init, &self) && self.dli_fname != NULL && self.dli_fname[0])
        lib_path = self.dli_fname;
    const char *preload = getenv("LD_PRELOAD");
    if (lib_path == NULL)
        return;
    if (preload == NULL || preload[0] == '\0')
        preload_entry = entry("LD_PRELOAD", lib_path);
    else if (preloads_us(preload))
        preload_entry = entry("LD_PRELOAD", preload); /* e.g. a sanitizer runtime first */
    else if (asprintf(&preload_entry, "LD_PRELOAD=%s %s", lib_path, preload) < 0)
        preload_entry = NULL; /* loaded some other way (/etc/ld.so.preload) */
    policy_entry = entry("NESTLS_POLICY", policy_path);
    announced_entry = entry("NESTLS_ANNOUNCED", getenv("NESTLS_ANNOUNCED"));
}

static const char *value_of(char *const envp[], const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
        if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
            return envp[i] + n + 1;
    return NULL;
}

char *const *nl_exec_env(char *const envp[], struct nl_exec_env *mapped)
{
    mapped->addr = NULL;
    if (lib_path == NULL || preload_entry == NULL || policy_entry == NULL)
        return envp;
    const char *preload = value_of(envp, "LD_PRELOAD");
    const char *policy = value_of(envp, "NESTLS_POLICY");
    bool add_preload = preload == NULL || !preloads_us(preload);
    bool add_policy = policy == NULL || policy[0] == '\0';
    bool add_announced = announced_entry != NULL && value_of(envp, "NESTLS_ANNOUNCED") == NULL;
    if (!add_preload && !add_policy && !add_announced)
        return envp;

    size_t n = 0;
    while (envp != NULL && envp[n] != NULL)
        n++;
    size_t preload_len = add_preload && preload ? strlen(preload_entry) + 1 + strlen(preload) + 1 : 0;
    mapped->len = (n + KEPT + 1) * sizeof(char *) + preload_len;
    void *m = mmap(NULL, mapped->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return envp; /* the exec goes on as asked; its child logs nothing */
    mapped->addr = m;
    char **out = m, *text = (char *)(out + n + KEPT + 1);
    size_t k = 0;
    if (add_preload && preload) {
        /* The program's own list kept, ours in front of it. */
        snprintf(text, preload_len, "%s %s", preload_entry, preload);
        out[k++] = text;
    } else if (add_preload)
        out[k++] = preload_entry;
    if (add_policy)
        out[k++] = policy_entry;
    if (add_announced)
        out[k++] = announced_entry;
    for (size_t i = 0; i < n; i++) {
        bool replaced = (add_preload && strncmp(envp[i], "LD_PRELOAD=", 11) == 0) ||
                        (add_policy && strncmp(envp[i], "NESTLS_POLICY=", 14) == 0);
        if (!replaced)
            out[k++] = envp[i];
    }
    out[k] = NULL;
    return out;
}

void nl_exec_env_done(struct nl_exec_env *mapped)
{
    if (mapped->addr != NULL)
        munmap(mapped->addr, mapped->len);
    mapped->addr = NULL;
}
