/* nestls's mutexes, taken so that a signal handler can tell whether the
 * code it interrupted holds one.
 *
 * A handler may call write(), close() or _exit() (all async-signal-safe in
 * libc): if the interrupted code on the same thread holds one of nestls's
 * locks, a hook that took it again would wait forever. Every nestls mutex
 * is taken through these, which count what this thread holds (counted
 * before the lock is taken, so a signal in between errs on the safe
 * side); hooks that a handler may call ask nl_lock_held_here() and then
 * go straight to libc instead. The fork handlers (hooks/forking.c) take
 * the locks directly: the count is this thread's, and fork is not a
 * signal. */
#ifndef NESTLS_LOCKING_H
#define NESTLS_LOCKING_H

#include <pthread.h>
#include <stdbool.h>

extern __thread int nl_lock_depth;

static inline void nl_mutex_lock(pthread_mutex_t *m)
{
    nl_lock_depth++;
    pthread_mutex_lock(m);
}

static inline int nl_mutex_trylock(pthread_mutex_t *m)
{
    nl_lock_depth++;
    int r = pthread_mutex_trylock(m);
    if (r != 0)
        nl_lock_depth--;
    return r;
}

static inline void nl_mutex_unlock(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
    nl_lock_depth--;
}

static inline bool nl_lock_held_here(void)
{
    return nl_lock_depth > 0;
}

#endif
