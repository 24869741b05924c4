/* libFuzzer target: the onion. A client stack and a server stack of 1-3
 * layers (TLS 1.3, TLS 1.2, or mixed with mTLS on the outer layer) wired
 * back to back in memory, driven by a script the fuzzer writes: writes and
 * reads of chosen sizes on either side, the wire stream moved in chosen
 * chunks, one byte of it flipped, inserted or dropped at a chosen offset,
 * closes (once every layer is up, as the engine closes), idle trims.
 * Then everything in flight is delivered and checked:
 *  - every byte either program reads is the byte the other one wrote at
 *    that position (no plaintext the sender did not send, ever);
 *  - a clean end of stream (innermost close_notify) comes only after every
 *    byte the peer wrote;
 *  - without corruption: no layer fails and every byte arrives;
 *  - without corruption, nothing is left inside either onion at the end;
 *  - liveness: after any pump, a second pump changes nothing (no buffer,
 *    no layer state), so a pump that stopped early is caught;
 *  - with corruption: the run ends in a failed layer (failed_layer set),
 *    in exactly the bytes sent, or short of them with no clean end (which
 *    the engine reports as truncation at TCP EOF). Crashes, hangs and
 *    sanitizer reports are libFuzzer's to catch.
 *
 * Determinism: TLS draws random numbers (key shares, ECDSA nonces, client
 * and server randoms). They come here from a seeded generator, reset for
 * every input, so one input replays the same bytes on the wire (up to the
 * few time-dependent fields, such as session ticket ages). This is for
 * reproducing findings only: it is not a random number generator. */
#define OPENSSL_SUPPRESS_DEPRECATED /* RAND_set_rand_method: the only hook */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/log.h"
#include "engine/onion.h"

#define MAX_LAYERS 3
#define VARIANTS 3
#define MAX_PLAIN (256 * 1024) /* per direction, per run */
#define MAX_OPS 200
#define DRAIN_ROUNDS 20000

/* ------------------------------------------------ deterministic "random" */

static uint64_t rng_state;

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int rng_bytes(unsigned char *buf, int num)
{
    for (int i = 0; i < num; i++)
        buf[i] = (unsigned char)splitmix(&rng_state);
    return 1;
}
static int rng_seed(const void *buf, int num) { (void)buf, (void)num; return 1; }
static int rng_add(const void *buf, int num, double r) { (void)buf, (void)num, (void)r; return 1; }
static int rng_status(void) { return 1; }

static const RAND_METHOD replayable = {
    .seed = rng_seed, .bytes = rng_bytes, .add = rng_add,
    .pseudorand = rng_bytes, .status = rng_status,
};

/* ------------------------------------------------------------ policies */

static struct nl_policy *policies[VARIANTS][MAX_LAYERS + 1];
static bool verbose; /* FUZZ_ONION_VERBOSE=1: one line per run, what happened */

/* rules[0] serves, rules[1] connects; n layers of variant v:
 *   0: TLS 1.3 (the defaults)    1: TLS 1.2 only
 *   2: layers alternate 1.2/1.3, the outer one with mutual TLS */
