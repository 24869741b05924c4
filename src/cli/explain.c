/* nestls explain: ask the policy's own matcher which rule a connection
 * would meet, and show the layer stack it would get. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"

struct target {
    struct sockaddr_storage addr;
    char ip[INET6_ADDRSTRLEN]; /* the address, printed */
    char *name;                /* the host name given, or NULL for an IP */
    unsigned port;
};

static int usage_error(const char *what, const char *arg)
{
    nl_cli_error("explain: %s%s%s", what, arg ? ": " : "", arg ? arg : "");
    nl_cli_usage_of("explain");
    return NL_EXIT_USAGE;
}

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

static void set_ip(struct target *t, int family, const void *raw)
{
    memset(&t->addr, 0, sizeof(t->addr));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&t->addr;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)t->port);
        memcpy(&sin->sin_addr, raw, sizeof(sin->sin_addr));
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&t->addr;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)t->port);
        memcpy(&sin6->sin6_addr, raw, sizeof(sin6->sin6_addr));
    }
    inet_ntop(family, raw, t->ip, sizeof(t->ip));
}

/* A name resolves the way the program would resolve it: the first address. */
static int resolve(struct target *t, const char *name)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0) {
        nl_cli_error("explain: cannot resolve %s: %s", name, gai_strerror(rc));
        return -1;
    }
    if (res->ai_family == AF_INET)
        set_ip(t, AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr);
    else
        set_ip(t, AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr);
    freeaddrinfo(res);
    return 0;
}

/* HOST:PORT, [V6]:PORT or NAME:PORT. Returns 0, NL_EXIT_USAGE or NL_EXIT_FAIL. */
static int parse_target(char *arg, struct target *t)
{
    char *host = arg, *colon;
    unsigned char raw[16];
    if (*arg == '[') {
        char *close = strchr(arg, ']');
        if (close == NULL || close[1] != ':')
            return usage_error("expected [IPV6]:PORT", arg);
        *close = '\0';
        host = arg + 1;
        colon = close + 1;
    } else {
        colon = strrchr(arg, ':');
        if (colon == NULL)
            return usage_error("expected HOST:PORT", arg);
        if (memchr(arg, ':', (size_t)(colon - arg)) != NULL)
            return usage_error("an IPv6 address goes in brackets, as in [::1]:443", arg);
    }
    *colon = '\0';
    if (*host == '\0' || parse_port(colon + 1, &t->port) != 0)
        return usage_error("expected HOST:PORT with PORT 1-65535", colon + 1);

    if (host != arg) {
        if (inet_pton(AF_INET6, host, raw) != 1)
            return usage_error("not an IPv6 address", host);
        set_ip(t, AF_INET6, raw);
    } else if (inet_pton(AF_INET, host, raw) == 1) {
        set_ip(t, AF_INET, raw);
    } else {
        t->name = host;
        if (resolve(t, host) != 0)
            return NL_EXIT_FAIL;
    }
    return 0;
}

/* What a client layer sends as SNI and checks the certificate against. */
static void client_name(const struct nl_layer *layer, const struct target *t, char *buf,
                        size_t len)
{
    const char *checked = layer->verify ? "SNI and verification" : "SNI only, not verified";
    if (layer->server_name != NULL)
        snprintf(buf, len, "%s (server_name; %s)", layer->server_name, checked);
    else if (t->name != NULL)
        snprintf(buf, len, "%s (the host name; %s)", t->name, checked);
    else if (layer->verify)
        snprintf(buf, len, "IP address %s (no SNI; the certificate must name this IP)", t->ip);
    else
        snprintf(buf, len, "IP address %s (no SNI, not verified)", t->ip);
}

static void print_outcome(const char *file, const struct nl_policy *policy,
                          const struct nl_rule *rule, enum nl_role role, const struct target *t)
{
    char name[600];
    printf("match:   rule %zu \"%s\" at %s:%d\n", (size_t)(rule - policy->rules) + 1,
           rule->name, file, rule->pos.line);
    switch (rule->action) {
    case NL_ACTION_PASSTHROUGH:
        printf("action:  passthrough (plain TCP, not wrapped)\n");
        return;
    case NL_ACTION_DENY:
        printf("action:  deny (the connection is refused)\n");
        return;
    case NL_ACTION_WRAP:
        break;
    }
    printf("action:  wrap in %zu TLS layer%s, outermost first\n", rule->n_layers,
           rule->n_layers == 1 ? "" : "s");
    for (size_t i = 0; i < rule->n_layers; i++) {
        const struct nl_layer *layer = &rule->layers[i];
        client_name(layer, t, name, sizeof(name));
        nl_cli_print_layer(stdout, layer, i, rule->n_layers, role, name, "  ");
    }
}

