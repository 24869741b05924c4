#ifndef NESTLS_RESET_H
#define NESTLS_RESET_H

#include "common/fdtable.h"

/* Make the program's end report ECONNRESET once the engine's end closes:
 * send one byte into the engine's end from a copy of the program's end
 * (prog_hold, or a checked dup of prog_fd). The caller closes its end
 * afterwards, with that byte unread. A truncated or failed TLS stream
 * must never look complete. */
void nl_reset_poke(int prog_hold, int prog_fd, struct nl_sock *sock);

#endif