static struct nl_policy *load_policy(const char *certs, const char *dir, int v, size_t n)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/v%dn%zu.yaml", dir, v, n);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return NULL;
    fprintf(f, "version: 1\nsettings: {log_level: error}\nrules:\n");
    for (int side = 0; side < 2; side++) {
        fprintf(f, "  - name: %s\n    match: {role: %s}\n    layers:\n", side ? "cli" : "srv",
                side ? "client" : "server");
        for (size_t i = 0; i < n; i++) {
            const char *pki = i % 2 ? "inner" : "outer";
            bool tls12 = v == 1 || (v == 2 && i % 2 == 0);
            bool mtls = v == 2 && i == 0;
            fprintf(f, "      - {");
            if (side == 0) {
                fprintf(f, "cert: %s/%s-server.pem, key: %s/%s-server.key", certs, pki, certs, pki);
                if (mtls)
                    fprintf(f, ", client_ca: %s/outer-ca.pem", certs);
            } else {
                fprintf(f, "ca: %s/%s-ca.pem, server_name: localhost", certs, pki);
                if (mtls)
                    fprintf(f, ", cert: %s/outer-client.pem, key: %s/outer-client.key", certs, certs);
            }
            if (tls12)
                fprintf(f, ", max_version: TLSv1.2");
            fprintf(f, "}\n");
        }
    }
    fclose(f);
    struct nl_policy *p = NULL;
    char err[NL_ERR_MAX];
    if (nl_policy_load(path, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_onion: %s\n", err);
        return NULL;
    }
    unlink(path);
    return p;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char certs[PATH_MAX], dir[PATH_MAX];
    const char *c = getenv("NESTLS_CERTS"), *tmp = getenv("FUZZ_TMPDIR");
    snprintf(dir, sizeof(dir), "%s/nestls-fuzz-onion-XXXXXX", tmp ? tmp : "/dev/shm");
    if (realpath(c ? c : "certs", certs) == NULL || mkdtemp(dir) == NULL) {
        perror("fuzz_onion: the demo certificates (NESTLS_CERTS, default ./certs)");
        exit(1);
    }
    nl_log_configure(NL_LOG_ERROR, "stderr");
    verbose = getenv("FUZZ_ONION_VERBOSE") != NULL;
    RAND_set_rand_method(&replayable);
    for (int v = 0; v < VARIANTS; v++)
        for (size_t n = 1; n <= MAX_LAYERS; n++)
            if ((policies[v][n] = load_policy(certs, dir, v, n)) == NULL)
                exit(1);
    rmdir(dir);
    return 0;
}

/* ---------------------------------------------------------- the script */

struct input {
    const uint8_t *p;
    size_t left;
};

static unsigned take8(struct input *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

static unsigned take16(struct input *in)
{
    unsigned hi = take8(in);
    return hi << 8 | take8(in);
}

enum { C2S = 0, S2C = 1 };
enum { FLIP, INSERT, DROP };

struct corruption {
    bool armed;
    size_t at;      /* offset in the direction's wire stream */
    int kind;
    uint8_t value;
};

struct run {
    struct nl_onion side[2];     /* [C2S]: the client, [S2C]: the server */
    uint64_t seed;
    size_t sent[2], got[2];      /* plaintext per direction */
    size_t wire[2];              /* wire bytes taken per direction */
    struct corruption bad[2];
    bool corrupted;
};

/* The plaintext byte at offset off of direction d: position-dependent, so
 * a lost, repeated or reordered byte never passes for the right one. */
static uint8_t expected(const struct run *r, int d, size_t off)
{
    uint64_t s = r->seed ^ ((uint64_t)d << 62) ^ (off >> 3);
    return (uint8_t)(splitmix(&s) >> (8 * (off & 7)));
}

static void check(bool ok, const struct run *r, const char *what)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz_onion: %s (sent %zu/%zu, got %zu/%zu, corrupted %d; client failed "
                    "layer %d '%s', server failed layer %d '%s')\n",
            what, r->sent[0], r->sent[1], r->got[0], r->got[1], r->corrupted,
            r->side[0].failed_layer, r->side[0].fail_reason, r->side[1].failed_layer,
            r->side[1].fail_reason);
    abort();
}

/* The sender of direction d writes len bytes, as the engine does: only
 * when the onion takes plaintext. */
static void write_side(struct run *r, int d, size_t len)
{
    static uint8_t buf[65536];
    struct nl_onion *o = &r->side[d];
    if (len == 0 || r->sent[d] + len > MAX_PLAIN || o->failed_layer >= 0 ||
        !nl_onion_can_take_plain(o))
        return;
    for (size_t i = 0; i < len; i++)
        buf[i] = expected(r, d, r->sent[d] + i);
    if (nl_onion_write_plain(o, buf, len) == 0) {
        r->sent[d] += len;
        return;
    }
    check(o->failed_layer >= 0, r, "write_plain failed without naming a layer");
    /* -1 also comes from the pump after a write that went in: only a
     * failure of the innermost layer (the only one write_plain touches
     * itself once all are up) means the bytes were refused. */
    if (o->failed_layer != (int)o->n - 1)
        r->sent[d] += len;
}

/* n bytes a receiver got at the next offset of direction d. */
static void verify(const struct run *r, int d, const uint8_t *buf, size_t n)
{
    check(r->got[d] + n <= r->sent[d], r, "more plaintext arrived than was sent");
    for (size_t i = 0; i < n; i++)
        check(buf[i] == expected(r, d, r->got[d] + i), r, "plaintext differs from what was sent");
}

