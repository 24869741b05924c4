#ifndef NESTLS_RESET_H
#define NESTLS_RESET_H

#include "common/fdtable.h"

/* Close the engine's end of a socketpair so that the program's end reports
 * ECONNRESET rather than a clean EOF: a truncated or failed TLS stream must
 * never look complete. Closes app_fd (and prog_hold, if >= 0). */
void nl_reset_program_end(int app_fd, int prog_hold, int prog_fd, struct nl_sock *sock);

#endif
