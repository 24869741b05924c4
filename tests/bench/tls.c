/* TLS contexts of the in-process reference row: TLS 1.3 only, one suite,
 * one key-exchange group, the same certificates as every other path. The
 * client verifies the chain and the name, as nestls and stunnel do. The
 * mode flags are the ones the stream clients need; nothing else is tuned. */
#include <openssl/err.h>

#include "nlb.h"

static void tls_fail(const char *what)
{
    ERR_print_errors_fp(stderr);
    nlb_die("%s", what);
}

static SSL_CTX *common_ctx(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL)
        tls_fail("SSL_CTX_new");
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, NLB_SUITE) != 1 ||
        SSL_CTX_set1_groups_list(ctx, NLB_GROUPS) != 1)
        tls_fail("TLS settings");
    /* The stream clients retry SSL_write from a static buffer. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

SSL_CTX *nlb_client_ctx(const struct nlb_opts *o)
{
    if (!o->tls)
        return NULL;
    if (o->ca == NULL)
        nlb_die("--tls needs --ca in a client");
    SSL_CTX *ctx = common_ctx(TLS_client_method());
    if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1)
        tls_fail("--ca");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* Sessions are kept by connrate itself (--resume), not by a cache. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

SSL_CTX *nlb_server_ctx(const struct nlb_opts *o)
{
    if (!o->tls)
        return NULL;
    if (o->cert == NULL || o->key == NULL)
        nlb_die("--tls needs --cert and --key in a server");
    SSL_CTX *ctx = common_ctx(TLS_server_method());
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        tls_fail("--cert/--key");
    /* OpenSSL's defaults otherwise: stateless tickets, so clients resume. */
    return ctx;
}
