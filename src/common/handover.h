/* The hand-over queue between the engine and a wrapped listener.
 *
 * A listener that a server rule may wrap is taken over at listen(): the
 * engine keeps the real TCP listener, and the program's descriptor number
 * becomes one end of an AF_UNIX SOCK_SEQPACKET socketpair whose other end
 * is the engine's. The engine accepts, runs every layer's handshake, and
 * only then sends the connection down the queue: one message per
 * connection, this header as the payload and the descriptor as
 * SCM_RIGHTS. The program's accept() receives it (hooks/accept.c). So a
 * readable listening descriptor means exactly "a connection is ready",
 * processes that share the descriptor (prefork servers) take connections
 * from one queue, and a client that fails its handshake never reaches the
 * program. */
#ifndef NESTLS_HANDOVER_H
#define NESTLS_HANDOVER_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define NL_HANDOVER_MAGIC 0x6e6c686fu /* "nlho" */

enum nl_handover_kind {
    NL_HANDOVER_WRAPPED = 1, /* an AF_UNIX stream end; the layers are up */
    NL_HANDOVER_PLAIN = 2,   /* the TCP connection itself (passthrough) */
};

struct nl_handover {
    uint32_t magic;
    uint32_t kind;
    int32_t family;   /* AF_INET or AF_INET6 */
    int32_t protocol; /* IPPROTO_TCP or IPPROTO_MPTCP */
    uint32_t local_len, peer_len;
    struct sockaddr_storage local, peer;
    int32_t engine_pid; /* the process whose engine serves the connection */
};

#endif
