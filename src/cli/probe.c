/* nestls probe: connect to HOST:PORT through the layers a policy's client
 * rule would apply (or the layers given with --layer), and report each
 * one. Exit status 0 only when every layer is up and verified. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/probe.h"

#define OPT_JSON 256
#define OPT_PROGRAM 257
#define OPT_LAYER 258
#define OPT_TIMEOUT 259
#define MAX_TIMEOUT_MS 3600000u /* as the policy's handshake_timeout_ms */

struct probe_args {
    const char *policy_file;
    char *layers[NL_MAX_LAYERS];
    size_t n_layers;
    unsigned timeout_ms; /* 0: the policy's */
    const char *target;
};

static int parse_timeout(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v < 1 || v > MAX_TIMEOUT_MS)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* 0, -1 after --help, or a usage failure status. */
static int parse_args(int argc, char **argv, const struct nl_cli_ctx *c, struct probe *p,
                      struct probe_args *a)
{
    static const struct option longopts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"layer", required_argument, NULL, OPT_LAYER},
        {"program", required_argument, NULL, OPT_PROGRAM},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char shortopts[] = ":p:h";
    char **args = argv - 1;
    int opt;
    optind = 0;
    opterr = 0;
    while ((opt = getopt_long(argc + 1, args, shortopts, longopts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            a->policy_file = optarg;
            break;
        case OPT_LAYER:
            if (a->n_layers == NL_MAX_LAYERS)
                return nl_cli_usage_fail(c, "at most %d layers", NL_MAX_LAYERS);
            a->layers[a->n_layers++] = optarg;
            break;
        case OPT_PROGRAM:
            p->program = optarg;
            break;
        case OPT_TIMEOUT:
            if (parse_timeout(optarg, &a->timeout_ms) != 0)
                return nl_cli_usage_fail(c, "--timeout wants milliseconds from 1 to %u, got "
                                            "'%s'", MAX_TIMEOUT_MS, optarg);
            break;
        case OPT_JSON:
            break; /* seen by nl_cli_json_requested */
        case 'h':
            nl_cli_usage(stdout);
            return -1;
        default:
            return nl_cli_bad_option(c, opt, args, shortopts);
        }
    }
    int n = argc + 1 - optind;
    if (n != 1)
        return n == 0 ? nl_cli_usage_fail(c, "no HOST:PORT given")
                      : nl_cli_usage_fail(c, "unexpected argument: %s", args[optind + 1]);
    a->target = args[optind];
    if (a->policy_file != NULL && a->n_layers > 0)
        return nl_cli_usage_fail(c, "-p and --layer cannot be used together");
    if (a->policy_file == NULL && a->n_layers == 0)
        return nl_cli_usage_fail(c, "give the layers: -p POLICY or --layer SPEC");
    return 0;
}

static int load(const struct nl_cli_ctx *c, struct probe *p, const struct probe_args *a)
{
    if (a->n_layers > 0) {
        p->from_layers = true;
        int rc = nl_probe_layers_policy(c, (char **)a->layers, a->n_layers, &p->policy);
        if (rc == 0)
            p->rule = &p->policy->rules[0]; /* the one rule, for any address */
        return rc;
    }
    char err[NL_ERR_MAX];
    if (nl_policy_load(a->policy_file, &p->policy, err, sizeof(err)) != 0)
        return nl_cli_fail(c, NL_EXIT_CONFIG, "%s", err);
    return 0;
}

/* The first layer whose peer did not verify, as the one-line result. */
static void unverified(struct probe *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct probe_verdict v;
        nl_probe_verdict(&p->l[i], &v);
        if (v.ok)
            continue;
        if (!v.checked)
            snprintf(p->error, sizeof(p->error), "layer %zu: not verified (verify is off)",
                     i + 1);
        else
            snprintf(p->error, sizeof(p->error), "layer %zu: not verified: %s", i + 1,
                     v.reason);
        return;
    }
}

int nl_cli_probe(int argc, char **argv)
{
    struct nl_cli_ctx c = {"probe", nl_cli_json_requested(argc, argv)};
    struct probe_args a = {0};
    static struct probe p; /* large (8 layers of buffers): not on the stack */
    memset(&p, 0, sizeof(p));
    p.fd = -1;
    p.failed_layer = -1;
    int rc = parse_args(argc, argv, &c, &p, &a);
    if (rc != 0)
        return rc < 0 ? NL_EXIT_OK : rc;
    char why[600];
    if (nl_cli_target_parse(a.target, &p.target, why, sizeof(why)) != 0)
        return nl_cli_usage_fail(&c, "%s", why);
    if ((rc = load(&c, &p, &a)) != 0)
        return rc;
    p.timeout_ms = a.timeout_ms ? a.timeout_ms : p.policy->settings.handshake_timeout_ms;

    int status = NL_EXIT_OK;
    if (nl_probe_run(&p) != 0)
        status = NL_EXIT_FAIL;
    else
        unverified(&p);
    if (p.error[0] != '\0') {
        status = NL_EXIT_FAIL;
        nl_cli_error("%s", p.error);
    }
    if (c.json)
        nl_probe_report_json(stdout, &p);
    else
        nl_probe_report_text(stdout, &p);
    fflush(stdout);
    nl_probe_free(&p);
    return status;
}
