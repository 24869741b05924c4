/* The files behind a layer's contexts, and what a reload needs of them:
 * a hash of their contents (to tell whether they changed), and moving
 * freshly built contexts into the live policy (engine/reload.c). */
#include "policy/loader.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

static void add(const char *path, const char *out[], size_t max, size_t *n)
{
    if (path != NULL && *n < max)
        out[(*n)++] = path;
}

size_t nl_layer_files(const struct nl_layer *layer, const char *out[], size_t max)
{
    size_t n = 0;
    if (layer->ca != NULL && strcmp(layer->ca, "system") != 0)
        add(layer->ca, out, max, &n);
    add(layer->cert, out, max, &n);
    add(layer->key, out, max, &n);
    add(layer->client_ca, out, max, &n);
    add(layer->crl, out, max, &n);
    add(layer->ocsp_staple, out, max, &n);
    for (size_t i = 1; i < layer->n_certs; i++) { /* the first is cert and key */
        add(layer->certs[i].cert, out, max, &n);
        add(layer->certs[i].key, out, max, &n);
    }
    return n;
}

void nl_layer_files_hash(const struct nl_layer *layer, unsigned char out[NL_HASH_LEN])
{
    const char *files[NL_LAYER_MAX_FILES];
    size_t n = nl_layer_files(layer, files, NL_LAYER_MAX_FILES);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    memset(out, 0, NL_HASH_LEN);
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        /* The name too (with its NUL): a file swapped for another one. */
        EVP_DigestUpdate(md, files[i], strlen(files[i]) + 1);
        FILE *f = fopen(files[i], "rbe");
        if (f == NULL) {
            EVP_DigestUpdate(md, "-", 1); /* missing: differs from any content */
            continue;
        }
        unsigned char buf[4096];
        size_t got;
        while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
            EVP_DigestUpdate(md, buf, got);
        fclose(f);
    }
    EVP_DigestFinal_ex(md, out, NULL);
    EVP_MD_CTX_free(md);
}

void nl_layer_each_ctx(const struct nl_layer *layer, void (*fn)(SSL_CTX *ctx, void *arg),
                       void *arg)
{
    if (layer->client_ctx != NULL)
        fn(layer->client_ctx, arg);
    if (layer->server_ctx != NULL)
        fn(layer->server_ctx, arg);
    for (size_t i = 1; i < layer->n_certs; i++)
        if (layer->certs[i].ctx != NULL)
            fn(layer->certs[i].ctx, arg);
}

static void swap_ctx(SSL_CTX **a, SSL_CTX **b)
{
    SSL_CTX *t = *a;
    *a = *b;
    *b = t;
}

static void swap_path(char **a, char **b)
{
    char *t = *a;
    *a = *b;
    *b = t;
}

void nl_layer_take_contexts(struct nl_layer *live, struct nl_layer *donor)
{
    swap_ctx(&live->client_ctx, &donor->client_ctx);
    swap_ctx(&live->server_ctx, &donor->server_ctx);
    for (size_t i = 0; i < live->n_certs && i < donor->n_certs; i++)
        swap_ctx(&live->certs[i].ctx, &donor->certs[i].ctx);
    unsigned char *staple = live->staple;
    size_t staple_len = live->staple_len;
    live->staple = donor->staple;
    live->staple_len = donor->staple_len;
    donor->staple = staple;
    donor->staple_len = staple_len;
    memcpy(live->files_hash, donor->files_hash, NL_HASH_LEN);
    /* The files' names too: relative ones follow the policy's directory,
     * which a link swap (a ConfigMap update) moves. The hash is of these. */
    swap_path(&live->ca, &donor->ca);
    swap_path(&live->cert, &donor->cert);
    swap_path(&live->key, &donor->key);
    swap_path(&live->client_ca, &donor->client_ca);
    swap_path(&live->crl, &donor->crl);
    swap_path(&live->ocsp_staple, &donor->ocsp_staple);
    for (size_t i = 0; i < live->n_certs && i < donor->n_certs; i++) {
        swap_path(&live->certs[i].cert, &donor->certs[i].cert);
        swap_path(&live->certs[i].key, &donor->certs[i].key);
    }
    /* The callbacks read the layer they were given (ALPN list, SNI
     * choices, staple): from now on the live one, which outlives the
     * donor. The contexts moved to the donor keep pointing at live too,
     * for the handshakes still running on them. */
    if (live->client_ctx != NULL)
        nl_point_callbacks(live->client_ctx, live, false);
    if (live->server_ctx != NULL)
        nl_point_callbacks(live->server_ctx, live, true);
    for (size_t i = 1; i < live->n_certs; i++)
        if (live->certs[i].ctx != NULL)
            nl_point_callbacks(live->certs[i].ctx, live, true);
}
