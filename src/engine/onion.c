/* The onion of TLS layers: see onion.h for the byte flow. */
#include "engine/onion.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "engine/sessions.h"
#include "engine/tls_error.h"

/* TLS's largest record payload, and what each layer adds around a record
 * (header, explicit nonce, tag, padding for the CBC suites a policy may
 * allow). Inner layers use smaller fragments so one inner record always
 * fits inside one outer record. */
#define TLS_MAX_FRAGMENT 16384
#define LAYER_OVERHEAD 128
#define TLS_HEADER 5

static size_t fragment_for(size_t layer)
{
    return TLS_MAX_FRAGMENT - LAYER_OVERHEAD * layer;
}

size_t nl_onion_fragment(size_t layer)
{
    return fragment_for(layer);
}

static int set_peer_identity(SSL *ssl, const struct nl_layer *cfg, const char *peer_name,
                             const struct sockaddr *peer_addr)
{
    const char *name = cfg->server_name ? cfg->server_name : peer_name;
    if (name != NULL) {
        /* SNI carries host names only, never IP literals (RFC 6066). */
        struct in6_addr probe;
        bool is_ip = inet_pton(AF_INET, name, &probe) == 1 || inet_pton(AF_INET6, name, &probe) == 1;
        if (!is_ip && SSL_set_tlsext_host_name(ssl, name) != 1)
            return -1;
        if (cfg->verify) {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (is_ip)
                return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 ? 0 : -1;
            return SSL_set1_host(ssl, name) == 1 ? 0 : -1;
        }
        return 0;
    }
    if (!cfg->verify || peer_addr == NULL)
        return 0;
    /* No name known: the certificate must carry the peer's IP address. An
     * IPv4-mapped IPv6 address (a dual-stack socket) is the IPv4 address
     * its certificate names. */
    char ip[INET6_ADDRSTRLEN];
    int family = peer_addr->sa_family;
    const void *a = family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)peer_addr)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)peer_addr)->sin6_addr;
    if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
        family = AF_INET;
        a = (const unsigned char *)a + 12;
    }
    if (inet_ntop(family, a, ip, sizeof(ip)) == NULL)
        return -1;
    return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) == 1 ? 0 : -1;
}

int nl_onion_init(struct nl_onion *o, const struct nl_rule *rule, enum nl_role role,
                  const char *peer_name, const struct sockaddr *peer_addr)
{
    memset(o, 0, sizeof(*o));
    o->rule = rule;
    o->role = role;
    o->cap = NL_ONION_CAP;
    o->failed_layer = -1;
    for (size_t i = 0; i < rule->n_layers; i++) {
        const struct nl_layer *cfg = &rule->layers[i];
        SSL_CTX *ctx = role == NL_ROLE_CLIENT ? cfg->client_ctx : cfg->server_ctx;
        struct nl_onion_layer *l = &o->l[i];
        if (ctx == NULL)
            goto fail;
        l->ssl = SSL_new(ctx);
        l->rbio = BIO_new(BIO_s_mem());
        l->wbio = BIO_new(BIO_s_mem());
        if (l->ssl == NULL || l->rbio == NULL || l->wbio == NULL) {
            BIO_free(l->rbio);
            BIO_free(l->wbio);
            l->rbio = l->wbio = NULL;
            goto fail;
        }
        /* An empty memory BIO means "no data yet", not EOF. */
        BIO_set_mem_eof_return(l->rbio, -1);
        BIO_set_mem_eof_return(l->wbio, -1);
        SSL_set_bio(l->ssl, l->rbio, l->wbio);
        o->n = i + 1;
        if (SSL_set_max_send_fragment(l->ssl, (long)fragment_for(i)) != 1)
            goto fail;
        if (role == NL_ROLE_CLIENT) {
            if (set_peer_identity(l->ssl, cfg, peer_name, peer_addr) != 0)
                goto fail;
            nl_sessions_prepare(l->ssl, i, cfg->server_name ? cfg->server_name : peer_name,
                                peer_addr);
            SSL_set_connect_state(l->ssl);
        } else {
            SSL_set_accept_state(l->ssl);
        }
    }
    return 0;
fail:
    nl_onion_free(o);
    return -1;
}

