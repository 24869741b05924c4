/* layers: outermost first, 1 to NL_MAX_LAYERS. Each layer is read, checked
 * as a whole (verify/insecure, cert/key, versions, what the rule's role
 * needs), and then its SSL_CTXs are built. */
#include "policy/loader.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const nl_layer_keys[] = {
    "server_name", "ca", "cert", "key", "client_ca", "verify", "insecure", "min_version",
    "max_version", "ciphers", "ciphersuites", "groups", "alpn", "crl", "padding", "certs", "sni", "ocsp", "ocsp_staple", NULL,
};

static int parse_alpn(struct nl_loader *L, const yaml_node_t *v, struct nl_layer *layer)
{
    char kind[64];
    size_t n = 1;
    if (nl_yaml_is_null(v) || v->type == YAML_MAPPING_NODE)
        return nl_fail(L, v, "'alpn' must be a list of protocol names like [h2, http/1.1] "
                             "(got %s)", nl_yaml_kind(v, kind, sizeof(kind)));
    if (v->type == YAML_SEQUENCE_NODE)
        n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0)
        return nl_fail(L, v, "'alpn' is an empty list (leave it out for no ALPN)");
    layer->alpn = calloc(n, sizeof(*layer->alpn));
    if (layer->alpn == NULL)
        return nl_fail(L, v, "out of memory");

    size_t wire_len = 0;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *e =
            v->type == YAML_SEQUENCE_NODE ? nl_yaml_node(L, v->data.sequence.items.start[i]) : v;
        if (e->type != YAML_SCALAR_NODE)
            return nl_fail(L, e, "alpn entry %zu must be a protocol name (got %s)", i + 1,
                           nl_yaml_kind(e, kind, sizeof(kind)));
        size_t len = e->data.scalar.length;
        if (len == 0 || nl_yaml_is_null(e))
            return nl_fail(L, e, "alpn entry %zu is empty", i + 1);
        if (strlen((const char *)e->data.scalar.value) != len)
            return nl_fail(L, e, "alpn entry %zu contains a NUL byte", i + 1);
        if (len > 255)
            return nl_fail(L, e, "alpn entry %zu is %zu bytes long (at most 255)", i + 1, len);
        layer->alpn[i] = nl_strdup(L, e, (const char *)e->data.scalar.value);
        if (layer->alpn[i] == NULL)
            return -1;
        layer->n_alpn = i + 1;
        wire_len += 1 + len;
    }

    /* The wire form: each name preceded by its length byte. */
    layer->alpn_wire = malloc(wire_len);
    if (layer->alpn_wire == NULL)
        return nl_fail(L, v, "out of memory");
    unsigned char *w = layer->alpn_wire;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(layer->alpn[i]);
        *w++ = (unsigned char)len;
        memcpy(w, layer->alpn[i], len);
        w += len;
    }
    layer->alpn_wire_len = wire_len;
    return 0;
}

static int parse_ca(struct nl_loader *L, const yaml_node_t *v, struct nl_layer *layer)
{
    if (v->type == YAML_SCALAR_NODE && strcmp((const char *)v->data.scalar.value, "system") == 0) {
        layer->ca = nl_strdup(L, v, "system");
        return layer->ca == NULL ? -1 : 0;
    }
    return nl_get_file(L, v, "ca", &layer->ca);
}

/* The name is sent as SNI and checked against the certificate on every
 * connection: a malformed one must fail here, not on the first connect. */
static int check_server_name(struct nl_loader *L, const yaml_node_t *v, const char *name)
{
    unsigned char ip[16];
    if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1)
        return 0;
    const char *body = strncmp(name, "*.", 2) == 0 ? NULL : name;
    if (body == NULL || !nl_valid_host_name(body))
        return nl_fail(L, v, "bad server_name '%.64s': not a host name or IP address", name);
    return 0;
}

