/* nestls run's look at the program before exec: can libnestls.so reach it?
 *
 * LD_PRELOAD is a request to the dynamic loader, so the library reaches
 * only a program that the loader starts, in normal mode, and that makes
 * its socket calls through libc. Under a policy that wraps, a program that
 * fails any of these would speak plaintext where TLS was meant, silently,
 * so run refuses it:
 *   - no PT_INTERP: statically linked, no loader runs at all;
 *   - ELF class, byte order or machine other than libnestls.so's: the
 *     loader skips the library with a warning and runs the program anyway;
 *   - set-user-ID to another user, set-group-ID to another group, or file
 *     capabilities for a user other than root: the kernel sets AT_SECURE
 *     and the loader ignores LD_PRELOAD (ld.so(8), secure-execution mode);
 *   - Go (a section .go.buildinfo or .note.go.buildid): Go's runtime makes
 *     its socket calls as raw system calls, even when linked with libc
 *     (cgo), so no hook sees them; refused whether static or dynamic;
 *   - an executable this user may run but not read: nothing can be
 *     checked, and the promise of TLS must not rest on a guess.
 * A #! script is judged by its interpreter (the kernel runs that file and
 * ignores set-ID bits on the script), #!/usr/bin/env NAME by NAME on PATH.
 * What the kernel would not run (missing, not executable, neither ELF nor
 * #!) is not judged: exec reports it, as without nestls (for a file with
 * no #! line, execvp runs /bin/sh on it, which is not judged either). Not
 * seen from here: what the program execs later, and secure mode that an
 * LSM (SELinux, AppArmor) imposes on a domain transition. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/elf_facts.h"

#define MAX_SCRIPTS 4   /* #! levels followed; the kernel stops at about as many */
#define SHEBANG_MAX 256 /* the kernel reads no more of a #! line */

/* The verdict: the file that decided (the program or its interpreter),
 * and why the preload cannot reach it. */
struct verdict {
    bool lib_known;
    unsigned char lib_ident[4]; /* libnestls.so's class, byte order, machine */
    char path[PATH_MAX];
    char why[NL_REACH_WHY_MAX];
};

static int judge(const char *path, int depth, struct verdict *v);

__attribute__((format(printf, 3, 4))) static int refuse(struct verdict *v, const char *path,
                                                         const char *fmt, ...)
{
    snprintf(v->path, sizeof(v->path), "%s", path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof(v->why), fmt, ap);
    va_end(ap);
    return 1;
}

/* ------------------------------------------------------------ finding */

static bool is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* The file execvp would run for cmd: cmd itself when it holds a '/', else
 * the first executable regular file of that name in PATH (confstr's
 * default path when PATH is unset). -1 when there is none: exec says so. */
static int resolve_on_path(const char *cmd, char *out, size_t len)
{
    if (*cmd == '\0')
        return -1;
    if (strchr(cmd, '/') != NULL)
        return (size_t)snprintf(out, len, "%s", cmd) < len ? 0 : -1;
    const char *path = getenv("PATH");
    char fallback[256];
    if (path == NULL) {
        fallback[0] = '\0';
        confstr(_CS_PATH, fallback, sizeof(fallback));
        path = fallback;
    }
    for (const char *p = path;;) {
        const char *end = strchrnul(p, ':');
        int n = (int)(end - p);
        /* An empty entry is the working directory, as for execvp. */
        if ((size_t)snprintf(out, len, "%.*s%s%s", n, p, n > 0 ? "/" : "", cmd) < len &&
            is_executable(out))
            return 0;
        if (*end == '\0')
            return -1;
        p = end + 1;
    }
}

/* ---------------------------------------------------------- privileges */

/* Set-ID bits do nothing on a nosuid mount or under no_new_privs; file
 * capabilities do nothing on a nosuid mount only (under no_new_privs an
 * effective file capability still makes the kernel set AT_SECURE). */
static bool nosuid_mount(const char *path)
{
    struct statvfs fs;
    return statvfs(path, &fs) == 0 && (fs.f_flag & ST_NOSUID) != 0;
}

/* Would exec raise privileges, so that the kernel sets AT_SECURE and the
 * loader ignores LD_PRELOAD? For root, file capabilities raise nothing
 * the kernel counts. */
static int privileged(const char *path, const struct stat *st, struct verdict *v)
{
    if (nosuid_mount(path))
        return 0;
    bool setid_ignored = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
    const char *effect = "so the loader ignores LD_PRELOAD (secure-execution mode) and its "
                         "connections cannot be wrapped";
    if (!setid_ignored && (st->st_mode & S_ISUID) && st->st_uid != getuid())
        return refuse(v, path, "setuid to user %u, %s", (unsigned)st->st_uid, effect);
    /* Without group execute permission S_ISGID means mandatory locking. */
    if (!setid_ignored && (st->st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) &&
        st->st_gid != getgid())
        return refuse(v, path, "setgid to group %u, %s", (unsigned)st->st_gid, effect);
    /* getxattr, not lgetxattr: exec follows a symbolic link too. */
    if (getuid() != 0 && getxattr(path, "security.capability", NULL, 0) > 0)
        return refuse(v, path, "privileged by file capabilities, %s", effect);
    return 0;
}

/* The loader nestls itself was started by: its own PT_INTERP. */
static int own_loader(struct stat *out)
{
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct nl_elf e;
    char path[PATH_MAX];
    int rc = -1;
    if (nl_elf_header(fd, &e) == 0 && nl_elf_interp(&e, path, sizeof(path)) && path[0] != '\0')
        rc = stat(path, out);
    close(fd);
    return rc;
}

