/* match.address and match.port: one value or a list of them.
 *
 * An address is "*", an IP or CIDR (v4 or v6), or a DNS name, optionally
 * with a leading "*." wildcard. Something that looks like an IP but does
 * not parse ("256.1.1.1", "10.0.0.0/33") is an error, never a host name. */
#include "policy/loader.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ADDRESS_TYPES[] = "an IP, a CIDR, a host name or \"*\"";
static const char PORT_TYPES[] = "a number or a range \"LO-HI\"";

static void mask(unsigned char *addr, int prefix, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        int bits = prefix - i * 8;
        if (bits >= 8)
            continue;
        addr[i] &= bits <= 0 ? 0 : (unsigned char)(0xff << (8 - bits));
    }
}

/* An IPv4-mapped IPv6 network is the IPv4 network: queries are compared
 * as IPv4 when they arrive mapped, so the rule must be too. */
static void unmap_v4(struct nl_addr_match *m)
{
    static const unsigned char prefix96[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (m->family != AF_INET6 || m->prefix < 96 || memcmp(m->addr, prefix96, 12) != 0)
        return;
    memmove(m->addr, m->addr + 12, 4);
    memset(m->addr + 4, 0, 12);
    m->family = AF_INET;
    m->prefix -= 96;
}

static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

static bool looks_like_ipv4(const char *s)
{
    for (; *s != '\0'; s++)
        if (!isdigit((unsigned char)*s) && *s != '.')
            return false;
    return true;
}

static int parse_cidr(struct nl_loader *L, const yaml_node_t *v, const char *s,
                      struct nl_addr_match *m)
{
    char ip[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(s, '/');
    size_t iplen = slash ? (size_t)(slash - s) : strlen(s);
    if (iplen >= sizeof(ip))
        return nl_fail(L, v, "bad address '%s': not a valid IP address", s);
    memcpy(ip, s, iplen);
    ip[iplen] = '\0';

    m->kind = NL_ADDR_CIDR;
    if (inet_pton(AF_INET, ip, m->addr) == 1) {
        m->family = AF_INET;
        m->prefix = 32;
    } else if (inet_pton(AF_INET6, ip, m->addr) == 1) {
        m->family = AF_INET6;
        m->prefix = 128;
    } else if (slash == NULL) {
        return nl_fail(L, v, "bad address '%s': not a valid %s address", s,
                       strchr(ip, ':') ? "IPv6" : "IPv4");
    } else {
        return nl_fail(L, v, "bad address '%s': '%s' is not a valid %s address", s, ip,
                       strchr(ip, ':') ? "IPv6" : "IPv4");
    }
    if (slash != NULL) {
        int max = m->prefix;
        if (!all_digits(slash + 1) || strlen(slash + 1) > 3 || atoi(slash + 1) > max)
            return nl_fail(L, v, "bad address '%s': prefix must be 0..%d", s, max);
        m->prefix = atoi(slash + 1);
    }
    mask(m->addr, m->prefix, m->family == AF_INET ? 4 : 16);
    unmap_v4(m);
    return 0;
}

/* RFC 1123 labels; the last label is not all digits (that is an IP typo). */
bool nl_valid_host_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 253)
        return false;
    const char *label = s;
    size_t label_len = 0;
    bool label_digits = true;
    for (const char *c = s;; c++) {
        if (*c == '.' || *c == '\0') {
            if (label_len == 0 || label_len > 63 || label[0] == '-' || c[-1] == '-')
                return false;
            if (*c == '\0')
                return !label_digits;
            label = c + 1;
            label_len = 0;
            label_digits = true;
            continue;
        }
        if (!isalnum((unsigned char)*c) && *c != '-')
            return false;
        if (!isdigit((unsigned char)*c))
            label_digits = false;
        label_len++;
    }
}

static int parse_address(struct nl_loader *L, const yaml_node_t *v, struct nl_addr_match *m)
{
    char kind[64];
    if (v->type != YAML_SCALAR_NODE || nl_yaml_is_null(v))
        return nl_fail(L, v, "each 'address' entry must be %s (got %s)", ADDRESS_TYPES,
                       nl_yaml_kind(v, kind, sizeof(kind)));
    const char *s = (const char *)v->data.scalar.value;
    if (strcmp(s, "*") == 0) {
        m->kind = NL_ADDR_ANY;
        return 0;
    }
    if (strchr(s, '/') != NULL || strchr(s, ':') != NULL || looks_like_ipv4(s))
        return parse_cidr(L, v, s, m);

    char name[256];
    size_t len = strlen(s);
    if (len >= sizeof(name))
        return nl_fail(L, v, "bad address '%.40s...': host name is too long", s);
    for (size_t i = 0; i <= len; i++)
        name[i] = (char)tolower((unsigned char)s[i]);
    if (len > 1 && name[len - 1] == '.')
        name[len - 1] = '\0'; /* "example.com." is fully qualified, same name */
    const char *body = strncmp(name, "*.", 2) == 0 ? name + 2 : name;
    if (!nl_valid_host_name(body))
        return nl_fail(L, v, "bad address '%s': not %s", s, ADDRESS_TYPES);
    m->kind = NL_ADDR_HOST;
    m->host = nl_strdup(L, v, name);
    return m->host == NULL ? -1 : 0;
}

