/* layer → SSL_CTX, once, at load. A client context when the rule can match
 * the client role, a server context when it can match the server role.
 * Host name verification is per connection (the engine calls
 * SSL_set1_host), so nothing here depends on the peer. */
#include "policy/loader.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

/* Forward secret only: what OpenSSL would pick minus the static-RSA suites. */
#define DEFAULT_TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"

/* Where an error about `key` belongs: at its value, else the layer. */
static const yaml_node_t *node_or_layer(const yaml_node_t *v, const struct nl_layer_nodes *at)
{
    return v != NULL ? v : at->layer;
}

static const char *written(const yaml_node_t *v, const char *fallback)
{
    return v != NULL ? (const char *)v->data.scalar.value : fallback;
}

static int ssl_fail(struct nl_loader *L, const yaml_node_t *at, const char *what, const char *value)
{
    const char *why = nl_ssl_reason();
    return nl_fail(L, at, "OpenSSL rejects %s '%s': %s", what, value,
                   why != NULL ? why : "no reason given");
}

/* Protocol versions, options and algorithm lists: the same for both roles. */
static int setup_common(struct nl_loader *L, SSL_CTX *ctx, const struct nl_layer *layer,
                        const struct nl_layer_nodes *at)
{
    if (SSL_CTX_set_min_proto_version(ctx, layer->min_version) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, layer->max_version) != 1)
        return ssl_fail(L, at->layer, "the TLS version range",
                        nl_tls_version_name(layer->min_version));
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* No SSL_MODE_RELEASE_BUFFERS: it frees and wipes the record buffers
     * after every record during a transfer; the engine frees them itself
     * once a connection is idle (SSL_free_buffers). */
    SSL_CTX_set_default_passwd_cb(ctx, nl_no_passphrase);

    const char *ciphers = layer->ciphers ? layer->ciphers : DEFAULT_TLS12_CIPHERS;
    NL_GUARD_OSSL(SSL_CTX_set_cipher_list(ctx, ciphers),
                  ssl_fail(L, node_or_layer(at->ciphers, at), "'ciphers'", ciphers));
    if (layer->ciphersuites != NULL) {
        NL_GUARD(nl_check_ciphersuites(L, ctx, layer, at->ciphersuites));
        NL_GUARD_OSSL(SSL_CTX_set_ciphersuites(ctx, layer->ciphersuites),
                      ssl_fail(L, at->ciphersuites, "'ciphersuites'", layer->ciphersuites));
    }
    if (layer->groups != NULL) {
        NL_GUARD(nl_check_groups(L, ctx, layer, at->groups));
        NL_GUARD_OSSL(SSL_CTX_set1_groups_list(ctx, layer->groups),
                      ssl_fail(L, at->groups, "'groups'", layer->groups));
    }
    /* Every TLS 1.3 record this layer sends, handshake and data, is padded
     * to a multiple of 'padding' bytes: the sizes of what it carries (an
     * inner layer's handshake) no longer show. */
    if (layer->padding != 0)
        NL_GUARD_OSSL(SSL_CTX_set_block_padding(ctx, layer->padding),
                      ssl_fail(L, node_or_layer(at->padding, at), "'padding'", "the size"));
    return 0;
}

/* Every CRL in the layer's 'crl' file goes into the context's trust
 * store, and the peer's leaf certificate must then be covered by a CRL
 * from its issuer: not revoked, and the CRL current (OpenSSL checks the
 * CRL's signature against the trusted CAs and its next update). Only the
 * leaf: CRL_CHECK_ALL would demand a CRL from every CA up the chain. */
static int use_crls(struct nl_loader *L, SSL_CTX *ctx, const struct nl_layer *layer,
                    const struct nl_layer_nodes *at)
{
    BIO *in = BIO_new_file(layer->crl, "r");
    if (in == NULL)
        return ssl_fail(L, at->crl, "'crl' file", written(at->crl, layer->crl));
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int n = 0;
    X509_CRL *crl;
    while ((crl = PEM_read_bio_X509_CRL(in, NULL, NULL, NULL)) != NULL) {
        int added = X509_STORE_add_crl(store, crl);
        X509_CRL_free(crl);
        if (added != 1) {
            BIO_free(in);
            return ssl_fail(L, at->crl, "'crl' file", written(at->crl, layer->crl));
        }
        n++;
    }
    BIO_free(in);
    /* The loop ends on "no more PEM blocks": that is not an error, but
     * anything else (a damaged block) is. */
    unsigned long e = ERR_peek_last_error();
    if (n > 0 && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
        ERR_clear_error();
    else if (n == 0 || e != 0)
        return nl_fail(L, at->crl, "'crl' file '%s' %s", written(at->crl, layer->crl),
                       n == 0 ? "holds no PEM CRL (-----BEGIN X509 CRL-----)"
                              : "holds a damaged CRL");
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    return 0;
}

/* Our own certificate chain and key (already checked to match). */
static int use_keypair(struct nl_loader *L, SSL_CTX *ctx, const char *cert, const char *key,
                       const yaml_node_t *cert_at, const yaml_node_t *key_at)
{
    NL_GUARD_OSSL(SSL_CTX_use_certificate_chain_file(ctx, cert),
                  ssl_fail(L, cert_at, "'cert' file", written(cert_at, cert)));
    NL_GUARD_OSSL(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM),
                  ssl_fail(L, key_at, "'key' file", written(key_at, key)));
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        return nl_fail(L, key_at, "key '%s' does not match cert '%s'", written(key_at, key),
                       written(cert_at, cert));
    }
    return 0;
}

