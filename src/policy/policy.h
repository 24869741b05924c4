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

struct nl_layer {
    struct nl_pos pos;     /* the layer's mapping in the file */
    char *server_name;     /* client: SNI + verify name; NULL = resolved name */
    char *ca;              /* absolute path, "system", or NULL */
    char *cert, *key;      /* absolute paths or NULL */
    char *client_ca;       /* server: require + verify client certs; or NULL */
    char *crl;             /* PEM CRLs the peer's leaf is checked against; or NULL */
    unsigned padding;      /* TLS 1.3 records sent padded to a multiple of this; 0 = off */
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
};

struct nl_policy {
    char *path;      /* absolute path of the file it was loaded from */
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

/* Human-readable names ("client", "wrap", "TLSv1.2", ...). */
const char *nl_role_name(enum nl_role role);
const char *nl_action_name(enum nl_action action);
/* "smtp", "imap", ...; NULL for NL_STARTTLS_NONE. */
const char *nl_starttls_name(enum nl_starttls_proto starttls);
const char *nl_log_level_name(enum nl_log_level level);
const char *nl_tls_version_name(int version);

#endif
