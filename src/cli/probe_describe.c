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

void nl_probe_ocsp(SSL *ssl, struct probe_ocsp *o)
{
    struct nl_ocsp_verdict v;
    nl_ocsp_judge(ssl, &v); /* the same judgement as a layer's 'ocsp' */
    o->status = v.word;
    snprintf(o->detail, sizeof(o->detail), "%s", v.detail);
}
