/* Name resolution: which host name the program resolved for the address it
 * connects to, so that a client rule can match the name and each layer can
 * use it for SNI and certificate verification.
 *
 * The name must be the one resolved *for this connection*. A name another
 * lookup gave for the same address must never stand in for it: a second
 * lookup would then dodge a rule that names the first, or get a
 * certificate for itself accepted. Two records answer, best first:
 *  1. the getaddrinfo result lists the program still holds (forgotten at
 *     freeaddrinfo): a connect() to one of their ai_addr pointers, as C
 *     programs looping over ai_next make, is certainly for that lookup;
 *  2. a history of (address, name, thread) from every lookup, for programs
 *     that copy the address first (Python, curl): the names this thread
 *     resolved to the address, with those of threads that have ended (a
 *     thread that ends may have handed its answer over: curl resolves in
 *     a thread that ends once it has it). Never the names a thread still
 *     running resolved: a resolver pool's lookups do not count (their
 *     program's connections are decided by address). Several different
 *     names are reported as such; decide.c makes them ambiguous, never
 *     picks one.
 * Numeric host strings are not names and are not recorded. A vfork child
 * records and forgets nothing (it must not touch the parent's state).
 *
 * errno/return contract: exactly the real resolver's. */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/real.h"
#include "common/locking.h"
#include "hooks/export.h"
#include "hooks/hooks.h"

#define HISTORY_KEPT 256 /* (address, name) pairs; the oldest is replaced */
#define LISTS_KEPT 64    /* live getaddrinfo lists; past it the oldest is dropped */
#define LIST_ADDRS 32    /* ai_addr pointers kept per list (3 socktypes x 10 addresses) */

/* An address as compared: IPv4-mapped IPv6 folded into IPv4, port ignored
 * (a name stands for the host, whatever the service). */
struct addr_key {
    int family;
    unsigned char bytes[16];
};

struct resolved {
    struct addr_key key;
    unsigned long thread; /* 0: empty slot */
    bool ended;           /* that thread has ended since */
    char host[NL_HOST_MAX];
};

struct live_list {
    const struct addrinfo *head; /* NULL: free slot */
    unsigned long age;           /* larger is newer */
    size_t n;
    const struct sockaddr *ai_addr[LIST_ADDRS];
    struct addr_key key[LIST_ADDRS]; /* what each pointed at when handed out */
    char host[NL_HOST_MAX];
};

/* names_lock guards everything below; a leaf (see hooks/forking.c). */
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static struct resolved history[HISTORY_KEPT];
static size_t history_next;
static struct live_list lists[LISTS_KEPT];
static unsigned long lists_age;

void nl_names_fork_lock(void) { pthread_mutex_lock(&names_lock); }
void nl_names_fork_unlock(void) { pthread_mutex_unlock(&names_lock); }
void nl_names_after_fork(void) { pthread_mutex_init(&names_lock, NULL); }

/* Threads are told apart by a number of our own, not the kernel's tid: a
 * tid is reused once its thread ends, and a fork child's thread keeps its
 * number (its lookups before the fork stay its own). */
static unsigned long threads_numbered;
static __thread unsigned long this_thread; /* 0 until the thread first resolves */
static pthread_key_t thread_end_key;      /* its destructor: thread_ended */
static pthread_once_t thread_end_once = PTHREAD_ONCE_INIT;

static void thread_ended(void *number)
{
    nl_mutex_lock(&names_lock);
    for (size_t i = 0; i < HISTORY_KEPT; i++)
        if (history[i].thread == (unsigned long)number)
            history[i].ended = true;
    nl_mutex_unlock(&names_lock);
}

static void make_thread_end_key(void)
{
    pthread_key_create(&thread_end_key, thread_ended);
}

static unsigned long thread_number(void)
{
    if (this_thread == 0) {
        this_thread = __atomic_add_fetch(&threads_numbered, 1, __ATOMIC_RELAXED);
        pthread_once(&thread_end_once, make_thread_end_key);
        pthread_setspecific(thread_end_key, (void *)this_thread);
    }
    return this_thread;
}

static bool addr_key(const struct sockaddr *sa, struct addr_key *k)
{
    memset(k, 0, sizeof(*k));
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        k->family = AF_INET;
        memcpy(k->bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family != AF_INET6)
        return false;
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
        k->family = AF_INET;
        memcpy(k->bytes, a6->s6_addr + 12, 4);
    } else {
        k->family = AF_INET6;
        memcpy(k->bytes, a6->s6_addr, 16);
    }
    return true;
}

