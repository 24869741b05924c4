/* Internal to src/policy: the state of one nl_policy_load() call and the
 * helpers its parts share. Nothing here is used outside src/policy.
 *
 * Error discipline: every function that can fail returns 0 on success or
 * -1 after writing the one-line message into the loader (the first error
 * wins; later ones are never written over it). */
#ifndef NESTLS_POLICY_LOADER_H
#define NESTLS_POLICY_LOADER_H

#include <stdarg.h>
#include <yaml.h>

#include "common/guard.h"
#include "policy/policy.h"

/* Bounds on what a policy file can make the loader do. It runs in the
 * constructor of every wrapped program (and in `nestls check`), so any
 * file must load in well under a second, and never hang. A policy that
 * needs more than these is not one a person can review anyway. */
#define NL_POLICY_MAX_BYTES (1024 * 1024) /* read whole; load.c says "1 MiB" */
#define NL_YAML_MAX_DEPTH 64              /* nesting; a policy uses about 6 */
/* Nodes of the document with every alias counted as a copy of what it
 * names: what rules.c and layers.c walk. One rule of 5,000 addresses
 * repeated by 20,000 aliases is 10^8 nodes in a 200 KB file. */
#define NL_YAML_MAX_NODES 100000
/* libyaml looks each alias up among all anchors: anchors x aliases. */
#define NL_YAML_MAX_ANCHORS 256
/* Each layer loads its files and builds one or two SSL_CTXs at start-up
 * (1-2 ms each): the number of layers bounds the start-up time. */
#define NL_POLICY_MAX_TOTAL_LAYERS 128

struct nl_loader {
    const char *file;    /* as given to nl_policy_load: prefix of every error */
    const char *dir;     /* absolute directory relative paths are resolved in */
    yaml_document_t doc;
    char *err;
    size_t errlen;
    bool failed;
    char where[192];     /* "layer 2 of rule 'db'", or "" at top level */
};

/* --- errors.c ---------------------------------------------------------- */

