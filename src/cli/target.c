/* HOST:PORT as explain and probe take it: an IPv4 address, an IPv6
 * address in brackets, or a host name. Parsing never resolves; a name is
 * resolved only by nl_cli_target_resolve, when the caller needs its
 * address (explain decides by name where the policy allows). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"

static int parse_port(const char *s, unsigned *port)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
        return -1;
    *port = (unsigned)v;
    return 0;
}

static void set_ip(struct nl_cli_target *t, int family, const void *raw)
{
    memset(&t->addr, 0, sizeof(t->addr));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&t->addr;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)t->port);
        memcpy(&sin->sin_addr, raw, sizeof(sin->sin_addr));
        t->addr_len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&t->addr;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)t->port);
        memcpy(&sin6->sin6_addr, raw, sizeof(sin6->sin6_addr));
        t->addr_len = sizeof(*sin6);
    }
    inet_ntop(family, raw, t->ip, sizeof(t->ip));
    t->have_addr = true;
}

void nl_cli_target_set_addr(struct nl_cli_target *t, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        set_ip(t, AF_INET, &((const struct sockaddr_in *)sa)->sin_addr);
    else
        set_ip(t, AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr);
}

int nl_cli_target_parse(const char *arg, struct nl_cli_target *t, char *why, size_t len)
{
    memset(t, 0, sizeof(*t));
    const char *start = arg, *end, *port;
    unsigned char raw[16];
    if (*arg == '[') {
        end = strchr(arg, ']');
        if (end == NULL || end[1] != ':') {
            snprintf(why, len, "expected [IPV6]:PORT: %s", arg);
            return -1;
        }
        start = arg + 1;
        port = end + 2;
    } else {
        end = strrchr(arg, ':');
        if (end == NULL) {
            snprintf(why, len, "expected HOST:PORT: %s", arg);
            return -1;
        }
        if (memchr(arg, ':', (size_t)(end - arg)) != NULL) {
            snprintf(why, len, "an IPv6 address goes in brackets, as in [::1]:443: %s", arg);
            return -1;
        }
        port = end + 1;
    }
    size_t n = (size_t)(end - start);
    if (n == 0 || n >= sizeof(t->host) || parse_port(port, &t->port) != 0) {
        snprintf(why, len, "expected HOST:PORT with PORT 1-65535: %s", arg);
        return -1;
    }
    memcpy(t->host, start, n);
    t->host[n] = '\0';

    if (*arg == '[') {
        if (inet_pton(AF_INET6, t->host, raw) != 1) {
            snprintf(why, len, "not an IPv6 address: %s", t->host);
            return -1;
        }
        set_ip(t, AF_INET6, raw);
    } else if (inet_pton(AF_INET, t->host, raw) == 1) {
        set_ip(t, AF_INET, raw);
    } else {
        t->name = t->host;
    }
    return 0;
}

/* The way a program resolves a name: getaddrinfo, for a stream socket. */
int nl_cli_target_lookup(const struct nl_cli_target *t, struct addrinfo **res, char *why,
                         size_t len)
{
    char port[8];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    snprintf(port, sizeof(port), "%u", t->port);
    int rc = getaddrinfo(t->name ? t->name : t->ip, port, &hints, res);
    if (rc != 0) {
        snprintf(why, len, "cannot resolve %s: %s", t->name ? t->name : t->ip,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    return 0;
}

int nl_cli_target_resolve(struct nl_cli_target *t, char *why, size_t len)
{
    struct addrinfo *res = NULL;
    if (t->have_addr)
        return 0;
    if (nl_cli_target_lookup(t, &res, why, len) != 0)
        return -1;
    nl_cli_target_set_addr(t, res->ai_addr); /* the first, as a program takes it */
    freeaddrinfo(res);
    t->resolved = true;
    return 0;
}

bool nl_cli_is_localhost(const char *name)
{
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        n--;
    return (n == 9 && strncasecmp(name, "localhost", 9) == 0) ||
           (n > 10 && strncasecmp(name + n - 10, ".localhost", 10) == 0);
}
