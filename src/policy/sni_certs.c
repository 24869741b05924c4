/* A server layer with several certificates (`certs:`), chosen by the name
 * the client sends (SNI), and `sni: require`, which refuses a client whose
 * name no certificate is for. Each certificate gets a server context of
 * its own, set up like the layer's; OpenSSL's servername callback, which
 * runs on the ClientHello before any certificate is sent, moves the
 * connection to the chosen one. */
#include "policy/loader.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/x509v3.h>

static const char *const entry_keys[] = {"cert", "key", "names", NULL};

/* names: a host name or "*.suffix" each (one label in place of '*'). */
static int parse_names(struct nl_loader *L, const yaml_node_t *v, struct nl_sni_cert *e,
                       size_t index)
{
    char kind[64];
    if (v->type != YAML_SEQUENCE_NODE)
        return nl_fail(L, v, "'names' of certs entry %zu must be a list of host names like "
                             "[example.org, \"*.example.org\"] (got %s)",
                       index + 1, nl_yaml_kind(v, kind, sizeof(kind)));
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0)
        return nl_fail(L, v, "'names' of certs entry %zu is an empty list (leave it out to "
                             "use the certificate's own names)", index + 1);
    e->names = calloc(n, sizeof(*e->names));
    if (e->names == NULL)
        return nl_fail(L, v, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *x = nl_yaml_node(L, v->data.sequence.items.start[i]);
        char *name = NULL;
        NL_GUARD(nl_get_string(L, x, "names", &name));
        e->names[i] = name;
        e->n_names = i + 1;
        const char *body = strncmp(name, "*.", 2) == 0 ? name + 2 : name;
        if (!nl_valid_host_name(body))
            return nl_fail(L, x, "bad name '%.64s' in certs entry %zu: not a host name or "
                                 "\"*.\" and a host name", name, index + 1);
    }
    return 0;
}

static int parse_entry(struct nl_loader *L, const yaml_node_t *v, struct nl_sni_cert *e,
                       size_t index, const yaml_node_t **cert_at, const yaml_node_t **key_at)
{
    char kind[64], where[64];
    if (v->type != YAML_MAPPING_NODE)
        return nl_fail(L, v, "certs entry %zu must be a mapping with 'cert', 'key' and "
                             "optionally 'names' (got %s)",
                       index + 1, nl_yaml_kind(v, kind, sizeof(kind)));
    snprintf(where, sizeof(where), "certs entry %zu", index + 1);
    NL_GUARD(nl_yaml_check_mapping(L, v, entry_keys, where));
    *cert_at = nl_yaml_get(L, v, "cert", NULL);
    *key_at = nl_yaml_get(L, v, "key", NULL);
    if (*cert_at == NULL || *key_at == NULL)
        return nl_fail(L, v, "certs entry %zu needs both 'cert' and 'key'", index + 1);
    NL_GUARD(nl_get_file(L, *cert_at, "cert", &e->cert));
    NL_GUARD(nl_get_file(L, *key_at, "key", &e->key));
    const yaml_node_t *names = nl_yaml_get(L, v, "names", NULL);
    return names != NULL ? parse_names(L, names, e, index) : 0;
}