struct nl_pos nl_node_pos(const yaml_node_t *node);
/* "FILE:LINE:COL: " + "<where>: " (when set) + message. Returns -1. */
int nl_fail(struct nl_loader *L, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same without the "<where>: " prefix, for messages that say it inline. */
int nl_fail_raw(struct nl_loader *L, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int nl_fail_mark(struct nl_loader *L, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The most telling reason in OpenSSL's error queue (queue is emptied), or
 * NULL when the queue was empty. */
const char *nl_ssl_reason(void);

/* --- yaml_doc.c -------------------------------------------------------- */

/* Parse the policy's text into L->doc; root is NULL-free on success.
 * The text is first checked against NL_YAML_MAX_DEPTH, _NODES and
 * _ANCHORS, so the document is never built from a text that breaks them. */
int nl_yaml_load(struct nl_loader *L, const unsigned char *text, size_t len, yaml_node_t **root);
yaml_node_t *nl_yaml_node(struct nl_loader *L, int index);
bool nl_yaml_is_null(const yaml_node_t *node);
/* "a mapping", "a list", "nothing", or the scalar quoted: "'abc'". */
const char *nl_yaml_kind(const yaml_node_t *node, char *buf, size_t size);
/* Every key a distinct scalar from valid[] (NULL-terminated); the message
 * for a stray key says "... in <where>". */
int nl_yaml_check_mapping(struct nl_loader *L, const yaml_node_t *map,
                          const char *const valid[], const char *where);
/* The value under key (or NULL), and the key node itself when asked. */
yaml_node_t *nl_yaml_get(struct nl_loader *L, const yaml_node_t *map, const char *key,
                         yaml_node_t **key_node);

/* --- suggest.c --------------------------------------------------------- */

/* The keys of each place in a policy (NULL-terminated), defined beside
 * the code that reads them (load.c, rules.c, layers.c). */
extern const char *const nl_top_keys[];
extern const char *const nl_settings_keys[];
extern const char *const nl_rule_keys[];
extern const char *const nl_match_keys[];
extern const char *const nl_layer_keys[];

/* The valid name closest to word, or NULL when none is close enough. */
const char *nl_suggest(const char *word, const char *const valid[]);
/* "did you mean 'x'?" or "valid keys: a, b, c" into buf. */
void nl_suggest_text(const char *word, const char *const valid[], char *buf, size_t size);
/* For a key of another place than valid[]'s (indented one level too
 * little or too much): "'ca' belongs inside a layer (under 'layers:')"
 * into buf, and true; false when word is no key of any place. */
bool nl_suggest_place(const char *word, const char *const valid[], char *buf, size_t size);

/* --- values.c ---------------------------------------------------------- */

int nl_get_string(struct nl_loader *L, const yaml_node_t *v, const char *key, char **out);
int nl_get_bool(struct nl_loader *L, const yaml_node_t *v, const char *key, bool *out);
int nl_get_uint(struct nl_loader *L, const yaml_node_t *v, const char *key, unsigned lo,
                unsigned hi, unsigned *out);
/* names[] is NULL-terminated; *out is the index of the match. */
int nl_get_enum(struct nl_loader *L, const yaml_node_t *v, const char *key,
                const char *const names[], int *out);
int nl_get_tls_version(struct nl_loader *L, const yaml_node_t *v, const char *key, int *out);
/* A path made absolute against L->dir (absolute paths are kept). */
char *nl_resolve_path(struct nl_loader *L, const char *path);
/* A string naming a file that must be readable: *out is absolute. */
int nl_get_file(struct nl_loader *L, const yaml_node_t *v, const char *key, char **out);
char *nl_strdup(struct nl_loader *L, const yaml_node_t *at, const char *s);

/* --- address.c --------------------------------------------------------- */

/* RFC 1123 host name (a numeric last label is refused as an IP typo). */
bool nl_valid_host_name(const char *s);
int nl_parse_addresses(struct nl_loader *L, const yaml_node_t *v, struct nl_rule *rule);
int nl_parse_ports(struct nl_loader *L, const yaml_node_t *v, struct nl_rule *rule);

/* --- rules.c / layers.c ------------------------------------------------ */

int nl_parse_rules(struct nl_loader *L, const yaml_node_t *v, struct nl_policy *p);
/* layers_node is a list; fills rule->layers (SSL_CTXs included). */
int nl_parse_layers(struct nl_loader *L, const yaml_node_t *layers_node, struct nl_rule *rule,
                    size_t rule_index);

/* --- tls_ctx.c / tls_check.c ----------------------------------------- */

/* Where each TLS setting of a layer was written, so a rejection by OpenSSL
 * points at the value that caused it (NULL: not given). */
struct nl_layer_nodes {
    const yaml_node_t *layer, *ca, *cert, *key, *client_ca, *crl, *padding, *certs, *sni;
    const yaml_node_t *ocsp, *ocsp_staple;
    const yaml_node_t *ciphers, *ciphersuites, *groups;
};

/* Check that cert and key load and belong together (before any SSL_CTX). */
int nl_check_keypair(struct nl_loader *L, const struct nl_layer *layer,
                     const struct nl_layer_nodes *at);
/* OpenSSL ignores unknown names inside these lists; name the first one. */
int nl_check_ciphersuites(struct nl_loader *L, SSL_CTX *ctx, const struct nl_layer *layer,
                          const yaml_node_t *at);
int nl_check_groups(struct nl_loader *L, SSL_CTX *ctx, const struct nl_layer *layer,
                    const yaml_node_t *at);
/* Never prompt on the terminal for a key passphrase. */
int nl_no_passphrase(char *buf, int size, int rwflag, void *called);
/* sni_certs.c: `certs:` into layer->certs (cert and key become the first
 * entry's, their nodes in *at that entry's); each entry's own checks. */
int nl_parse_sni_certs(struct nl_loader *L, const yaml_node_t *v, struct nl_layer *layer,
                       struct nl_layer_nodes *at);
/* The contexts of the entries after the first, and the callback on the
 * layer's server context that switches to the one the client's SNI names. */
int nl_build_sni_contexts(struct nl_loader *L, struct nl_layer *layer, size_t rule_index,
                          size_t layer_index, const struct nl_layer_nodes *at);
/* ocsp.c: read and check layer->ocsp_staple; set a context's staple
 * callbacks (the server's sending, the client's asking and judging). */
int nl_load_staple(struct nl_loader *L, struct nl_layer *layer, const yaml_node_t *at);
int nl_setup_ocsp(struct nl_loader *L, SSL_CTX *ctx, const struct nl_layer *layer, bool server,
                  const yaml_node_t *at);
/* tls_ctx.c: the callbacks of ctx (ALPN choice, SNI, OCSP) read layer. */
void nl_point_callbacks(SSL_CTX *ctx, struct nl_layer *layer, bool server);
/* tls_ctx.c: a server context for one certificate of the layer. */
SSL_CTX *nl_new_server_context(struct nl_loader *L, struct nl_layer *layer, const char *cert,
                               const char *key, const yaml_node_t *cert_at,
                               const yaml_node_t *key_at, size_t rule_index, size_t layer_index,
                               const struct nl_layer_nodes *at);
/* Build the contexts the rule's role needs. */
int nl_build_contexts(struct nl_loader *L, struct nl_layer *layer, enum nl_role role,
                      size_t rule_index, size_t layer_index, const struct nl_layer_nodes *at);

#endif
