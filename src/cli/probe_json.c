/* `nestls probe --json`: the same facts as probe_report.c, as one JSON
 * document (docs/json.md, "probe"). */
#include <string.h>

#include "cli/json.h"
#include "cli/probe.h"

static const char *state_name(enum probe_state s)
{
    return s == PROBE_UP ? "up" : s == PROBE_FAILED ? "failed" : "not_started";
}

static void json_san(const char *san, void *arg)
{
    nl_json_str(arg, NULL, san);
}

static void json_chain(struct nl_json *j, SSL *ssl)
{
    STACK_OF(X509) *chain = ssl ? SSL_get_peer_cert_chain(ssl) : NULL;
    char buf[1024];
    nl_json_array(j, "chain");
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *cert = sk_X509_value(chain, i);
        nl_json_object(j, NULL);
        nl_json_int(j, "depth", i);
        nl_json_str(j, "subject", nl_tls_name_text(X509_get_subject_name(cert), buf, sizeof(buf)));
        nl_json_str(j, "issuer", nl_tls_name_text(X509_get_issuer_name(cert), buf, sizeof(buf)));
        nl_json_array(j, "san");
        nl_probe_each_san(cert, json_san, j);
        nl_json_end_array(j);
        nl_json_str(j, "not_before", nl_tls_time_text(X509_get0_notBefore(cert), buf, sizeof(buf)));
        nl_json_str(j, "not_after", nl_tls_time_text(X509_get0_notAfter(cert), buf, sizeof(buf)));
        nl_json_end_object(j);
    }
    nl_json_end_array(j);
}

static void json_verification(struct nl_json *j, const struct probe_layer *l)
{
    struct probe_verdict v;
    nl_probe_verdict(l, &v);
    nl_json_object(j, "verification");
    nl_json_bool(j, "enabled", v.checked);
    bool named = v.checked && l->verify_name[0] != '\0';
    nl_json_str(j, "name", named ? l->verify_name : NULL);
    nl_json_str(j, "name_type", !named ? NULL : l->verify_name_is_ip ? "ip" : "dns");
    nl_json_bool(j, "certificate_received", v.have_cert);
    nl_json_bool(j, "ok", v.ok);
    /* With verify off the layer has no trust anchors loaded: OpenSSL's
     * code would only say so, not whether the chain is good. */
    if (v.checked && v.have_cert)
        nl_json_int(j, "code", v.code);
    else
        nl_json_null(j, "code");
    nl_json_str(j, "result", !v.checked                        ? "not checked (verify is off)"
                             : l->state == PROBE_NOT_STARTED ? "not reached"
                             : !v.have_cert                  ? "no certificate received"
                                                             : v.reason);
    nl_json_end_object(j);
}

static void json_layer(struct nl_json *j, const struct probe *p, size_t i)
{
    const struct probe_layer *l = &p->l[i];
    SSL *ssl = l->ssl;
    const SSL_CIPHER *cipher = ssl ? SSL_get_current_cipher(ssl) : NULL;
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    char alpn_buf[256];
    if (ssl != NULL)
        SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    snprintf(alpn_buf, sizeof(alpn_buf), "%.*s", (int)alpn_len, alpn ? (const char *)alpn : "");
    struct probe_ocsp ocsp;
    nl_probe_ocsp(ssl, &ocsp);

    nl_json_object(j, NULL);
    nl_json_int(j, "index", (long long)i + 1);
    nl_json_str(j, "position", p->n == 1 ? "only" : nl_cli_layer_position(i, p->n));
    nl_json_str(j, "state", state_name(l->state));
    nl_json_str(j, "error", l->error[0] ? l->error : NULL);
    nl_json_str(j, "protocol", cipher ? SSL_get_version(ssl) : NULL);
    nl_json_str(j, "cipher", cipher ? SSL_CIPHER_get_name(cipher) : NULL);
    nl_json_str(j, "group", l->state == PROBE_UP ? nl_probe_group(ssl) : NULL);
    nl_json_str(j, "sni", ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL);
    json_verification(j, l);
    nl_json_str(j, "alpn", alpn_len > 0 ? alpn_buf : NULL);
    nl_json_bool(j, "resumed", ssl != NULL && SSL_session_reused(ssl));
    nl_json_object(j, "ocsp");
    nl_json_str(j, "status", ocsp.status);
    nl_json_str(j, "detail", ocsp.detail[0] ? ocsp.detail : NULL);
    nl_json_end_object(j);
    if (l->state == PROBE_NOT_STARTED)
        nl_json_null(j, "handshake_ms");
    else
        nl_json_num(j, "handshake_ms", l->ms);
    json_chain(j, ssl);
    nl_json_end_object(j);
}

static void json_target(struct nl_json *j, const struct probe *p)
{
    const struct nl_cli_target *t = &p->target;
    nl_json_object(j, "target");
    nl_json_str(j, "host", t->host);
    nl_json_str(j, "host_name", t->name);
    nl_json_int(j, "port", t->port);
    nl_json_str(j, "address", t->have_addr ? t->ip : NULL);
    nl_json_end_object(j);
}

void nl_probe_report_json(FILE *out, const struct probe *p)
{
    struct nl_json j;
    nl_json_init(&j, out);
    nl_json_object(&j, NULL);
    nl_json_str(&j, "error", p->error[0] ? p->error : NULL);
    nl_json_bool(&j, "verified", p->error[0] == '\0');
    json_target(&j, p);
    nl_json_str(&j, "source", p->from_layers ? "layers" : "policy");
    nl_json_str(&j, "policy", p->from_layers ? NULL : p->policy->path);
    if (p->rule != NULL && !p->from_layers) {
        nl_json_object(&j, "rule");
        nl_cli_json_rule_head(&j, p->rule, (size_t)(p->rule - p->policy->rules));
        nl_json_end_object(&j);
    } else {
        nl_json_null(&j, "rule");
    }
    nl_json_int(&j, "timeout_ms", p->timeout_ms);
    if (p->connected)
        nl_json_num(&j, "connect_ms", p->connect_ms);
    else
        nl_json_null(&j, "connect_ms");
    nl_json_array(&j, "layers");
    for (size_t i = 0; i < p->n; i++)
        json_layer(&j, p, i);
    nl_json_end_array(&j);
    nl_json_end_object(&j);
    nl_json_finish(&j);
}
