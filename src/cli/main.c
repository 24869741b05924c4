/* nestls: run a program under libnestls.so, check a policy, explain one,
 * probe a peer through its layers.
 * This file only dispatches; each subcommand lives in its own file. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#ifndef NESTLS_VERSION
#define NESTLS_VERSION "unknown"
#endif

#define USAGE_RUN "run [-p FILE] [-v | -q] [--] CMD [ARGS...]"
#define USAGE_CHECK "check [--json] [-p FILE]... [--] [FILE...]"
#define USAGE_EXPLAIN                                                                  \
    "explain [--json] [--program NAME] (-p FILE | FILE) client|server HOST:PORT"
#define USAGE_PROBE                                                                    \
    "probe [--json] [--program NAME] [--timeout MS] (-p FILE | --layer SPEC...) [--] " \
    "HOST:PORT"

void nl_cli_usage_of(const char *cmd)
{
    const char *line = strcmp(cmd, "run") == 0       ? USAGE_RUN
                       : strcmp(cmd, "check") == 0   ? USAGE_CHECK
                       : strcmp(cmd, "explain") == 0 ? USAGE_EXPLAIN
                                                     : USAGE_PROBE;
    fprintf(stderr, "usage: nestls %s\n", line);
}

void nl_cli_usage(FILE *out)
{
    fputs("usage: nestls " USAGE_RUN "\n"
          "       nestls " USAGE_CHECK "\n"
          "       nestls " USAGE_EXPLAIN "\n"
          "       nestls " USAGE_PROBE "\n"
          "       nestls --help | --version\n"
          "\n"
          "  run      run CMD with libnestls.so preloaded, its TCP connections wrapped\n"
          "           in TLS as the policy says. The policy is FILE, else $NESTLS_POLICY.\n"
          "           -v logs at debug level (NESTLS_LOG=debug); -q only errors\n"
          "           (NESTLS_LOG=error). An invalid policy stops here with exit\n"
          "           status 78; CMD never runs.\n"
          "  check    validate policy files (certificates and keys included) and\n"
          "           print what each rule does; exit status 1 if one is invalid.\n"
          "  explain  show which rule a connection would match and the layers it\n"
          "           would get. client: HOST:PORT is the peer; server: it is the\n"
          "           local address that accepted. HOST is an IPv4 address, an IPv6\n"
          "           address in brackets ([::1]:443) or a name, resolved only when\n"
          "           the decision needs its address. --program NAME matches program\n"
          "           rules.\n"
          "  probe    connect to HOST:PORT and run the client side of every layer the\n"
          "           policy's client rule would apply (-p), or of the layers given\n"
          "           with --layer (outermost first), each inside the one before; report\n"
          "           each layer's protocol, cipher, group, peer chain, verification,\n"
          "           ALPN, resumption, OCSP staple and handshake time. Exit status 0\n"
          "           only when every layer verified; 1 otherwise; 78 invalid policy.\n"
          "           SPEC is KEY=VALUE,... with the keys of a policy layer:\n"
          "           server_name, ca (FILE or system), cert, key, verify (on|off),\n"
          "           min_version, max_version, ciphers, ciphersuites, groups, crl,\n"
          "           ocsp (off|prefer|require), padding, and alpn (repeat it for\n"
          "           each protocol), e.g.\n"
          "             --layer ca=outer-ca.pem --layer ca=inner-ca.pem,alpn=h2\n"
          "           --timeout MS bounds connect and handshakes together (default:\n"
          "           the policy's handshake_timeout_ms, else 10000).\n"
          "\n"
          "  --json   (check, explain, probe) one JSON document on stdout, described\n"
          "           in docs/json.md; on failure it has an \"error\" member.\n"
          "  Unknown options are usage errors (exit status 2); -- ends the options.\n",
          out);
}

void nl_cli_error(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "nestls: %s\n", line);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        nl_cli_usage(stderr);
        return NL_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        nl_cli_usage(stdout);
        return NL_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("nestls %s\n", NESTLS_VERSION);
        return NL_EXIT_OK;
    }
    if (strcmp(cmd, "run") == 0)
        return nl_cli_run(argc - 2, argv + 2);
    if (strcmp(cmd, "check") == 0)
        return nl_cli_check(argc - 2, argv + 2);
    if (strcmp(cmd, "explain") == 0)
        return nl_cli_explain(argc - 2, argv + 2);
    if (strcmp(cmd, "probe") == 0)
        return nl_cli_probe(argc - 2, argv + 2);

    nl_cli_error("unknown command '%s'", cmd);
    nl_cli_usage(stderr);
    return NL_EXIT_USAGE;
}
