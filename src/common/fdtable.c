/* Descriptor tables: see fdtable.h. Both tables are arrays indexed by
 * descriptor number and grown on demand; one mutex guards them because
 * updates are rare (connect, accept, close of a wrapped socket) and the
 * common case of an untracked descriptor is answered without the lock. */
#include "common/fdtable.h"
#include "common/locking.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>


static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nl_sock **wrapped;     /* [fd] -> sock */
static size_t wrapped_cap;
static atomic_int wrapped_count;
/* Lock-free "maybe wrapped" per low descriptor number, for the hooks on
 * every write(): a signal handler's write to a pipe must never wait for
 * the table lock its own thread may hold. */
#define HINT_FDS 65536
static atomic_uchar wrapped_hint[HINT_FDS];
static unsigned char *guarded;       /* [fd] -> 1 when ours */
static size_t guarded_cap;
static atomic_int guarded_count;

void nl_fdtable_lock(void) { pthread_mutex_lock(&table_lock); }
void nl_fdtable_unlock(void) { pthread_mutex_unlock(&table_lock); }
void nl_fdtable_after_fork(void) { pthread_mutex_init(&table_lock, NULL); }
void nl_sock_lock(void) { nl_mutex_lock(&table_lock); }
void nl_sock_unlock(void) { nl_mutex_unlock(&table_lock); }

static int grow(void **array, size_t *cap, size_t elem, size_t need)
{
    if (need < *cap)
        return 0;
    size_t n = *cap ? *cap : 1024;
    while (n <= need)
        n *= 2;
    void *p = realloc(*array, n * elem);
    if (p == NULL)
        return -1;
    memset((char *)p + *cap * elem, 0, (n - *cap) * elem);
    *array = p;
    *cap = n;
    return 0;
}

struct nl_sock *nl_sock_new(int family)
{
    nl_sock_free_unused();
    struct nl_sock *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->refs = 1;
    s->family = family;
    s->protocol = IPPROTO_TCP;
    s->tcp_fd = -1;
    return s;
}

/* getsockname/getpeername/getsockopt on the socket itself: the real
 * system calls (this file is also linked into the CLI, without the hooks). */
void nl_sock_facts_of(int tcp_fd, struct nl_sock *s)
{
    s->local_len = sizeof(s->local);
    if (syscall(SYS_getsockname, tcp_fd, &s->local, &s->local_len) != 0)
        s->local_len = 0;
    s->peer_len = sizeof(s->peer);
    if (syscall(SYS_getpeername, tcp_fd, &s->peer, &s->peer_len) != 0)
        s->peer_len = 0;
    if (s->local_len > 0)
        s->family = s->local.ss_family;
    socklen_t len = sizeof(s->protocol);
    if (syscall(SYS_getsockopt, tcp_fd, SOL_SOCKET, SO_PROTOCOL, &s->protocol, &len) != 0)
        s->protocol = IPPROTO_TCP;
}

static void unguard_locked(int fd);

/* Socks whose last reference went, to be freed by nl_sock_free_unused.
 * A close() in a signal handler can drop the last reference while the
 * code it interrupted is inside malloc: free() there waits for the lock
 * that code holds, for ever (ASan's allocator did, now and then). */
static struct nl_sock *unused;

static void sock_put_locked(struct nl_sock *s)
{
    if (s == NULL || --s->refs != 0)
        return;
    if (s->owns_tcp_fd && s->tcp_fd >= 0) {
        unguard_locked(s->tcp_fd);
        syscall(SYS_close, s->tcp_fd);
    }
    s->next_unused = __atomic_load_n(&unused, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(&unused, &s->next_unused, s, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED))
        ;
}

void nl_sock_free_unused(void)
{
    if (__atomic_load_n(&unused, __ATOMIC_RELAXED) == NULL)
        return;
    struct nl_sock *s = __atomic_exchange_n(&unused, NULL, __ATOMIC_ACQUIRE);
    while (s != NULL) {
        struct nl_sock *next = s->next_unused;
        free(s);
        s = next;
    }
}

void nl_sock_put(struct nl_sock *s)
{
    nl_mutex_lock(&table_lock);
    sock_put_locked(s);
    nl_mutex_unlock(&table_lock);
}

int nl_wrapped_add(int fd, struct nl_sock *s)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    nl_mutex_lock(&table_lock);
    if (grow((void **)&wrapped, &wrapped_cap, sizeof(*wrapped), (size_t)fd) != 0) {
        nl_mutex_unlock(&table_lock);
        errno = ENOMEM;
        return -1;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    if (wrapped[fd] != NULL)
        sock_put_locked(wrapped[fd]);
    else
        atomic_fetch_add(&wrapped_count, 1);
    s->refs++;
    wrapped[fd] = s;
    if (fd < HINT_FDS)
        atomic_store(&wrapped_hint[fd], 1);
    nl_mutex_unlock(&table_lock);
    return 0;
}

bool nl_wrapped_any(void)
{
    return atomic_load(&wrapped_count) > 0;
}

bool nl_wrapped_maybe(int fd)
{
    if (fd < 0 || !nl_wrapped_any())
        return false;
    return fd >= HINT_FDS || atomic_load_explicit(&wrapped_hint[fd], memory_order_relaxed);
}

struct nl_sock *nl_wrapped_get(int fd)
{
    if (fd < 0 || !nl_wrapped_any())
        return NULL;
    struct nl_sock *s = NULL;
    nl_mutex_lock(&table_lock);
    if ((size_t)fd < wrapped_cap && wrapped[fd] != NULL) {
        s = wrapped[fd];
        s->refs++;
    }
    nl_mutex_unlock(&table_lock);
    if (s == NULL)
        return NULL;
    /* The number may have been closed behind our back (a raw syscall, exec)
     * and reused for another file: only answer for the same file. */
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_ino != s->ino || st.st_dev != s->dev) {
        nl_sock_put(s);
        nl_wrapped_remove(fd);
        return NULL;
    }
    return s;
}

