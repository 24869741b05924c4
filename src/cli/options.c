/* What every subcommand does the same way: name an option it does not
 * know in one line (exit 2), and report a failure either as that one line
 * or, under --json, also as a JSON document with an "error" member, so
 * that a script reading stdout always gets JSON. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/json.h"

bool nl_cli_json_requested(int argc, char **argv)
{
    /* Decided before parsing, so that an error in an option written
     * before --json is reported as JSON too. */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--json") == 0)
            return true;
    }
    return false;
}

static int fail_line(const struct nl_cli_ctx *c, int status, bool usage, const char *line)
{
    nl_cli_error("%s", line);
    if (c->json)
        nl_json_error_doc(stdout, line);
    else if (usage)
        nl_cli_usage_of(c->cmd);
    return status;
}

int nl_cli_fail(const struct nl_cli_ctx *c, int status, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    return fail_line(c, status, false, line);
}

int nl_cli_usage_fail(const struct nl_cli_ctx *c, const char *fmt, ...)
{
    char what[1800], line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "%s: %s", c->cmd, what);
    return fail_line(c, NL_EXIT_USAGE, true, line);
}

static bool known_short(const char *shortopts, int opt)
{
    return opt > 0 && opt < 256 && opt != ':' && opt != '+' && strchr(shortopts, opt) != NULL;
}

int nl_cli_bad_option(const struct nl_cli_ctx *c, int ret, char **args, const char *shortopts)
{
    /* The word getopt stopped at: "--frob", "--json=1", "-x" or "-qx". */
    const char *word = args[optind - 1];
    int name_len = (int)strcspn(word, "=");
    if (ret == ':')
        return nl_cli_usage_fail(c, "option '%s' needs a value", word);
    /* '?' for an option getopt knows: a long option without a value given
     * one ("--json=1"). */
    if (optopt >= 256 || (optopt != 0 && known_short(shortopts, optopt) &&
                          strncmp(word, "--", 2) == 0))
        return nl_cli_usage_fail(c, "option '%.*s' takes no value", name_len, word);
    if (optopt == 0)
        return nl_cli_usage_fail(c, "unknown option '%.*s'", name_len, word);
    return nl_cli_usage_fail(c, "unknown option '-%c'", optopt);
}
