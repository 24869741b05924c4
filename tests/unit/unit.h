/* A tiny TAP-style harness for the C unit tests: one function per case,
 * "ok N - name" / "not ok N - name" plus a "#" diagnostic, a summary line
 * "# N passed, M failed", and a non-zero exit on any failure.
 *
 *   static void policy_loads_defaults(void) { CHECK(x == 1, "x is %d", x); }
 *   int main(void) { RUN(policy_loads_defaults); return unit_summary(); }
 */
#ifndef NESTLS_TEST_UNIT_H
#define NESTLS_TEST_UNIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_passed, unit_failed, unit_number;
static bool unit_case_failed;
static char unit_diag[4096];

__attribute__((format(printf, 2, 3), unused)) static void unit_fail(int line, const char *fmt, ...)
{
    if (unit_case_failed)
        return; /* the first failure is the one worth reading */
    unit_case_failed = true;
    int n = snprintf(unit_diag, sizeof(unit_diag), "line %d: ", line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(unit_diag + n, sizeof(unit_diag) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Stop the case at the first failed check (cleanup paths use CHECK_SOFT). */
#define CHECK(cond, ...)                     \
    do {                                     \
        if (!(cond)) {                       \
            unit_fail(__LINE__, __VA_ARGS__); \
            return;                          \
        }                                    \
    } while (0)

#define CHECK_SOFT(cond, ...)                \
    do {                                     \
        if (!(cond))                         \
            unit_fail(__LINE__, __VA_ARGS__); \
    } while (0)

__attribute__((unused)) static void unit_run(const char *name, void (*fn)(void))
{
    unit_case_failed = false;
    unit_diag[0] = '\0';
    fn();
    unit_number++;
    if (unit_case_failed) {
        unit_failed++;
        printf("not ok %d - %s\n#   %s\n", unit_number, name, unit_diag);
    } else {
        unit_passed++;
        printf("ok %d - %s\n", unit_number, name);
    }
    fflush(stdout);
}

#define RUN(fn) unit_run(#fn, fn)

__attribute__((unused)) static int unit_summary(void)
{
    printf("# %d passed, %d failed\n", unit_passed, unit_failed);
    return unit_failed == 0 ? 0 : 1;
}

/* The demo certificates ($NESTLS_CERTS, default ./certs) made absolute in
 * certs (PATH_MAX bytes), and a fresh directory from the template tmpdir
 * ("/tmp/...-XXXXXX"). False after a "Bail out!" line. */
__attribute__((unused)) static bool unit_certs_and_tmpdir(char *certs, char *tmpdir)
{
    const char *env = getenv("NESTLS_CERTS");
    if (realpath(env ? env : "certs", certs) == NULL) {
        printf("Bail out! certs directory not found (run make certs, or set NESTLS_CERTS)\n");
        return false;
    }
    if (mkdtemp(tmpdir) == NULL) {
        printf("Bail out! mkdtemp failed\n");
        return false;
    }
    return true;
}

#endif
