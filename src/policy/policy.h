/* The nestls policy: YAML (version 1) loaded once into an immutable tree.
 *
 * Loaded in the library constructor (or by the nestls command) and never
 * modified afterwards, so lookups from any thread need no lock. Every
 * layer's SSL_CTX is built at load time: a bad cipher string, key or CA is
 * a load error, never a surprise on the first connection. */
#ifndef NESTLS_POLICY_H
#define NESTLS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <openssl/ssl.h>

#include "common/log.h"

#define NL_MAX_LAYERS 8
#define NL_MAX_SNI_CERTS 64 /* certs: entries of one layer */
#define NL_HASH_LEN 32      /* SHA-256 */
#define NL_ERR_MAX 1024 /* size of error buffers handed to the loader */

enum nl_role { NL_ROLE_ANY = 0, NL_ROLE_CLIENT = 1, NL_ROLE_SERVER = 2 };
enum nl_action { NL_ACTION_WRAP = 0, NL_ACTION_PASSTHROUGH = 1, NL_ACTION_DENY = 2 };
/* A plaintext prelude spoken on the wire before layer 1 (engine/starttls.c). */
enum nl_starttls_proto {
    NL_STARTTLS_NONE = 0,
    NL_STARTTLS_SMTP,
    NL_STARTTLS_IMAP,
    NL_STARTTLS_POP3,
    NL_STARTTLS_FTP,
    NL_STARTTLS_POSTGRES,
};

/* Where something came from in the policy file (1-based, as editors count). */
struct nl_pos {
    int line;
    int col;
};

enum nl_addr_kind { NL_ADDR_ANY = 0, NL_ADDR_CIDR = 1, NL_ADDR_HOST = 2 };

struct nl_addr_match {
    enum nl_addr_kind kind;
    int family;             /* AF_INET or AF_INET6 for NL_ADDR_CIDR */
    unsigned char addr[16]; /* network address, masked */
    int prefix;             /* 0..32 or 0..128 */
    char *host;             /* NL_ADDR_HOST: lower-case name, compared
                               case-insensitively with the resolved name */
};

struct nl_port_range {
    uint16_t lo, hi; /* inclusive; a single port has lo == hi */
};

/* A client layer's demand for a stapled OCSP response. */
enum nl_ocsp_mode { NL_OCSP_OFF = 0, NL_OCSP_PREFER = 1, NL_OCSP_REQUIRE = 2 };

/* One certificate of a server layer that holds several (`certs:`),
 * chosen by the name the client sends (SNI). */
struct nl_sni_cert {
    char *cert, *key;      /* absolute paths */
    char **names;          /* host names or "*.suffix" it is chosen for;
                              n_names == 0: the certificate's own names */
    size_t n_names;
    SSL_CTX *ctx;          /* a server context with this certificate; the
                              first entry's is the layer's server_ctx */
};

struct nl_layer {
    struct nl_pos pos;     /* the layer's mapping in the file */
    char *server_name;     /* client: SNI + verify name; NULL = resolved name */
    char *ca;              /* absolute path, "system", or NULL */
    char *cert, *key;      /* absolute paths or NULL */
    char *client_ca;       /* server: require + verify client certs; or NULL */
    char *crl;             /* PEM CRLs the peer's leaf is checked against; or NULL */
    unsigned padding;      /* TLS 1.3 records sent padded to a multiple of this; 0 = off */
    struct nl_sni_cert *certs; /* server: `certs:`, n_certs >= 1 (then cert and
                              key are the first one's); none: n_certs == 0 */
    size_t n_certs;
    bool sni_required;     /* server: refuse a client whose SNI names no certificate */
    enum nl_ocsp_mode ocsp; /* client: ask for a staple; prefer: refuse "revoked";
                              require: refuse all but a good, fresh, signed one */
    char *ocsp_staple;     /* server: DER OCSP response file, or NULL */
    unsigned char *staple; /* its bytes, read at load */
    size_t staple_len;
    unsigned char files_hash[NL_HASH_LEN]; /* of the files above, as loaded */
    bool verify;           /* default true */
    bool insecure;         /* required beside verify: false */
    int min_version;       /* TLS1_2_VERSION (default) or TLS1_3_VERSION */
    int max_version;       /* TLS1_3_VERSION (default) or TLS1_2_VERSION */
    char *ciphers;         /* TLS 1.2 cipher list or NULL (OpenSSL default, FS only) */
    char *ciphersuites;    /* TLS 1.3 suites or NULL */
    char *groups;          /* or NULL */
    char **alpn;           /* protocol names, n_alpn of them */
    size_t n_alpn;
    unsigned char *alpn_wire; /* length-prefixed wire form, alpn_wire_len bytes */
    size_t alpn_wire_len;
    SSL_CTX *client_ctx;   /* built when the rule can match the client role */
    SSL_CTX *server_ctx;   /* built when the rule can match the server role */
};

