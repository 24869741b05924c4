/* The onion in memory: a client stack and a server stack of N layers wired
 * back to back with no sockets, to prove the byte flow (peel outermost
 * first, wrap innermost first), the close rules and the failure reports
 * deterministically. Certificates come from $NESTLS_CERTS (default certs/). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/buffer.h>

#include "engine/onion.h"
#include "unit.h"

static char certs[PATH_MAX];
static char tmpdir[] = "/tmp/nestls-onion-XXXXXX";

/* Write a policy with one client and one server rule of n layers each;
 * layer i uses the outer PKI when i is even, the inner one when odd. The
 * client's inner CA may be swapped to provoke a verification failure. */
static struct nl_policy *policy_with_layers(size_t n, const char *client_inner_ca)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/p%zu.yaml", tmpdir, n);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return NULL;
    fprintf(f, "version: 1\nrules:\n  - name: srv\n    match: {role: server}\n    layers:\n");
    for (size_t i = 0; i < n; i++) {
        const char *pki = i % 2 ? "inner" : "outer";
        fprintf(f, "      - {cert: %s/%s-server.pem, key: %s/%s-server.key}\n", certs, pki, certs, pki);
    }
    fprintf(f, "  - name: cli\n    match: {role: client}\n    layers:\n");
    for (size_t i = 0; i < n; i++) {
        const char *ca = i % 2 ? (client_inner_ca ? client_inner_ca : "inner-ca.pem") : "outer-ca.pem";
        fprintf(f, "      - {ca: %s/%s, server_name: localhost}\n", certs, ca);
    }
    fclose(f);
    struct nl_policy *p = NULL;
    char err[NL_ERR_MAX];
    if (nl_policy_load(path, &p, err, sizeof(err)) != 0) {
        printf("# policy: %s\n", err);
        return NULL;
    }
    return p;
}

/* Move network bytes between the stacks, chunk bytes at a time. */
static int shuttle(struct nl_onion *from, struct nl_onion *to, size_t chunk)
{
    unsigned char buf[65536];
    int moved = 0;
    if (chunk > sizeof(buf))
        chunk = sizeof(buf);
    while (nl_onion_net_out_pending(from) > 0 && nl_onion_net_in_room(to) > 0) {
        size_t room = nl_onion_net_in_room(to);
        size_t n = nl_onion_take_net_out(from, buf, chunk < room ? chunk : room);
        if (n == 0)
            break;
        nl_onion_feed_net(to, buf, n);
        moved = 1;
    }
    return moved;
}

static int step(struct nl_onion *c, struct nl_onion *s, size_t chunk)
{
    if (nl_onion_pump(c) < 0 || nl_onion_pump(s) < 0)
        return -1;
    return shuttle(c, s, chunk) | shuttle(s, c, chunk);
}

static bool connect_pair(struct nl_policy *p, struct nl_onion *c, struct nl_onion *s, size_t chunk)
{
    if (nl_onion_init(s, &p->rules[0], NL_ROLE_SERVER, NULL, NULL) != 0 ||
        nl_onion_init(c, &p->rules[1], NL_ROLE_CLIENT, "localhost", NULL) != 0)
        return false;
    for (int i = 0; i < 10000 && !(nl_onion_up(c) && nl_onion_up(s)); i++)
        if (step(c, s, chunk) < 0)
            return false;
    return nl_onion_up(c) && nl_onion_up(s);
}

/* Send len pattern bytes from one stack to the other; true when every byte
 * arrives in order. */
static bool transfer(struct nl_onion *from, struct nl_onion *to, size_t len, size_t chunk)
{
    unsigned char out[16384], in[16384];
    size_t sent = 0, got = 0;
    for (int rounds = 0; rounds < 1000000 && got < len; rounds++) {
        while (sent < len && nl_onion_can_take_plain(from)) {
            size_t n = len - sent < sizeof(out) ? len - sent : sizeof(out);
            for (size_t i = 0; i < n; i++)
                out[i] = (unsigned char)((sent + i) * 31 + 7);
            if (nl_onion_write_plain(from, out, n) < 0)
                return false;
            sent += n;
        }
        if (step(from, to, chunk) < 0)
            return false;
        ssize_t r;
        while ((r = nl_onion_read_plain(to, in, sizeof(in))) > 0) {
            for (ssize_t i = 0; i < r; i++)
                if (in[i] != (unsigned char)((got + (size_t)i) * 31 + 7))
                    return false;
            got += (size_t)r;
        }
        if (r < 0)
            return false;
    }
    return got == len;
}

