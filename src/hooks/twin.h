/* The engine's own TCP socket for a wrapped connect: a twin of the
 * program's socket, never the program's socket itself. */
#ifndef NESTLS_TWIN_H
#define NESTLS_TWIN_H

/* A new, unconnected socket of orig's family and protocol, with the
 * options the program set on orig and bound to the address orig is bound
 * to (if any), at a high guarded descriptor, close-on-exec, non-blocking
 * when nonblocking. Returns it, or -1 with errno (and a log line naming
 * the option or address that could not be carried over). */
int nl_twin_socket(int orig, int family, bool nonblocking);

#endif