struct nl_rule {
    struct nl_pos pos;     /* the rule's mapping in the file */
    char *name;            /* "rule N" (1-based) when the file gives none */
    enum nl_role role;     /* NL_ROLE_ANY when match.role is absent */
    struct nl_addr_match *addrs; /* n_addrs == 0: any address */
    size_t n_addrs;
    struct nl_port_range *ports; /* n_ports == 0: any port */
    size_t n_ports;
    char *program;         /* basename, or NULL for any */
    enum nl_action action;
    enum nl_starttls_proto starttls; /* NL_STARTTLS_NONE unless the rule wraps */
    struct nl_layer layers[NL_MAX_LAYERS]; /* [0] is the outermost */
    size_t n_layers;
};

struct nl_settings {
    enum nl_log_level log_level;   /* default NL_LOG_DEFAULT (warn) */
    char *log_file;                /* "stderr" (default) or absolute path */
    enum nl_action default_action; /* passthrough (default) or deny */
    unsigned handshake_timeout_ms; /* default 10000 */
    unsigned linger_ms;            /* default 2000 */
    char *keylog_file;             /* INSECURE: TLS secrets of every layer are
                                      appended here (NSS key log format); NULL = off */
    bool allow_unhookable;         /* INSECURE: `nestls run` starts programs the
                                      preload cannot reach (static, setuid, Go),
                                      in plaintext; default false = refused */
    bool allow_io_uring;           /* INSECURE: io_uring, whose I/O no hook sees,
                                      is let through; default false */
    bool reload;                   /* certificates, keys, CAs, CRLs and staples
                                      are watched and taken up when they change
                                      (engine/reload.c); default true */
};

struct nl_policy {
    unsigned char text_hash[NL_HASH_LEN]; /* of the file's text, as loaded */
    char *path;      /* absolute path of the file it was loaded from */
    char *source;    /* that file as named (made absolute, links not followed):
                        what a reload and exec'd children read, so that a
                        link swapped to a new directory (a Kubernetes
                        ConfigMap) is followed, not the directory it left */
    char *dir;       /* its directory: relative paths are resolved here */
    struct nl_settings settings;
    struct nl_rule *rules;
    size_t n_rules;
};

/* Load and validate a policy file, building every SSL_CTX.
 * Returns 0 and sets *out, or -1 and writes one line (no newline) into err:
 * "FILE:LINE:COL: what is wrong" (FILE as given in path). */
int nl_policy_load(const char *path, struct nl_policy **out, char *err, size_t errlen);
void nl_policy_free(struct nl_policy *policy);

/* What a connection looks like to the matcher. */
struct nl_conn_query {
    enum nl_role role;            /* NL_ROLE_CLIENT or NL_ROLE_SERVER */
    const struct sockaddr *addr;  /* client: the peer; server: our local address */
    const char *hostname;         /* name the program resolved for addr, or NULL */
    const char *program;          /* basename of the running executable, or NULL */
};

