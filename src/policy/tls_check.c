/* Checks that turn OpenSSL's terse or silent failures into messages that
 * name the file or the list entry at fault: keys that do not match their
 * certificate, encrypted keys, and unknown names that OpenSSL would quietly
 * drop from a ciphersuite or group list. */
#include "policy/loader.h"
#include "common/log.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int nl_no_passphrase(char *buf, int size, int rwflag, void *called)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    if (called != NULL)
        *(bool *)called = true;
    return -1;
}

static const char *written(const yaml_node_t *v)
{
    return (const char *)v->data.scalar.value;
}

static void warn_if_exposed(const char *key_path)
{
    struct stat st;
    if (stat(key_path, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) != 0)
        nl_warn("key file %s is readable by others (mode %o): chmod 600 it", key_path,
                (unsigned)(st.st_mode & 07777));
}

int nl_check_keypair(struct nl_loader *L, const struct nl_layer *layer,
                     const struct nl_layer_nodes *at)
{
    int rc = -1;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    bool asked = false;
    ERR_clear_error();

    BIO *bio = BIO_new_file(layer->cert, "r");
    if (bio != NULL)
        cert = PEM_read_bio_X509(bio, NULL, nl_no_passphrase, NULL);
    BIO_free(bio);
    if (cert == NULL) {
        const char *why = nl_ssl_reason();
        nl_fail(L, at->cert, "no certificate in 'cert' file '%s' (PEM expected): %s",
                written(at->cert), why ? why : "unreadable");
        goto out;
    }

    bio = BIO_new_file(layer->key, "r");
    if (bio != NULL)
        key = PEM_read_bio_PrivateKey(bio, NULL, nl_no_passphrase, &asked);
    BIO_free(bio);
    if (key == NULL) {
        ERR_clear_error();
        if (asked)
            nl_fail(L, at->key, "'key' file '%s' is encrypted: nestls cannot ask for a "
                                "passphrase; store it unencrypted with mode 0600",
                    written(at->key));
        else
            nl_fail(L, at->key, "no private key in 'key' file '%s' (PEM expected)",
                    written(at->key));
        goto out;
    }

    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        nl_fail(L, at->key, "key '%s' does not match cert '%s'", written(at->key),
                written(at->cert));
        goto out;
    }
    warn_if_exposed(layer->key);
    rc = 0;
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

/* Call try(ctx, name) for each ':'-separated name; fail on the first one
 * OpenSSL does not know. */
static int each_name(struct nl_loader *L, SSL_CTX *ctx, const char *list, const yaml_node_t *at,
                     const char *what, const char *key, const char *hint,
                     int (*try)(SSL_CTX *, const char *))
{
    char *copy = nl_strdup(L, at, list);
    if (copy == NULL)
        return -1;
    int rc = 0;
    char *save = NULL;
    for (char *name = strtok_r(copy, ":", &save); name != NULL && rc == 0;
         name = strtok_r(NULL, ":", &save)) {
        if (try(ctx, name) != 1) {
            ERR_clear_error();
            rc = nl_fail(L, at, "unknown %s '%s' in '%s' (%s)", what, name, key, hint);
        }
    }
    free(copy);
    return rc;
}

static int try_suite(SSL_CTX *ctx, const char *name)
{
    return SSL_CTX_set_ciphersuites(ctx, name);
}

static int try_group(SSL_CTX *ctx, const char *name)
{
    return SSL_CTX_set1_groups_list(ctx, name);
}

int nl_check_ciphersuites(struct nl_loader *L, SSL_CTX *ctx, const struct nl_layer *layer,
                          const yaml_node_t *at)
{
    return each_name(L, ctx, layer->ciphersuites, at, "TLS 1.3 ciphersuite", "ciphersuites",
                     "known: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, "
                     "TLS_CHACHA20_POLY1305_SHA256",
                     try_suite);
}

int nl_check_groups(struct nl_loader *L, SSL_CTX *ctx, const struct nl_layer *layer,
                    const yaml_node_t *at)
{
    return each_name(L, ctx, layer->groups, at, "group", "groups",
                     "for example X25519, P-256, P-384", try_group);
}