/* Running the dynamic loader itself (ld.so PROGRAM) is the one way a file
 * without PT_INTERP honours LD_PRELOAD. */
static bool is_our_loader(const struct stat *st)
{
    struct stat loader;
    return own_loader(&loader) == 0 && loader.st_dev == st->st_dev &&
           loader.st_ino == st->st_ino;
}

static int judge_elf(int fd, const char *path, const struct stat *st, struct verdict *v)
{
    struct nl_elf e;
    unsigned char ident[4];
    if (nl_elf_ident(fd, ident) != 0)
        return 0;
    if (v->lib_known && memcmp(ident, v->lib_ident, sizeof(ident)) != 0)
        return refuse(v, path, "built for another machine than libnestls.so (its ELF class, "
                               "byte order or machine differ), so LD_PRELOAD cannot wrap its "
                               "connections");
    if (nl_elf_header(fd, &e) != 0)
        return 0;
    if (nl_elf_is_go(&e))
        return refuse(v, path, "a Go program, whose runtime makes its socket calls as raw "
                               "system calls, so LD_PRELOAD cannot wrap its connections");
    if (!nl_elf_interp(&e, NULL, 0) && !is_our_loader(st))
        return refuse(v, path, "statically linked, so LD_PRELOAD cannot wrap its connections");
    return 0;
}

/* ------------------------------------------------------------- scripts */

/* #!/usr/bin/env NAME: env finds NAME on PATH and execs it with the
 * environment, LD_PRELOAD included, so NAME is what is judged (env itself
 * makes no connection). Of env's options only -S NAME is followed: the
 * others, and assignments or escapes in the line, can change what runs or
 * drop LD_PRELOAD (-i, -u), and nestls does not guess. */
static int judge_env(const char *script, const char *env, const char *arg, int depth,
                     struct verdict *v)
{
    char name[SHEBANG_MAX];
    snprintf(name, sizeof(name), "%s", arg);
    char *start = name;
    if (strncmp(start, "-S", 2) == 0 || strncmp(start, "--split-string=", 15) == 0) {
        start += start[1] == 'S' ? 2 : 15;
        start += strspn(start, " \t");
        start[strcspn(start, " \t")] = '\0';
    }
    /* Without -S the kernel hands env the rest of the line as one word. */
    if (*start == '-' || strpbrk(start, "=$\\\"'") != NULL)
        return refuse(v, script, "a script whose line '#!%s %s' gives env options that can "
                                 "change what runs, which nestls does not follow", env, arg);
    char found[PATH_MAX];
    if (*start == '\0' || resolve_on_path(start, found, sizeof(found)) != 0)
        return 0; /* env runs nothing, or fails */
    return judge(found, depth + 1, v);
}

/* The kernel runs a script's interpreter with at most one argument: the
 * rest of the #! line after it. */
static int judge_script(const char *script, char *line, int depth, struct verdict *v)
{
    if (depth >= MAX_SCRIPTS)
        return refuse(v, script, "a script whose #! interpreters nest deeper than %d, which "
                                 "nestls does not follow", MAX_SCRIPTS);
    line[strcspn(line, "\n")] = '\0';
    char *interp = line + strspn(line, " \t");
    char *arg = interp + strcspn(interp, " \t");
    if (*arg != '\0') {
        *arg++ = '\0';
        arg += strspn(arg, " \t");
        for (size_t n = strlen(arg); n > 0 && strchr(" \t", arg[n - 1]) != NULL; n--)
            arg[n - 1] = '\0';
    }
    if (*interp == '\0')
        return 0; /* the kernel refuses to run it */
    const char *base = strrchr(interp, '/');
    if (strcmp(base != NULL ? base + 1 : interp, "env") == 0)
        return judge_env(script, interp, arg, depth, v);
    return judge(interp, depth + 1, v);
}

/* -------------------------------------------------------------- judging */

/* 1 and v filled when the preload cannot reach the program at path. */
static int judge(const char *path, int depth, struct verdict *v)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || access(path, X_OK) != 0)
        return 0; /* exec fails and says why */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        /* Executable but not readable (mode 0711): the loader could run
         * it, but whether it is static, Go or a script cannot be known.
         * Fail closed, naming the set-ID bit when that is the reason. */
        if (errno != EACCES && errno != EPERM)
            return 0;
        return privileged(path, &st, v) ||
               refuse(v, path, "not readable by this user, so nestls cannot check that "
                               "LD_PRELOAD can wrap its connections");
    }
    char head[SHEBANG_MAX + 1];
    ssize_t n = pread(fd, head, SHEBANG_MAX, 0);
    int refused = 0;
    if (n >= 2 && head[0] == '#' && head[1] == '!') {
        head[n] = '\0';
        refused = judge_script(path, head + 2, depth, v);
    } else if (n >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0) {
        refused = privileged(path, &st, v) || judge_elf(fd, path, &st, v);
    }
    close(fd);
    return refused;
}

int nl_reach_refuses(const char *cmd, const char *lib, char *why, size_t len)
{
    struct verdict v = {0};
    char program[PATH_MAX];
    int fd = open(lib, O_RDONLY | O_CLOEXEC);
    v.lib_known = fd >= 0 && nl_elf_ident(fd, v.lib_ident) == 0;
    if (fd >= 0)
        close(fd);
    if (resolve_on_path(cmd, program, sizeof(program)) != 0 || !judge(program, 0, &v))
        return 0;
    if (strcmp(v.path, program) == 0)
        snprintf(why, len, "%s", v.why);
    else
        snprintf(why, len, "its interpreter %s is %s", v.path, v.why);
    return 1;
}
