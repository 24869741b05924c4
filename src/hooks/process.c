/* Process life: exit, _exit and exec.
 *
 * - exit() (and returning from main): our atexit handler flushes stdio,
 *   then lets the engine deliver what the program wrote and close every
 *   layer, waiting at most linger_ms. It was registered in the constructor,
 *   before main, so it runs after the program's own atexit handlers.
 * - _exit()/_Exit() skip atexit; the hooks do the same drain first.
 * - exec: connections this process serves are handed to a relay process,
 *   so a wrapped descriptor that survives execve keeps working; the new
 *   image's environment keeps nestls (exec_env.c), as does posix_spawn's.
 *
 * errno contract: exec hooks return the real call's result and errno. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <spawn.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/locking.h"
#include "common/real.h"
#include "common/sys.h"
#include "engine/engine.h"
#include "hooks/exec_env.h"
#include "hooks/export.h"
#include "hooks/hooks.h"

/* _exit from a signal handler that interrupted nestls holding a lock (a
 * direct write holds the engine's): the drain would wait for that lock
 * forever. Exit at once instead; what this thread was writing at that
 * moment may not reach the peer (said in the README's limits). */
static bool exit_would_deadlock(void)
{
    if (!nl_lock_held_here())
        return false;
    static const char msg[] = "nestls: _exit inside a locked section (a signal handler): "
                              "exiting without the drain\n";
    ssize_t w = nl_sys_write(2, msg, sizeof(msg) - 1);
    (void)w;
    return true;
}

static void drain_at_exit(void)
{
    if (nl_in_vfork_child() || nl_lock_held_here())
        return;
    fflush(NULL); /* stdio on fdopen()ed sockets is flushed after atexit */
    nl_engine_drain_at_exit();
}

void nl_hooks_install_exit_handler(void)
{
    atexit(drain_at_exit);
}

/* A vfork/CLONE_VM child hands nothing over: its parent, whose memory it
 * shares, goes on serving the descriptors it passes to the new image. */
static bool handoff_before_exec(void)
{
    return !nl_in_vfork_child() && nl_engine_handoff_before_exec();
}

/* exec only returns on failure: the relay keeps serving what it took. */
static int exec_returned(bool held, int r)
{
    if (held) {
        int saved = errno;
        nl_engine_exec_failed();
        errno = saved;
    }
    return r;
}

NL_EXPORT void _exit(int status)
{
    if (!nl_started() || nl_in_vfork_child() || exit_would_deadlock())
        nl_real._exit(status);
    nl_engine_drain_at_exit();
    nl_real._exit(status);
}

NL_EXPORT void _Exit(int status)
{
    if (!nl_started() || nl_in_vfork_child() || exit_would_deadlock())
        nl_real._Exit(status);
    nl_engine_drain_at_exit();
    nl_real._Exit(status);
}

/* Every exec: the hand-over first, then the kernel gets an environment
 * that keeps nestls (exec_env.c), or the exec fails with ENOMEM. */
#define EXEC_KEEPING_NESTLS(call, envp)                                                            \
    do {                                                                                           \
        char *const *env = nl_exec_env(envp);                                                      \
        if (env == NULL)                                                                           \
            return -1;                                                                             \
        bool held = handoff_before_exec();                                                         \
        int r = call;                                                                              \
        return exec_returned(held, r);                                                             \
    } while (0)

NL_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    if (!nl_started())
        return nl_real.execve(path, argv, envp);
    EXEC_KEEPING_NESTLS(nl_real.execve(path, argv, env), envp);
}

NL_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    if (!nl_started())
        return nl_real.fexecve(fd, argv, envp);
    EXEC_KEEPING_NESTLS(nl_real.fexecve(fd, argv, env), envp);
}

NL_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
    if (!nl_started())
        return nl_real.execveat(dirfd, path, argv, envp, flags);
    EXEC_KEEPING_NESTLS(nl_real.execveat(dirfd, path, argv, env, flags), envp);
}

/* execv and execvp pass the process's environment: the program may have
 * emptied it (clearenv, unsetenv). */
NL_EXPORT int execv(const char *path, char *const argv[])
{
    if (!nl_started())
        return nl_real.execv(path, argv);
    EXEC_KEEPING_NESTLS(nl_real.execve(path, argv, env), environ);
}

NL_EXPORT int execvp(const char *file, char *const argv[])
{
    if (!nl_started())
        return nl_real.execvp(file, argv);
    EXEC_KEEPING_NESTLS(nl_real.execvpe(file, argv, env), environ);
}

NL_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    if (!nl_started())
        return nl_real.execvpe(file, argv, envp);
    EXEC_KEEPING_NESTLS(nl_real.execvpe(file, argv, env), envp);
}

/* posix_spawn execs in a child of glibc's making, through glibc's own
 * execve: the environment is fixed here, before. (Nothing to hand over:
 * the parent goes on serving what the child inherits.) */
NL_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                          const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    if (!nl_started())
        return nl_real.posix_spawn(pid, path, actions, attr, argv, envp);
    char *const *env = nl_exec_env(envp);
    return env ? nl_real.posix_spawn(pid, path, actions, attr, argv, env) : ENOMEM;
}

NL_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                           const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    if (!nl_started())
        return nl_real.posix_spawnp(pid, file, actions, attr, argv, envp);
    char *const *env = nl_exec_env(envp);
    return env ? nl_real.posix_spawnp(pid, file, actions, attr, argv, env) : ENOMEM;
}

/* system and popen spawn inside glibc with the process's environment:
 * a program that unset LD_PRELOAD gets it back first. */
NL_EXPORT int system(const char *command)
{
    if (nl_started() && command != NULL && nl_exec_env_restore_environ() != 0)
        return -1;
    return nl_real.system(command);
}

NL_EXPORT FILE *popen(const char *command, const char *type)
{
    if (nl_started() && nl_exec_env_restore_environ() != 0)
        return NULL;
    return nl_real.popen(command, type);
}

/* The execl family calls glibc's internal execve directly, so it is
 * rebuilt here on top of the hooked vector forms. */
#define MAX_EXECL_ARGS 4096

static int collect_args(const char *arg0, va_list ap, char **argv)
{
    int n = 0;
    argv[n++] = (char *)arg0;
    while (arg0 != NULL && n < MAX_EXECL_ARGS) {
        char *a = va_arg(ap, char *);
        argv[n++] = a;
        if (a == NULL)
            return n;
    }
    if (arg0 == NULL)
        return n;
    errno = E2BIG;
    return -1;
}

NL_EXPORT int execl(const char *path, const char *arg, ...)
{
    char *argv[MAX_EXECL_ARGS + 1];
    va_list ap;
    va_start(ap, arg);
    int n = collect_args(arg, ap, argv);
    va_end(ap);
    return n < 0 ? -1 : execv(path, argv);
}

NL_EXPORT int execlp(const char *file, const char *arg, ...)
{
    char *argv[MAX_EXECL_ARGS + 1];
    va_list ap;
    va_start(ap, arg);
    int n = collect_args(arg, ap, argv);
    va_end(ap);
    return n < 0 ? -1 : execvp(file, argv);
}

NL_EXPORT int execle(const char *path, const char *arg, ...)
{
    char *argv[MAX_EXECL_ARGS + 1];
    va_list ap;
    va_start(ap, arg);
    int n = collect_args(arg, ap, argv);
    char *const *envp = n < 0 ? NULL : va_arg(ap, char *const *);
    va_end(ap);
    return n < 0 ? -1 : execve(path, argv, envp);
}