/* The policy's own matcher on one query: the match, the action, the layers. */
static void print_decision(const char *file, const struct nl_policy *policy, enum nl_role role,
                           const struct target *t, const char *program)
{
    struct nl_conn_query q = {
        .role = role,
        .addr = (const struct sockaddr *)&t->addr,
        .hostname = role == NL_ROLE_CLIENT ? t->name : NULL,
        .program = program,
    };
    const struct nl_rule *rule = nl_policy_match(policy, &q);
    if (rule != NULL) {
        print_outcome(file, policy, rule, role, t);
        return;
    }
    printf("match:   no rule matches\n");
    printf("action:  %s (the default action)\n", nl_action_name(policy->settings.default_action));
}

/* curl answers "localhost" and "*.localhost" itself (RFC 6761). */
static bool curl_answers_itself(const char *name)
{
    size_t n = strlen(name);
    return strcasecmp(name, "localhost") == 0 ||
           (n > 10 && strcasecmp(name + n - 10, ".localhost") == 0);
}

/* The library sees a client's host name only when the program resolves it
 * through libc: say so, and show both outcomes, so that a wrap promised by
 * a name is never read as a wrap of every connection to that address. */
static void explain_client_name(const char *file, const struct nl_policy *policy,
                                const struct target *t, const char *program)
{
    printf("names:   the host name counts only for a program that resolves it through libc\n"
           "         (getaddrinfo, gethostbyname) and connects to what it returned.\n");
    if (curl_answers_itself(t->name))
        printf("         curl answers \"localhost\" itself, without libc: for curl this\n"
               "         connection is decided by the address alone, as is any connection\n"
               "         whose name nestls does not see.\n");
    else
        printf("         A connection whose name nestls does not see (a program with its own\n"
               "         resolver, or given the bare address) is decided by the address alone.\n");
    printf("         A program that resolved other names to this address as well gets the\n"
           "         strictest of their outcomes, and a layer without server_name verifies\n"
           "         the address itself.\n");
    printf("\nresolved through libc, as %s:\n", t->name);
    print_decision(file, policy, NL_ROLE_CLIENT, t, program);
    struct target by_address = *t;
    by_address.name = NULL;
    printf("\nby the address %s alone (%s, or a name nestls does not see):\n", t->ip,
           curl_answers_itself(t->name) ? "curl" : "an IP given");
    print_decision(file, policy, NL_ROLE_CLIENT, &by_address, program);
}

int nl_cli_explain(int argc, char **argv)
{
    const char *pos[3];
    const char *program = NULL;
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--program") == 0) {
            if (++i >= argc)
                return usage_error("--program needs a NAME", NULL);
            program = argv[i];
        } else if (strncmp(argv[i], "--program=", 10) == 0) {
            program = argv[i] + 10;
        } else if (strcmp(argv[i], "--help") == 0) {
            nl_cli_usage(stdout);
            return NL_EXIT_OK;
        } else if (n < 3) {
            pos[n++] = argv[i];
        } else {
            return usage_error("unexpected argument", argv[i]);
        }
    }
    if (n != 3)
        return usage_error("expected FILE client|server HOST:PORT", NULL);

    enum nl_role role;
    if (strcmp(pos[1], "client") == 0)
        role = NL_ROLE_CLIENT;
    else if (strcmp(pos[1], "server") == 0)
        role = NL_ROLE_SERVER;
    else
        return usage_error("the role must be client or server", pos[1]);

    char target_arg[512];
    snprintf(target_arg, sizeof(target_arg), "%s", pos[2]);
    struct target t = {0};
    int rc = parse_target(target_arg, &t);
    if (rc != 0)
        return rc;

    struct nl_policy *policy = NULL;
    char err[NL_ERR_MAX];
    if (nl_policy_load(pos[0], &policy, err, sizeof(err)) != 0) {
        nl_cli_error("%s", err);
        return NL_EXIT_FAIL;
    }

    printf("policy:  %s\n", policy->path);
    if (role == NL_ROLE_CLIENT)
        printf("query:   client connects to %s port %u", t.ip, t.port);
    else
        printf("query:   server accepts on %s port %u", t.ip, t.port);
    if (t.name != NULL)
        printf(", %s %s", role == NL_ROLE_CLIENT ? "host name" : "resolved from", t.name);
    printf(", program %s\n", program ? program : "(not given)");

    if (role == NL_ROLE_CLIENT && t.name != NULL)
        explain_client_name(pos[0], policy, &t, program);
    else
        print_decision(pos[0], policy, role, &t, program);
    nl_policy_free(policy);
    fflush(stdout);
    return NL_EXIT_OK;
}
