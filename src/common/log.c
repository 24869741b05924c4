/* Logging: one line per event, "nestls[pid] level: message".
 *
 * The whole line is formatted first and written with a single write(2), so
 * lines from several threads or processes sharing the file never interleave
 * (the file is opened O_APPEND).
 *
 * Nothing of the log exists before a line is written. The log file is
 * opened by the first line, never at start-up: a program that lists its
 * descriptors, or gives a child an exact list of them (pass_fds), finds
 * none of ours. The descriptor is close-on-exec, sits high
 * (nl_guard_dup_high) and is guarded: the hooks keep the program's close,
 * close_range and closefrom off it and move it out of the way of a dup2
 * onto its number (nl_log_relocate). A road no hook sees (a system call
 * made without libc) can still close it and reuse the number, so every
 * line first checks that the descriptor still is the file it opened;
 * if not, the number is the program's (never written to, never closed)
 * and the file is opened again.
 *
 * No lock: a line may be written from any thread, in a fork child, or
 * from a hook a signal handler called. The descriptor and the file's
 * identity are separate atomics: a reader that pairs a descriptor with
 * another opening's identity only ever sees a mismatch (the file is the
 * same path), which costs one more open, never a write elsewhere.
 *
 * Lines logged before nl_log_configure (the policy loader's warnings, found
 * before the policy says which level and file) are held, and written by
 * nl_log_configure when its level lets them through; errors are written to
 * stderr at once. A process that never configures (the command) writes
 * them at exit; one that execs first (nestls run) drops them, and the
 * library in the new image says them once itself. */
#include "common/log.h"
#include "common/sys.h"
#include "common/fdtable.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum nl_log_level log_level = NL_LOG_DEFAULT;
static bool configured;
static char log_path[4096];        /* empty: stderr */
static bool to_stderr = true;      /* atomic: no log_file, or it cannot be opened */
static int stderr_fd = STDERR_FILENO; /* a relay logs to a guarded copy */
static int file_fd = -1;           /* atomic: the log file, or -1 */
static dev_t file_dev;             /* atomic: the file file_fd was opened as */
static ino_t file_ino;
static int writers;                /* atomic: lines being written to file_fd */
static bool (*in_shared_memory)(void); /* nl_log_set_vfork_probe */

/* Held lines: each is one level byte, then the line (its newline
 * included) and a NUL. */
static char held[8192];
static size_t held_len;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *nl_log_level_name(enum nl_log_level level)
{
    if ((unsigned)level < sizeof(level_names) / sizeof(level_names[0]))
        return level_names[level];
    return "?";
}

int nl_log_enabled(enum nl_log_level level)
{
    return level <= log_level;
}

/* --- the log file ------------------------------------------------------ */

static bool is_log_file(int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 &&
           st.st_dev == __atomic_load_n(&file_dev, __ATOMIC_ACQUIRE) &&
           st.st_ino == __atomic_load_n(&file_ino, __ATOMIC_ACQUIRE);
}

/* Open the file at a high, guarded, close-on-exec number. O_NONBLOCK for
 * the open only: a FIFO without a reader fails (ENXIO, then stderr)
 * instead of blocking the program forever. */
static int open_log_file(dev_t *dev, ino_t *ino)
{
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                  0600);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fcntl(fd, F_SETFL, O_APPEND) != 0 || fstat(fd, &st) != 0) {
        int saved = errno;
        nl_sys_close(fd);
        errno = saved;
        return -1;
    }
    int high = nl_guard_dup_high(fd);
    int saved = errno;
    nl_sys_close(fd);
    errno = saved;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return high;
}

/* The number `seen` is not the log file (closed, or another file now): it
 * stops being ours. Only its guard goes: the number is the program's. */
static void forget(int seen)
{
    if (seen >= 0 && __atomic_compare_exchange_n(&file_fd, &seen, -1, false, __ATOMIC_ACQ_REL,
                                                 __ATOMIC_ACQUIRE))
        nl_guard_remove(seen);
}

static void fall_back_to_stderr(int err);

/* The descriptor to write a line to: the log file, opened now if needed,
 * or -1 for stderr. */
static int log_file_fd(void)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        int fd = __atomic_load_n(&file_fd, __ATOMIC_ACQUIRE);
        if (fd >= 0 && is_log_file(fd))
            return fd;
        /* A vfork child's descriptor table is its own, but this memory and
         * the guard table are its parent's: it changes nothing of ours. */
        if (in_shared_memory != NULL && in_shared_memory())
            return -1;
        forget(fd);
        dev_t dev;
        ino_t ino;
        int opened = open_log_file(&dev, &ino);
        if (opened < 0) {
            fall_back_to_stderr(errno);
            return -1;
        }
        __atomic_store_n(&file_dev, dev, __ATOMIC_RELEASE);
        __atomic_store_n(&file_ino, ino, __ATOMIC_RELEASE);
        int none = -1;
        if (__atomic_compare_exchange_n(&file_fd, &none, opened, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return opened;
        /* Another thread opened it first: use that one. */
        nl_guard_remove(opened);
        nl_sys_close(opened);
    }
    return -1;
}

static void write_line(const char *line, size_t len)
{
    if (!__atomic_load_n(&to_stderr, __ATOMIC_ACQUIRE)) {
        __atomic_add_fetch(&writers, 1, __ATOMIC_ACQ_REL);
        for (int attempt = 0; attempt < 2; attempt++) {
            int fd = log_file_fd();
            if (fd < 0)
                break;
            if (nl_sys_write(fd, line, len) >= 0 || errno != EBADF) {
                __atomic_sub_fetch(&writers, 1, __ATOMIC_ACQ_REL);
                return;
            }
            forget(fd); /* closed between the check and the write */
        }
        __atomic_sub_fetch(&writers, 1, __ATOMIC_ACQ_REL);
    }
    ssize_t w = nl_sys_write(stderr_fd, line, len);
    (void)w; /* a failing log must never change what the program sees */
}