/* The receiver of direction d reads, or peeks and then consumes part of
 * what it saw (as a program's MSG_PEEK does). */
static bool read_side(struct run *r, int d, size_t cap, bool peek)
{
    static uint8_t buf[65536];
    struct nl_onion *o = &r->side[1 - d];
    if (cap == 0 || cap > sizeof(buf))
        cap = sizeof(buf);
    ssize_t n = peek ? nl_onion_peek_plain(o, buf, cap) : nl_onion_read_plain(o, buf, cap);
    if (n < 0) {
        check(o->failed_layer >= 0, r, "read_plain failed without naming a layer");
        return false;
    }
    if (n == 0) {
        /* The engine takes 0 as "no layer can make another byte of what
         * it holds" and, on a cut connection, reports truncation right
         * then (conn.c): so nothing may turn up when asked again. */
        if (o->failed_layer < 0)
            check(nl_onion_peek_plain(o, buf, 1) <= 0, r,
                  "read_plain found nothing, yet bytes were there to read");
        return false;
    }
    verify(r, d, buf, (size_t)n);
    size_t use = (size_t)n;
    if (peek) {
        use = 1 + cap % (size_t)n;
        nl_onion_consume_plain(o, use);
    }
    r->got[d] += use;
    return true;
}

/* Move up to chunks chunks of up to size wire bytes in direction d,
 * applying an armed corruption to the byte it names. */
static bool shuttle(struct run *r, int d, size_t size, unsigned chunks)
{
    static uint8_t buf[65536 + 1];
    struct nl_onion *from = &r->side[d], *to = &r->side[1 - d];
    bool moved = false;
    if (size == 0 || size > 65536)
        size = 65536;
    for (unsigned k = 0; k < chunks; k++) {
        size_t room = nl_onion_net_in_room(to);
        size_t n = nl_onion_take_net_out(from, buf, size < room ? size : room);
        if (n == 0)
            break;
        struct corruption *c = &r->bad[d];
        if (c->armed && c->at >= r->wire[d] && c->at < r->wire[d] + n) {
            size_t i = c->at - r->wire[d];
            if (c->kind == FLIP) {
                buf[i] ^= c->value ? c->value : 0x80;
            } else if (c->kind == INSERT) {
                memmove(buf + i + 1, buf + i, n - i);
                buf[i] = c->value;
                n++;
            } else {
                memmove(buf + i, buf + i + 1, n - i - 1);
                n--;
            }
            c->armed = false;
            r->corrupted = true;
            r->wire[d] += c->kind == INSERT ? n - 1 : c->kind == DROP ? n + 1 : n;
        } else {
            r->wire[d] += n;
        }
        nl_onion_feed_net(to, buf, n);
        moved = true;
    }
    return moved;
}

/* A program's close, made as the engine makes it: only once every layer
 * is up (conn.c closes in its OPEN state; close_inner follows the
 * program's EOF, read only while the onion takes plaintext). */
static void close_side(struct run *r, int who, bool all, bool *closed)
{
    struct nl_onion *o = &r->side[who];
    if (!nl_onion_up(o))
        return;
    if (o->failed_layer < 0)
        *closed = true;
    if (all)
        nl_onion_close_all(o);
    else
        nl_onion_close_inner(o);
}

/* Every buffer of every layer, and each layer's state: what a pump that
 * made progress would change. */
static uint64_t onion_state(const struct nl_onion *o)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < o->n; i++) {
        const struct nl_onion_layer *l = &o->l[i];
        uint64_t v[] = {BIO_ctrl_pending(l->rbio), BIO_ctrl_pending(l->wbio),
                        (uint64_t)SSL_pending(l->ssl), l->up, l->peer_closed, l->sent_close};
        for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++)
            h = (h ^ v[k]) * 1099511628211ull;
    }
    return h;
}

/* Liveness (src/engine/onion.c): the pump returns only when a whole pass
 * moves nothing, so pumping again at once must change nothing at all. */
static void pump_settled(struct run *r, int who)
{
    nl_onion_pump(&r->side[who]);
    uint64_t before = onion_state(&r->side[who]);
    nl_onion_pump(&r->side[who]);
    check(onion_state(&r->side[who]) == before, r, "a second pump moved bytes the first one left");
}

