/* The probe's onion: on the TCP connection (probe_tcp.c), the client side
 * of each layer, outermost first. Each SSL reads and writes two memory BIOs; the
 * layer below carries them as application data (layer 0: the socket).
 * Handshakes run one after the other, as the library runs them: layer k
 * starts once layers 0..k-1 are up.
 *
 * It is a simple blocking program with one deadline for everything: it
 * polls the one socket, and never needs the library engine's care for
 * back-pressure (a handshake is a few kilobytes). Nothing is ever sent
 * as application data of the innermost layer. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "cli/probe.h"
#include "policy/tls_explain.h"

/* The first failure wins: later ones are its consequences. */
static int fail(struct probe *p, size_t layer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct probe *p, size_t layer, const char *fmt, ...)
{
    if (p->failed_layer >= 0)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->l[layer].error, sizeof(p->l[layer].error), fmt, ap);
    va_end(ap);
    p->l[layer].state = PROBE_FAILED;
    p->failed_layer = (int)layer;
    return -1;
}

/* The name or address the certificate must carry, set as the library
 * sets it (engine/onion.c): server_name, else the host name resolved,
 * else the address itself. SNI carries names only, never an IP. */
static int set_identity(struct probe *p, struct probe_layer *l)
{
    const char *name = l->cfg->server_name ? l->cfg->server_name : p->target.name;
    if (name == NULL)
        name = p->target.ip;
    unsigned char raw[16];
    l->verify_name_is_ip =
        inet_pton(AF_INET, name, raw) == 1 || inet_pton(AF_INET6, name, raw) == 1;
    if (!l->verify_name_is_ip && SSL_set_tlsext_host_name(l->ssl, name) != 1)
        return -1;
    if (!l->cfg->verify)
        return 0;
    snprintf(l->verify_name, sizeof(l->verify_name), "%s", name);
    SSL_set_hostflags(l->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (l->verify_name_is_ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(l->ssl), name) == 1 ? 0 : -1;
    return SSL_set1_host(l->ssl, name) == 1 ? 0 : -1;
}

static int new_layer(struct probe *p, size_t i)
{
    struct probe_layer *l = &p->l[i];
    l->ssl = SSL_new(l->cfg->client_ctx);
    if (l->ssl == NULL)
        return fail(p, i, "cannot create the TLS state: out of memory");
    l->in = BIO_new(BIO_s_mem());
    l->out = BIO_new(BIO_s_mem());
    if (l->in == NULL || l->out == NULL) {
        BIO_free(l->in);
        BIO_free(l->out);
        l->in = l->out = NULL;
        return fail(p, i, "cannot create the TLS buffers: out of memory");
    }
    /* An empty memory BIO means "no data yet", not end of file. */
    BIO_set_mem_eof_return(l->in, -1);
    BIO_set_mem_eof_return(l->out, -1);
    SSL_set_bio(l->ssl, l->in, l->out);
    /* Ask for a stapled OCSP response: the report shows it (the library
     * does not ask, so this is the one way the probe's hello differs). */
    SSL_set_tlsext_status_type(l->ssl, TLSEXT_STATUSTYPE_ocsp);
    if (set_identity(p, l) != 0)
        return fail(p, i, "cannot set the server name to send and verify");
    SSL_set_connect_state(l->ssl);
    return 0;
}

/* OpenSSL's reason for a failed handshake, in the library's words (the
 * same hints: which 'ca', 'crl' or 'ocsp' of the layer to look at); a
 * close_notify in the middle of the handshake is said as a probe sees it. */
static void describe_failure(struct probe_layer *l, int ssl_err, char *out, size_t len)
{
    if (ssl_err == SSL_ERROR_ZERO_RETURN && ERR_peek_last_error() == 0 &&
        SSL_get_verify_result(l->ssl) == X509_V_OK) {
        snprintf(out, len, "the peer closed the layer (close_notify) during the handshake");
        return;
    }
    nl_tls_describe_failure(l->ssl, ssl_err, l->cfg, NL_ROLE_CLIENT, out, len);
}

/* The socket failed under layer `top`'s handshake (errno says how). A
 * peer that gives up (stunnel that cannot reach its backend) resets. */
static int tcp_failed(struct probe *p, size_t top, const char *op)
{
    if (errno == ECONNRESET || errno == EPIPE)
        return fail(p, top, "the peer reset the TCP connection during the handshake");
    return fail(p, top, "TCP %s: %s", op, strerror(errno));
}

/* Drop n bytes from the front of a memory BIO (they were sent). */
static void consume(BIO *b, size_t n)
{
    unsigned char scratch[4096];
    while (n > 0) {
        int r = BIO_read(b, scratch, (int)(n < sizeof(scratch) ? n : sizeof(scratch)));
        if (r <= 0)
            break;
        n -= (size_t)r;
    }
}

/* Everything the started layers wrote, innermost first, down to the
 * socket: layer k's records are layer k-1's application data. */
static int flush(struct probe *p, size_t top, double deadline)
{
    unsigned char buf[16384];
    for (size_t k = top; k >= 1; k--) {
        int n;
        while ((n = BIO_read(p->l[k].out, buf, sizeof(buf))) > 0) {
            ERR_clear_error();
            /* A memory BIO takes every write whole. */
            int r = SSL_write(p->l[k - 1].ssl, buf, n);
            if (r != n) {
                char why[400];
                describe_failure(&p->l[k - 1], SSL_get_error(p->l[k - 1].ssl, r), why,
                                 sizeof(why));
                return fail(p, k - 1, "%s", why);
            }
        }
    }
    char *data;
    long pending;
    while ((pending = BIO_get_mem_data(p->l[0].out, &data)) > 0) {
        ssize_t n = send(p->fd, data, (size_t)pending, MSG_NOSIGNAL);
        if (n > 0) {
            consume(p->l[0].out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return tcp_failed(p, top, "send");
        if (nl_probe_wait_fd(p->fd, POLLOUT, deadline) <= 0)
            return fail(p, top, "handshake timed out after %u ms (sending)", p->timeout_ms);
    }
    return 0;
}

/* Bring more bytes into layer k's input, for the layer handshaking at
 * top: from the socket (k = 0), else by decrypting layer k-1. */
static int feed(struct probe *p, size_t k, size_t top, double deadline)
{
    unsigned char buf[16384];
    if (k == 0) {
        for (;;) {
            ssize_t n = recv(p->fd, buf, sizeof(buf), 0);
            if (n > 0) {
                BIO_write(p->l[0].in, buf, (int)n);
                return 0;
            }
            if (n == 0)
                return fail(p, top, "the peer closed the TCP connection during the handshake");
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return tcp_failed(p, top, "receive");
            if (nl_probe_wait_fd(p->fd, POLLIN, deadline) <= 0)
                return fail(p, top, "handshake timed out after %u ms", p->timeout_ms);
        }
    }
    struct probe_layer *below = &p->l[k - 1];
    for (;;) {
        ERR_clear_error();
        int r = SSL_read(below->ssl, buf, sizeof(buf));
        if (r > 0) {
            BIO_write(p->l[k].in, buf, r);
            return 0;
        }
        int err = SSL_get_error(below->ssl, r);
        if (err == SSL_ERROR_ZERO_RETURN)
            return fail(p, top, "the peer closed layer %zu (close_notify) during the handshake",
                        k);
        if (err != SSL_ERROR_WANT_READ) {
            char why[400];
            describe_failure(below, err, why, sizeof(why));
            return fail(p, k - 1, "%s", why);
        }
        /* Reading may have made the layer answer (a key update). */
        if (flush(p, k - 1, deadline) != 0 || feed(p, k - 1, top, deadline) != 0)
            return -1;
    }
}

static int handshake(struct probe *p, size_t k, double deadline)
{
    struct probe_layer *l = &p->l[k];
    double start = nl_probe_now_ms();
    if (new_layer(p, k) != 0)
        return -1;
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(l->ssl);
        int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(l->ssl, r);
        char why[400];
        if (r != 1 && err != SSL_ERROR_WANT_READ)
            describe_failure(l, err, why, sizeof(why)); /* before flush clears the queue */
        /* Send what it wrote, an alert on failure included. */
        if (flush(p, k, deadline) != 0)
            return -1;
        if (r == 1) {
            l->state = PROBE_UP;
            l->ms = nl_probe_now_ms() - start;
            return 0;
        }
        if (err != SSL_ERROR_WANT_READ) {
            l->ms = nl_probe_now_ms() - start;
            return fail(p, k, "%s", why);
        }
        if (feed(p, k, k, deadline) != 0) {
            l->ms = nl_probe_now_ms() - start;
            return -1;
        }
    }
}

int nl_probe_run(struct probe *p)
{
    double deadline = nl_probe_now_ms() + p->timeout_ms;
    p->fd = -1;
    p->failed_layer = -1;
    int rc = nl_probe_connect(p, deadline);
    /* The layers are known once the rule is, connected or not: the
     * report lists those that never started too. */
    if (p->rule != NULL && p->rule->action == NL_ACTION_WRAP) {
        p->n = p->rule->n_layers;
        for (size_t i = 0; i < p->n; i++)
            p->l[i].cfg = &p->rule->layers[i];
    }
    if (rc != 0)
        return -1;
    /* Not yet: the library's prelude lives in the engine. A handshake on
     * the plaintext greeting would only say "not TLS". */
    if (p->rule != NULL && p->rule->starttls != NL_STARTTLS_NONE) {
        snprintf(p->error, sizeof(p->error), "rule '%s' has starttls: %s, whose plaintext "
                 "prelude probe does not speak (openssl s_client -starttls %s shows the "
                 "outer layer)", p->rule->name, nl_starttls_name(p->rule->starttls),
                 nl_starttls_name(p->rule->starttls));
        return -1;
    }
    for (size_t i = 0; i < p->n; i++)
        if (handshake(p, i, deadline) != 0) {
            snprintf(p->error, sizeof(p->error), "layer %d: %s", p->failed_layer + 1,
                     p->l[p->failed_layer].error);
            return -1;
        }
    return 0;
}

void nl_probe_free(struct probe *p)
{
    for (size_t i = 0; i < NL_MAX_LAYERS; i++) {
        SSL_free(p->l[i].ssl); /* frees its BIOs */
        p->l[i].ssl = NULL;
    }
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    nl_policy_free(p->policy);
    p->policy = NULL;
}
