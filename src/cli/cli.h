/* The nestls command: one file per subcommand, plus the descriptions of
 * rules and layers that `check` and `explain` share. */
#ifndef NESTLS_CLI_H
#define NESTLS_CLI_H

#include <stdio.h>

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

void nl_cli_usage(FILE *out);
/* The one usage line of cmd ("run", "check", "explain"), on stderr. */
void nl_cli_usage_of(const char *cmd);
/* One line on stderr, "nestls: ...", for every error a person sees. */
void nl_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* describe.c: the words check and explain use. */
const char *nl_cli_addr_str(const struct nl_addr_match *addr, char *buf, size_t len);
void nl_cli_print_match(FILE *out, const struct nl_rule *rule, const char *indent);
/* Print layer index (0 = outermost) of n, with the details that matter for
 * role (NL_ROLE_ANY: both sides). client_name, when given, replaces the
 * client side's description of the SNI / verification name. */
void nl_cli_print_layer(FILE *out, const struct nl_layer *layer, size_t index, size_t n,
                        enum nl_role role, const char *client_name, const char *indent);

/* reach.c: can libnestls.so reach the program `run` is about to exec? */
#define NL_REACH_WHY_MAX 1024
/* 1 when the library at lib cannot reach cmd (found on PATH as execvp
 * finds it), with why set to a reason that reads after "refusing to run
 * CMD: ", e.g. "statically linked, so LD_PRELOAD cannot wrap its
 * connections". 0 when it can, or when exec will fail anyway. */
int nl_reach_refuses(const char *cmd, const char *lib, char *why, size_t len);

#endif
