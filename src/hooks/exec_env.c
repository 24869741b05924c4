/* A new program image never loses nestls.
 *
 * A program may exec a child with an environment of its own making: `env
 * -i`, Python's subprocess with env={}, execve with a fresh envp, a
 * posix_spawn with one, system() after unsetenv("LD_PRELOAD"). Without
 * LD_PRELOAD and NESTLS_POLICY that child would connect in plaintext where
 * the policy says TLS. So the exec and spawn hooks hand the kernel the
 * environment with nestls's preload put back (in front, as `nestls run`
 * puts it) when the list ld.so will read does not name this library, and
 * NESTLS_POLICY (absolute) when unset. A child may still choose another
 * policy by setting NESTLS_POLICY itself; NESTLS_ANNOUNCED comes along so
 * that it does not repeat the start-up line.
 *
 * The new vector lives in one mapping per thread, reused, never in the
 * heap: a vfork child (Python's subprocess) shares its parent's memory
 * and must neither take the allocator's locks nor leave a mapping behind
 * at each spawn. When no vector can be made, the exec fails (ENOMEM)
 * rather than start a child without nestls. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hooks/exec_env.h"

#define KEPT 3 /* LD_PRELOAD, NESTLS_POLICY, NESTLS_ANNOUNCED */

static char *lib_path;        /* this library, absolute */
static char *preload_entry;   /* "LD_PRELOAD=..." naming this library */
static char *policy_entry;    /* "NESTLS_POLICY=/abs/path" */
static char *announced_entry; /* "NESTLS_ANNOUNCED=..." or NULL */

/* The value of the first or the last entry NAME= in envp. glibc's
 * getenv reads the first; ld.so keeps the last LD_PRELOAD it sees. */
static const char *value_of(char *const envp[], const char *name, bool last)
{
    size_t n = strlen(name);
    const char *found = NULL;
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
        if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=') {
            found = envp[i] + n + 1;
            if (!last)
                break;
        }
    return found;
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

static char *entry(const char *name, const char *value)
{
    char *e = NULL;
    if (value != NULL && asprintf(&e, "%s=%s", name, value) < 0)
        e = NULL;
    return e;
}

/* A sanitizer runtime must stay first in LD_PRELOAD (ASan refuses to run
 * otherwise): nestls goes right behind any that lead the list. */
static bool is_sanitizer_runtime(const char *token, size_t len)
{
    const char *base = memrchr(token, '/', len);
    base = base ? base + 1 : token;
    return strncmp(base, "libclang_rt.", 12) == 0 || strncmp(base, "libasan", 7) == 0 ||
           strncmp(base, "libtsan", 7) == 0 || strncmp(base, "libubsan", 8) == 0;
}

/* Whether a list entry is this library: its path, or (however it was
 * written: ./libnestls.so, another directory's copy) its file name. */
static bool names_us(const char *token)
{
    const char *base = strrchr(token, '/'), *ours = strrchr(lib_path, '/');
    return strcmp(token, lib_path) == 0 || strcmp(base ? base + 1 : token, ours + 1) == 0;
}

/* given as children must get it, into out (cap bytes, NUL-terminated):
 * every entry that is this library as its absolute path, once, and put
 * in if no entry was, behind leading sanitizer runtimes. No allocation:
 * runs in vfork children too. */
static void preload_list(const char *given, char *out, size_t cap)
{
    size_t used = 0;
    bool emitted = false;
    out[0] = '\0';
#define EMIT(text) used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? " " : "", (text))
    for (const char *p = given; p != NULL && *p && used < cap;) {
        p += strspn(p, " :");
        size_t len = strcspn(p, " :");
        if (len == 0)
            break;
        char token[PATH_MAX];
        snprintf(token, sizeof(token), "%.*s", (int)len, p);
        p += len;
        bool is_us = names_us(token);
        if (!emitted && (is_us || !is_sanitizer_runtime(token, strlen(token)))) {
            EMIT(lib_path);
            emitted = true;
        }
        if (!is_us && used < cap)
            EMIT(token);
    }
    if (!emitted && used < cap)
        EMIT(lib_path);
#undef EMIT
}

