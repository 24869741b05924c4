/* Small helpers shared by the hooks and the engine. */
#ifndef NESTLS_UTIL_H
#define NESTLS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Monotonic clock in milliseconds / microseconds. */
uint64_t nl_now_ms(void);
uint64_t nl_now_us(void);

int nl_set_nonblock(int fd, bool on);

/* "127.0.0.1:443" / "[::1]:443"; always NUL-terminated. */
void nl_format_addr(const struct sockaddr *sa, char *out, size_t len);

/* The unspecified address: 0.0.0.0, ::, or ::ffff:0.0.0.0. Its port
 * does not count; anything not IPv4/IPv6 is not it. */
bool nl_addr_is_unspecified(const struct sockaddr *sa);

/* Basename of argv[0] of the running program. */
const char *nl_program_name(void);

#endif
