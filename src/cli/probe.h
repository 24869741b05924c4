/* nestls probe, in parts: probe.c reads the command line and decides the
 * layers, probe_layers.c turns --layer SPECs into a policy, probe_tcp.c
 * connects, probe_onion.c runs the handshakes, probe_describe.c reads a layer's
 * facts from OpenSSL, and probe_report.c / probe_json.c print them. */
#ifndef NESTLS_CLI_PROBE_H
#define NESTLS_CLI_PROBE_H

#include <stdbool.h>
#include <stdio.h>
#include <openssl/ssl.h>

#include "cli/cli.h"

struct nl_json;

enum probe_state { PROBE_NOT_STARTED = 0, PROBE_UP, PROBE_FAILED };

/* One layer: its SSL (kept until the report is written: the report reads
 * the version, suite, chain and OCSP staple from it), on two memory BIOs. */
struct probe_layer {
    const struct nl_layer *cfg;
    SSL *ssl;
    BIO *in, *out;           /* owned by ssl: records from / towards the peer */
    enum probe_state state;
    char verify_name[256];   /* what the certificate is checked against, or "" */
    bool verify_name_is_ip;
    double ms;               /* handshake time */
    char error[512];         /* why the layer failed, or "" */
};

struct probe {
    struct nl_cli_target target;
    const char *program;     /* --program */
    struct nl_policy *policy;
    bool from_layers;        /* the policy was made from --layer SPECs */
    const struct nl_rule *rule; /* the client rule that applies, or NULL */
    unsigned timeout_ms;
    int fd;
    bool connected;
    double connect_ms;
    struct probe_layer l[NL_MAX_LAYERS];
    size_t n;                /* layers of the rule, started or not */
    int failed_layer;        /* 0-based, or -1 */
    char error[700];         /* the one-line result when not every layer verified */
};

/* probe_layers.c: a policy with one client rule made of the SPECs
 * (outermost first), loaded by the policy loader itself. 0, or the exit
 * status after the failure was reported (2: bad SPEC; 78: rejected). */
int nl_probe_layers_policy(const struct nl_cli_ctx *c, char **specs, size_t n,
                           struct nl_policy **out);

/* probe_tcp.c: resolve HOST, choose the rule for each address and connect
 * (p->fd, p->rule); -1 with p->error set. */
double nl_probe_now_ms(void);
/* poll one descriptor until the deadline (nl_probe_now_ms() time):
 * 1 ready, 0 timed out, -1 failed. */
int nl_probe_wait_fd(int fd, short events, double deadline);
int nl_probe_connect(struct probe *p, double deadline);

/* probe_onion.c: connect, and run every layer's handshake, each inside
 * the ones before. Fills p; 0 when every handshake completed. */
int nl_probe_run(struct probe *p);
void nl_probe_free(struct probe *p);

/* probe_describe.c: facts about a layer and its peer's certificates. */
const char *nl_probe_group(SSL *ssl);
/* Each subjectAltName as "DNS:x", "IP:a", "email:x", "URI:x", to fn. */
void nl_probe_each_san(X509 *cert, void (*fn)(const char *san, void *arg), void *arg);
/* The OCSP staple, if any: status "none", "good", "revoked", "unknown"
 * or "unusable", and a detail line (may be ""). */
struct probe_ocsp {
    const char *status;
    char detail[256];
};
void nl_probe_ocsp(SSL *ssl, struct probe_ocsp *o);
/* Whether the layer's peer certificate verified, with OpenSSL's words. */
struct probe_verdict {
    bool checked;            /* verify is on for this layer */
    bool have_cert;          /* the peer sent a certificate */
    long code;               /* X509_V_OK or the first error */
    const char *reason;      /* X509_verify_cert_error_string(code) */
    bool ok;                 /* checked, have_cert and code == X509_V_OK */
};
void nl_probe_verdict(const struct probe_layer *l, struct probe_verdict *v);

/* probe_report.c / probe_json.c */
void nl_probe_report_text(FILE *out, const struct probe *p);
void nl_probe_report_json(FILE *out, const struct probe *p);

#endif