/* Every key of the layer mapping into *layer, remembering where each was. */
static int read_keys(struct nl_loader *L, const yaml_node_t *v, struct nl_layer *layer,
                     struct nl_layer_nodes *at, const yaml_node_t **verify_at,
                     const yaml_node_t **min_at, const yaml_node_t **max_at)
{
    const yaml_node_t *x;
    if ((x = nl_yaml_get(L, v, "server_name", NULL)) != NULL) {
        NL_GUARD(nl_get_string(L, x, "server_name", &layer->server_name));
        NL_GUARD(check_server_name(L, x, layer->server_name));
    }
    if ((at->ca = nl_yaml_get(L, v, "ca", NULL)) != NULL)
        NL_GUARD(parse_ca(L, at->ca, layer));
    if ((at->cert = nl_yaml_get(L, v, "cert", NULL)) != NULL)
        NL_GUARD(nl_get_file(L, at->cert, "cert", &layer->cert));
    if ((at->key = nl_yaml_get(L, v, "key", NULL)) != NULL)
        NL_GUARD(nl_get_file(L, at->key, "key", &layer->key));
    if ((at->client_ca = nl_yaml_get(L, v, "client_ca", NULL)) != NULL)
        NL_GUARD(nl_get_file(L, at->client_ca, "client_ca", &layer->client_ca));
    if ((*verify_at = nl_yaml_get(L, v, "verify", NULL)) != NULL)
        NL_GUARD(nl_get_bool(L, *verify_at, "verify", &layer->verify));
    if ((x = nl_yaml_get(L, v, "insecure", NULL)) != NULL)
        NL_GUARD(nl_get_bool(L, x, "insecure", &layer->insecure));
    if ((*min_at = nl_yaml_get(L, v, "min_version", NULL)) != NULL)
        NL_GUARD(nl_get_tls_version(L, *min_at, "min_version", &layer->min_version));
    if ((*max_at = nl_yaml_get(L, v, "max_version", NULL)) != NULL)
        NL_GUARD(nl_get_tls_version(L, *max_at, "max_version", &layer->max_version));
    if ((at->ciphers = nl_yaml_get(L, v, "ciphers", NULL)) != NULL)
        NL_GUARD(nl_get_string(L, at->ciphers, "ciphers", &layer->ciphers));
    if ((at->ciphersuites = nl_yaml_get(L, v, "ciphersuites", NULL)) != NULL)
        NL_GUARD(nl_get_string(L, at->ciphersuites, "ciphersuites", &layer->ciphersuites));
    if ((at->groups = nl_yaml_get(L, v, "groups", NULL)) != NULL)
        NL_GUARD(nl_get_string(L, at->groups, "groups", &layer->groups));
    if ((x = nl_yaml_get(L, v, "alpn", NULL)) != NULL)
        NL_GUARD(parse_alpn(L, x, layer));
    if ((at->crl = nl_yaml_get(L, v, "crl", NULL)) != NULL)
        NL_GUARD(nl_get_file(L, at->crl, "crl", &layer->crl));
    if ((at->padding = nl_yaml_get(L, v, "padding", NULL)) != NULL)
        NL_GUARD(nl_get_uint(L, at->padding, "padding", 2, SSL3_RT_MAX_PLAIN_LENGTH,
                             &layer->padding));
    if ((at->certs = nl_yaml_get(L, v, "certs", NULL)) != NULL)
        NL_GUARD(nl_parse_sni_certs(L, at->certs, layer, at));
    if ((at->sni = nl_yaml_get(L, v, "sni", NULL)) != NULL) {
        static const char *const sni_values[] = {"optional", "require", NULL};
        int v_sni = 0;
        NL_GUARD(nl_get_enum(L, at->sni, "sni", sni_values, &v_sni));
        layer->sni_required = v_sni == 1;
    }
    if ((at->ocsp = nl_yaml_get(L, v, "ocsp", NULL)) != NULL) {
        static const char *const ocsp_modes[] = {"off", "prefer", "require", NULL};
        int mode = 0;
        NL_GUARD(nl_get_enum(L, at->ocsp, "ocsp", ocsp_modes, &mode));
        layer->ocsp = (enum nl_ocsp_mode)mode;
    }
    if ((at->ocsp_staple = nl_yaml_get(L, v, "ocsp_staple", NULL)) != NULL) {
        NL_GUARD(nl_get_file(L, at->ocsp_staple, "ocsp_staple", &layer->ocsp_staple));
        NL_GUARD(nl_load_staple(L, layer, at->ocsp_staple));
    }
    return 0;
}

/* Keys that act in one role only, or only beside another key: a CRL only
 * means something where a peer's certificate is verified, padding only
 * exists in TLS 1.3, certs/sni/ocsp_staple belong to a server and ocsp to a
 * client. Set where it cannot act, a key would look like protection that
 * is not there. */
static int check_keys_that_need_others(struct nl_loader *L, const struct nl_layer *layer,
                                       const struct nl_layer_nodes *at, enum nl_role role)
{
    /* A client layer never shows these certificates: a rule that can be
     * either role would use them in one and silently not in the other. */
    if (at->certs != NULL && role != NL_ROLE_SERVER)
        return nl_fail(L, at->certs, "'certs' is for server layers: set 'match.role: server' "
                                     "on the rule");
    if (at->sni != NULL && role != NL_ROLE_SERVER)
        return nl_fail(L, at->sni, "'sni' is for server layers: set 'match.role: server' on "
                                   "the rule");
    if (at->ocsp_staple != NULL && role != NL_ROLE_SERVER)
        return nl_fail(L, at->ocsp_staple, "'ocsp_staple' is for server layers: set "
                                           "'match.role: server' on the rule");
    if (at->ocsp_staple != NULL && layer->n_certs > 1)
        return nl_fail(L, at->ocsp_staple, "'ocsp_staple' is the status of one certificate: "
                                           "not with several 'certs'");
    if (layer->ocsp != NL_OCSP_OFF && role == NL_ROLE_SERVER)
        return nl_fail(L, at->ocsp, "'ocsp' is for client layers (a server layer staples "
                                    "with 'ocsp_staple')");
    if (layer->ocsp != NL_OCSP_OFF && !layer->verify)
        return nl_fail(L, at->ocsp, "'ocsp' needs verification: this layer has 'verify: "
                                    "false'");
    if (layer->crl != NULL && !layer->verify)
        return nl_fail(L, at->crl, "'crl' needs verification: this layer has 'verify: false'");
    if (layer->crl != NULL && role == NL_ROLE_SERVER && layer->client_ca == NULL)
        return nl_fail(L, at->crl, "'crl' on a server layer checks client certificates: it "
                                   "needs 'client_ca' beside it");
    if (layer->padding != 0 && layer->min_version < TLS1_3_VERSION)
        return nl_fail(L, at->padding, "'padding' pads TLS 1.3 records only: it needs "
                                       "'min_version: TLSv1.3' beside it (TLS 1.2 records "
                                       "would go unpadded)");
    return 0;
}

