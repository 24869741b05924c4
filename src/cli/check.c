/* nestls check: load each policy exactly as the library would (every
 * certificate, key and cipher string included) and print what it does. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/json.h"

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
            mark(s->log_level == NL_LOG_DEFAULT));
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
    if (s->reload)
        fprintf(out, "  reload:               on - changed certificates, keys, CAs, CRLs and "
                     "staples are taken up  (default)\n");
    else
        fprintf(out, "  reload:               off - changed files need a restart\n");
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
        nl_cli_print_starttls(out, rule, "  ");
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

static void json_settings(struct nl_json *j, const struct nl_settings *s)
{
    bool stderr_log = s->log_file == NULL || strcmp(s->log_file, "stderr") == 0;
    nl_json_object(j, "settings");
    nl_json_str(j, "log_level", nl_log_level_name(s->log_level));
    nl_json_str(j, "log_file", stderr_log ? "stderr" : s->log_file);
    nl_json_str(j, "default_action", nl_action_name(s->default_action));
    nl_json_int(j, "handshake_timeout_ms", s->handshake_timeout_ms);
    nl_json_int(j, "linger_ms", s->linger_ms);
    nl_json_str(j, "keylog_file", s->keylog_file);
    nl_json_bool(j, "allow_io_uring", s->allow_io_uring);
    nl_json_bool(j, "reload", s->reload);
    nl_json_bool(j, "insecure_allow_unhookable", s->allow_unhookable);
    nl_json_end_object(j);
}

static void json_rule(struct nl_json *j, const struct nl_rule *rule, size_t index)
{
    nl_json_object(j, NULL);
    nl_cli_json_rule_head(j, rule, index);
    nl_json_array(j, "layers");
    for (size_t i = 0; i < rule->n_layers; i++) {
        nl_json_object(j, NULL);
        nl_cli_json_layer_members(j, &rule->layers[i], i, rule->n_layers);
        nl_json_end_object(j);
    }
    nl_json_end_array(j);
    nl_json_end_object(j);
}

/* One element of "policies": a valid policy in full, or its error. */
static void json_policy(struct nl_json *j, const char *file, const struct nl_policy *policy,
                        const char *err)
{
    nl_json_object(j, NULL);
    nl_json_str(j, "file", file);
    nl_json_bool(j, "valid", policy != NULL);
    nl_json_str(j, "error", policy != NULL ? NULL : err);
    if (policy != NULL) {
        nl_json_str(j, "path", policy->path);
        json_settings(j, &policy->settings);
        nl_json_array(j, "rules");
        for (size_t i = 0; i < policy->n_rules; i++)
            json_rule(j, &policy->rules[i], i);
        nl_json_end_array(j);
    }
    nl_json_end_object(j);
}

/* Every file is checked, in the order given; the JSON document is written
 * once all are known, so that its top-level "error" can name the first
 * invalid one. */
static int check_files(const struct nl_cli_ctx *c, const char **files, int n)
{
    int status = NL_EXIT_OK, printed = 0;
    struct nl_policy **loaded = calloc((size_t)n, sizeof(*loaded));
    char (*errs)[NL_ERR_MAX] = calloc((size_t)n, sizeof(*errs));
    if (loaded == NULL || errs == NULL) {
        free(loaded);
        free(errs);
        return nl_cli_fail(c, NL_EXIT_FAIL, "out of memory");
    }
    int first_bad = -1;
    for (int i = 0; i < n; i++) {
        if (nl_policy_load(files[i], &loaded[i], errs[i], sizeof(errs[i])) != 0) {
            nl_cli_error("%s", errs[i]);
            status = NL_EXIT_FAIL;
            if (first_bad < 0)
                first_bad = i;
            continue;
        }
        if (c->json)
            continue;
        if (printed++ > 0)
            putchar('\n');
        print_summary(stdout, files[i], loaded[i]);
    }
    if (c->json) {
        struct nl_json j;
        nl_json_init(&j, stdout);
        nl_json_object(&j, NULL);
        nl_json_str(&j, "error", first_bad >= 0 ? errs[first_bad] : NULL);
        nl_json_array(&j, "policies");
        for (int i = 0; i < n; i++)
            json_policy(&j, files[i], loaded[i], errs[i]);
        nl_json_end_array(&j);
        nl_json_end_object(&j);
        nl_json_finish(&j);
    }
    for (int i = 0; i < n; i++)
        nl_policy_free(loaded[i]);
    free(loaded);
    free(errs);
    fflush(stdout);
    return status;
}

#define OPT_JSON 256

int nl_cli_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char shortopts[] = ":p:h";
    struct nl_cli_ctx c = {"check", nl_cli_json_requested(argc, argv)};
    /* -p FILE and FILE... together, in the order written. */
    const char **files = calloc((size_t)argc + 1, sizeof(*files));
    if (files == NULL)
        return nl_cli_fail(&c, NL_EXIT_FAIL, "out of memory");
    int n = 0, opt, status;

    /* getopt wants the program name in argv[0]; a leading "-" in the
     * option string hands back positional FILEs in place (as 1), so that
     * "-p a.yaml b.yaml" keeps that order. */
    char **args = argv - 1;
    optind = 0;
    opterr = 0;
    while ((opt = getopt_long(argc + 1, args, "-:p:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 1:
        case 'p':
            files[n++] = optarg;
            break;
        case OPT_JSON:
            break; /* already seen by nl_cli_json_requested */
        case 'h':
            free(files);
            nl_cli_usage(stdout);
            return NL_EXIT_OK;
        default:
            free(files);
            return nl_cli_bad_option(&c, opt, args, shortopts);
        }
    }
    for (int i = optind; i < argc + 1; i++) /* after "--" */
        files[n++] = args[i];
    if (n == 0)
        status = nl_cli_usage_fail(&c, "no policy file given");
    else
        status = check_files(&c, files, n);
    free(files);
    return status;
}
