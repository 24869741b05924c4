/* OCSP stapling, both ends. A server layer staples the DER response named
 * by `ocsp_staple` when the client asks for one; a client layer with
 * `ocsp: prefer|require` asks for one and judges it on the handshake
 * (nl_ocsp_judge, also what `nestls probe` reports). */
#include "policy/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>

/* A response without a next update would be good for ever: one older
 * than this (by its this update) is out of date. */
#define NL_OCSP_MAX_AGE_S (7L * 24 * 3600)

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

static void judge_basic(SSL *ssl, OCSP_BASICRESP *bs, struct nl_ocsp_verdict *v)
{
    STACK_OF(X509) *sent = SSL_get_peer_cert_chain(ssl);
    X509 *leaf = sk_X509_num(sent) > 0 ? sk_X509_value(sent, 0) : NULL;
    X509 *issuer = leaf ? leaf_issuer(ssl) : NULL;
    OCSP_CERTID *id = issuer ? OCSP_cert_to_id(NULL, leaf, issuer) : NULL;
    int status, reason;
    ASN1_GENERALIZEDTIME *revoked, *this_update, *next_update;
    char a[40], b[40];
    if (id == NULL) {
        snprintf(v->detail, sizeof(v->detail), "the leaf's issuer is unknown: cannot match "
                                               "the response to the certificate");
        return;
    }
    if (OCSP_resp_find_status(bs, id, &status, &reason, &revoked, &this_update,
                              &next_update) != 1) {
        snprintf(v->detail, sizeof(v->detail), "the response does not cover the peer's "
                                               "certificate");
    } else if (OCSP_basic_verify(bs, sent, SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)), 0) != 1) {
        snprintf(v->detail, sizeof(v->detail), "says %s, but its signature does not verify "
                 "against this layer's trust", OCSP_cert_status_str(status));
    } else if (OCSP_check_validity(this_update, next_update, 300,
                                   next_update != NULL ? -1 : NL_OCSP_MAX_AGE_S) != 1) {
        snprintf(v->detail, sizeof(v->detail), "says %s, but is outside its validity "
                 "(this update %s, next update %s)", OCSP_cert_status_str(status),
                 nl_tls_time_text(this_update, a, sizeof(a)),
                 nl_tls_time_text(next_update, b, sizeof(b)));
    } else {
        v->word = OCSP_cert_status_str(status); /* "good", "revoked", "unknown" */
        v->status = status == V_OCSP_CERTSTATUS_GOOD      ? NL_OCSP_GOOD
                    : status == V_OCSP_CERTSTATUS_REVOKED ? NL_OCSP_REVOKED
                                                          : NL_OCSP_UNKNOWN;
        if (status == V_OCSP_CERTSTATUS_REVOKED)
            snprintf(v->detail, sizeof(v->detail), "revoked at %s",
                     nl_tls_time_text(revoked, a, sizeof(a)));
        else
            snprintf(v->detail, sizeof(v->detail), "this update %s, next update %s",
                     nl_tls_time_text(this_update, a, sizeof(a)),
                     next_update ? nl_tls_time_text(next_update, b, sizeof(b)) : "none");
    }
    OCSP_CERTID_free(id);
}

void nl_ocsp_judge(SSL *ssl, struct nl_ocsp_verdict *v)
{
    const unsigned char *der = NULL;
    long len = ssl ? SSL_get_tlsext_status_ocsp_resp(ssl, &der) : -1;
    v->status = NL_OCSP_NONE;
    v->word = "none";
    v->detail[0] = '\0';
    if (len <= 0 || der == NULL)
        return;
    /* From here on a staple is there: "unusable" unless it says more. */
    v->status = NL_OCSP_UNUSABLE;
    v->word = "unusable";
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &der, len);
    if (resp == NULL) {
        snprintf(v->detail, sizeof(v->detail), "not an OCSP response");
        return;
    }
    int rs = OCSP_response_status(resp);
    OCSP_BASICRESP *bs = rs == OCSP_RESPONSE_STATUS_SUCCESSFUL ? OCSP_response_get1_basic(resp)
                                                               : NULL;
    if (rs != OCSP_RESPONSE_STATUS_SUCCESSFUL)
        snprintf(v->detail, sizeof(v->detail), "response status: %s",
                 OCSP_response_status_str(rs));
    else if (bs == NULL)
        snprintf(v->detail, sizeof(v->detail), "no basic response inside");
    else
        judge_basic(ssl, bs, v);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
}