/* limit: 0, or what nl_onion_limit gets on both sides once they are up
 * (a program that shrank its socket buffers). */
static void layers_nest_limited(size_t n, size_t chunk, size_t limit)
{
    struct nl_policy *p = policy_with_layers(n, NULL);
    CHECK(p != NULL, "policy with %zu layers did not load", n);
    struct nl_onion c, s;
    bool up = connect_pair(p, &c, &s, chunk);
    CHECK_SOFT(up, "%zu layers: handshake did not complete (client failed at layer %d: %s)", n,
               c.failed_layer + 1, c.fail_reason);
    if (up && limit > 0) {
        nl_onion_limit(&c, limit);
        nl_onion_limit(&s, limit);
    }
    if (up) {
        CHECK_SOFT(transfer(&c, &s, 1 << 20, chunk), "%zu layers: client->server bytes differ", n);
        CHECK_SOFT(transfer(&s, &c, 300000, chunk), "%zu layers: server->client bytes differ", n);
    }
    nl_onion_free(&c);
    nl_onion_free(&s);
    nl_policy_free(p);
}

static void layers_nest_for(size_t n, size_t chunk) { layers_nest_limited(n, chunk, 0); }

static void one_layer_carries_bytes_both_ways(void) { layers_nest_for(1, 65536); }
static void two_layers_carry_bytes_both_ways(void) { layers_nest_for(2, 65536); }
static void three_layers_with_tiny_network_chunks(void) { layers_nest_for(3, 7); }
static void eight_layers_carry_bytes_both_ways(void) { layers_nest_for(8, 4096); }
/* At the smallest limit (a program's 4 KiB buffers) bytes still flow
 * through three layers, whatever the segmentation. */
static void smallest_limit_carries_bytes_in_big_chunks(void) { layers_nest_limited(3, 65536, 1); }
static void smallest_limit_carries_bytes_in_tiny_chunks(void) { layers_nest_limited(3, 7, 1); }

static void close_all_gives_the_peer_a_clean_eof(void)
{
    struct nl_policy *p = policy_with_layers(2, NULL);
    CHECK(p != NULL, "policy did not load");
    struct nl_onion c, s;
    bool up = connect_pair(p, &c, &s, 65536);
    CHECK_SOFT(up, "handshake did not complete");
    if (up) {
        nl_onion_close_all(&c);
        unsigned char junk[64];
        for (int i = 0; i < 100 && !nl_onion_inner_eof(&s); i++) {
            step(&c, &s, 65536);
            nl_onion_read_plain(&s, junk, sizeof(junk));
        }
        CHECK_SOFT(nl_onion_inner_eof(&s), "server never saw the innermost close_notify");
        CHECK_SOFT(!nl_onion_outer_cut(&s), "a clean close looked like a cut");
    }
    nl_onion_free(&c);
    nl_onion_free(&s);
    nl_policy_free(p);
}

static void outer_close_before_inner_is_a_cut(void)
{
    struct nl_policy *p = policy_with_layers(2, NULL);
    CHECK(p != NULL, "policy did not load");
    struct nl_onion c, s;
    bool up = connect_pair(p, &c, &s, 65536);
    CHECK_SOFT(up, "handshake did not complete");
    if (up) {
        /* close_notify on the outer layer only: the inner stream is cut. */
        SSL_shutdown(c.l[0].ssl);
        c.l[0].sent_close = true;
        unsigned char junk[64];
        for (int i = 0; i < 100 && !nl_onion_outer_cut(&s); i++) {
            step(&c, &s, 65536);
            nl_onion_read_plain(&s, junk, sizeof(junk));
        }
        CHECK_SOFT(nl_onion_outer_cut(&s), "outer close_notify before inner was not seen as a cut");
        CHECK_SOFT(!nl_onion_inner_eof(&s), "inner stream reported a clean EOF");
    }
    nl_onion_free(&c);
    nl_onion_free(&s);
    nl_policy_free(p);
}

