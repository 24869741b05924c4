/* The onion: N TLS layers over one byte stream, with no sockets inside.
 *
 * Layer 0 is the outermost and touches the network; layer n-1 carries the
 * program's bytes. Each layer is an SSL object on two memory BIOs:
 *   network bytes -> l[0].rbio -> SSL_read(l[0]) -> l[1].rbio -> ... -> plaintext
 *   plaintext -> SSL_write(l[n-1]) -> l[n-1].wbio -> SSL_write(l[n-2]) -> ... -> l[0].wbio -> network
 * so bytes from the network are peeled outermost first and bytes from the
 * program wrapped innermost first. Keeping sockets out makes the stack
 * testable and fuzzable in memory. */
#ifndef NESTLS_ONION_H
#define NESTLS_ONION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "policy/policy.h"

/* Bytes a layer may hold before the layer feeding it stops: the bound that
 * keeps memory flat when one side is slower than the other. A program
 * that shrinks its socket buffers gets a smaller one (nl_onion_limit),
 * never below two records' worth, so that every layer can always hold a
 * whole record. */
#define NL_ONION_CAP (64 * 1024)
#define NL_ONION_MIN_CAP (32 * 1024)

struct nl_onion_layer {
    SSL *ssl;
    BIO *rbio, *wbio;      /* owned by ssl */
    bool up;               /* handshake complete */
    bool peer_closed;      /* close_notify received */
    bool sent_close;       /* close_notify sent */
};

struct nl_onion {
    const struct nl_rule *rule;
    enum nl_role role;
    size_t n;
    struct nl_onion_layer l[NL_MAX_LAYERS];
    size_t cap;            /* NL_ONION_CAP, or less: see nl_onion_limit */
    int failed_layer;      /* -1, or the 0-based layer that failed */
    int fail_errno;        /* EACCES (verification) or EPROTO (other TLS) */
    char fail_reason[320];
};

/* peer_name: the host name the program resolved (SNI and verification name
 * when the layer gives no server_name), or NULL to verify the IP address. */
int nl_onion_init(struct nl_onion *o, const struct nl_rule *rule, enum nl_role role,
                  const char *peer_name, const struct sockaddr *peer_addr);
void nl_onion_free(struct nl_onion *o);
/* Hold no more than about `bytes` per layer (kept between NL_ONION_MIN_CAP
 * and NL_ONION_CAP): the program sized a socket buffer to that. */
void nl_onion_limit(struct nl_onion *o, size_t bytes);

/* Network side. */
size_t nl_onion_net_in_room(const struct nl_onion *o);
void nl_onion_feed_net(struct nl_onion *o, const void *buf, size_t len);
size_t nl_onion_net_out_pending(const struct nl_onion *o);
size_t nl_onion_take_net_out(struct nl_onion *o, void *buf, size_t cap);
/* Zero-copy form: the ciphertext waiting for the network, in place, and
 * dropping the first n bytes of it once sent. */
size_t nl_onion_net_out_peek(struct nl_onion *o, const unsigned char **data);
void nl_onion_net_out_consume(struct nl_onion *o, size_t n);

/* Run handshakes and move bytes between layers until a whole pass moves
 * nothing (never a fixed number of passes: see onion.c for what is left
 * inside when it returns). Returns -1 when a layer failed
 * (failed_layer/fail_reason set), else 0. */
int nl_onion_pump(struct nl_onion *o);
bool nl_onion_up(const struct nl_onion *o);
/* The layer whose handshake is in progress (0-based), or n when all are up. */
size_t nl_onion_handshaking_layer(const struct nl_onion *o);

/* Program side. */
bool nl_onion_can_take_plain(const struct nl_onion *o);
int nl_onion_write_plain(struct nl_onion *o, const void *buf, size_t len);
/* >0: bytes; 0: nothing now (see inner_eof); -1: failure. */
ssize_t nl_onion_read_plain(struct nl_onion *o, void *buf, size_t cap);
/* The same without consuming; consume what the program actually took. */
ssize_t nl_onion_peek_plain(struct nl_onion *o, void *buf, size_t cap);
void nl_onion_consume_plain(struct nl_onion *o, size_t n);
/* Give back memory an idle connection does not need: release_records
 * frees the layers' record buffers (cheap to get again: a pause between
 * two requests); trim also swaps grown BIO buffers for fresh ones (dear
 * to regrow in a stream: call it once the connection is quiet). */
void nl_onion_release_records(struct nl_onion *o);
void nl_onion_trim(struct nl_onion *o);
bool nl_onion_inner_eof(const struct nl_onion *o);
/* True when an outer layer ended (close_notify) before the innermost did:
 * the inner stream was cut short. */
bool nl_onion_outer_cut(const struct nl_onion *o);

/* close_notify on the innermost layer only (half-close). */
void nl_onion_close_inner(struct nl_onion *o);
/* close_notify on every layer still open, innermost first. */
void nl_onion_close_all(struct nl_onion *o);

/* The largest record payload layer i (0 = outermost) sends. */
size_t nl_onion_fragment(size_t layer);

/* Largest plaintext chunk worth handing to write_plain at once. */
size_t nl_onion_plain_chunk(const struct nl_onion *o);

/* What the onion holds: ciphertext on its way out (every layer's output,
 * the network's included), and plaintext the innermost layer decrypted
 * that the program has not read yet. (Input that is not a whole record
 * yet is not counted: it waits for the network, as it should.) */
size_t nl_onion_held_out(const struct nl_onion *o);
size_t nl_onion_held_plain(const struct nl_onion *o);
/* "layer 1: in 0 B, decrypted 0 B, out 0 B; layer 2 ...": every buffer of
 * every layer, for the log line that explains a stall. */
void nl_onion_dump(const struct nl_onion *o, char *out, size_t len);

/* "layer 1 TLSv1.3 TLS_AES_256_GCM_SHA384 sni x peer "CN=x" verified x alpn h2
 * resumed; layer 2 ...": per layer the version, suite, SNI (sent, or
 * received in the server role; "-" for none), the peer certificate's
 * subject, what was verified (nl_tls_verified), ALPN, and "resumed" for a
 * resumed session. */
void nl_onion_describe(const struct nl_onion *o, char *out, size_t len);

#endif