bool nl_ocsp_acceptable(enum nl_ocsp_mode mode, enum nl_ocsp_status status)
{
    if (mode == NL_OCSP_REQUIRE)
        return status == NL_OCSP_GOOD;
    return mode != NL_OCSP_PREFER || status != NL_OCSP_REVOKED;
}

/* Client: runs once the server's certificate is verified (its chain is
 * there to check the response against); 0 fails the handshake, with the
 * alert bad_certificate_status_response. */
static int check_staple(SSL *ssl, void *arg)
{
    const struct nl_layer *layer = arg;
    /* A resumed TLS 1.3 session brings no certificate, hence no staple:
     * its staple was judged when the session was made, by a context with
     * the same files (engine/sessions.c keys sessions by context). */
    if (SSL_session_reused(ssl))
        return 1;
    struct nl_ocsp_verdict v;
    nl_ocsp_judge(ssl, &v);
    return nl_ocsp_acceptable(layer->ocsp, v.status) ? 1 : 0;
}

/* Server: the response, when the client asked for one. OpenSSL frees
 * what it is handed, so each connection gets a copy. */
static int send_staple(SSL *ssl, void *arg)
{
    const struct nl_layer *layer = arg;
    if (SSL_get_tlsext_status_type(ssl) != TLSEXT_STATUSTYPE_ocsp)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *copy = OPENSSL_memdup(layer->staple, layer->staple_len);
    if (copy == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)layer->staple_len) != 1) {
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}

int nl_load_staple(struct nl_loader *L, struct nl_layer *layer, const yaml_node_t *at)
{
    FILE *f = fopen(layer->ocsp_staple, "rb");
    if (f == NULL)
        return nl_fail(L, at, "cannot read 'ocsp_staple' file '%s'", layer->ocsp_staple);
    unsigned char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf), f);
    bool longer = n == sizeof(buf) && fgetc(f) != EOF;
    fclose(f);
    const unsigned char *p = buf;
    OCSP_RESPONSE *resp = longer ? NULL : d2i_OCSP_RESPONSE(NULL, &p, (long)n);
    if (resp == NULL || p != buf + n) {
        OCSP_RESPONSE_free(resp);
        ERR_clear_error();
        return nl_fail(L, at, "'ocsp_staple' file '%s' is not a DER OCSP response%s",
                       layer->ocsp_staple, longer ? " (over 64 KiB)" : "");
    }
    OCSP_RESPONSE_free(resp);
    layer->staple = malloc(n);
    if (layer->staple == NULL)
        return nl_fail(L, at, "out of memory");
    memcpy(layer->staple, buf, n);
    layer->staple_len = n;
    return 0;
}

int nl_setup_ocsp(struct nl_loader *L, SSL_CTX *ctx, const struct nl_layer *layer, bool server,
                  const yaml_node_t *at)
{
    if (server && layer->staple != NULL) {
        SSL_CTX_set_tlsext_status_cb(ctx, send_staple);
        /* The policy is never changed after load: the callbacks only read. */
        SSL_CTX_set_tlsext_status_arg(ctx, (void *)layer);
    } else if (!server && layer->ocsp != NL_OCSP_OFF) {
        if (SSL_CTX_set_tlsext_status_type(ctx, TLSEXT_STATUSTYPE_ocsp) != 1)
            return nl_fail(L, at, "OpenSSL cannot ask for OCSP staples");
        SSL_CTX_set_tlsext_status_cb(ctx, check_staple);
        SSL_CTX_set_tlsext_status_arg(ctx, (void *)layer);
    }
    return 0;
}