void nl_onion_free(struct nl_onion *o)
{
    for (size_t i = 0; i < o->n; i++) {
        if (o->l[i].ssl)
            SSL_free(o->l[i].ssl); /* frees both BIOs */
        o->l[i].ssl = NULL;
    }
    o->n = 0;
}

void nl_onion_limit(struct nl_onion *o, size_t bytes)
{
    o->cap = bytes < NL_ONION_MIN_CAP ? NL_ONION_MIN_CAP : bytes > NL_ONION_CAP ? NL_ONION_CAP : bytes;
}

static size_t pending(BIO *b)
{
    return (size_t)BIO_ctrl_pending(b);
}

size_t nl_onion_net_in_room(const struct nl_onion *o)
{
    size_t p = pending(o->l[0].rbio);
    return p >= o->cap ? 0 : o->cap - p;
}

void nl_onion_feed_net(struct nl_onion *o, const void *buf, size_t len)
{
    if (len > 0)
        BIO_write(o->l[0].rbio, buf, (int)len);
}

size_t nl_onion_net_out_pending(const struct nl_onion *o)
{
    return pending(o->l[0].wbio);
}

/* Take as many whole TLS records from a layer's output as fit in max bytes,
 * so that each write into the layer below carries whole inner records. */
static size_t take_records(BIO *b, unsigned char *buf, size_t max)
{
    char *data;
    long avail = BIO_get_mem_data(b, &data);
    if (avail <= 0)
        return 0;
    size_t have = (size_t)avail, take = 0;
    while (take + TLS_HEADER <= have) {
        const unsigned char *h = (const unsigned char *)data + take;
        size_t rec = TLS_HEADER + ((size_t)h[3] << 8 | h[4]);
        if (take + rec > have || take + rec > max)
            break;
        take += rec;
    }
    if (take == 0)
        take = have < max ? have : max;
    return (size_t)BIO_read(b, buf, (int)take);
}

size_t nl_onion_take_net_out(struct nl_onion *o, void *buf, size_t cap)
{
    int n = BIO_read(o->l[0].wbio, buf, (int)(cap > (size_t)INT32_MAX ? INT32_MAX : cap));
    return n > 0 ? (size_t)n : 0;
}

size_t nl_onion_net_out_peek(struct nl_onion *o, const unsigned char **data)
{
    char *p;
    long n = BIO_get_mem_data(o->l[0].wbio, &p);
    *data = (const unsigned char *)p;
    return n > 0 ? (size_t)n : 0;
}

void nl_onion_net_out_consume(struct nl_onion *o, size_t n)
{
    BIO *b = o->l[0].wbio;
    unsigned char scratch[TLS_MAX_FRAGMENT];
    while (n > 0) {
        int r = BIO_read(b, scratch, (int)(n < sizeof(scratch) ? n : sizeof(scratch)));
        if (r <= 0)
            break;
        n -= (size_t)r;
    }
}

static void fail_layer(struct nl_onion *o, size_t i, int ssl_err)
{
    if (o->failed_layer >= 0)
        return;
    o->failed_layer = (int)i;
    o->fail_errno = nl_tls_describe_failure(o->l[i].ssl, ssl_err, &o->rule->layers[i], o->role,
                                            o->fail_reason, sizeof(o->fail_reason));
}

/* Move layer i's output (i >= 1) into layer i-1 as application data.
 * force: ignore the back-pressure cap (used when closing). */
static int wrap_outward(struct nl_onion *o, size_t i, bool force)
{
    int moved = 0;
    unsigned char buf[TLS_MAX_FRAGMENT];
    struct nl_onion_layer *below = &o->l[i - 1];
    while (below->up && !below->sent_close && pending(o->l[i].wbio) > 0 &&
           (force || pending(below->wbio) < o->cap)) {
        size_t n = take_records(o->l[i].wbio, buf, fragment_for(i - 1));
        if (n == 0)
            break;
        nl_err_clear();
        int err;
        /* A memory BIO takes every write: anything but DONE is a failure. */
        if (nl_tls_result(below->ssl, SSL_write(below->ssl, buf, (int)n), &err) != NL_TLS_DONE) {
            fail_layer(o, i - 1, err);
            return -1;
        }
        moved = 1;
    }
    return moved;
}