/* Forget the entry at fd (table lock held, entry present). */
static void unset_locked(size_t fd)
{
    sock_put_locked(wrapped[fd]);
    wrapped[fd] = NULL;
    atomic_fetch_sub(&wrapped_count, 1);
    if (fd < HINT_FDS)
        atomic_store(&wrapped_hint[fd], 0);
}

void nl_wrapped_remove(int fd)
{
    if (fd < 0 || !nl_wrapped_any())
        return;
    nl_mutex_lock(&table_lock);
    if ((size_t)fd < wrapped_cap && wrapped[fd] != NULL)
        unset_locked((size_t)fd);
    nl_mutex_unlock(&table_lock);
}

void nl_wrapped_remove_range(unsigned first, unsigned last)
{
    if (!nl_wrapped_any())
        return;
    nl_mutex_lock(&table_lock);
    /* Only as far as the table reaches: closefrom(n) means up to ~0U. */
    size_t end = (size_t)last + 1 < wrapped_cap ? (size_t)last + 1 : wrapped_cap;
    for (size_t fd = first; fd < end; fd++)
        if (wrapped[fd] != NULL)
            unset_locked(fd);
    nl_mutex_unlock(&table_lock);
}

size_t nl_wrapped_fds(int *fds, size_t max)
{
    size_t n = 0, seen = 0;
    if (!nl_wrapped_any())
        return 0;
    nl_mutex_lock(&table_lock);
    /* Up to the last wrapped entry only: the count says when that is. */
    size_t total = (size_t)atomic_load(&wrapped_count);
    for (size_t fd = 0; fd < wrapped_cap && n <= max && seen < total; fd++) {
        if (wrapped[fd] == NULL)
            continue;
        seen++;
        if (!wrapped[fd]->listener) {
            if (n < max)
                fds[n] = (int)fd;
            n++;
        }
    }
    nl_mutex_unlock(&table_lock);
    return n;
}

void nl_wrapped_close_listeners(void)
{
    if (!nl_wrapped_any())
        return;
    nl_mutex_lock(&table_lock);
    for (size_t fd = 0; fd < wrapped_cap; fd++) {
        if (wrapped[fd] != NULL && wrapped[fd]->listener) {
            unset_locked(fd);
            syscall(SYS_close, (int)fd);
        }
    }
    nl_mutex_unlock(&table_lock);
}

void nl_wrapped_release_all(void)
{
    nl_mutex_lock(&table_lock);
    for (size_t fd = 0; fd < wrapped_cap; fd++)
        if (wrapped[fd] != NULL)
            unset_locked(fd);
    nl_mutex_unlock(&table_lock);
}

void nl_wrapped_dup(int oldfd, int newfd)
{
    struct nl_sock *s = nl_wrapped_get(oldfd);
    if (s == NULL) {
        nl_wrapped_remove(newfd); /* newfd now holds something untracked */
        return;
    }
    nl_wrapped_add(newfd, s);
    nl_sock_put(s);
}

void nl_guard_add(int fd)
{
    if (fd < 0)
        return;
    nl_mutex_lock(&table_lock);
    if (grow((void **)&guarded, &guarded_cap, 1, (size_t)fd) == 0 && !guarded[fd]) {
        guarded[fd] = 1;
        atomic_fetch_add(&guarded_count, 1);
    }
    nl_mutex_unlock(&table_lock);
}

static void unguard_locked(int fd)
{
    if ((size_t)fd < guarded_cap && guarded[fd]) {
        guarded[fd] = 0;
        atomic_fetch_sub(&guarded_count, 1);
    }
}

void nl_guard_remove(int fd)
{
    if (fd < 0)
        return;
    nl_mutex_lock(&table_lock);
    unguard_locked(fd);
    nl_mutex_unlock(&table_lock);
}

bool nl_guard_has(int fd)
{
    if (fd < 0 || atomic_load(&guarded_count) == 0)
        return false;
    nl_mutex_lock(&table_lock);
    bool has = (size_t)fd < guarded_cap && guarded[fd];
    nl_mutex_unlock(&table_lock);
    return has;
}

int nl_guard_next(unsigned from, unsigned last)
{
    if (atomic_load(&guarded_count) == 0)
        return -1;
    int found = -1;
    nl_mutex_lock(&table_lock);
    for (size_t fd = from; fd < guarded_cap && fd <= last; fd++)
        if (guarded[fd]) {
            found = (int)fd;
            break;
        }
    nl_mutex_unlock(&table_lock);
    return found;
}

/* Engine descriptors sit above FD_SETSIZE when the limit allows, so they
 * never take the low numbers a select()-based program depends on. */
static int high_base(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1024;
    if (rl.rlim_cur >= 4096)
        return 1024;
    return (int)(rl.rlim_cur / 2);
}

int nl_guard_dup_high(int fd)
{
    int high = fcntl(fd, F_DUPFD_CLOEXEC, high_base());
    if (high < 0)
        high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (high < 0)
        return -1;
    nl_guard_add(high);
    return high;
}

void nl_close_all_but_guarded(void)
{
    unsigned from = 0;
    for (;;) {
        int guard = nl_guard_next(from, ~0U);
        unsigned to = guard < 0 ? ~0U : (unsigned)guard - 1;
        if (guard < 0 || (unsigned)guard > from)
            syscall(SYS_close_range, from, to, 0);
        if (guard < 0)
            return;
        from = (unsigned)guard + 1;
    }
}
