/* The socketpair that stands in for a wrapped TCP socket. */
#ifndef NESTLS_PAIR_H
#define NESTLS_PAIR_H

#include <sys/socket.h>

#include "common/fdtable.h"

/* prog_end: an ordinary descriptor for the program (close-on-exec);
 * engine_end: high and guarded. Returns 0, or -1 with errno. */
int nl_pair_open(int *prog_end, int *engine_end);

/* The facts the program will be told about its socket. */
struct nl_sock *nl_pair_sock(int tcp_fd, int family, const struct sockaddr *peer, socklen_t peer_len);

/* Give up a pair that never reached the engine. */
void nl_pair_abort(int tcp_fd, int engine_end);

#endif
