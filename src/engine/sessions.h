/* Client-side TLS session resumption across connections.
 *
 * Each client layer remembers the last session its server handed out, per
 * (layer context, verified name, peer address), so the next connection to
 * the same server resumes instead of running a full handshake. Servers
 * resume through OpenSSL's stateless tickets and need nothing here. */
#ifndef NESTLS_SESSIONS_H
#define NESTLS_SESSIONS_H

#include <openssl/ssl.h>
#include <sys/socket.h>

#include "policy/policy.h"

/* Once, before any connection: make every client context report new
 * sessions to the cache (the policy is otherwise left as loaded). */
void nl_sessions_attach(const struct nl_policy *policy);
/* One more client context (a reload's): into the same cache. */
void nl_sessions_attach_ctx(SSL_CTX *ctx);

/* Before the handshake of a client layer: label it for the cache and
 * offer the remembered session, if any. */
void nl_sessions_prepare(SSL *ssl, size_t layer, const char *name, const struct sockaddr *peer);

/* fork child: the cache's lock may have been held at the fork. */
/* fork (hooks/forking.c): the cache's lock held across fork, released in
 * the parent, made new in the child. */
void nl_sessions_fork_lock(void);
void nl_sessions_fork_unlock(void);
void nl_sessions_after_fork(void);

#endif