static int setup_client(struct nl_loader *L, SSL_CTX *ctx, const struct nl_layer *layer,
                        const struct nl_layer_nodes *at)
{
    if (!layer->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else if (layer->ca == NULL || strcmp(layer->ca, "system") == 0) {
        NL_GUARD_OSSL(SSL_CTX_set_default_verify_paths(ctx),
                      ssl_fail(L, node_or_layer(at->ca, at), "the system trust store", "system"));
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        NL_GUARD_OSSL(SSL_CTX_load_verify_locations(ctx, layer->ca, NULL),
                      ssl_fail(L, at->ca, "'ca' file", written(at->ca, layer->ca)));
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (layer->crl != NULL && layer->verify)
        NL_GUARD(use_crls(L, ctx, layer, at));
    if (layer->cert != NULL)
        NL_GUARD(use_keypair(L, ctx, layer->cert, layer->key, at->cert, at->key));
    /* Note: SSL_CTX_set_alpn_protos returns 0 on success. */
    if (layer->alpn_wire != NULL &&
        SSL_CTX_set_alpn_protos(ctx, layer->alpn_wire, (unsigned)layer->alpn_wire_len) != 0)
        return ssl_fail(L, at->layer, "'alpn'", layer->alpn[0]);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
    return nl_setup_ocsp(L, ctx, layer, false, node_or_layer(at->ocsp, at));
}

/* The server's first preference that the client offered; none: no ALPN. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    const struct nl_layer *layer = arg;
    unsigned char *chosen = NULL;
    (void)ssl;
    if (SSL_select_next_proto(&chosen, outlen, layer->alpn_wire,
                              (unsigned)layer->alpn_wire_len, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

static int setup_server(struct nl_loader *L, SSL_CTX *ctx, struct nl_layer *layer,
                        size_t rule_index, size_t layer_index, const struct nl_layer_nodes *at)
{
    /* The server's order of suites wins (the policy's, or our strict
     * default): a client listing a weaker suite first does not get it. */
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (layer->client_ca != NULL && layer->verify) {
        NL_GUARD_OSSL(SSL_CTX_load_verify_locations(ctx, layer->client_ca, NULL),
                      ssl_fail(L, at->client_ca, "'client_ca' file",
                               written(at->client_ca, layer->client_ca)));
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(layer->client_ca);
        if (names == NULL)
            return ssl_fail(L, at->client_ca, "'client_ca' file",
                            written(at->client_ca, layer->client_ca));
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        if (layer->crl != NULL)
            NL_GUARD(use_crls(L, ctx, layer, at));
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }

    /* Sessions resume only within the same rule and layer. */
    char sid[SSL_MAX_SID_CTX_LENGTH];
    int n = snprintf(sid, sizeof(sid), "nestls/%zu/%zu", rule_index, layer_index);
    NL_GUARD_OSSL(SSL_CTX_set_session_id_context(ctx, (const unsigned char *)sid, (unsigned)n),
                  ssl_fail(L, at->layer, "the session id context", sid));

    if (layer->alpn_wire != NULL)
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, layer);
    return 0;
}

void nl_point_callbacks(SSL_CTX *ctx, struct nl_layer *layer, bool server)
{
    if (server && layer->alpn_wire != NULL)
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, layer);
    SSL_CTX_set_tlsext_servername_arg(ctx, layer);
    SSL_CTX_set_tlsext_status_arg(ctx, layer);
}

int nl_build_contexts(struct nl_loader *L, struct nl_layer *layer, enum nl_role role,
                      size_t rule_index, size_t layer_index, const struct nl_layer_nodes *at)
{
    ERR_clear_error();
    if (role != NL_ROLE_SERVER) {
        layer->client_ctx = SSL_CTX_new(TLS_client_method());
        if (layer->client_ctx == NULL)
            return ssl_fail(L, at->layer, "a new client context for", "this layer");
        NL_GUARD(setup_common(L, layer->client_ctx, layer, at));
        NL_GUARD(setup_client(L, layer->client_ctx, layer, at));
    }
    if (role != NL_ROLE_CLIENT) {
        layer->server_ctx = nl_new_server_context(L, layer, layer->cert, layer->key, at->cert,
                                                  at->key, rule_index, layer_index, at);
        if (layer->server_ctx == NULL)
            return -1;
        NL_GUARD(nl_build_sni_contexts(L, layer, rule_index, layer_index, at));
    }
    return 0;
}

SSL_CTX *nl_new_server_context(struct nl_loader *L, struct nl_layer *layer, const char *cert,
                               const char *key, const yaml_node_t *cert_at,
                               const yaml_node_t *key_at, size_t rule_index, size_t layer_index,
                               const struct nl_layer_nodes *at)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_fail(L, at->layer, "a new server context for", "this layer");
        return NULL;
    }
    if (setup_common(L, ctx, layer, at) != 0 ||
        use_keypair(L, ctx, cert, key, cert_at, key_at) != 0 ||
        setup_server(L, ctx, layer, rule_index, layer_index, at) != 0 ||
        nl_setup_ocsp(L, ctx, layer, true, node_or_layer(at->ocsp_staple, at)) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}
