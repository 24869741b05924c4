/* Raw system calls for nestls's own plumbing: the log, the keylog, fatal
 * start-up errors.
 *
 * Calling write(), close() or _exit() by name from inside the library
 * would enter nestls's own hooks (and before the real functions are bound,
 * call through a NULL pointer). These go straight to the kernel, need no
 * binding, and are async-signal-safe; the command links them too. */
#ifndef NESTLS_SYS_H
#define NESTLS_SYS_H

#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static inline ssize_t nl_sys_write(int fd, const void *buf, size_t len)
{
    return (ssize_t)syscall(SYS_write, fd, buf, len);
}

static inline int nl_sys_close(int fd)
{
    return (int)syscall(SYS_close, fd);
}

/* fcntl(F_DUPFD[_CLOEXEC]) without the fcntl hook (which would record a
 * copy of a wrapped descriptor as the program's). */
static inline int nl_sys_dupfd(int fd, int lowest, int cloexec)
{
    return (int)syscall(SYS_fcntl, fd, cloexec ? 1030 /* F_DUPFD_CLOEXEC */ : 0 /* F_DUPFD */,
                        lowest);
}

/* Wait while *word == val, at most rel (relative); and wake every waiter
 * on word. A futex of this process (private). */
static inline int nl_sys_futex_wait(int *word, int val, const struct timespec *rel)
{
    return (int)syscall(SYS_futex, word, 128 /* FUTEX_WAIT_PRIVATE */, val, rel, NULL, 0);
}

static inline void nl_sys_futex_wake(int *word)
{
    syscall(SYS_futex, word, 129 /* FUTEX_WAKE_PRIVATE */, 0x7fffffff, NULL, NULL, 0);
}

/* The whole process, now: no atexit handlers, no engine drain. */
__attribute__((noreturn)) static inline void nl_sys_exit(int status)
{
    for (;;)
        syscall(SYS_exit_group, status);
}

#endif