static int format_line(char *line, size_t size, enum nl_log_level level, const char *fmt,
                       va_list ap)
{
    int n = snprintf(line, size, "nestls[%ld] %s: ", (long)getpid(), nl_log_level_name(level));
    int m = vsnprintf(line + n, size - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > size - 2)
        len = size - 2;
    line[len++] = '\n';
    return (int)len;
}

static void fall_back_to_stderr(int err)
{
    if (__atomic_exchange_n(&to_stderr, true, __ATOMIC_ACQ_REL))
        return; /* said once */
    nl_warn("cannot open log_file %s: %s; logging to stderr", log_path, strerror(err));
}

/* --- held lines -------------------------------------------------------- */

static void hold(enum nl_log_level level, const char *line, size_t len)
{
    /* The same warning twice (one key file used by two layers) is one. */
    for (size_t at = 0; at < held_len;) {
        size_t n = strlen(held + at + 1);
        if (n == len && memcmp(held + at + 1, line, len) == 0)
            return;
        at += n + 2;
    }
    if (held_len + len + 2 > sizeof(held))
        return;
    held[held_len] = (char)level;
    memcpy(held + held_len + 1, line, len);
    held[held_len + 1 + len] = '\0';
    held_len += len + 2;
}

static void write_held(void)
{
    for (size_t at = 0; at < held_len;) {
        const char *line = held + at + 1;
        size_t n = strlen(line);
        if (nl_log_enabled((enum nl_log_level)held[at]))
            write_line(line, n);
        at += n + 2;
    }
    held_len = 0;
}

void nl_log_drop_held(void)
{
    held_len = 0;
}

/* The command never configures: what it held is said when it exits (an
 * exec, as `nestls run` does, drops it). */
__attribute__((destructor)) static void write_held_at_exit(void)
{
    if (!configured)
        write_held();
}

/* --- the interface ----------------------------------------------------- */

void nl_log_configure(enum nl_log_level level, const char *log_file)
{
    log_level = level;
    if (log_file == NULL || strcmp(log_file, "stderr") == 0) {
        log_path[0] = '\0';
        __atomic_store_n(&to_stderr, true, __ATOMIC_RELEASE);
    } else {
        snprintf(log_path, sizeof(log_path), "%s", log_file);
        __atomic_store_n(&to_stderr, false, __ATOMIC_RELEASE);
    }
    configured = true;
    write_held();
}

void nl_log_set_vfork_probe(bool (*probe)(void))
{
    in_shared_memory = probe;
}

void nl_log_after_fork(void)
{
    /* The descriptor is shared with the parent and O_APPEND: nothing to do.
     * Kept as a hook point so a future per-process file can be opened here. */
}

int nl_log_fd(void)
{
    if (__atomic_load_n(&to_stderr, __ATOMIC_ACQUIRE))
        return stderr_fd;
    return __atomic_load_n(&file_fd, __ATOMIC_ACQUIRE);
}

static void vlog(enum nl_log_level level, const char *fmt, va_list ap)
{
    char line[2048];
    int len = format_line(line, sizeof(line), level, fmt, ap);
    if (!configured && level != NL_LOG_ERROR) {
        hold(level, line, (size_t)len);
        return;
    }
    write_line(line, (size_t)len);
}

void nl_log(enum nl_log_level level, const char *fmt, ...)
{
    if (!nl_log_enabled(level))
        return;
    int saved_errno = errno;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
    errno = saved_errno;
}

int nl_log_relocate(void)
{
    if (__atomic_load_n(&to_stderr, __ATOMIC_ACQUIRE)) {
        /* A relay's guarded copy of stderr. */
        if (stderr_fd <= STDERR_FILENO)
            return -1;
        int moved = fcntl(stderr_fd, F_DUPFD_CLOEXEC, stderr_fd + 1);
        if (moved < 0)
            return -1;
        int old = stderr_fd;
        nl_guard_add(moved);
        stderr_fd = moved;
        nl_guard_remove(old);
        nl_sys_close(old);
        return 0;
    }
    /* The program dup2s onto the log file's number: let go of it (the
     * hook then hands the number to the program); the next line opens the
     * file again, elsewhere. A line being written to it now finishes
     * first, so none lands in the program's file (bounded: a fork child
     * may have inherited the count of a thread it does not have). */
    int fd = __atomic_load_n(&file_fd, __ATOMIC_ACQUIRE);
    if (fd < 0 || !__atomic_compare_exchange_n(&file_fd, &fd, -1, false, __ATOMIC_ACQ_REL,
                                               __ATOMIC_ACQUIRE))
        return -1;
    for (int i = 0; i < 1000 && __atomic_load_n(&writers, __ATOMIC_ACQUIRE) > 0; i++) {
        struct timespec pause = {0, 100000};
        nanosleep(&pause, NULL);
    }
    nl_guard_remove(fd);
    nl_sys_close(fd);
    return 0;
}

int nl_log_keep_for_relay(void)
{
    /* A relay closes every descriptor but the engine's. The log file is
     * opened again when a line needs it; stderr is kept as a guarded copy
     * so its lines still reach the same place. */
    if (!__atomic_load_n(&to_stderr, __ATOMIC_ACQUIRE))
        return 0;
    int fd = nl_guard_dup_high(stderr_fd);
    if (fd < 0)
        return -1;
    stderr_fd = fd;
    return 0;
}
