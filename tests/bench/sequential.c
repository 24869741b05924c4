/* `nlbench connrate` and `nlbench hold`: connections one after the other.
 *
 *   connrate: connect (+ handshake), 1 byte each way, close; as many as fit
 *             in --seconds. The ports of --port/--ports-file are used in
 *             turn. --tls --resume offers the previous connection's session.
 *   hold:     prints "ready", then for each "open N" line on stdin opens N
 *             more connections (each proven up end to end by one echoed
 *             byte) and prints "held TOTAL"; at EOF closes them all. The
 *             driver measures memory between the steps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nlb.h"

/* One byte each way on an open connection: 0 or -1. */
static int echo_one(struct nlb_sock *s)
{
    char c = 'E';
    if (nlb_write_full(s, &c, 1) != 0 || nlb_read_full(s, &c, 1) != 0 || c != 'E')
        return -1;
    return 0;
}

int nlb_connrate(const struct nlb_opts *o)
{
    SSL_CTX *ctx = nlb_client_ctx(o);
    SSL_SESSION *session = NULL;
    long conns = 0, resumed = 0;
    double t0 = nlb_now(), deadline = t0 + o->seconds;
    while (nlb_now() < deadline) {
        struct nlb_sock s;
        if (nlb_connect(o, o->ports[conns % o->n_ports], ctx, session, &s) != 0)
            nlb_die("connrate: connection %ld failed", conns + 1);
        if (echo_one(&s) != 0)
            nlb_die("connrate: no echo on connection %ld", conns + 1);
        if (s.ssl != NULL && o->resume) {
            resumed += SSL_session_reused(s.ssl);
            /* Read after the echo, so TLS 1.3's tickets have arrived. */
            SSL_SESSION *next = SSL_get1_session(s.ssl);
            SSL_SESSION_free(session);
            session = next;
        }
        nlb_close(&s);
        conns++;
    }
    double secs = nlb_now() - t0;
    printf("conns %ld\nsecs %.6f\nrate %.1f\nresumed %ld\n", conns, secs, (double)conns / secs,
           resumed);
    nlb_print_cpu();
    return 0;
}

int nlb_hold(const struct nlb_opts *o)
{
    SSL_CTX *ctx = nlb_client_ctx(o);
    struct nlb_sock *held = NULL;
    long n_held = 0;
    char line[64];
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        long more;
        if (sscanf(line, "open %ld", &more) != 1 || more < 0)
            nlb_die("hold: expected 'open N', got '%s'", line);
        struct nlb_sock *grown = realloc(held, sizeof(*held) * (size_t)(n_held + more));
        if (grown == NULL)
            nlb_die("out of memory");
        held = grown;
        for (long i = 0; i < more; i++, n_held++) {
            if (nlb_connect(o, o->ports[n_held % o->n_ports], ctx, NULL, &held[n_held]) != 0 ||
                echo_one(&held[n_held]) != 0)
                nlb_die("hold: connection %ld failed", n_held + 1);
        }
        printf("held %ld\n", n_held);
        fflush(stdout);
    }
    for (long i = 0; i < n_held; i++)
        nlb_close(&held[i]);
    return 0;
}
