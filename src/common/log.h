/* One line per event: "nestls[pid] level: message", to the policy's log_file. */
#ifndef NESTLS_LOG_H
#define NESTLS_LOG_H

#include <stdbool.h>

/* The levels, lowest number most severe. The policy's log_level setting
 * names one (policy/ depends on common/, never the other way). */
enum nl_log_level { NL_LOG_ERROR = 0, NL_LOG_WARN = 1, NL_LOG_INFO = 2, NL_LOG_DEBUG = 3 };

/* The level when neither the policy nor NESTLS_LOG names one: quiet while
 * healthy, so a wrapped program's stderr holds only its own output and
 * nestls's warnings and errors. */
#define NL_LOG_DEFAULT NL_LOG_WARN

/* Set the level and the destination ("stderr" or NULL, or a file's path:
 * opened by the first line written, not now). Lines logged before this
 * call were held (errors excepted: they go to stderr at once); the ones
 * the level lets through are written now. A process that never calls it
 * writes its held lines at exit, at NL_LOG_DEFAULT. */
void nl_log_configure(enum nl_log_level level, const char *log_file);
/* Forget the held lines (the process tree has said them already). */
void nl_log_drop_held(void);
/* probe() is true in a child sharing our memory (vfork): there the log
 * opens nothing and changes no shared state. */
void nl_log_set_vfork_probe(bool (*probe)(void));
void nl_log(enum nl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int nl_log_enabled(enum nl_log_level level);
/* Re-open the log file in a child after fork (keeps the same target). */
void nl_log_after_fork(void);
/* The descriptor log lines go to now (guarded when it is not stderr), or
 * -1 while the log file is not open. */
int nl_log_fd(void);
/* The program dup2s onto nl_log_fd(): let go of that number (the file is
 * opened again, elsewhere, by the next line). */
int nl_log_relocate(void);
/* Before a relay drops every other descriptor: log to a guarded copy. */
int nl_log_keep_for_relay(void);

#define nl_error(...) nl_log(NL_LOG_ERROR, __VA_ARGS__)
#define nl_warn(...) nl_log(NL_LOG_WARN, __VA_ARGS__)
#define nl_info(...) nl_log(NL_LOG_INFO, __VA_ARGS__)
#define nl_debug(...) do { if (nl_log_enabled(NL_LOG_DEBUG)) nl_log(NL_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
