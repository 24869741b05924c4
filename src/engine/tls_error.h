/* Turning an OpenSSL failure into one readable reason and an errno. */
#ifndef NESTLS_TLS_ERROR_H
#define NESTLS_TLS_ERROR_H

#include <stddef.h>
#include <openssl/ssl.h>

#include "policy/policy.h"

/* Writes e.g. "certificate verify failed: hostname mismatch (wanted x)" and
 * returns EACCES for verification failures, EPROTO for any other TLS
 * failure. Consumes OpenSSL's error queue. */
int nl_tls_describe_failure(SSL *ssl, int ssl_err, enum nl_role role, char *out, size_t len);

#endif
