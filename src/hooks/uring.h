#ifndef NESTLS_URING_H
#define NESTLS_URING_H

#include <stdbool.h>

/* uring.c: true when this process must not set up an io_uring (the
 * policy wraps something and does not say allow_io_uring). Logs once. */
bool nl_uring_refused(void);

#endif
