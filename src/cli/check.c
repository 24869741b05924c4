/* nestls check: load each policy exactly as the library would (every
 * certificate, key and cipher string included) and print what it does. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/* The loader's defaults, repeated here only to mark them in the summary. */
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 10000u
#define DEFAULT_LINGER_MS 2000u

static const char *mark(int is_default)
{
    return is_default ? "  (default)" : "";
}

static void print_settings(FILE *out, const struct nl_settings *s)
{
    int stderr_log = s->log_file == NULL || strcmp(s->log_file, "stderr") == 0;
    fputs("settings:\n", out);
    fprintf(out, "  log_level:            %s%s\n", nl_log_level_name(s->log_level),
            mark(s->log_level == NL_LOG_INFO));
    fprintf(out, "  log_file:             %s%s\n", stderr_log ? "stderr" : s->log_file,
            mark(stderr_log));
    fprintf(out, "  default_action:       %s%s\n", nl_action_name(s->default_action),
            mark(s->default_action == NL_ACTION_PASSTHROUGH));
    fprintf(out, "  handshake_timeout_ms: %u%s\n", s->handshake_timeout_ms,
            mark(s->handshake_timeout_ms == DEFAULT_HANDSHAKE_TIMEOUT_MS));
    fprintf(out, "  linger_ms:            %u%s\n", s->linger_ms,
            mark(s->linger_ms == DEFAULT_LINGER_MS));
    if (s->keylog_file != NULL)
        fprintf(out, "  keylog_file:          %s - INSECURE: TLS secrets are written there\n",
                s->keylog_file);
    else
        fprintf(out, "  keylog_file:          off  (default)\n");
    if (s->allow_io_uring)
        fprintf(out, "  allow_io_uring:       true - io_uring, which no hook sees, is let through\n");
    else
        fprintf(out, "  allow_io_uring:       false  (default)\n");
    if (s->allow_unhookable)
        fprintf(out, "  insecure_allow_unhookable: true - INSECURE: programs LD_PRELOAD cannot "
                     "reach run in plaintext\n");
}

static void print_rule(FILE *out, const struct nl_rule *rule, size_t index)
{
    fprintf(out, "rule %zu \"%s\" (line %d)\n", index + 1, rule->name, rule->pos.line);
    nl_cli_print_match(out, rule, "  ");
    switch (rule->action) {
    case NL_ACTION_WRAP:
        fprintf(out, "  action:   wrap in %zu TLS layer%s, outermost first\n", rule->n_layers,
                rule->n_layers == 1 ? "" : "s");
        for (size_t i = 0; i < rule->n_layers; i++)
            nl_cli_print_layer(out, &rule->layers[i], i, rule->n_layers, rule->role, NULL,
                               "  ");
        break;
    case NL_ACTION_PASSTHROUGH:
        fputs("  action:   passthrough (plain TCP, not wrapped)\n", out);
        break;
    case NL_ACTION_DENY:
        fputs("  action:   deny (the connection is refused)\n", out);
        break;
    }
}

static void print_summary(FILE *out, const char *file, const struct nl_policy *policy)
{
    fprintf(out, "%s: ok\n", file);
    fprintf(out, "policy: %s\n", policy->path);
    print_settings(out, &policy->settings);
    fprintf(out, "rules: %zu, first match wins; no match: %s\n", policy->n_rules,
            nl_action_name(policy->settings.default_action));
    for (size_t i = 0; i < policy->n_rules; i++)
        print_rule(out, &policy->rules[i], i);
}

int nl_cli_check(int argc, char **argv)
{
    if (argc < 1) {
        nl_cli_error("check: no policy file given");
        nl_cli_usage_of("check");
        return NL_EXIT_USAGE;
    }
    int status = NL_EXIT_OK;
    int printed = 0;
    for (int i = 0; i < argc; i++) {
        struct nl_policy *policy = NULL;
        char err[NL_ERR_MAX];
        if (nl_policy_load(argv[i], &policy, err, sizeof(err)) != 0) {
            nl_cli_error("%s", err);
            status = NL_EXIT_FAIL;
            continue;
        }
        if (printed++ > 0)
            putchar('\n');
        print_summary(stdout, argv[i], policy);
        nl_policy_free(policy);
    }
    fflush(stdout);
    return status;
}