/* Layer i is up: decrypt its records into layer i+1's input. */
static int peel_inward(struct nl_onion *o, size_t i)
{
    int moved = 0;
    unsigned char buf[TLS_MAX_FRAGMENT];
    struct nl_onion_layer *l = &o->l[i];
    while (!l->peer_closed && pending(o->l[i + 1].rbio) < o->cap) {
        nl_err_clear();
        int r = SSL_read(l->ssl, buf, sizeof(buf)), err;
        switch (nl_tls_result(l->ssl, r, &err)) {
        case NL_TLS_DONE:
            BIO_write(o->l[i + 1].rbio, buf, r);
            moved = 1;
            continue;
        case NL_TLS_WANT:
            return moved;
        case NL_TLS_PEER_CLOSED:
            l->peer_closed = true;
            return 1;
        case NL_TLS_FAILED:
            fail_layer(o, i, err);
            return -1;
        }
    }
    return moved;
}

static int advance_handshake(struct nl_onion *o, size_t i)
{
    struct nl_onion_layer *l = &o->l[i];
    nl_err_clear();
    int err;
    switch (nl_tls_result(l->ssl, SSL_do_handshake(l->ssl), &err)) {
    case NL_TLS_DONE:
        l->up = true;
        return 1;
    case NL_TLS_WANT:
        return 0;
    default: /* a close_notify during the handshake is a failure too */
        fail_layer(o, i, err);
        return -1;
    }
}

/* One pass over the layers: handshakes and decryption outermost first,
 * then each layer's output wrapped into the layer below, innermost first
 * (so records reach the network in order). 1: something moved, 0:
 * nothing, -1: a layer failed. */
static int pump_once(struct nl_onion *o)
{
    int progress = 0;
    for (size_t i = 0; i < o->n; i++) {
        if (i > 0 && !o->l[i - 1].up)
            break;
        if (!o->l[i].up) {
            int r = advance_handshake(o, i);
            if (r < 0)
                return -1;
            progress |= r;
            if (!o->l[i].up)
                break;
        }
        if (i + 1 < o->n) {
            int r = peel_inward(o, i);
            if (r < 0)
                return -1;
            progress |= r;
        }
    }
    for (size_t i = o->n - 1; i >= 1; i--) {
        int r = wrap_outward(o, i, false);
        if (r < 0)
            return -1;
        progress |= r;
    }
    return progress;
}

/* Liveness: the pump returns only when a whole pass moved nothing, never
 * after a fixed number of passes. So when it returns, every byte inside
 * is either in l[0].wbio (the caller's to send), or decrypted for the
 * program (read_plain), or waits for more network input, or waits on a
 * cap: a layer's input full (released by read_plain, which pumps again)
 * or a layer's output full (released by sending l[0].wbio, after which
 * the caller pumps again). It terminates: every pass that moves something
 * consumes bytes already inside, and no pass creates input. */
int nl_onion_pump(struct nl_onion *o)
{
    if (o->failed_layer >= 0)
        return -1;
    int r;
    while ((r = pump_once(o)) > 0)
        ;
    return r < 0 ? -1 : 0;
}

size_t nl_onion_held_out(const struct nl_onion *o)
{
    size_t held = 0;
    for (size_t i = 0; i < o->n; i++)
        held += pending(o->l[i].wbio);
    return held;
}

size_t nl_onion_held_plain(const struct nl_onion *o)
{
    if (o->n == 0 || !o->l[o->n - 1].up)
        return 0;
    int n = SSL_pending(o->l[o->n - 1].ssl);
    return n > 0 ? (size_t)n : 0;
}