/* Deliver everything in flight, with no more corruption than is armed. */
static void drain(struct run *r)
{
    for (int round = 0; round < DRAIN_ROUNDS; round++) {
        bool moved = false;
        for (int s = 0; s < 2; s++)
            pump_settled(r, s);
        for (int d = 0; d < 2; d++) {
            moved |= shuttle(r, d, 65536, 64);
            while (read_side(r, d, 65536, false))
                moved = true;
        }
        if (!moved)
            return;
    }
    check(false, r, "still moving bytes after the drain's bound (a livelock)");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    size_t n = 1 + take8(&in) % MAX_LAYERS;
    int v = (int)(take8(&in) % VARIANTS);
    struct nl_policy *p = policies[v][n];
    static struct run r;
    memset(&r, 0, sizeof(r));
    r.seed = take16(&in);
    rng_state = r.seed * 0x2545f4914f6cdd1dull;
    if (nl_onion_init(&r.side[C2S], &p->rules[1], NL_ROLE_CLIENT, "localhost", NULL) != 0 ||
        nl_onion_init(&r.side[S2C], &p->rules[0], NL_ROLE_SERVER, NULL, NULL) != 0)
        abort(); /* nothing here can fail: a broken build */
    bool closed[2] = {false, false}, closed_all[2] = {false, false};

    for (int ops = 0; ops < MAX_OPS && in.left > 0; ops++) {
        unsigned op = take8(&in), d = op >> 7; /* top bit: which side */
        switch (op % 8) {
        case 0:
            write_side(&r, (int)d, 1 + take16(&in) % 20000);
            break;
        case 1: {
            size_t chunk = 1 + take16(&in);
            shuttle(&r, (int)d, chunk, 1 + take8(&in) % 8);
            break;
        }
        case 2:
            pump_settled(&r, (int)d);
            break;
        case 3:
            read_side(&r, (int)d, 1 + take16(&in) % 20000, op & 0x40);
            break;
        case 4: {
            struct corruption *c = &r.bad[d];
            c->armed = true;
            c->at = r.wire[d] + take16(&in);
            c->kind = (int)(take8(&in) % 3);
            c->value = (uint8_t)take8(&in);
            break;
        }
        case 5:
            close_side(&r, (int)d, op & 0x40, &closed[d]);
            closed_all[d] |= closed[d] && (op & 0x40) != 0;
            break;
        case 6:
            nl_onion_trim(&r.side[d]);
            break;
        case 7: {
            /* What the engine asks while it decides what to do. */
            char desc[2048];
            nl_onion_handshaking_layer(&r.side[d]);
            nl_onion_outer_cut(&r.side[d]);
            if (nl_onion_up(&r.side[d]))
                nl_onion_describe(&r.side[d], desc, sizeof(desc));
            break;
        }
        }
    }
    drain(&r);

    bool failed = r.side[0].failed_layer >= 0 || r.side[1].failed_layer >= 0;
    for (int d = 0; d < 2; d++) {
        const struct nl_onion *receiver = &r.side[1 - d];
        /* A clean end of stream only after every byte (no truncation). */
        if (nl_onion_inner_eof(receiver))
            check(r.got[d] == r.sent[d], &r, "clean end of stream before all the bytes");
        if (r.corrupted)
            continue;
        check(!failed, &r, "a layer failed with nothing corrupted");
        check(r.got[d] == r.sent[d], &r, "bytes missing with nothing corrupted");
        /* Nothing left inside once all is delivered: no ciphertext on its
         * way out, no plaintext the program was not given. */
        check(nl_onion_held_out(&r.side[d]) == 0 && nl_onion_held_plain(&r.side[d]) == 0, &r,
              "bytes left inside the onion after the drain");
        if (closed[d]) {
            check(nl_onion_inner_eof(receiver), &r, "the sender's close did not arrive");
            if (closed_all[d])
                check(!nl_onion_outer_cut(receiver), &r, "an orderly close looked like a cut");
        }
    }
    if (verbose)
        fprintf(stderr, "fuzz_onion: %zu layers, variant %d: sent %zu/%zu, got %zu/%zu, "
                        "corrupted %d, failed layer %d/%d %s%s\n", n, v, r.sent[0], r.sent[1],
                r.got[0], r.got[1], r.corrupted, r.side[0].failed_layer, r.side[1].failed_layer,
                r.side[0].fail_reason, r.side[1].fail_reason);
    nl_onion_free(&r.side[0]);
    nl_onion_free(&r.side[1]);
    return 0;
}