/* Room preload_list needs for given. */
static size_t preload_list_size(const char *given)
{
    return (given ? strlen(given) : 0) + strlen(lib_path) + 16;
}

void nl_exec_env_init(const char *policy_path)
{
    Dl_info self;
    if (!dladdr((void *)nl_exec_env_init, &self) || self.dli_fname == NULL)
        return;
    /* Absolute: a child that changed directory must find it too. */
    lib_path = realpath(self.dli_fname, NULL);
    if (lib_path == NULL)
        return;
    /* Read from environ itself: a program may define its own getenv
     * (bash does, answering from its shell variables). */
    const char *preload = value_of(environ, "LD_PRELOAD", true);
    char *list = malloc(preload_list_size(preload));
    if (list != NULL) {
        preload_list(preload, list, preload_list_size(preload));
        preload_entry = entry("LD_PRELOAD", list);
    }
    free(list);
    policy_entry = entry("NESTLS_POLICY", policy_path);
    announced_entry = entry("NESTLS_ANNOUNCED", value_of(environ, "NESTLS_ANNOUNCED", false));
}

/* What an environment lacks of nestls: read once per exec. */
struct lacking {
    const char *preload, *policy; /* the values ld.so and the child will read */
    bool preload_entry, policy_entry, announced_entry;
};

static bool lacks(char *const envp[], struct lacking *l)
{
    *l = (struct lacking){0};
    if (lib_path == NULL || preload_entry == NULL || policy_entry == NULL)
        return false; /* start-up could not learn what to keep: nothing to add */
    l->preload = value_of(envp, "LD_PRELOAD", true);
    l->policy = value_of(envp, "NESTLS_POLICY", false);
    l->preload_entry = l->preload == NULL || !preloads_us(l->preload);
    l->policy_entry = l->policy == NULL || l->policy[0] == '\0';
    l->announced_entry = announced_entry != NULL && value_of(envp, "NESTLS_ANNOUNCED", false) == NULL;
    return l->preload_entry || l->policy_entry || l->announced_entry;
}

/* This thread's mapping, grown when too small, kept for the next exec. */
static __thread void *kept_addr;
static __thread size_t kept_len;

static void *vector_space(size_t len)
{
    if (len <= kept_len)
        return kept_addr;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (kept_addr != NULL)
        munmap(kept_addr, kept_len);
    kept_addr = m;
    kept_len = len;
    return m;
}

char *const *nl_exec_env(char *const envp[])
{
    struct lacking l;
    if (!lacks(envp, &l))
        return envp;
    const char *preload = l.preload;
    bool add_preload = l.preload_entry, add_policy = l.policy_entry;

    size_t n = 0;
    while (envp != NULL && envp[n] != NULL)
        n++;
    bool keep_list = add_preload && preload != NULL && preload[0] != '\0';
    size_t text_len = keep_list ? strlen("LD_PRELOAD=") + preload_list_size(preload) : 0;
    size_t vector_len = (n + KEPT + 1) * sizeof(char *);
    char **out = vector_space(vector_len + text_len);
    if (out == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    char *text = (char *)out + vector_len;
    size_t k = 0;
    if (keep_list) {
        /* The program's own list kept, with this library in it. */
        memcpy(text, "LD_PRELOAD=", 11);
        preload_list(preload, text + 11, text_len - 11);
        out[k++] = text;
    } else if (add_preload)
        out[k++] = preload_entry;
    if (add_policy)
        out[k++] = policy_entry;
    if (l.announced_entry)
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

int nl_exec_env_restore_environ(void)
{
    struct lacking l;
    if (!lacks(environ, &l))
        return 0;
    if (l.preload_entry) {
        const char *given = l.preload != NULL && l.preload[0] != '\0' ? l.preload : preload_entry + 11;
        char *list = malloc(preload_list_size(given));
        if (list == NULL)
            return -1;
        preload_list(given, list, preload_list_size(given));
        int r = setenv("LD_PRELOAD", list, 1);
        free(list);
        if (r != 0)
            return -1;
    }
    if (l.policy_entry && setenv("NESTLS_POLICY", policy_entry + 14, 1) != 0)
        return -1;
    return 0;
}