void nl_onion_dump(const struct nl_onion *o, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < o->n && used < len; i++) {
        const struct nl_onion_layer *l = &o->l[i];
        int n = snprintf(out + used, len - used,
                         "%slayer %zu%s%s%s: in %zu B, decrypted %d B, out %zu B", i ? "; " : "",
                         i + 1, l->up ? "" : " (handshaking)", l->peer_closed ? " (peer closed)" : "",
                         l->sent_close ? " (closed)" : "", pending(l->rbio), SSL_pending(l->ssl),
                         pending(l->wbio));
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

bool nl_onion_up(const struct nl_onion *o)
{
    return o->n > 0 && o->l[o->n - 1].up;
}

size_t nl_onion_handshaking_layer(const struct nl_onion *o)
{
    for (size_t i = 0; i < o->n; i++)
        if (!o->l[i].up)
            return i;
    return o->n;
}

bool nl_onion_can_take_plain(const struct nl_onion *o)
{
    if (!nl_onion_up(o) || o->l[o->n - 1].sent_close)
        return false;
    /* Every layer between the program and the network must have room. */
    for (size_t i = 0; i < o->n; i++)
        if (pending(o->l[i].wbio) >= o->cap)
            return false;
    return true;
}

size_t nl_onion_plain_chunk(const struct nl_onion *o)
{
    return fragment_for(o->n - 1);
}

int nl_onion_write_plain(struct nl_onion *o, const void *buf, size_t len)
{
    struct nl_onion_layer *in = &o->l[o->n - 1];
    nl_err_clear();
    int err;
    if (nl_tls_result(in->ssl, SSL_write(in->ssl, buf, (int)len), &err) != NL_TLS_DONE) {
        fail_layer(o, o->n - 1, err);
        return -1;
    }
    return nl_onion_pump(o);
}

static ssize_t take_plain(struct nl_onion *o, void *buf, size_t cap, bool peek)
{
    struct nl_onion_layer *in = &o->l[o->n - 1];
    if (!in->up || in->peer_closed)
        return 0;
    int len = (int)(cap > TLS_MAX_FRAGMENT ? TLS_MAX_FRAGMENT : cap);
    int r, err;
    enum nl_tls_result res;
    for (;;) {
        nl_err_clear();
        r = peek ? SSL_peek(in->ssl, buf, len) : SSL_read(in->ssl, buf, len);
        res = nl_tls_result(in->ssl, r, &err);
        if (res == NL_TLS_DONE)
            return r;
        if (res != NL_TLS_WANT)
            break;
        /* The pump may peel more of the outer layers into this one (it
         * stops at the cap), and reading may have produced output (a
         * key update answer). Only "nothing more arrived inside" means
         * "nothing to read now": the engine takes it as "everything
         * delivered" when the connection is cut. */
        size_t before = pending(in->rbio);
        if (nl_onion_pump(o) < 0)
            return -1;
        if (pending(in->rbio) <= before)
            return 0;
    }
    if (res == NL_TLS_PEER_CLOSED) {
        in->peer_closed = true;
        return 0;
    }
    fail_layer(o, o->n - 1, err);
    return -1;
}

ssize_t nl_onion_read_plain(struct nl_onion *o, void *buf, size_t cap)
{
    return take_plain(o, buf, cap, false);
}

ssize_t nl_onion_peek_plain(struct nl_onion *o, void *buf, size_t cap)
{
    return take_plain(o, buf, cap, true);
}

void nl_onion_consume_plain(struct nl_onion *o, size_t n)
{
    unsigned char scratch[TLS_MAX_FRAGMENT];
    while (n > 0) {
        ssize_t r = take_plain(o, scratch, n < sizeof(scratch) ? n : sizeof(scratch), false);
        if (r <= 0)
            break;
        n -= (size_t)r;
    }
}

/* A memory BIO keeps the largest buffer it ever needed. An idle
 * connection swaps empty, grown BIOs for fresh ones, so its memory goes
 * back to a few hundred bytes per layer. */
#define TRIM_ABOVE 4096

static BIO *fresh_if_grown(BIO *b)
{
    BUF_MEM *mem = NULL;
    if (pending(b) != 0 || BIO_get_mem_ptr(b, &mem) <= 0 || mem == NULL || mem->max <= TRIM_ABOVE)
        return NULL;
    BIO *fresh = BIO_new(BIO_s_mem());
    if (fresh != NULL)
        BIO_set_mem_eof_return(fresh, -1);
    return fresh;
}

void nl_onion_release_records(struct nl_onion *o)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->l[i].up)
            SSL_free_buffers(o->l[i].ssl); /* refuses while it holds data */
}

