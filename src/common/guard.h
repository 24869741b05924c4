/* One-line checks of fallible calls, in the two conventions nestls meets:
 *   NL_GUARD(x)               POSIX and nestls's own: -1 (< 0) is failure;
 *                             the failure was already reported: return -1.
 *   NL_GUARD_OSSL(x, fail)    OpenSSL: 1 is success, anything else failure;
 *                             return `fail` (which reports it, say where).
 * Keeping them apart in name means OpenSSL's "1 means success" is never
 * read as POSIX's "0 means success". */
#ifndef NESTLS_GUARD_H
#define NESTLS_GUARD_H

#define NL_GUARD(x)         \
    do {                    \
        if ((x) < 0)        \
            return -1;      \
    } while (0)

#define NL_GUARD_OSSL(x, fail) \
    do {                       \
        if ((x) != 1)          \
            return (fail);     \
    } while (0)

#endif
