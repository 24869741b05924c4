/* What the probe reports about one layer, read from OpenSSL: the key
 * exchange group, the peer's certificates, the verification verdict and
 * the OCSP staple. Shared by the text and JSON reports. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "cli/probe.h"

const char *nl_probe_group(SSL *ssl)
{
#if OPENSSL_VERSION_NUMBER >= 0x30200000L
    return SSL_get0_group_name(ssl);
#else
    /* 3.0 and 3.1: the group's NID, named by the TLS layer's own table. */
    int nid = SSL_get_negotiated_group(ssl);
    if (nid <= 0)
        return NULL;
    const char *name = SSL_group_to_name(ssl, nid);
    return name != NULL ? name : OBJ_nid2sn(nid);
#endif
}

const char *nl_probe_name(const X509_NAME *name, char *buf, size_t len)
{
    buf[0] = '\0';
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem == NULL)
        return buf;
    /* RFC 2253, most specific first ("CN=localhost,O=..."); bytes beyond
     * ASCII are escaped, so the text is safe on a terminal and in JSON. */
    if (X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(mem, buf, (int)len - 1);
        buf[n > 0 ? n : 0] = '\0';
    }
    BIO_free(mem);
    return buf;
}

const char *nl_probe_time(const ASN1_TIME *t, char *buf, size_t len)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 ||
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "?");
    return buf;
}

static void san_text(const GENERAL_NAME *g, char *buf, size_t len)
{
    int type;
    const ASN1_STRING *s = GENERAL_NAME_get0_value(g, &type);
    char ip[INET6_ADDRSTRLEN];
    const char *tag = type == GEN_DNS ? "DNS" : type == GEN_EMAIL ? "email" : "URI";
    buf[0] = '\0';
    switch (type) {
    case GEN_DNS:
    case GEN_EMAIL:
    case GEN_URI:
        snprintf(buf, len, "%s:%.*s", tag, ASN1_STRING_length(s),
                 (const char *)ASN1_STRING_get0_data(s));
        break;
    case GEN_IPADD: {
        int n = ASN1_STRING_length(s);
        if ((n == 4 || n == 16) &&
            inet_ntop(n == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), ip, sizeof(ip)))
            snprintf(buf, len, "IP:%s", ip);
        break;
    }
    default:
        break; /* other name forms say nothing about host names */
    }
}

void nl_probe_each_san(X509 *cert, void (*fn)(const char *san, void *arg), void *arg)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    char buf[512];
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        san_text(sk_GENERAL_NAME_value(names, i), buf, sizeof(buf));
        if (buf[0] != '\0')
            fn(buf, arg);
    }
    GENERAL_NAMES_free(names);
}

void nl_probe_verdict(const struct probe_layer *l, struct probe_verdict *v)
{
    STACK_OF(X509) *chain = l->ssl ? SSL_get_peer_cert_chain(l->ssl) : NULL;
    v->checked = l->cfg->verify;
    v->have_cert = sk_X509_num(chain) > 0;
    v->code = l->ssl ? SSL_get_verify_result(l->ssl) : X509_V_OK;
    v->reason = X509_verify_cert_error_string(v->code);
    v->ok = v->checked && v->have_cert && v->code == X509_V_OK;
}

/* The certificate that issued the leaf: from the chain as verified (it
 * ends in the trust anchor), else the second the peer sent. */
static X509 *leaf_issuer(SSL *ssl)
{
    STACK_OF(X509) *verified = SSL_get0_verified_chain(ssl);
    if (sk_X509_num(verified) > 1)
        return sk_X509_value(verified, 1);
    STACK_OF(X509) *sent = SSL_get_peer_cert_chain(ssl);
    return sk_X509_num(sent) > 1 ? sk_X509_value(sent, 1) : NULL;
}

static void judge_basic(SSL *ssl, OCSP_BASICRESP *bs, struct probe_ocsp *o)
{
    STACK_OF(X509) *sent = SSL_get_peer_cert_chain(ssl);
    X509 *leaf = sk_X509_num(sent) > 0 ? sk_X509_value(sent, 0) : NULL;
    X509 *issuer = leaf ? leaf_issuer(ssl) : NULL;
    OCSP_CERTID *id = issuer ? OCSP_cert_to_id(NULL, leaf, issuer) : NULL;
    int status, reason;
    ASN1_GENERALIZEDTIME *revoked, *this_update, *next_update;
    char a[40], b[40];
    if (id == NULL) {
        snprintf(o->detail, sizeof(o->detail), "the leaf's issuer is unknown: cannot match "
                                               "the response to the certificate");
        return;
    }
    if (OCSP_resp_find_status(bs, id, &status, &reason, &revoked, &this_update,
                              &next_update) != 1) {
        snprintf(o->detail, sizeof(o->detail), "the response does not cover the peer's "
                                               "certificate");
    } else if (OCSP_basic_verify(bs, sent, SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)), 0) != 1) {
        snprintf(o->detail, sizeof(o->detail), "says %s, but its signature does not verify "
                 "against this layer's trust", OCSP_cert_status_str(status));
    } else if (OCSP_check_validity(this_update, next_update, 300, -1) != 1) {
        snprintf(o->detail, sizeof(o->detail), "says %s, but is outside its validity "
                 "(this update %s, next update %s)", OCSP_cert_status_str(status),
                 nl_probe_time(this_update, a, sizeof(a)),
                 nl_probe_time(next_update, b, sizeof(b)));
    } else {
        o->status = OCSP_cert_status_str(status); /* "good", "revoked", "unknown" */
        if (status == V_OCSP_CERTSTATUS_REVOKED)
            snprintf(o->detail, sizeof(o->detail), "revoked at %s",
                     nl_probe_time(revoked, a, sizeof(a)));
        else
            snprintf(o->detail, sizeof(o->detail), "this update %s, next update %s",
                     nl_probe_time(this_update, a, sizeof(a)),
                     next_update ? nl_probe_time(next_update, b, sizeof(b)) : "none");
    }
    OCSP_CERTID_free(id);
}

void nl_probe_ocsp(SSL *ssl, struct probe_ocsp *o)
{
    const unsigned char *der = NULL;
    long len = ssl ? SSL_get_tlsext_status_ocsp_resp(ssl, &der) : -1;
    o->status = "none";
    o->detail[0] = '\0';
    if (len <= 0 || der == NULL)
        return;
    /* From here on a staple is there: "unusable" unless it says more. */
    o->status = "unusable";
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &der, len);
    if (resp == NULL) {
        snprintf(o->detail, sizeof(o->detail), "not an OCSP response");
        return;
    }
    int rs = OCSP_response_status(resp);
    OCSP_BASICRESP *bs = rs == OCSP_RESPONSE_STATUS_SUCCESSFUL ? OCSP_response_get1_basic(resp)
                                                               : NULL;
    if (rs != OCSP_RESPONSE_STATUS_SUCCESSFUL)
        snprintf(o->detail, sizeof(o->detail), "response status: %s",
                 OCSP_response_status_str(rs));
    else if (bs == NULL)
        snprintf(o->detail, sizeof(o->detail), "no basic response inside");
    else
        judge_basic(ssl, bs, o);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
}
