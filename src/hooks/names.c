/* Name resolution: remembering which host name the program resolved to
 * which address, so that a client rule can match the name and each layer
 * can use it for SNI and certificate verification.
 *
 * A small ring of recent (address -> name) pairs; the newest wins. Numeric
 * host strings are not names and are not recorded.
 *
 * errno/return contract: exactly the real resolver's. */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/real.h"
#include "common/locking.h"
#include "hooks/export.h"
#include "hooks/hooks.h"

#define NAMES_KEPT 256

struct name_entry {
    int family;
    unsigned char addr[16];
    char host[256];
};

static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;

void nl_names_fork_lock(void) { pthread_mutex_lock(&names_lock); }
void nl_names_fork_unlock(void) { pthread_mutex_unlock(&names_lock); }
void nl_names_after_fork(void) { pthread_mutex_init(&names_lock, NULL); }
static struct name_entry names[NAMES_KEPT];
static size_t names_next;

static bool is_numeric_host(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void remember(const char *host, int family, const void *addr)
{
    if (host == NULL || host[0] == '\0' || is_numeric_host(host) || strlen(host) >= 256)
        return;
    size_t n = family == AF_INET ? 4 : 16;
    nl_mutex_lock(&names_lock);
    struct name_entry *e = &names[names_next++ % NAMES_KEPT];
    e->family = family;
    memcpy(e->addr, addr, n);
    snprintf(e->host, sizeof(e->host), "%s", host);
    nl_mutex_unlock(&names_lock);
}

bool nl_names_lookup(const struct sockaddr *sa, char *host, size_t len)
{
    int family = sa->sa_family;
    const void *addr = family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                         : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    size_t n = family == AF_INET ? 4 : 16;
    bool found = false;
    nl_mutex_lock(&names_lock);
    for (size_t i = 0; i < NAMES_KEPT && !found; i++) {
        /* newest first */
        struct name_entry *e = &names[(names_next + NAMES_KEPT - 1 - i) % NAMES_KEPT];
        if (e->host[0] && e->family == family && memcmp(e->addr, addr, n) == 0) {
            snprintf(host, len, "%s", e->host);
            found = true;
        }
    }
    nl_mutex_unlock(&names_lock);
    return found;
}

static void remember_hostent(const char *name, const struct hostent *h)
{
    if (h == NULL || (h->h_addrtype != AF_INET && h->h_addrtype != AF_INET6))
        return;
    for (char **a = h->h_addr_list; a && *a; a++)
        remember(name, h->h_addrtype, *a);
}

NL_EXPORT int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                          struct addrinfo **res)
{
    if (!nl_started())
        return nl_real.getaddrinfo(node, service, hints, res);
    int r = nl_real.getaddrinfo(node, service, hints, res);
    if (r == 0 && node != NULL)
        for (struct addrinfo *ai = *res; ai; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET)
                remember(node, AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr);
            else if (ai->ai_family == AF_INET6)
                remember(node, AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
        }
    return r;
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