int nl_parse_sni_certs(struct nl_loader *L, const yaml_node_t *v, struct nl_layer *layer,
                       struct nl_layer_nodes *at)
{
    char kind[64];
    if (layer->cert != NULL || layer->key != NULL)
        return nl_fail(L, v, "'certs' takes the place of 'cert' and 'key': give one or the "
                             "other");
    if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start)
        return nl_fail(L, v, "'certs' must be a non-empty list of {cert, key, names} (got %s)",
                       nl_yaml_kind(v, kind, sizeof(kind)));
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n > NL_MAX_SNI_CERTS)
        return nl_fail(L, v, "'certs' has %zu entries: at most %d", n, NL_MAX_SNI_CERTS);
    layer->certs = calloc(n, sizeof(*layer->certs));
    if (layer->certs == NULL)
        return nl_fail(L, v, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *cert_at = NULL, *key_at = NULL;
        layer->n_certs = i + 1; /* so nl_policy_free sees what was read */
        NL_GUARD(parse_entry(L, nl_yaml_node(L, v->data.sequence.items.start[i]),
                             &layer->certs[i], i, &cert_at, &key_at));
        /* Every entry's pair is checked as the layer's own would be. */
        struct nl_layer one = *layer;
        struct nl_layer_nodes one_at = *at;
        one.cert = layer->certs[i].cert;
        one.key = layer->certs[i].key;
        one_at.cert = cert_at;
        one_at.key = key_at;
        NL_GUARD(nl_check_keypair(L, &one, &one_at));
        if (i == 0) { /* the default: the layer's cert and key */
            layer->cert = nl_strdup(L, cert_at, layer->certs[0].cert);
            layer->key = nl_strdup(L, key_at, layer->certs[0].key);
            if (layer->cert == NULL || layer->key == NULL)
                return -1;
            at->cert = cert_at;
            at->key = key_at;
        }
    }
    return 0;
}

/* "*.example.org" is for "a.example.org", not for "example.org" or
 * "a.b.example.org"; names compare without regard to case. */
static bool name_matches(const char *pattern, const char *name)
{
    if (strncmp(pattern, "*.", 2) != 0)
        return strcasecmp(pattern, name) == 0;
    const char *dot = strchr(name, '.');
    return dot != NULL && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
}

static SSL_CTX *context_of(const struct nl_layer *layer, size_t i)
{
    return i == 0 ? layer->server_ctx : layer->certs[i].ctx;
}

int nl_sni_pick(const struct nl_layer *layer, const char *sent)
{
    if (sent == NULL)
        return -1;
    /* "example.org." is "example.org" (a fully qualified name's root dot). */
    char name[256];
    size_t len = strlen(sent);
    if (len > 0 && sent[len - 1] == '.')
        len--;
    if (len == 0 || len >= sizeof(name))
        return -1;
    memcpy(name, sent, len);
    name[len] = '\0';
    size_t n = layer->n_certs > 0 ? layer->n_certs : 1;
    for (size_t i = 0; i < n; i++) {
        const struct nl_sni_cert *e = layer->n_certs > 0 ? &layer->certs[i] : NULL;
        if (e != NULL && e->n_names > 0) {
            for (size_t k = 0; k < e->n_names; k++)
                if (name_matches(e->names[k], name))
                    return (int)i;
            continue;
        }
        X509 *cert = SSL_CTX_get0_certificate(context_of(layer, i));
        if (cert != NULL && X509_check_host(cert, name, 0, 0, NULL) == 1)
            return (int)i;
    }
    return -1;
}

/* On the ClientHello: the certificate for the client's name; none: the
 * first, or a refusal (unrecognized_name) with sni: require. */
static int choose_by_sni(SSL *ssl, int *alert, void *arg)
{
    const struct nl_layer *layer = arg;
    int i = nl_sni_pick(layer, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
    if (i < 0 && layer->sni_required) {
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    if (i > 0 && SSL_set_SSL_CTX(ssl, layer->certs[i].ctx) == NULL) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

int nl_build_sni_contexts(struct nl_loader *L, struct nl_layer *layer, size_t rule_index,
                          size_t layer_index, const struct nl_layer_nodes *at)
{
    if (layer->n_certs <= 1 && !layer->sni_required)
        return 0;
    for (size_t i = 0; i < layer->n_certs; i++) {
        struct nl_sni_cert *e = &layer->certs[i];
        e->ctx = i == 0 ? layer->server_ctx
                        : nl_new_server_context(L, layer, e->cert, e->key, at->certs, at->certs,
                                                rule_index, layer_index, at);
        if (e->ctx == NULL)
            return -1;
    }
    SSL_CTX_set_tlsext_servername_callback(layer->server_ctx, choose_by_sni);
    SSL_CTX_set_tlsext_servername_arg(layer->server_ctx, layer);
    return 0;
}
