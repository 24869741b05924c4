/* Why a layer's handshake failed, and what a layer that is up verified,
 * in the words of the log (policy/tls_explain.c): the library's lines and
 * `nestls probe` share them. */
#ifndef NESTLS_TLS_EXPLAIN_H
#define NESTLS_TLS_EXPLAIN_H

#include <stddef.h>
#include <openssl/ssl.h>

#include "policy/policy.h"

/* Writes e.g. "certificate verify failed: hostname mismatch (wanted x)",
 * with the fix in the policy where one is known (cfg: the layer's
 * settings, or NULL), and returns EACCES for verification failures, EPROTO
 * for any other TLS failure. Consumes OpenSSL's error queue. */
int nl_tls_describe_failure(SSL *ssl, int ssl_err, const struct nl_layer *cfg, enum nl_role role,
                            char *out, size_t len);

/* What a layer that is up verified of its peer: client role, the name or
 * IP address checked ("off" without verification); server role,
 * "client-cert" when the layer requires one, else "-". */
void nl_tls_verified(SSL *ssl, const struct nl_layer *cfg, enum nl_role role, char *out,
                     size_t len);

#endif
