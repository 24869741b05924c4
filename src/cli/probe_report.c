/* The probe's report for people: what was reached, then each layer,
 * outermost first, then the one-line result. */
#include <stdio.h>
#include <string.h>

#include "cli/probe.h"

/* The layer's negotiated protocol, or NULL before the peer's hello. */
static const char *protocol(SSL *ssl)
{
    return ssl != NULL && SSL_get_current_cipher(ssl) != NULL ? SSL_get_version(ssl) : NULL;
}

static const char *or_dash(const char *s)
{
    return s != NULL && *s != '\0' ? s : "-";
}

struct san_list {
    FILE *out;
    size_t n;
};

static void print_san(const char *san, void *arg)
{
    struct san_list *list = arg;
    fprintf(list->out, "%s%s", list->n++ > 0 ? ", " : "", san);
}

static void print_chain(FILE *out, SSL *ssl)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    char buf[1024];
    if (sk_X509_num(chain) <= 0) {
        fprintf(out, "  chain:      none received\n");
        return;
    }
    fprintf(out, "  chain:      as the peer sent it, its own certificate first\n");
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *cert = sk_X509_value(chain, i);
        fprintf(out, "    [%d] subject:    %s\n", i,
                nl_tls_name_text(X509_get_subject_name(cert), buf, sizeof(buf)));
        fprintf(out, "        issuer:     %s\n",
                nl_tls_name_text(X509_get_issuer_name(cert), buf, sizeof(buf)));
        struct san_list sans = {out, 0};
        fprintf(out, "        san:        ");
        nl_probe_each_san(cert, print_san, &sans);
        fprintf(out, "%s\n", sans.n == 0 ? "none" : "");
        fprintf(out, "        not before: %s\n",
                nl_tls_time_text(X509_get0_notBefore(cert), buf, sizeof(buf)));
        fprintf(out, "        not after:  %s\n",
                nl_tls_time_text(X509_get0_notAfter(cert), buf, sizeof(buf)));
    }
}

static void print_verify(FILE *out, const struct probe_layer *l, const struct probe_verdict *v)
{
    const char *kind = l->verify_name_is_ip ? "IP address" : "host name";
    if (!v->checked)
        fprintf(out, "  verify:     off (verify: false): the peer is not authenticated\n");
    else if (!v->have_cert)
        fprintf(out, "  verify:     not reached (no certificate received); %s %s\n", kind,
                l->verify_name);
    else if (v->ok)
        fprintf(out, "  verify:     ok, chain and %s %s\n", kind, l->verify_name);
    else
        fprintf(out, "  verify:     FAILED: %s (%s %s)\n", v->reason, kind, l->verify_name);
}

static void print_layer(FILE *out, const struct probe *p, size_t i)
{
    const struct probe_layer *l = &p->l[i];
    struct probe_verdict v;
    nl_probe_verdict(l, &v);
    fprintf(out, "layer %zu (%s): ", i + 1, nl_cli_layer_position(i, p->n));
    if (l->state == PROBE_NOT_STARTED) {
        fprintf(out, "not started\n");
        return;
    }
    if (l->state == PROBE_FAILED)
        fprintf(out, "FAILED: %s\n", l->error);
    else
        fprintf(out, "%s\n", v.ok ? "up, verified" : "up, NOT verified");
    if (l->ssl == NULL)
        return;

    SSL *ssl = l->ssl;
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    struct probe_ocsp ocsp;
    nl_probe_ocsp(ssl, &ocsp);
    fprintf(out, "  protocol:   %s\n", or_dash(protocol(ssl)));
    fprintf(out, "  cipher:     %s\n", or_dash(cipher ? SSL_CIPHER_get_name(cipher) : NULL));
    fprintf(out, "  group:      %s\n", or_dash(l->state == PROBE_UP ? nl_probe_group(ssl) : NULL));
    fprintf(out, "  sni:        %s\n",
            or_dash(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)));
    print_verify(out, l, &v);
    if (alpn_len > 0)
        fprintf(out, "  alpn:       %.*s\n", (int)alpn_len, (const char *)alpn);
    else
        fprintf(out, "  alpn:       none\n");
    fprintf(out, "  resumed:    %s\n", SSL_session_reused(ssl) ? "yes" : "no");
    fprintf(out, "  ocsp:       %s%s%s\n", ocsp.status, ocsp.detail[0] ? ": " : "", ocsp.detail);
    fprintf(out, "  handshake:  %.1f ms\n", l->ms);
    print_chain(out, ssl);
}

void nl_probe_report_text(FILE *out, const struct probe *p)
{
    const struct nl_cli_target *t = &p->target;
    if (p->connected)
        fprintf(out, "probe:    %s port %u, connected to %s in %.1f ms\n", t->host, t->port,
                t->ip, p->connect_ms);
    else
        fprintf(out, "probe:    %s port %u, not connected\n", t->host, t->port);
    if (p->from_layers)
        fprintf(out, "layers:   %zu from --layer, outermost first\n", p->rule->n_layers);
    else if (p->rule != NULL)
        fprintf(out, "layers:   rule %zu \"%s\" at %s:%d, %s\n",
                (size_t)(p->rule - p->policy->rules) + 1, p->rule->name, p->policy->path,
                p->rule->pos.line,
                p->rule->action == NL_ACTION_WRAP ? "outermost first"
                                                  : nl_action_name(p->rule->action));
    for (size_t i = 0; i < p->n; i++)
        print_layer(out, p, i);
    if (p->error[0] != '\0')
        fprintf(out, "result:   %s\n", p->error);
    else
        fprintf(out, "result:   every layer verified (%zu)\n", p->n);
}