void nl_onion_trim(struct nl_onion *o)
{
    for (size_t i = 0; i < o->n; i++) {
        struct nl_onion_layer *l = &o->l[i];
        if (l->up)
            SSL_free_buffers(l->ssl); /* refuses while it holds data */
        BIO *r = fresh_if_grown(l->rbio);
        if (r != NULL) {
            SSL_set0_rbio(l->ssl, r); /* frees the old one */
            l->rbio = r;
        }
        BIO *w = fresh_if_grown(l->wbio);
        if (w != NULL) {
            SSL_set0_wbio(l->ssl, w);
            l->wbio = w;
        }
    }
}

bool nl_onion_inner_eof(const struct nl_onion *o)
{
    return o->n > 0 && o->l[o->n - 1].peer_closed;
}

bool nl_onion_outer_cut(const struct nl_onion *o)
{
    for (size_t i = 0; i + 1 < o->n; i++)
        if (o->l[i].peer_closed && !o->l[o->n - 1].peer_closed)
            return true;
    return false;
}

static void send_close_notify(struct nl_onion *o, size_t i)
{
    struct nl_onion_layer *l = &o->l[i];
    if (!l->up || l->sent_close)
        return;
    nl_err_clear();
    SSL_shutdown(l->ssl);
    l->sent_close = true;
}

void nl_onion_close_inner(struct nl_onion *o)
{
    send_close_notify(o, o->n - 1);
    nl_onion_pump(o);
}

/* Wrap whatever layers top..1 hold into the layers below them. */
static int flush_outward_from(struct nl_onion *o, size_t top)
{
    for (size_t j = top; j >= 1; j--)
        if (wrap_outward(o, j, true) < 0)
            return -1;
    return 0;
}

void nl_onion_close_all(struct nl_onion *o)
{
    /* Each layer's close_notify must be wrapped by the layer below before
     * that layer sends its own: innermost first, flushing outward. */
    for (size_t i = o->n; i-- > 0;) {
        if (flush_outward_from(o, i) < 0)
            return;
        send_close_notify(o, i);
        if (flush_outward_from(o, i) < 0)
            return;
    }
}

void nl_onion_describe(const struct nl_onion *o, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < o->n && used < len; i++) {
        SSL *ssl = o->l[i].ssl;
        char subject[256] = "-";
        X509 *peer = SSL_get1_peer_certificate(ssl);
        if (peer != NULL) {
            nl_tls_subject_text(peer, subject, sizeof(subject));
            X509_free(peer);
        }
        /* Client role: the name this layer sent; server role: the one the
         * client sent. */
        const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        char verified[300];
        nl_tls_verified(ssl, &o->rule->layers[i], o->role, verified, sizeof(verified));
        const unsigned char *alpn = NULL;
        unsigned alpn_len = 0;
        SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
        /* A server layer with several certificates: the one SNI chose. */
        char own[300] = "";
        X509 *mine = o->role == NL_ROLE_SERVER && o->rule->layers[i].n_certs > 1
                         ? SSL_get_certificate(ssl) : NULL;
        if (mine != NULL) {
            char name[256];
            nl_tls_subject_text(mine, name, sizeof(name));
            snprintf(own, sizeof(own), " cert \"%s\"", name);
        }
        int n = snprintf(out + used, len - used,
                         "%slayer %zu %s %s sni %s peer \"%s\" verified %s alpn %.*s%s%s",
                         i ? "; " : "", i + 1, SSL_get_version(ssl), SSL_get_cipher_name(ssl),
                         sni != NULL ? sni : "-", subject, verified,
                         alpn_len ? (int)alpn_len : 1, alpn_len ? (const char *)alpn : "-", own,
                         SSL_session_reused(ssl) ? " resumed" : "");
        if (n < 0)
            break;
        used += (size_t)n;
    }
}