static void untrusted_inner_layer_fails_at_layer_two(void)
{
    struct nl_policy *p = policy_with_layers(2, "unknown-ca.pem");
    CHECK(p != NULL, "policy did not load");
    struct nl_onion c, s;
    bool up = connect_pair(p, &c, &s, 65536);
    CHECK_SOFT(!up, "handshake succeeded against an untrusted inner CA");
    CHECK_SOFT(c.failed_layer == 1, "failed at layer %d, wanted 2", c.failed_layer + 1);
    CHECK_SOFT(c.fail_errno == EACCES, "errno %d, wanted EACCES", c.fail_errno);
    CHECK_SOFT(strstr(c.fail_reason, "certificate verify failed") != NULL, "reason: %s", c.fail_reason);
    nl_onion_free(&c);
    nl_onion_free(&s);
    nl_policy_free(p);
}

static void inner_records_fit_in_one_outer_record(void)
{
    struct nl_policy *p = policy_with_layers(3, NULL);
    CHECK(p != NULL, "policy did not load");
    struct nl_onion c, s;
    bool up = connect_pair(p, &c, &s, 65536);
    CHECK_SOFT(up, "handshake did not complete");
    if (up) {
        /* Encrypt 64 KiB on the innermost layer alone and read the record
         * headers it produced: each must fit in one record of the layer
         * outside it (payload plus the outer layer's own overhead). */
        static unsigned char plain[65536];
        int w = SSL_write(c.l[2].ssl, plain, sizeof(plain));
        CHECK_SOFT(w == (int)sizeof(plain), "SSL_write on layer 3 returned %d", w);
        char *data;
        long avail = BIO_get_mem_data(c.l[2].wbio, &data);
        size_t records = 0, biggest = 0;
        for (long off = 0; off + 5 <= avail; records++) {
            size_t rec = 5 + ((size_t)(unsigned char)data[off + 3] << 8 | (unsigned char)data[off + 4]);
            if (rec > biggest)
                biggest = rec;
            off += (long)rec;
        }
        CHECK_SOFT(records >= 4, "only %zu records for 64 KiB", records);
        CHECK_SOFT(biggest <= nl_onion_fragment(1), "a layer-3 record of %zu bytes exceeds layer 2's fragment %zu",
                   biggest, nl_onion_fragment(1));
    }
    nl_onion_free(&c);
    nl_onion_free(&s);
    nl_policy_free(p);
}

static size_t bio_capacity(BIO *b)
{
    BUF_MEM *mem = NULL;
    BIO_get_mem_ptr(b, &mem);
    return mem ? mem->max : 0;
}

static void idle_trim_gives_buffers_back(void)
{
    struct nl_policy *p = policy_with_layers(2, NULL);
    CHECK(p != NULL, "policy did not load");
    struct nl_onion c, s;
    bool up = connect_pair(p, &c, &s, 65536);
    CHECK_SOFT(up, "handshake did not complete");
    if (up) {
        CHECK_SOFT(transfer(&c, &s, 1 << 20, 65536), "transfer failed");
        size_t before = 0, after = 0;
        for (size_t i = 0; i < 2; i++)
            before += bio_capacity(s.l[i].rbio) + bio_capacity(c.l[i].wbio);
        nl_onion_trim(&c);
        nl_onion_trim(&s);
        for (size_t i = 0; i < 2; i++)
            after += bio_capacity(s.l[i].rbio) + bio_capacity(c.l[i].wbio);
        CHECK_SOFT(before > 16384, "the transfer never grew the buffers (%zu)", before);
        CHECK_SOFT(after <= 4 * 4096, "idle buffers hold %zu bytes after trim (were %zu)", after, before);
        CHECK_SOFT(transfer(&s, &c, 100000, 65536), "no transfer after a trim");
    }
    nl_onion_free(&c);
    nl_onion_free(&s);
    nl_policy_free(p);
}

int main(void)
{
    if (!unit_certs_and_tmpdir(certs, tmpdir))
        return 1;
    RUN(one_layer_carries_bytes_both_ways);
    RUN(two_layers_carry_bytes_both_ways);
    RUN(three_layers_with_tiny_network_chunks);
    RUN(eight_layers_carry_bytes_both_ways);
    RUN(smallest_limit_carries_bytes_in_big_chunks);
    RUN(smallest_limit_carries_bytes_in_tiny_chunks);
    RUN(close_all_gives_the_peer_a_clean_eof);
    RUN(outer_close_before_inner_is_a_cut);
    RUN(untrusted_inner_layer_fails_at_layer_two);
    RUN(inner_records_fit_in_one_outer_record);
    RUN(idle_trim_gives_buffers_back);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", tmpdir);
    return unit_summary();
}
