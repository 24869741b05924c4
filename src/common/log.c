/* Logging: one line per event, "nestls[pid] level: message".
 *
 * The whole line is formatted first and written with a single write(2), so
 * lines from several threads or processes sharing the file never interleave
 * (the file is opened O_APPEND). */
#include "common/log.h"
#include "common/sys.h"
#include "common/fdtable.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum nl_log_level log_level = NL_LOG_INFO;
static int log_fd = STDERR_FILENO;
static char log_path[4096]; /* empty: stderr */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *nl_log_level_name(enum nl_log_level level)
{
    if ((unsigned)level < sizeof(level_names) / sizeof(level_names[0]))
        return level_names[level];
    return "?";
}

static int open_log_file(const char *path)
{
    /* Above the range programs usually hand out, and never inherited by exec.
     * O_NONBLOCK for the open only: a FIFO without a reader fails (ENXIO,
     * then stderr) instead of blocking the program's start-up forever. */
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
    if (fd < 0)
        return -1;
    fcntl(fd, F_SETFL, O_APPEND);
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);
    if (high >= 0) {
        nl_sys_close(fd);
        fd = high;
    }
    return fd;
}

void nl_log_configure(enum nl_log_level level, const char *log_file)
{
    log_level = level;
    if (log_file == NULL || strcmp(log_file, "stderr") == 0) {
        log_path[0] = '\0';
        log_fd = STDERR_FILENO;
        return;
    }
    snprintf(log_path, sizeof(log_path), "%s", log_file);
    int fd = open_log_file(log_path);
    if (fd < 0) {
        int saved = errno;
        log_fd = STDERR_FILENO;
        nl_log(NL_LOG_WARN, "cannot open log_file %s: %s; logging to stderr", log_path,
               strerror(saved));
        log_path[0] = '\0';
        return;
    }
    log_fd = fd;
}

void nl_log_after_fork(void)
{
    /* The descriptor is shared with the parent and O_APPEND: nothing to do.
     * Kept as a hook point so a future per-process file can be opened here. */
}

int nl_log_enabled(enum nl_log_level level)
{
    return level <= log_level;
}

int nl_log_fd(void)
{
    return log_fd;
}

void nl_log(enum nl_log_level level, const char *fmt, ...)
{
    if (!nl_log_enabled(level))
        return;
    int saved_errno = errno;
    char line[2048];
    int n = snprintf(line, sizeof(line), "nestls[%ld] %s: ", (long)getpid(),
                     nl_log_level_name(level));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = nl_sys_write(log_fd, line, len);
    (void)w; /* a failing log must never change what the program sees */
    errno = saved_errno;
}

int nl_log_relocate(void)
{
    if (log_fd <= STDERR_FILENO)
        return -1;
    int moved = fcntl(log_fd, F_DUPFD_CLOEXEC, log_fd + 1);
    if (moved < 0)
        return -1;
    int old = log_fd;
    log_fd = moved;
    nl_guard_add(moved);
    nl_guard_remove(old);
    nl_sys_close(old);
    return 0;
}

int nl_log_keep_for_relay(void)
{
    /* A relay closes every descriptor but the engine's: keep a guarded copy
     * of the log target so its lines still reach the same place. */
    int fd = fcntl(log_fd, F_DUPFD_CLOEXEC, 900);
    if (fd < 0)
        return -1;
    nl_guard_add(fd);
    log_fd = fd;
    return 0;
}
