/* make test-asan's proof that it can fail: preloaded (like libnestls.so)
 * into real programs with the same LD_PRELOAD order and options as the
 * suites, it commits the error NL_CANARY names in its constructor. The run
 * only counts if every one of them is reported and judged a failure. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static volatile int sink;

static void overflow(void)
{
    volatile size_t past_end = 17; /* hidden from the compiler's own check */
    char *p = malloc(16);
    memset(p, 'x', past_end);
    sink = p[3];
    free(p);
}

static void leak(void)
{
    char *p = malloc(64);
    memset(p, 'y', 64);
    sink = p[0];
    p = NULL; /* the only pointer is gone */
}

static void signed_overflow(void)
{
    volatile int big = INT_MAX;
    sink = big + 1;
}

__attribute__((constructor)) static void canary(void)
{
    const char *what = getenv("NL_CANARY");
    if (what == NULL)
        return;
    if (strcmp(what, "overflow") == 0)
        overflow();
    else if (strcmp(what, "leak") == 0)
        leak();
    else if (strcmp(what, "ubsan") == 0)
        signed_overflow();
}
