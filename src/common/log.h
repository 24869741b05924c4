/* One line per event: "nestls[pid] level: message", to the policy's log_file. */
#ifndef NESTLS_LOG_H
#define NESTLS_LOG_H

/* The levels, lowest number most severe. The policy's log_level setting
 * names one (policy/ depends on common/, never the other way). */
enum nl_log_level { NL_LOG_ERROR = 0, NL_LOG_WARN = 1, NL_LOG_INFO = 2, NL_LOG_DEBUG = 3 };

/* Until nl_log_configure() runs, messages go to stderr at level info. */
void nl_log_configure(enum nl_log_level level, const char *log_file);
void nl_log(enum nl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int nl_log_enabled(enum nl_log_level level);
/* Re-open the log file in a child after fork (keeps the same target). */
void nl_log_after_fork(void);
/* The descriptor log lines go to (the engine protects it from close()). */
int nl_log_fd(void);
/* Move the log descriptor to another number (dup2 onto it). */
int nl_log_relocate(void);
/* Before a relay drops every other descriptor: log to a guarded copy. */
int nl_log_keep_for_relay(void);

#define nl_error(...) nl_log(NL_LOG_ERROR, __VA_ARGS__)
#define nl_warn(...) nl_log(NL_LOG_WARN, __VA_ARGS__)
#define nl_info(...) nl_log(NL_LOG_INFO, __VA_ARGS__)
#define nl_debug(...) do { if (nl_log_enabled(NL_LOG_DEBUG)) nl_log(NL_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