/* One node or each node of a list, handed to parse_one with its slot. */
static int count_entries(struct nl_loader *L, const yaml_node_t *v, const char *key,
                         const char *types, size_t *n)
{
    char kind[64];
    if (nl_yaml_is_null(v))
        return nl_fail(L, v, "'%s' needs a value: %s, or a list of these", key, types);
    if (v->type == YAML_MAPPING_NODE)
        return nl_fail(L, v, "'%s' must be %s, or a list of these (got %s)", key, types,
                       nl_yaml_kind(v, kind, sizeof(kind)));
    if (v->type == YAML_SEQUENCE_NODE) {
        *n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (*n == 0)
            return nl_fail(L, v, "'%s' is an empty list (leave it out to match any)", key);
    } else {
        *n = 1;
    }
    return 0;
}

static const yaml_node_t *entry(struct nl_loader *L, const yaml_node_t *v, size_t i)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return v;
    return nl_yaml_node(L, v->data.sequence.items.start[i]);
}

int nl_parse_addresses(struct nl_loader *L, const yaml_node_t *v, struct nl_rule *rule)
{
    size_t n;
    NL_GUARD(count_entries(L, v, "address", ADDRESS_TYPES, &n));
    rule->addrs = calloc(n, sizeof(*rule->addrs));
    if (rule->addrs == NULL)
        return nl_fail(L, v, "out of memory");
    for (size_t i = 0; i < n; i++) {
        rule->n_addrs = i + 1; /* so nl_policy_free sees a partly filled list */
        NL_GUARD(parse_address(L, entry(L, v, i), &rule->addrs[i]));
    }
    return 0;
}

static bool parse_port_number(const char *s, size_t len, unsigned *out)
{
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    if (len == 0 || len > 6)
        return false;
    unsigned n = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        n = n * 10 + (unsigned)(s[i] - '0');
    }
    *out = n;
    return true;
}

static int parse_port(struct nl_loader *L, const yaml_node_t *v, struct nl_port_range *r)
{
    char kind[64];
    if (v->type != YAML_SCALAR_NODE || nl_yaml_is_null(v))
        return nl_fail(L, v, "each 'port' entry must be %s (got %s)", PORT_TYPES,
                       nl_yaml_kind(v, kind, sizeof(kind)));
    const char *s = (const char *)v->data.scalar.value;
    const char *dash = strchr(s, '-');
    unsigned lo, hi;
    bool ok = dash == NULL ? parse_port_number(s, strlen(s), &lo)
                           : parse_port_number(s, (size_t)(dash - s), &lo) &&
                                 parse_port_number(dash + 1, strlen(dash + 1), &hi);
    if (!ok)
        return nl_fail(L, v, "bad port '%s': expected a number 1..65535 or a range \"LO-HI\"", s);
    if (dash == NULL)
        hi = lo;
    if (lo < 1 || lo > 65535 || hi < 1 || hi > 65535)
        return nl_fail(L, v, "bad port %s'%s': ports must be 1..65535", dash ? "range " : "", s);
    if (lo > hi)
        return nl_fail(L, v, "bad port range '%s': %u is above %u", s, lo, hi);
    r->lo = (uint16_t)lo;
    r->hi = (uint16_t)hi;
    return 0;
}

int nl_parse_ports(struct nl_loader *L, const yaml_node_t *v, struct nl_rule *rule)
{
    size_t n;
    NL_GUARD(count_entries(L, v, "port", PORT_TYPES, &n));
    rule->ports = calloc(n, sizeof(*rule->ports));
    if (rule->ports == NULL)
        return nl_fail(L, v, "out of memory");
    rule->n_ports = n;
    for (size_t i = 0; i < n; i++)
        NL_GUARD(parse_port(L, entry(L, v, i), &rule->ports[i]));
    return 0;
}