/* Whether the policy changes anything (a rule that wraps or denies, or
 * default_action deny): only then can a road no hook sees lose TLS or
 * let a denied connection through. */
bool nl_policy_restricts(const struct nl_policy *policy);

/* Whether connections accepted on a listener bound to q->addr (role
 * server) may be wrapped or denied: a specific address asks the rules as
 * a connection to it would; 0.0.0.0 or :: asks whether any rule that
 * restricts matches the port. Only such listeners are taken over. */
bool nl_policy_listener_restricted(const struct nl_policy *policy, const struct nl_conn_query *q);

/* First rule that matches, or NULL (then settings.default_action applies). */
const struct nl_rule *nl_policy_match(const struct nl_policy *policy, const struct nl_conn_query *q);

/* Server role: the index of the layer's certificate for the host name a
 * client sent (its `certs:` entry, or 0 for the one `cert`), or -1 when
 * none is for that name (policy/sni_certs.c). */
int nl_sni_pick(const struct nl_layer *layer, const char *name);

/* What a stapled OCSP response says of the peer's leaf certificate
 * (policy/ocsp.c): none stapled, unusable (unparsable, not covering the
 * leaf, badly signed, out of date: detail says which), or its status. */
enum nl_ocsp_status { NL_OCSP_NONE, NL_OCSP_UNUSABLE, NL_OCSP_GOOD, NL_OCSP_REVOKED,
                      NL_OCSP_UNKNOWN };
struct nl_ocsp_verdict {
    enum nl_ocsp_status status;
    const char *word;  /* "none", "unusable", "good", "revoked", "unknown" */
    char detail[256];  /* why unusable, when revoked, or the validity */
};
void nl_ocsp_judge(SSL *ssl, struct nl_ocsp_verdict *v);
/* Whether a layer in ocsp mode goes on with a staple in that status. */
bool nl_ocsp_acceptable(enum nl_ocsp_mode mode, enum nl_ocsp_status status);
/* policy/tls_text.c: "2026-12-07T04:30:00Z" (or "?"), and a certificate's
 * subject, or any name, as RFC 2253 text ("CN=localhost"). */
const char *nl_tls_time_text(const ASN1_TIME *t, char *buf, size_t len);
const char *nl_tls_subject_text(X509 *cert, char *buf, size_t len);
const char *nl_tls_name_text(const X509_NAME *name, char *buf, size_t len);

/* The most files a layer can name: ca, cert, key, client_ca, crl,
 * ocsp_staple, and a cert and key for each further certs entry. */
#define NL_LAYER_MAX_FILES (6 + 2 * NL_MAX_SNI_CERTS)
/* policy/files.c. The files a layer reads (cert, key, CAs, CRL, staple,
 * each of certs), up to max, into out; returns how many. */
size_t nl_layer_files(const struct nl_layer *layer, const char *out[], size_t max);
/* A hash of those files' names and contents, as they are now. */
void nl_layer_files_hash(const struct nl_layer *layer, unsigned char out[NL_HASH_LEN]);
/* Each SSL_CTX of the layer: the client's, the server's, and the server's
 * for each further certificate of certs. */
void nl_layer_each_ctx(const struct nl_layer *layer, void (*fn)(SSL_CTX *ctx, void *arg),
                       void *arg);
/* Reload: live takes donor's contexts, staple and files hash (donor gets
 * live's, to be freed with it); the callbacks of what live takes are
 * pointed at live. The two must come from the same policy text. */
void nl_layer_take_contexts(struct nl_layer *live, struct nl_layer *donor);

/* Human-readable names ("client", "wrap", "TLSv1.2", ...). */
const char *nl_role_name(enum nl_role role);
const char *nl_action_name(enum nl_action action);
/* "smtp", "imap", ...; NULL for NL_STARTTLS_NONE. */
const char *nl_starttls_name(enum nl_starttls_proto starttls);
const char *nl_log_level_name(enum nl_log_level level);
const char *nl_tls_version_name(int version);

#endif