static bool raw_key(int family, const void *raw, struct addr_key *k)
{
    struct sockaddr_in6 sa = {.sin6_family = (sa_family_t)family};
    if (family == AF_INET)
        memcpy(&((struct sockaddr_in *)&sa)->sin_addr, raw, 4);
    else if (family == AF_INET6)
        memcpy(&sa.sin6_addr, raw, 16);
    else
        return false;
    return addr_key((const struct sockaddr *)&sa, k);
}

static bool same_key(const struct addr_key *a, const struct addr_key *b)
{
    return a->family == b->family && memcmp(a->bytes, b->bytes, 16) == 0;
}

/* Host names compare as DNS does: case aside, and a final dot aside. */
static bool same_name(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 0 && a[la - 1] == '.')
        la--;
    if (lb > 0 && b[lb - 1] == '.')
        lb--;
    return la == lb && strncasecmp(a, b, la) == 0;
}

static bool is_name(const char *host)
{
    unsigned char buf[16];
    return host != NULL && host[0] != '\0' && strlen(host) < NL_HOST_MAX &&
           inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1;
}

/* --- recording (names_lock held) ------------------------------------- */

/* One pair per address and lookup: since = history_next when the lookup's
 * recording began (a list holds each address once per socket type). */
static void history_add(const char *host, const struct addr_key *k, unsigned long thread,
                        size_t since)
{
    for (size_t i = since; i < history_next; i++)
        if (same_key(&history[i % HISTORY_KEPT].key, k))
            return;
    /* The same answer again replaces its older copy, so that a name looked
     * up in a loop does not push every other name out. */
    for (size_t i = 0; i < HISTORY_KEPT; i++)
        if (history[i].thread == thread && same_key(&history[i].key, k) &&
            same_name(history[i].host, host))
            history[i].thread = 0;
    struct resolved *r = &history[history_next++ % HISTORY_KEPT];
    r->key = *k;
    r->thread = thread;
    r->ended = false;
    snprintf(r->host, sizeof(r->host), "%s", host);
}

/* A slot for a new list at head: a record still holding head is stale (its
 * freeaddrinfo went unseen); else a free slot; else the oldest. */
static struct live_list *list_slot(const struct addrinfo *head)
{
    struct live_list *slot = NULL;
    for (size_t i = 0; i < LISTS_KEPT; i++) {
        struct live_list *l = &lists[i];
        if (l->head == head)
            return l;
        if (slot == NULL || (slot->head != NULL && (l->head == NULL || l->age < slot->age)))
            slot = l;
    }
    return slot;
}

static void remember_list(const char *node, const struct addrinfo *res)
{
    unsigned long me = thread_number();
    nl_mutex_lock(&names_lock);
    struct live_list *l = list_slot(res);
    l->head = res;
    l->age = ++lists_age;
    l->n = 0;
    snprintf(l->host, sizeof(l->host), "%s", node);
    size_t since = history_next;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        struct addr_key k;
        if (!addr_key(ai->ai_addr, &k))
            continue;
        if (l->n < LIST_ADDRS) {
            l->ai_addr[l->n] = ai->ai_addr;
            l->key[l->n++] = k;
        }
        history_add(node, &k, me, since);
    }
    nl_mutex_unlock(&names_lock);
}

static void forget_list(const struct addrinfo *res)
{
    nl_mutex_lock(&names_lock);
    for (size_t i = 0; i < LISTS_KEPT; i++)
        if (lists[i].head == res)
            lists[i].head = NULL;
    nl_mutex_unlock(&names_lock);
}

static void remember_hostent(const char *name, const struct hostent *h)
{
    if (!is_name(name) || h == NULL || nl_in_vfork_child())
        return;
    unsigned long me = thread_number();
    nl_mutex_lock(&names_lock);
    size_t since = history_next;
    for (char **a = h->h_addr_list; a && *a; a++) {
        struct addr_key k;
        if (raw_key(h->h_addrtype, *a, &k))
            history_add(name, &k, me, since);
    }
    nl_mutex_unlock(&names_lock);
}

/* --- looking up (names_lock held) ------------------------------------ */

