/* Why a layer's handshake failed, and what its peer was verified as, in
 * the words of the log: OpenSSL's reason, with what was wanted and which
 * policy key to look at. Shared by the library's log lines and `nestls
 * probe`, so the two never describe one failure differently. */
#include "policy/tls_explain.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* The name or address the peer's certificate is checked against, or NULL
 * when none is set (verification off, or the server role). */
static const char *checked_identity(SSL *ssl, char *buf, size_t len)
{
    const char *host = SSL_get0_peername(ssl);
    if (host == NULL)
        host = X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0);
    if (host != NULL)
        return host;
    char *ip = X509_VERIFY_PARAM_get1_ip_asc(SSL_get0_param(ssl));
    if (ip == NULL)
        return NULL;
    snprintf(buf, len, "%s", ip);
    OPENSSL_free(ip);
    return buf;
}

void nl_tls_verified(SSL *ssl, const struct nl_layer *cfg, enum nl_role role, char *out,
                     size_t len)
{
    if (role == NL_ROLE_SERVER) {
        snprintf(out, len, "%s", cfg != NULL && cfg->client_ca != NULL ? "client-cert" : "-");
        return;
    }
    if (cfg != NULL && !cfg->verify) {
        snprintf(out, len, "off");
        return;
    }
    char ip[64];
    const char *what = checked_identity(ssl, ip, sizeof(ip));
    snprintf(out, len, "%s", what != NULL ? what : "chain");
}

/* A failed verification: OpenSSL's reason, what was wanted, and the fix
 * when the policy holds one. */
static void describe_verify(SSL *ssl, long verify, const struct nl_layer *cfg, enum nl_role role,
                            char *out, size_t len)
{
    const char *peer = role == NL_ROLE_CLIENT ? "server" : "client";
    const char *trust = role == NL_ROLE_CLIENT ? "ca" : "client_ca";
    char hint[300] = "";
    char ip[64];
    const char *wanted = NULL;
    switch (verify) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
        wanted = checked_identity(ssl, ip, sizeof(ip));
        if (wanted != NULL)
            snprintf(hint, sizeof(hint), " (wanted %s)", wanted);
        break;
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        wanted = checked_identity(ssl, ip, sizeof(ip));
        /* No server_name and no name the program resolved: the address
         * itself was all there was to check. */
        if (cfg != NULL && cfg->server_name == NULL)
            snprintf(hint, sizeof(hint), " (wanted %s; no host name known for this connection; "
                                         "set server_name in the layer)",
                     wanted ? wanted : "the peer's address");
        else if (wanted != NULL)
            snprintf(hint, sizeof(hint), " (wanted %s)", wanted);
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        snprintf(hint, sizeof(hint), " (the %s's certificate is not from a CA in this layer's "
                                     "'%s')", peer, trust);
        break;
    case X509_V_ERR_CERT_REVOKED:
        snprintf(hint, sizeof(hint), " (the %s's certificate is listed in this layer's 'crl')",
                 peer);
        break;
    case X509_V_ERR_UNABLE_TO_GET_CRL:
        snprintf(hint, sizeof(hint), " (this layer's 'crl' holds no CRL from the CA of the %s's "
                                     "certificate)", peer);
        break;
    case X509_V_ERR_CRL_HAS_EXPIRED:
        snprintf(hint, sizeof(hint), " (this layer's 'crl' is past its next update: it needs "
                                     "a fresh one)");
        break;
    default:
        break;
    }
    snprintf(out, len, "certificate verify failed: %s%s", X509_verify_cert_error_string(verify),
             hint);
}

/* What to do about OpenSSL's reason r, or "". */
static const char *hint_for(int r, enum nl_role role)
{
    switch (r) {
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
        /* OpenSSL's words for "these bytes are not TLS at all". */
        return " (the peer does not speak TLS here)";
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
        return " (no TLS version both sides allow: see min_version and max_version)";
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
        return " (see ciphers, ciphersuites and groups of this layer)";
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
        return " (often no cipher, group or TLS version both sides allow)";
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
        return role == NL_ROLE_CLIENT ? " (the server does not trust this layer's 'cert')"
                                      : " (the client does not trust this layer's 'cert')";
    case SSL_R_TLSV1_BAD_CERTIFICATE_STATUS_RESPONSE:
        return " (the client refused this layer's 'ocsp_staple')";
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
        return " (the peer has revoked this layer's 'cert')";
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return " (the server wants a client certificate: set 'cert' and 'key' in this layer)";
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return " (this layer's 'client_ca' requires a client certificate)";
    default:
        return "";
    }
}

int nl_tls_describe_failure(SSL *ssl, int ssl_err, const struct nl_layer *cfg, enum nl_role role,
                            char *out, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    long verify = SSL_get_verify_result(ssl);

    if (verify != X509_V_OK && (e == 0 || ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)) {
        describe_verify(ssl, verify, cfg, role, out, len);
        ERR_clear_error();
        return EACCES;
    }
    /* Our own refusal (policy/sni_certs.c): say which name, not OpenSSL's
     * "callback failed". */
    const char *asked = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (role == NL_ROLE_SERVER && cfg != NULL && cfg->sni_required &&
        nl_sni_pick(cfg, asked) < 0) {
        if (asked != NULL)
            snprintf(out, len, "the client asked for '%.100s', which no certificate of this "
                               "layer is for (sni: require)", asked);
        else
            snprintf(out, len, "the client sent no server name (sni: require)");
        ERR_clear_error();
        return EACCES;
    }
    /* Our own refusal of the server's staple (policy/ocsp.c): say what
     * it said, or that there was none. */
    if (e != 0 && ERR_GET_REASON(e) == SSL_R_INVALID_STATUS_RESPONSE && cfg != NULL &&
        role == NL_ROLE_CLIENT && cfg->ocsp != NL_OCSP_OFF) {
        struct nl_ocsp_verdict v;
        nl_ocsp_judge(ssl, &v);
        const char *mode = cfg->ocsp == NL_OCSP_REQUIRE ? "require" : "prefer";
        if (v.status == NL_OCSP_NONE)
            snprintf(out, len, "the server stapled no OCSP response (ocsp: %s)", mode);
        else
            snprintf(out, len, "the server's stapled OCSP response: %s%s%s (ocsp: %s)", v.word,
                     v.detail[0] ? ", " : "", v.detail, mode);
        ERR_clear_error();
        return EACCES;
    }
    if (e != 0) {
        const char *reason = ERR_reason_error_string(e);
        int r = ERR_GET_REASON(e);
        snprintf(out, len, "%s%s", reason ? reason : "TLS failure", hint_for(r, role));
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

