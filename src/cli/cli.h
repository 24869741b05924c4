/* The nestls command: one file (or a few, for probe: probe.h) per
 * subcommand, plus what they share: option handling and failure reports
 * (options.c), HOST:PORT (target.c), and the descriptions of rules and
 * layers as text (describe.c) and JSON (describe_json.c, json.c). */
#ifndef NESTLS_CLI_H
#define NESTLS_CLI_H

#include <arpa/inet.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>

#include "policy/policy.h"

#define NL_EXIT_OK 0
#define NL_EXIT_FAIL 1
#define NL_EXIT_USAGE 2
#define NL_EXIT_CONFIG 78 /* EX_CONFIG: what the library exits with too */
#define NL_EXIT_NOEXEC 126
#define NL_EXIT_NOTFOUND 127

/* Each takes the arguments after the subcommand's name. */
int nl_cli_run(int argc, char **argv);
int nl_cli_check(int argc, char **argv);
int nl_cli_explain(int argc, char **argv);
int nl_cli_probe(int argc, char **argv);

void nl_cli_usage(FILE *out);
/* The one usage line of cmd ("run", "check", "explain", "probe"), on stderr. */
void nl_cli_usage_of(const char *cmd);
/* One line on stderr, "nestls: ...", for every error a person sees. */
void nl_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* options.c: what every subcommand does the same way.
 * How a subcommand reports: one line on stderr for people, and under
 * --json also {"error": ...} on stdout. */
struct nl_cli_ctx {
    const char *cmd; /* "check", "explain", "probe", "run" */
    bool json;
};
/* Whether --json appears among argv's options (before any "--"). */
bool nl_cli_json_requested(int argc, char **argv);
/* Report a failure (fmt is the whole message) and return status. */
int nl_cli_fail(const struct nl_cli_ctx *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "CMD: what" plus the usage line (text mode); returns NL_EXIT_USAGE. */
int nl_cli_usage_fail(const struct nl_cli_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* After getopt_long returned '?' or ':' (optstring starting with ':', or
 * "+:"): one line naming the option; returns NL_EXIT_USAGE. */
int nl_cli_bad_option(const struct nl_cli_ctx *c, int ret, char **args, const char *shortopts);

/* describe.c: the words check and explain use. */
const char *nl_cli_addr_str(const struct nl_addr_match *addr, char *buf, size_t len);
void nl_cli_print_match(FILE *out, const struct nl_rule *rule, const char *indent);
/* "starttls: smtp (...)" when the rule has one; nothing otherwise. */
void nl_cli_print_starttls(FILE *out, const struct nl_rule *rule, const char *indent);
/* Print layer index (0 = outermost) of n, with the details that matter for
 * role (NL_ROLE_ANY: both sides). client_name, when given, replaces the
 * client side's description of the SNI / verification name. */
void nl_cli_print_layer(FILE *out, const struct nl_layer *layer, size_t index, size_t n,
                        enum nl_role role, const char *client_name, const char *indent);

/* A path as a person would open it (symbolic links and "dir/../x"
 * resolved); the path as given when it cannot be resolved. */
struct nl_shown_path {
    char path[PATH_MAX];
};
const char *nl_cli_show_path(const char *path, struct nl_shown_path *buf);
/* A layer's ca means the system trust store (NULL or "system"). */
bool nl_cli_ca_is_system(const char *ca);
const char *nl_cli_layer_position(size_t index, size_t n);

/* describe_json.c: the same descriptions as JSON (docs/json.md). */
struct nl_json;
/* Members "index", "name", "line", "match", "action" of a rule object. */
void nl_cli_json_rule_head(struct nl_json *j, const struct nl_rule *rule, size_t index);
/* Members of a layer object: its settings as the policy gives them. */
void nl_cli_json_layer_members(struct nl_json *j, const struct nl_layer *layer, size_t index,
                               size_t n);

/* target.c: HOST:PORT for explain and probe. */
struct addrinfo;
struct nl_cli_target {
    char host[256];                /* HOST as given (brackets removed) */
    const char *name;              /* host when it is a name, else NULL */
    unsigned port;
    bool have_addr;                /* given as an IP, or resolved */
    bool resolved;                 /* the address came from resolving name */
    struct sockaddr_storage addr;  /* with port */
    socklen_t addr_len;
    char ip[INET6_ADDRSTRLEN];     /* the address, printed */
};
/* Parse without resolving. -1 with why set ("expected HOST:PORT: x"). */
int nl_cli_target_parse(const char *arg, struct nl_cli_target *t, char *why, size_t len);
/* Resolve a name to its first address (getaddrinfo, as a program would);
 * nothing to do for an IP. -1 with why ("cannot resolve x: ..."). */
int nl_cli_target_resolve(struct nl_cli_target *t, char *why, size_t len);
/* Every address of the target, for a caller that tries them in turn. */
int nl_cli_target_lookup(const struct nl_cli_target *t, struct addrinfo **res, char *why,
                         size_t len);
void nl_cli_target_set_addr(struct nl_cli_target *t, const struct sockaddr *sa);
/* "localhost" and "*.localhost", which RFC 6761 keeps on loopback. */
bool nl_cli_is_localhost(const char *name);

/* match_name.c: the rule for a client connection to NAME:PORT (the
 * program resolved NAME through libc), decided without the address when
 * no rule before the match could claim it by address. 1: decided, *rule
 * is the match or NULL (the default action). 0: the address is needed,
 * *needs_addr is the first rule whose addresses could match it. */
int nl_cli_match_by_name(const struct nl_policy *policy, const char *name, unsigned port,
                         const char *program, const struct nl_rule **rule,
                         const struct nl_rule **needs_addr);

/* reach.c: can libnestls.so reach the program `run` is about to exec? */
#define NL_REACH_WHY_MAX 1024
/* 1 when the library at lib cannot reach cmd (found on PATH as execvp
 * finds it), with why set to a reason that reads after "refusing to run
 * CMD: ", e.g. "statically linked, so LD_PRELOAD cannot wrap its
 * connections". 0 when it can, or when exec will fail anyway. */
int nl_reach_refuses(const char *cmd, const char *lib, char *why, size_t len);

#endif
