/* STARTTLS: the plaintext prelude a rule's `starttls:` asks for, spoken on
 * the TCP socket before layer 1's handshake (SMTP, IMAP, POP3, FTP's
 * AUTH TLS, PostgreSQL's SSLRequest), in either role.
 *
 * Each role and protocol is a small non-blocking state machine over one
 * bounded line buffer: nl_starttls_run does what it can without blocking
 * and says whether the layers may start, whether it waits (for which
 * event), or why it failed. The connection (engine/conn.c) runs it in the
 * state NL_CONN_STARTTLS, under the handshake's deadline.
 *
 * Afterwards the program sees a clean stream, as if the prelude had not
 * been there (docs/policy.md, "starttls"):
 *  - client role: the server's greeting read in the prelude is handed to
 *    the program first (nl_starttls_take_greeting), because a plaintext
 *    client waits for one and the server sends no second greeting after
 *    STARTTLS; PostgreSQL has no greeting;
 *  - server role: the program's own greeting is dropped
 *    (nl_starttls_swallow), because the client already had ours and, after
 *    STARTTLS, speaks first. */
#ifndef NESTLS_STARTTLS_H
#define NESTLS_STARTTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

/* The longest reply (or command line, or greeting of the program) read
 * in a prelude: RFC 5321 allows 512-byte lines, and EHLO replies stay
 * well under this. A longer one is refused, never buffered on. */
#define NL_STARTTLS_REPLY_MAX 4096
/* Commands the server role answers before a client must say STARTTLS. */
#define NL_STARTTLS_MAX_COMMANDS 10

struct nl_starttls;

/* NULL with errno ENOMEM. */
struct nl_starttls *nl_starttls_new(enum nl_starttls_proto proto, enum nl_role role);
void nl_starttls_free(struct nl_starttls *s);

/* Runs the prelude on the TCP socket fd as far as it goes now.
 * 1: done, the layers may start (nothing of theirs has been read);
 * 0: waiting: nl_starttls_events says for what;
 * -1: failed: nl_starttls_error says why. */
int nl_starttls_run(struct nl_starttls *s, int fd);
uint32_t nl_starttls_events(const struct nl_starttls *s);
/* "starttls smtp: server answered '454 TLS not available'"; *err the
 * errno for the program (EPROTO, or the socket's error). */
const char *nl_starttls_error(const struct nl_starttls *s, int *err);
const char *nl_starttls_proto_name(const struct nl_starttls *s);

/* Client role, once the layers are up: the greeting the server sent in
 * the prelude, byte for byte, for the program to read before anything
 * from the layers (the caller frees it); NULL when there is none. */
unsigned char *nl_starttls_take_greeting(struct nl_starttls *s, size_t *len);

/* Server role, once the layers are up: whether the program's first reply
 * (its greeting) is still to be dropped. */
bool nl_starttls_swallowing(const struct nl_starttls *s);
/* Of the program's next n bytes, how many belong to its greeting (they
 * are dropped; the rest goes to the client), or -1 when the greeting
 * exceeds NL_STARTTLS_REPLY_MAX (nl_starttls_error says so). */
long nl_starttls_swallow(struct nl_starttls *s, const unsigned char *buf, size_t n);

#endif