/* The name of the newest live list that handed out this very pointer,
 * still holding the address it held then; or NULL. */
static const char *exact_name(const struct sockaddr *sa, const struct addr_key *k)
{
    const struct live_list *best = NULL;
    for (size_t i = 0; i < LISTS_KEPT; i++) {
        const struct live_list *l = &lists[i];
        if (l->head == NULL || (best != NULL && l->age < best->age))
            continue;
        for (size_t j = 0; j < l->n; j++)
            if (l->ai_addr[j] == sa && same_key(&l->key[j], k)) {
                best = l;
                break;
            }
    }
    return best ? best->host : NULL;
}

static const struct resolved *history_at(size_t age) /* 0: the newest */
{
    return &history[(history_next - 1 - age) % HISTORY_KEPT];
}

/* Whether the pair age back answered k, from this thread or one that has
 * ended. A thread still running is never asked: its name would be
 * verified on a connection it was not resolved for (a helper thread
 * resolving an attacker's name for the victim's address). */
static bool history_hit(size_t age, const struct addr_key *k)
{
    const struct resolved *r = history_at(age);
    bool ours = (this_thread != 0 && r->thread == this_thread) || r->ended;
    return r->thread != 0 && same_key(&r->key, k) && ours;
}

/* Each distinct name that the lookups history_hit selects gave for k,
 * newest first; returns how many. */
static size_t history_names(const struct addr_key *k, nl_name_fn *each, void *ctx)
{
    size_t kept = history_next < HISTORY_KEPT ? history_next : HISTORY_KEPT, n = 0;
    for (size_t age = 0; age < kept; age++) {
        if (!history_hit(age, k))
            continue;
        const char *host = history_at(age)->host;
        bool seen = false;
        for (size_t newer = 0; newer < age && !seen; newer++)
            seen = history_hit(newer, k) && same_name(history_at(newer)->host, host);
        if (!seen) {
            each(host, ctx);
            n++;
        }
    }
    return n;
}

enum nl_names_source nl_names_for(const struct sockaddr *addr, nl_name_fn *each, void *ctx)
{
    struct addr_key k;
    if (!addr_key(addr, &k))
        return NL_NAMES_NONE;
    enum nl_names_source source = NL_NAMES_NONE;
    nl_mutex_lock(&names_lock);
    const char *exact = exact_name(addr, &k);
    if (exact != NULL) {
        each(exact, ctx);
        source = NL_NAMES_EXACT;
    } else if (history_names(&k, each, ctx) > 0) {
        source = NL_NAMES_THIS_THREAD;
    }
    nl_mutex_unlock(&names_lock);
    return source;
}

/* --- the hooks ------------------------------------------------------- */

NL_EXPORT int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                          struct addrinfo **res)
{
    if (!nl_started())
        return nl_real.getaddrinfo(node, service, hints, res);
    int r = nl_real.getaddrinfo(node, service, hints, res);
    if (r == 0 && is_name(node) && !nl_in_vfork_child())
        remember_list(node, *res);
    return r;
}

NL_EXPORT void freeaddrinfo(struct addrinfo *res)
{
    if (!nl_started()) {
        nl_real.freeaddrinfo(res);
        return;
    }
    /* Forgotten before it is freed: its memory may hold the next list. */
    if (res != NULL && !nl_in_vfork_child())
        forget_list(res);
    nl_real.freeaddrinfo(res);
}

NL_EXPORT struct hostent *gethostbyname(const char *name)
{
    if (!nl_started())
        return nl_real.gethostbyname(name);
    struct hostent *h = nl_real.gethostbyname(name);
    remember_hostent(name, h);
    return h;
}

NL_EXPORT struct hostent *gethostbyname2(const char *name, int af)
{
    if (!nl_started())
        return nl_real.gethostbyname2(name, af);
    struct hostent *h = nl_real.gethostbyname2(name, af);
    remember_hostent(name, h);
    return h;
}

NL_EXPORT int gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen,
                              struct hostent **result, int *h_errnop)
{
    if (!nl_started())
        return nl_real.gethostbyname_r(name, ret, buf, buflen, result, h_errnop);
    int r = nl_real.gethostbyname_r(name, ret, buf, buflen, result, h_errnop);
    if (r == 0 && result != NULL)
        remember_hostent(name, *result);
    return r;
}
