/* Turning an OpenSSL failure into one readable reason and an errno. */
#ifndef NESTLS_TLS_ERROR_H
#define NESTLS_TLS_ERROR_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

#include "policy/policy.h"
#include "policy/tls_explain.h"

/* What an SSL_read, SSL_peek, SSL_write or SSL_do_handshake that returned
 * ret means, in the one place that asks SSL_get_error (its code goes to
 * *ssl_err, for nl_tls_describe_failure):
 *   DONE         it did what was asked (ret > 0)
 *   WANT         it needs more input or room: nothing is wrong, try later
 *   PEER_CLOSED  the peer's close_notify arrived
 *   FAILED       the layer is broken */
enum nl_tls_result { NL_TLS_DONE, NL_TLS_WANT, NL_TLS_PEER_CLOSED, NL_TLS_FAILED };
enum nl_tls_result nl_tls_result(const SSL *ssl, int ret, int *ssl_err);

/* OpenSSL's error queue is per thread, and a program that uses OpenSSL
 * itself keeps its own errors there. The engine thread's queue is nestls's
 * alone; but a direct write runs the onion on the program's thread, so
 * there nl_err_program_begin sets the program's errors aside (the queue
 * must be empty for SSL_get_error to tell a failure from a wait) and
 * nl_err_program_end puts them back, with their text, in their order. */
void nl_err_program_begin(void);
void nl_err_program_end(void);
void nl_err_clear(void);

#endif
