#include "engine/tls_error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* The name or address the certificate was checked against, for the
 * "(wanted ...)" part of a mismatch message. */
static void wanted_identity(SSL *ssl, char *out, size_t len)
{
    const char *host = SSL_get0_peername(ssl);
    if (host == NULL)
        host = X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0);
    if (host != NULL) {
        snprintf(out, len, " (wanted %s)", host);
        return;
    }
    char *ip = X509_VERIFY_PARAM_get1_ip_asc(SSL_get0_param(ssl));
    if (ip != NULL) {
        snprintf(out, len, " (wanted %s)", ip);
        OPENSSL_free(ip);
        return;
    }
    out[0] = '\0';
}

enum nl_tls_result nl_tls_result(const SSL *ssl, int ret, int *ssl_err)
{
    *ssl_err = SSL_ERROR_NONE;
    if (ret > 0)
        return NL_TLS_DONE;
    *ssl_err = SSL_get_error(ssl, ret);
    switch (*ssl_err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return NL_TLS_WANT;
    case SSL_ERROR_ZERO_RETURN:
        return NL_TLS_PEER_CLOSED;
    default:
        return NL_TLS_FAILED;
    }
}

int nl_tls_describe_failure(SSL *ssl, int ssl_err, enum nl_role role, char *out, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    long verify = SSL_get_verify_result(ssl);

    if (verify != X509_V_OK && (e == 0 || ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)) {
        char wanted[300] = "";
        if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
            wanted_identity(ssl, wanted, sizeof(wanted));
        snprintf(out, len, "certificate verify failed: %s%s",
                 X509_verify_cert_error_string(verify), wanted);
        ERR_clear_error();
        return EACCES;
    }
    if (e != 0) {
        const char *reason = ERR_reason_error_string(e);
        int r = ERR_GET_REASON(e);
        /* OpenSSL's words for "these bytes are not TLS at all": say what
         * that usually means, keeping its words for searching. */
        const char *hint = "";
        if (r == SSL_R_WRONG_VERSION_NUMBER || r == SSL_R_HTTP_REQUEST ||
            r == SSL_R_HTTPS_PROXY_REQUEST)
            hint = " (the peer does not speak TLS here)";
        snprintf(out, len, "%s%s", reason ? reason : "TLS failure", hint);
        ERR_clear_error();
        if (r == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE || r == SSL_R_CERTIFICATE_VERIFY_FAILED ||
            r == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE || r == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
            r == SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED || r == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
            r == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN)
            return EACCES;
        return EPROTO;
    }
    if (ssl_err == SSL_ERROR_ZERO_RETURN || ssl_err == SSL_ERROR_SYSCALL)
        snprintf(out, len, "%s closed the connection during the handshake",
                 role == NL_ROLE_CLIENT ? "server" : "client");
    else
        snprintf(out, len, "TLS failure (SSL error %d)", ssl_err);
    return EPROTO;
}