/* What no single key can say wrong, only the layer as a whole. */
static int check_layer(struct nl_loader *L, const struct nl_layer *layer,
                       const struct nl_layer_nodes *at, const yaml_node_t *verify_at,
                       const yaml_node_t *min_at, const yaml_node_t *max_at,
                       enum nl_role role, const char *layer_label)
{
    if (!layer->verify && !layer->insecure)
        return nl_fail(L, verify_at, "verify: false needs 'insecure: true' beside it "
                                     "(the peer is not authenticated)");
    if (layer->min_version > layer->max_version)
        return nl_fail(L, min_at != NULL ? min_at : max_at,
                       "min_version %s is above max_version %s",
                       nl_tls_version_name(layer->min_version),
                       nl_tls_version_name(layer->max_version));
    if (layer->cert != NULL && layer->key == NULL)
        return nl_fail(L, at->cert, "'cert' needs 'key' beside it (the certificate's "
                                    "private key)");
    if (layer->key != NULL && layer->cert == NULL)
        return nl_fail(L, at->key, "'key' needs 'cert' beside it (the key's certificate)");
    if (layer->cert == NULL && role == NL_ROLE_SERVER)
        return nl_fail_raw(L, at->layer, "%s is a server layer (match.role: server): it "
                                         "needs 'cert' and 'key'", layer_label);
    if (layer->cert == NULL && role == NL_ROLE_ANY)
        return nl_fail_raw(L, at->layer, "%s has no 'cert' and 'key', which the server role "
                                         "needs: set 'match.role: client' on the rule, or "
                                         "give 'cert' and 'key'", layer_label);
    if (layer->cert != NULL)
        NL_GUARD(nl_check_keypair(L, layer, at));
    return check_keys_that_need_others(L, layer, at, role);
}

static int parse_layer(struct nl_loader *L, const yaml_node_t *v, struct nl_layer *layer,
                       struct nl_rule *rule, size_t rule_index, size_t index,
                       const char *rule_label)
{
    char kind[64], label[160], where[168];
    snprintf(label, sizeof(label), "layer %zu of %.120s", index + 1, rule_label);
    layer->pos = nl_node_pos(v);
    layer->verify = true;
    layer->min_version = TLS1_2_VERSION;
    layer->max_version = TLS1_3_VERSION;
    if (v->type != YAML_MAPPING_NODE)
        return nl_fail_raw(L, v, "%s must be a mapping of TLS settings (got %s)", label,
                           nl_yaml_kind(v, kind, sizeof(kind)));
    snprintf(where, sizeof(where), "in %s", label);
    NL_GUARD(nl_yaml_check_mapping(L, v, nl_layer_keys, where));
    snprintf(L->where, sizeof(L->where), "%s", label);

    struct nl_layer_nodes at = {.layer = v};
    const yaml_node_t *verify_at = NULL, *min_at = NULL, *max_at = NULL;
    NL_GUARD(read_keys(L, v, layer, &at, &verify_at, &min_at, &max_at));
    /* Before the files are read for the contexts: a file changed while
     * they are built then differs from this hash, and the next reload
     * check takes it up (engine/reload.c). */
    nl_layer_files_hash(layer, layer->files_hash);
    NL_GUARD(check_layer(L, layer, &at, verify_at, min_at, max_at, rule->role, label));
    return nl_build_contexts(L, layer, rule->role, rule_index, index, &at);
}

int nl_parse_layers(struct nl_loader *L, const yaml_node_t *layers_node, struct nl_rule *rule,
                    size_t rule_index)
{
    char rule_label[sizeof(L->where)];
    snprintf(rule_label, sizeof(rule_label), "%s", L->where);
    yaml_node_item_t *items = layers_node->data.sequence.items.start;
    size_t n = (size_t)(layers_node->data.sequence.items.top - items);
    if (n > NL_MAX_LAYERS)
        return nl_fail_raw(L, nl_yaml_node(L, items[NL_MAX_LAYERS]),
                           "too many layers in %s: at most %d", rule_label, NL_MAX_LAYERS);
    for (size_t i = 0; i < n; i++) {
        rule->n_layers = i + 1; /* so nl_policy_free sees what was built */
        NL_GUARD(parse_layer(L, nl_yaml_node(L, items[i]), &rule->layers[i], rule, rule_index,
                             i, rule_label));
    }
    snprintf(L->where, sizeof(L->where), "%s", rule_label);
    return 0;
}
