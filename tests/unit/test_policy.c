/* Unit tests for the policy loader (src/policy): every class of load error
 * with its exact line:col, valid loads and the SSL_CTXs they build, and
 * rule matching.
 *
 * Runs from the repository root (make build/tests/test_policy). Policies
 * are written into a fresh temporary directory holding a "certs" link to
 * $NESTLS_CERTS (default: certs/), so relative paths are exercised too.
 * NESTLS_TEST_VERBOSE=1 prints every error message the cases provoke. */
#include "policy/policy.h"
#include "policy/loader.h" /* the input bounds: NL_POLICY_MAX_BYTES, NL_YAML_MAX_... */
#include "common/log.h"
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[256];              /* the temporary directory */
static char policy_path[300];      /* tmp/p.yaml, where cases write */
static char certs[PATH_MAX];       /* absolute certs directory */
static bool verbose;

/* --- helpers ---------------------------------------------------------- */

static bool write_file(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        return false;
    bool ok = fputs(text, fp) >= 0;
    ok = fclose(fp) == 0 && ok;
    return ok && chmod(path, mode) == 0;
}

static int load_text(const char *yaml, struct nl_policy **p, char *err)
{
    *p = NULL;
    if (!write_file(policy_path, yaml, 0644)) {
        snprintf(err, NL_ERR_MAX, "cannot write %.200s: %s", policy_path, strerror(errno));
        return -2;
    }
    int rc = nl_policy_load(policy_path, p, err, NL_ERR_MAX);
    if (rc < 0 && verbose)
        printf("#   -> %s\n", err);
    return rc;
}

/* The load must fail with "POLICY:LINECOL: " and every needle in the line. */
static bool check_error_at(int line, const char *path, int rc, struct nl_policy *p,
                           const char *err, const char *linecol, va_list needles)
{
    if (rc == 0) {
        nl_policy_free(p);
        unit_fail(line, "loaded, but an error at %s was expected", linecol);
        return false;
    }
    if (p != NULL) {
        unit_fail(line, "failed load left *out set");
        return false;
    }
    char prefix[PATH_MAX + 64];
    snprintf(prefix, sizeof(prefix), "%s:%s: ", path, linecol);
    if (strncmp(err, prefix, strlen(prefix)) != 0) {
        unit_fail(line, "expected \"%s...\", got \"%s\"", prefix, err);
        return false;
    }
    if (strchr(err, '\n') != NULL) {
        unit_fail(line, "message has more than one line: \"%s\"", err);
        return false;
    }
    for (const char *needle; (needle = va_arg(needles, const char *)) != NULL;) {
        if (strstr(err, needle) == NULL) {
            unit_fail(line, "expected \"%s\" in \"%s\"", needle, err);
            return false;
        }
    }
    return true;
}

static bool check_error(int line, const char *yaml, const char *linecol, ...)
{
    char err[NL_ERR_MAX];
    struct nl_policy *p;
    int rc = load_text(yaml, &p, err);
    va_list ap;
    va_start(ap, linecol);
    bool ok = check_error_at(line, policy_path, rc, p, err, linecol, ap);
    va_end(ap);
    return ok;
}

/* EXPECT_ERROR(yaml, "LINE:COL", "needle", ...): ends the case on mismatch. */
#define EXPECT_ERROR(yaml, linecol, ...)                                               \
    do {                                                                               \
        if (!check_error(__LINE__, yaml, linecol, __VA_ARGS__, (const char *)NULL))    \
            return;                                                                    \
    } while (0)

/* The full message, exactly: "POLICY:" + rest. */
#define EXPECT_MESSAGE(yaml, linecol, rest)                                            \
    do {                                                                               \
        char err_[NL_ERR_MAX], want_[NL_ERR_MAX + PATH_MAX];                           \
        struct nl_policy *p_;                                                          \
        int rc_ = load_text(yaml, &p_, err_);                                          \
        nl_policy_free(p_);                                                            \
        snprintf(want_, sizeof(want_), "%s:%s: %s", policy_path, linecol, rest);       \
        CHECK(rc_ == -1 && strcmp(err_, want_) == 0, "expected \"%s\", got \"%s\"",     \
              want_, rc_ == 0 ? "(loaded)" : err_);                                    \
    } while (0)

#define LOAD_OK(yaml, p)                                                              \
    do {                                                                              \
        char err_[NL_ERR_MAX];                                                        \
        CHECK(load_text(yaml, &(p), err_) == 0, "load failed: %s", err_);             \
    } while (0)

static const struct nl_rule *find_rule(const struct nl_policy *p, const char *name)
{
    for (size_t i = 0; i < p->n_rules; i++)
        if (strcmp(p->rules[i].name, name) == 0)
            return &p->rules[i];
    return NULL;
}

/* A query for ip (v4 or v6; NULL: no address) and port. */
static const struct nl_rule *query(const struct nl_policy *p, enum nl_role role, const char *ip,
                                   int port, const char *host, const char *program)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (ip != NULL && strchr(ip, ':') != NULL) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, ip, &in6->sin6_addr) != 1)
            return NULL;
    } else if (ip != NULL) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, ip, &in->sin_addr) != 1)
            return NULL;
    }
    struct nl_conn_query q = {
        .role = role,
        .addr = ip != NULL ? (const struct sockaddr *)&ss : NULL,
        .hostname = host,
        .program = program,
    };
    return nl_policy_match(p, &q);
}

static const char *matched(const struct nl_rule *r)
{
    return r != NULL ? r->name : "(none)";
}

#define EXPECT_MATCH(rule, want)                                                       \
    CHECK(strcmp(matched(rule), want) == 0, "%s: matched %s, expected %s", #rule,      \
          matched(rule), want)

/* A handshake over a memory BIO pair: true when both ends complete it.
 * alpn receives what the client sees negotiated ("" for none). */
static bool handshake(SSL_CTX *client_ctx, SSL_CTX *server_ctx, char *alpn, size_t alpn_size)
{
    SSL *c = SSL_new(client_ctx), *s = SSL_new(server_ctx);
    BIO *cb = NULL, *sb = NULL;
    bool ok = false;
    if (c == NULL || s == NULL || BIO_new_bio_pair(&cb, 0, &sb, 0) != 1)
        goto out;
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    SSL_set_tlsext_host_name(c, "localhost");
    bool c_done = false, s_done = false;
    for (int round = 0; round < 50 && !(c_done && s_done); round++) {
        int rc;
        if (!c_done && (rc = SSL_do_handshake(c)) != 1) {
            int e = SSL_get_error(c, rc);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                goto out;
        } else {
            c_done = true;
        }
        if (!s_done && (rc = SSL_do_handshake(s)) != 1) {
            int e = SSL_get_error(s, rc);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                goto out;
        } else {
            s_done = true;
        }
    }
    /* TLS 1.3: the client finishes first; a server that then rejects the
     * client's certificate says so in its next record. */
    char byte;
    if (c_done && s_done && SSL_read(c, &byte, 1) <= 0 &&
        SSL_get_error(c, 0) != SSL_ERROR_WANT_READ)
        goto out;
    ok = c_done && s_done;
    const unsigned char *proto;
    unsigned len;
    SSL_get0_alpn_selected(c, &proto, &len);
    snprintf(alpn, alpn_size, "%.*s", (int)len, proto != NULL ? (const char *)proto : "");
out:
    SSL_free(c);
    SSL_free(s);
    ERR_clear_error();
    return ok;
}

/* The head of a client rule whose layer 1 starts at 7:9 and whose further
 * layer keys go on line 8 onwards, at column 9. */
#define CLIENT_RULE        \
    "version: 1\n"         \
    "rules:\n"             \
    "  - name: db\n"       \
    "    match:\n"         \
    "      role: client\n" \
    "    layers:\n"        \
    "      - server_name: outer.example\n"

/* A deny rule whose match keys go on line 4 onwards, at column 7. */
#define MATCH_RULE(line4) \
    "version: 1\n"        \
    "rules:\n"            \
    "  - match:\n"        \
    line4                 \
    "    action: deny\n"

/* --- YAML and structure ---------------------------------------------- */

static void yaml_syntax_error_points_at_problem(void)
{
    EXPECT_ERROR("version: 1\n"
                 "settings:\n"
                 "  log_level: info\n"
                 "    linger_ms: 5\n",
                 "4:14", "YAML syntax error", "mapping values are not allowed");
}

static void yaml_unterminated_quote_is_syntax_error(void)
{
    EXPECT_ERROR("version: 1\n"
                 "rules:\n"
                 "  - name: \"db\n",
                 "4:1", "YAML syntax error", "quoted scalar");
}

static void unquoted_wildcard_gets_quoting_hint(void)
{
    EXPECT_ERROR(MATCH_RULE("      address: *.example.com\n"), "4:17", "YAML syntax error",
                 "while scanning an alias", "must be quoted, like \"*.example.com\"");
}

static void empty_file_is_empty_policy(void)
{
    EXPECT_MESSAGE("", "1:1", "empty policy (expected at least 'version: 1')");
}

static void comment_only_file_is_empty_policy(void)
{
    EXPECT_ERROR("# nothing yet\n\n", "1:1", "empty policy");
}

static void top_level_must_be_mapping(void)
{
    EXPECT_ERROR("- version: 1\n- rules: []\n", "1:1", "a policy is a mapping", "got a list");
}

/* Found by fuzz_policy: the quoted value held the line break. */
static void line_breaks_in_a_quoted_value_stay_on_one_line(void)
{
    EXPECT_MESSAGE("a\n\nb\n", "1:1",
                   "a policy is a mapping with 'version', 'settings' and 'rules' (got 'a\\nb')");
}

static void second_yaml_document_is_refused(void)
{
    EXPECT_ERROR("version: 1\n---\nversion: 1\n", "2:1", "only one YAML document");
}

static void missing_version_points_at_top_mapping(void)
{
    EXPECT_ERROR("# a policy\nrules: []\n", "2:1", "missing required key 'version'");
}

static void version_must_be_1(void)
{
    EXPECT_MESSAGE("version: 2\n", "1:10", "unsupported version '2': this nestls reads version 1");
}

static void version_must_be_scalar(void)
{
    EXPECT_ERROR("version: [1]\n", "1:10", "'version' must be 1 (got a list)");
}

static void unreadable_policy_file(void)
{
    char path[300], err[NL_ERR_MAX], want[400];
    struct nl_policy *p = NULL;
    snprintf(path, sizeof(path), "%s/none.yaml", tmp);
    CHECK(nl_policy_load(path, &p, err, sizeof(err)) == -1 && p == NULL, "loaded %s", path);
    snprintf(want, sizeof(want), "%s:1:1: cannot read policy: No such file or directory", path);
    CHECK(strcmp(err, want) == 0, "expected \"%s\", got \"%s\"", want, err);
}

static void error_names_file_as_given(void)
{
    const char *rel = "tests/fixtures/policy/unknown-key.yaml";
    char err[NL_ERR_MAX];
    struct nl_policy *p = NULL;
    CHECK(access(rel, R_OK) == 0, "run from the repository root (%s not found)", rel);
    CHECK(nl_policy_load(rel, &p, err, sizeof(err)) == -1, "loaded %s", rel);
    const char *want = "tests/fixtures/policy/unknown-key.yaml:7:9: unknown key 'servr_name' "
                       "in layer 1 of rule 'db' (did you mean 'server_name'?)";
    CHECK(strcmp(err, want) == 0, "expected \"%s\", got \"%s\"", want, err);
}

/* --- bounds on what a file can cost ------------------------------------ */

/* head, unit n times, tail: a new string (NULL when out of memory). */
static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t h = strlen(head), u = strlen(unit), t = strlen(tail);
    char *s = malloc(h + u * n + t + 1);
    if (s == NULL)
        return NULL;
    char *w = s;
    memcpy(w, head, h);
    w += h;
    for (size_t i = 0; i < n; i++, w += u)
        memcpy(w, unit, u);
    memcpy(w, tail, t + 1);
    return s;
}

/* EXPECT_ERROR on a text from repeat(), which it frees. */
#define EXPECT_ERROR_FREE(yaml, linecol, ...)                                          \
    do {                                                                               \
        char *text_ = (yaml);                                                          \
        CHECK(text_ != NULL, "out of memory");                                         \
        bool ok_ = check_error(__LINE__, text_, linecol, __VA_ARGS__, (const char *)NULL); \
        free(text_);                                                                   \
        if (!ok_)                                                                      \
            return;                                                                    \
    } while (0)

/* LOAD_OK on a text from repeat(), which it frees; the policy is freed too. */
#define LOAD_OK_FREE(yaml)                                                             \
    do {                                                                               \
        char *text_ = (yaml), err_[NL_ERR_MAX];                                        \
        struct nl_policy *p_ = NULL;                                                   \
        CHECK(text_ != NULL, "out of memory");                                         \
        int rc_ = load_text(text_, &p_, err_);                                         \
        free(text_);                                                                   \
        nl_policy_free(p_);                                                            \
        CHECK(rc_ == 0, "load failed: %s", err_);                                      \
    } while (0)

static void policy_over_1_mib_is_refused(void)
{
    const char *head = "version: 1\n#";
    char want[96];
    snprintf(want, sizeof(want), "it is %d bytes, over the limit of %d bytes (1 MiB)",
             NL_POLICY_MAX_BYTES + 1, NL_POLICY_MAX_BYTES);
    EXPECT_ERROR_FREE(repeat(head, "x", NL_POLICY_MAX_BYTES - strlen(head), "\n"), "1:1",
                      "cannot read policy: ", want);
}

static void policy_of_exactly_1_mib_loads(void)
{
    const char *head = "version: 1\n#";
    LOAD_OK_FREE(repeat(head, "x", NL_POLICY_MAX_BYTES - strlen(head) - 1, "\n"));
}

static void device_and_directory_are_not_policies(void)
{
    char err[NL_ERR_MAX];
    struct nl_policy *p = NULL;
    const char *want = "/dev/null:1:1: cannot read policy: it is a character device, not a "
                       "regular file";
    CHECK(nl_policy_load("/dev/null", &p, err, sizeof(err)) == -1 && p == NULL, "loaded");
    CHECK(strcmp(err, want) == 0, "expected \"%s\", got \"%s\"", want, err);
    char want_dir[400];
    snprintf(want_dir, sizeof(want_dir), "%s:1:1: cannot read policy: it is a directory, not a "
                                         "regular file", tmp);
    CHECK(nl_policy_load(tmp, &p, err, sizeof(err)) == -1 && p == NULL, "loaded %s", tmp);
    CHECK(strcmp(err, want_dir) == 0, "expected \"%s\", got \"%s\"", want_dir, err);
}

/* Nobody writes to the FIFO: opening it for reading alone would block. An
 * alarm ends the test run instead of hanging it if that ever comes back. */
static void fifo_is_refused_without_blocking(void)
{
    char path[300], err[NL_ERR_MAX], want[400];
    struct nl_policy *p = NULL;
    snprintf(path, sizeof(path), "%s/fifo.yaml", tmp);
    CHECK(mkfifo(path, 0600) == 0, "mkfifo %s: %s", path, strerror(errno));
    alarm(10);
    int rc = nl_policy_load(path, &p, err, sizeof(err));
    alarm(0);
    unlink(path);
    CHECK(rc == -1 && p == NULL, "loaded %s", path);
    snprintf(want, sizeof(want), "%s:1:1: cannot read policy: it is a FIFO, not a regular file",
             path);
    CHECK(strcmp(err, want) == 0, "expected \"%s\", got \"%s\"", want, err);
}

/* Each line's anchor is ten aliases of the one before: 3 nodes, 31, 311...
 * The count passes the limit at the third alias of line 8. */
static void alias_expansion_past_the_limit_is_refused(void)
{
    CHECK(NL_YAML_MAX_NODES == 100000, "the expected position assumes 100000 nodes");
#define TEN(a) "[" a ", " a ", " a ", " a ", " a ", " a ", " a ", " a ", " a ", " a "]\n"
    EXPECT_MESSAGE("version: 1\n"
                   "rules:\n"
                   "  - &a0 {action: deny}\n"
                   "  - &a1 " TEN("*a0")
                   "  - &a2 " TEN("*a1")
                   "  - &a3 " TEN("*a2")
                   "  - &a4 " TEN("*a3")
                   "  - &a5 " TEN("*a4"),
                   "8:20", "alias *a4 takes the policy past 100000 nodes, the limit (an alias "
                           "counts as a copy of what it names)");
#undef TEN
}

static void alias_inside_its_own_anchor_is_refused(void)
{
    EXPECT_MESSAGE("version: 1\nrules: &r [*r]\n", "2:12",
                   "alias *r is inside the node it names: the policy would never end");
}

/* The use anchors are for: one list of layers shared by two rules. */
static void shared_layers_by_alias_load(void)
{
    struct nl_policy *p;
    LOAD_OK("version: 1\n"
            "rules:\n"
            "  - name: a\n"
            "    match: {role: client, port: 1}\n"
            "    layers: &tls\n"
            "      - ca: certs/outer-ca.pem\n"
            "  - name: b\n"
            "    match: {role: client, port: 2}\n"
            "    layers: *tls\n",
            p);
    bool ok = p->n_rules == 2 && p->rules[0].n_layers == 1 && p->rules[1].n_layers == 1;
    nl_policy_free(p);
    CHECK(ok, "expected two rules of one layer each");
}

static void nesting_past_the_depth_limit_is_refused(void)
{
    char linecol[32];
    /* The top mapping is level 1; "rules: " ends at column 7. */
    snprintf(linecol, sizeof(linecol), "2:%d", 7 + NL_YAML_MAX_DEPTH);
    EXPECT_ERROR_FREE(repeat("version: 1\nrules: ", "[", 100000, "\n"), linecol,
                      "nested more than 64 levels deep, the limit for a policy");
}

static void nesting_at_the_depth_limit_is_only_checked_for_sense(void)
{
    char *open = repeat("version: 1\nrules: ", "[", NL_YAML_MAX_DEPTH - 1, "");
    CHECK(open != NULL, "out of memory");
    /* The rules list opens at column 8, its first item (a list) at 9. */
    EXPECT_ERROR_FREE(repeat(open, "]", NL_YAML_MAX_DEPTH - 1, "\n"), "2:9",
                      "rule 1 must be a mapping");
    free(open);
}

static void more_anchors_than_the_limit_are_refused(void)
{
    char *yaml = malloc(32 * (NL_YAML_MAX_ANCHORS + 2) + 16);
    CHECK(yaml != NULL, "out of memory");
    size_t used = (size_t)sprintf(yaml, "version: 1\nx:\n");
    for (int i = 0; i <= NL_YAML_MAX_ANCHORS; i++)
        used += (size_t)sprintf(yaml + used, "  - &a%d %d\n", i, i);
    char linecol[32], want[64];
    snprintf(linecol, sizeof(linecol), "%d:5", 3 + NL_YAML_MAX_ANCHORS);
    snprintf(want, sizeof(want), "more than %d anchors (&a%d is one too many)",
             NL_YAML_MAX_ANCHORS, NL_YAML_MAX_ANCHORS);
    EXPECT_ERROR_FREE(yaml, linecol, want);
}

/* Five nodes before the first entry (mapping, two keys, "1", the list):
 * entry N is node 5 + N, and entries sit 3 columns apart from column 9. */
static void nodes_past_the_limit_without_aliases_are_refused(void)
{
    char linecol[32];
    int entry = NL_YAML_MAX_NODES + 1 - 5;
    snprintf(linecol, sizeof(linecol), "2:%d", 9 + (entry - 1) * 3);
    EXPECT_ERROR_FREE(repeat("version: 1\nrules: [", "a, ", NL_YAML_MAX_NODES, "a]\n"), linecol,
                      "the policy has more than 100000 nodes, the limit");
}

#define ONE_LAYER_RULE "  - {match: {role: client}, layers: [{ca: certs/outer-ca.pem}]}\n"

static void layers_past_the_total_limit_are_refused(void)
{
    char linecol[32];
    snprintf(linecol, sizeof(linecol), "%d:38", 2 + NL_POLICY_MAX_TOTAL_LAYERS + 1);
    EXPECT_ERROR_FREE(repeat("version: 1\nrules:\n", ONE_LAYER_RULE,
                             NL_POLICY_MAX_TOTAL_LAYERS + 1, ""),
                      linecol, "more than 128 TLS layers in all rules together");
}

static void layers_at_the_total_limit_load(void)
{
    LOAD_OK_FREE(repeat("version: 1\nrules:\n", ONE_LAYER_RULE, NL_POLICY_MAX_TOTAL_LAYERS, ""));
}

/* --- keys ------------------------------------------------------------- */

static void unknown_layer_key_suggests_nearest(void)
{
    EXPECT_MESSAGE(CLIENT_RULE "        kye: certs/outer-client.key\n", "8:9",
                   "unknown key 'kye' in layer 1 of rule 'db' (did you mean 'key'?)");
}

static void unknown_top_key_suggests_transposition(void)
{
    EXPECT_MESSAGE("verison: 1\n", "1:1",
                   "unknown key 'verison' at top level (did you mean 'version'?)");
}

static void unknown_match_key_suggests_nearest(void)
{
    EXPECT_ERROR(MATCH_RULE("      addresses: 10.0.0.1\n"), "4:7",
                 "unknown key 'addresses' in match of rule 1 (did you mean 'address'?)");
}

static void unknown_key_far_from_all_lists_valid_keys(void)
{
    EXPECT_MESSAGE("version: 1\nsettings:\n  colour: red\n", "3:3",
                   "unknown key 'colour' in settings (valid keys: log_level, log_file, "
                   "default_action, handshake_timeout_ms, linger_ms, keylog_file, "
                   "insecure_allow_unhookable, allow_io_uring, reload)");
}

static void duplicate_key_points_at_second(void)
{
    EXPECT_MESSAGE(MATCH_RULE("      port: 80\n      port: 81\n"), "5:7",
                   "duplicate key 'port' in match of rule 1 (first given at line 4)");
}

/* --- types and values ------------------------------------------------- */

static void port_mapping_is_wrong_type(void)
{
    EXPECT_ERROR(MATCH_RULE("      port: {lo: 1}\n"), "4:13",
                 "'port' must be a number or a range \"LO-HI\", or a list of these (got a mapping)");
}

static void host_name_in_server_rule_is_refused(void)
{
    EXPECT_ERROR(MATCH_RULE("      role: server\n      address: db.example\n"), "5:16",
                 "host name 'db.example' can never match a server connection");
}

static void malformed_server_name_is_refused(void)
{
    EXPECT_ERROR("version: 1\n"
                 "rules:\n"
                 "  - match: {role: client}\n"
                 "    layers:\n"
                 "      - server_name: \"bad name!\"\n",
                 "5:22", "bad server_name 'bad name!': not a host name or IP address");
}

static void settings_list_is_wrong_type(void)
{
    EXPECT_ERROR("version: 1\nsettings: [a]\n", "2:11",
                 "'settings' must be a mapping (got a list)");
}

static void rules_mapping_is_wrong_type(void)
{
    EXPECT_ERROR("version: 1\nrules:\n  a: 1\n", "3:3",
                 "'rules' must be a list of rules (got a mapping)");
}

static void layer_scalar_is_wrong_type(void)
{
    EXPECT_ERROR("version: 1\nrules:\n  - layers:\n      - plain\n", "4:9",
                 "layer 1 of rule 1 must be a mapping", "(got 'plain')");
}

static void ca_list_is_wrong_type(void)
{
    EXPECT_ERROR(CLIENT_RULE "        ca: [a, b]\n", "8:13",
                 "layer 1 of rule 'db': 'ca' must be a string (got a list)");
}

static void log_level_bad_value_lists_allowed(void)
{
    EXPECT_MESSAGE("version: 1\nsettings:\n  log_level: loud\n", "3:14",
                   "bad value 'loud' for 'log_level': expected error, warn, info or debug");
}

static void role_bad_value_lists_allowed(void)
{
    EXPECT_ERROR("version: 1\nrules:\n  - name: r\n    match: {role: both}\n    action: deny\n",
                 "4:19", "match of rule 'r': bad value 'both' for 'role': expected client or server");
}

static void default_action_wrap_is_refused(void)
{
    EXPECT_ERROR("version: 1\nsettings:\n  default_action: wrap\n", "3:19",
                 "expected passthrough or deny");
}

static void timeout_zero_is_out_of_range(void)
{
    EXPECT_ERROR("version: 1\nsettings:\n  handshake_timeout_ms: 0\n", "3:25",
                 "'handshake_timeout_ms' is out of range", "from 1 to 3600000");
}

static void negative_linger_is_not_a_number(void)
{
    EXPECT_ERROR("version: 1\nsettings:\n  linger_ms: -5\n", "3:14",
                 "'linger_ms' must be a whole number from 0 to 3600000 (got '-5')");
}

static void verify_must_be_boolean(void)
{
    EXPECT_ERROR(CLIENT_RULE "        verify: maybe\n", "8:17",
                 "'verify' must be true or false (got 'maybe')");
}

static void log_file_directory_must_exist(void)
{
    EXPECT_ERROR("version: 1\nsettings:\n  log_file: nope/n.log\n", "3:13",
                 "cannot use 'log_file' 'nope/n.log'", "No such file or directory");
}

static void program_must_be_basename(void)
{
    EXPECT_ERROR(MATCH_RULE("      program: /usr/bin/redis-cli\n"), "4:16",
                 "'program' is the executable's base name");
}

/* --- addresses and ports ---------------------------------------------- */

static void cidr_v4_prefix_too_long(void)
{
    EXPECT_MESSAGE(MATCH_RULE("      address: 10.0.0.0/33\n"), "4:16",
                   "match of rule 1: bad address '10.0.0.0/33': prefix must be 0..32");
}

static void cidr_v6_prefix_too_long_in_list(void)
{
    EXPECT_ERROR(MATCH_RULE("      address: [10.0.0.0/8, 'fd00::/129']\n"), "4:29",
                 "bad address 'fd00::/129': prefix must be 0..128");
}

static void bad_ipv4_is_not_a_host_name(void)
{
    EXPECT_ERROR(MATCH_RULE("      address: 256.1.1.1\n"), "4:16",
                 "bad address '256.1.1.1'", "not a valid IPv4 address");
}

static void bad_host_name(void)
{
    EXPECT_ERROR(MATCH_RULE("      address: foo_bar.example\n"), "4:16",
                 "bad address 'foo_bar.example': not an IP, a CIDR, a host name or \"*\"");
}

static void empty_address_list(void)
{
    EXPECT_ERROR(MATCH_RULE("      address: []\n"), "4:16", "'address' is an empty list");
}

static void port_range_reversed(void)
{
    EXPECT_ERROR(MATCH_RULE("      port: 9000-8000\n"), "4:13",
                 "bad port range '9000-8000': 9000 is above 8000");
}

static void port_zero_in_list(void)
{
    EXPECT_ERROR(MATCH_RULE("      port: [80, 0]\n"), "4:18", "bad port '0': ports must be 1..65535");
}

static void port_too_big(void)
{
    EXPECT_ERROR(MATCH_RULE("      port: 70000\n"), "4:13", "bad port '70000'", "1..65535");
}

static void port_not_a_number(void)
{
    EXPECT_ERROR(MATCH_RULE("      port: [abc]\n"), "4:14", "bad port 'abc'", "\"LO-HI\"");
}

/* --- rules and layers --------------------------------------------------- */

static void rule_needs_layers_or_action(void)
{
    EXPECT_MESSAGE("version: 1\nrules:\n  - name: lonely\n    match:\n      port: 80\n", "3:5",
                   "rule 'lonely' needs 'layers' (to wrap the connection) or "
                   "'action: passthrough' or 'action: deny'");
}

static void wrap_action_needs_layers(void)
{
    EXPECT_ERROR("version: 1\nrules:\n  - action: wrap\n", "3:5",
                 "rule 1 has action: wrap but no 'layers'");
}

static void empty_layers_with_wrap(void)
{
    EXPECT_ERROR("version: 1\nrules:\n  - name: e\n    layers: []\n", "4:13",
                 "'layers' is empty: action wrap needs 1 to 8 layers");
}

static void layers_with_deny_have_no_effect(void)
{
    EXPECT_MESSAGE("version: 1\nrules:\n  - name: no\n    action: deny\n    layers:\n"
                   "      - server_name: x\n",
                   "5:5", "rule 'no': 'layers' has no effect with action: deny");
}

static void starttls_bad_value_lists_valid_ones(void)
{
    EXPECT_MESSAGE("version: 1\nrules:\n  - name: mail\n    match: {role: client}\n"
                   "    starttls: smtps\n    layers:\n      - {}\n",
                   "5:15", "rule 'mail': bad value 'smtps' for 'starttls': expected smtp, imap, "
                           "pop3, ftp or postgres");
}

static void starttls_with_deny_or_passthrough_is_refused(void)
{
    EXPECT_MESSAGE("version: 1\nrules:\n  - name: no\n    action: deny\n    starttls: smtp\n",
                   "5:5", "rule 'no': 'starttls' has no effect with action: deny (it starts "
                          "layer 1 of a rule that wraps)");
    EXPECT_ERROR("version: 1\nrules:\n  - name: plain\n    starttls: imap\n"
                 "    action: passthrough\n",
                 "4:5", "'starttls' has no effect with action: passthrough");
    /* No layers and no action: the rule itself is incomplete, said first. */
    EXPECT_ERROR("version: 1\nrules:\n  - name: bare\n    starttls: pop3\n", "3:5",
                 "rule 'bare' needs 'layers'");
}

static void starttls_values_load(void)
{
    static const char *const names[] = {"smtp", "imap", "pop3", "ftp", "postgres"};
    for (int i = 0; i < 5; i++) {
        char text[256];
        struct nl_policy *p = NULL;
        snprintf(text, sizeof(text),
                 "version: 1\nrules:\n  - match: {role: client}\n    starttls: %s\n"
                 "    layers:\n      - {}\n  - match: {role: client}\n    layers:\n      - {}\n",
                 names[i]);
        LOAD_OK(text, p);
        CHECK(p->rules[0].starttls == (enum nl_starttls_proto)(i + 1), "%s: got %d", names[i],
              (int)p->rules[0].starttls);
        CHECK(strcmp(nl_starttls_name(p->rules[0].starttls), names[i]) == 0, "name of %s",
              names[i]);
        CHECK(p->rules[1].starttls == NL_STARTTLS_NONE, "absent key must mean none");
        nl_policy_free(p);
    }
}

static void nine_layers_points_at_ninth(void)
{
    EXPECT_MESSAGE("version: 1\nrules:\n  - name: deep\n    match: {role: client}\n    layers:\n"
                   "      - {}\n      - {}\n      - {}\n      - {}\n"
                   "      - {}\n      - {}\n      - {}\n      - {}\n"
                   "      - {}\n",
                   "14:9", "too many layers in rule 'deep': at most 8");
}

static void server_layer_needs_cert_and_key(void)
{
    EXPECT_ERROR("version: 1\nrules:\n  - name: in\n    match:\n      role: server\n    layers:\n"
                 "      - ca: certs/outer-ca.pem\n",
                 "7:9", "layer 1 of rule 'in' is a server layer", "needs 'cert' and 'key'");
}

static void both_roles_layer_needs_cert_or_client_role(void)
{
    EXPECT_ERROR("version: 1\nrules:\n  - name: both\n    layers:\n"
                 "      - ca: certs/outer-ca.pem\n",
                 "5:9", "layer 1 of rule 'both' has no 'cert' and 'key'",
                 "set 'match.role: client'");
}

static void verify_false_needs_insecure(void)
{
    EXPECT_ERROR(CLIENT_RULE "        ca: certs/outer-ca.pem\n        verify: false\n", "9:17",
                 "verify: false needs 'insecure: true' beside it");
}

static void crl_needs_verification(void)
{
    EXPECT_ERROR(CLIENT_RULE "        verify: false\n        insecure: true\n"
                             "        crl: certs/outer-ca.pem\n",
                 "10:14", "'crl' needs verification: this layer has 'verify: false'");
}

static void server_crl_needs_client_ca(void)
{
    EXPECT_ERROR("version: 1\nrules:\n  - name: s\n    match: {role: server}\n    layers:\n"
                 "      - cert: certs/outer-server.pem\n        key: certs/outer-server.key\n"
                 "        crl: certs/outer-ca.pem\n",
                 "8:14", "'crl' on a server layer checks client certificates: it needs "
                         "'client_ca' beside it");
}

static void crl_file_without_crl(void)
{
    EXPECT_ERROR(CLIENT_RULE "        ca: certs/outer-ca.pem\n        crl: certs/outer-ca.pem\n",
                 "9:14", "'crl' file 'certs/outer-ca.pem' holds no PEM CRL");
}

static void padding_needs_tls13(void)
{
    EXPECT_ERROR(CLIENT_RULE "        ca: certs/outer-ca.pem\n        padding: 512\n", "9:18",
                 "'padding' pads TLS 1.3 records only: it needs 'min_version: TLSv1.3'");
    EXPECT_ERROR(CLIENT_RULE "        ca: certs/outer-ca.pem\n        min_version: TLSv1.3\n"
                             "        padding: 16385\n",
                 "10:18", "'padding' is out of range: must be from 2 to 16384");
}

#define SERVER_SNI_RULE                                               \
    "version: 1\nrules:\n  - name: s\n    match: {role: server}\n" \
    "    layers:\n      - "

static void sni_certs_errors(void)
{
    EXPECT_ERROR(SERVER_SNI_RULE "cert: certs/outer-server.pem\n        key: certs/outer-server.key\n"
                                 "        certs: [{cert: certs/outer-server.pem, key: "
                                 "certs/outer-server.key}]\n",
                 "8:16", "'certs' takes the place of 'cert' and 'key'");
    EXPECT_ERROR(SERVER_SNI_RULE "certs: []\n", "6:16", "'certs' must be a non-empty list");
    EXPECT_ERROR(SERVER_SNI_RULE "certs: [{cert: certs/outer-server.pem}]\n", "6:17",
                 "certs entry 1 needs both 'cert' and 'key'");
    EXPECT_ERROR(SERVER_SNI_RULE "certs: [{cert: certs/outer-server.pem, key: "
                                 "certs/outer-server.key, names: [a..b]}]\n",
                 "6:85", "bad name 'a..b' in certs entry 1");
    EXPECT_ERROR(SERVER_SNI_RULE "certs: [{cert: certs/outer-server.pem, key: "
                                 "certs/outer-server.key}, {cert: certs/mismatch.pem, key: "
                                 "certs/mismatch.key}]\n",
                 "6:110", "key 'certs/mismatch.key' does not match cert 'certs/mismatch.pem'");
    EXPECT_ERROR(SERVER_SNI_RULE "certs: [{cert: certs/outer-server.pem, key: "
                                 "certs/outer-server.key}]\n        sni: always\n",
                 "7:14", "bad value 'always' for 'sni': expected optional or require");
    EXPECT_ERROR(CLIENT_RULE "        sni: require\n", "8:14",
                 "'sni' is for server layers: set 'match.role: server' on the rule");
    EXPECT_ERROR(CLIENT_RULE "        certs: [{cert: certs/outer-server.pem, key: "
                             "certs/outer-server.key}]\n",
                 "8:16", "'certs' is for server layers");
}

static void ocsp_errors(void)
{
    EXPECT_ERROR(CLIENT_RULE "        ocsp: always\n", "8:15",
                 "bad value 'always' for 'ocsp': expected off, prefer or require");
    EXPECT_ERROR(CLIENT_RULE "        verify: false\n        insecure: true\n        ocsp: require\n",
                 "10:15", "'ocsp' needs verification");
    EXPECT_ERROR(CLIENT_RULE "        ocsp_staple: certs/outer-ca.pem\n", "8:22",
                 "'ocsp_staple' file '/");
    EXPECT_ERROR(SERVER_SNI_RULE "cert: certs/outer-server.pem\n        key: certs/outer-server.key\n"
                                 "        ocsp: require\n",
                 "8:15", "'ocsp' is for client layers");
}

static void min_version_above_max(void)
{
    EXPECT_ERROR(CLIENT_RULE "        min_version: TLSv1.3\n        max_version: TLSv1.2\n", "8:22",
                 "min_version TLSv1.3 is above max_version TLSv1.2");
}

static void unknown_tls_version(void)
{
    EXPECT_ERROR(CLIENT_RULE "        max_version: TLSv1.1\n", "8:22",
                 "bad value 'TLSv1.1' for 'max_version': expected TLSv1.2 or TLSv1.3");
}

static void alpn_empty_entry(void)
{
    EXPECT_ERROR(CLIENT_RULE "        alpn: [h2, \"\"]\n", "8:20", "alpn entry 2 is empty");
}

static void alpn_entry_too_long(void)
{
    char yaml[1024], name[257];
    memset(name, 'x', 256);
    name[256] = '\0';
    snprintf(yaml, sizeof(yaml), CLIENT_RULE "        alpn:\n          - %s\n", name);
    EXPECT_ERROR(yaml, "9:13", "alpn entry 1 is 256 bytes long (at most 255)");
}

/* --- files, keys and OpenSSL ------------------------------------------ */

static void unreadable_ca_names_key_and_path(void)
{
    EXPECT_MESSAGE(CLIENT_RULE "        ca: certs/nope.pem\n", "8:13",
                   "layer 1 of rule 'db': cannot read 'ca' file 'certs/nope.pem': "
                   "No such file or directory");
}

static void key_that_is_a_directory(void)
{
    EXPECT_ERROR(CLIENT_RULE "        cert: certs/outer-client.pem\n        key: certs\n", "9:14",
                 "cannot read 'key' file 'certs': Is a directory");
}

static void cert_key_mismatch(void)
{
    EXPECT_MESSAGE(CLIENT_RULE "        cert: certs/mismatch.pem\n        key: certs/mismatch.key\n",
                   "9:14",
                   "layer 1 of rule 'db': key 'certs/mismatch.key' does not match cert "
                   "'certs/mismatch.pem'");
}

static void cert_without_key(void)
{
    EXPECT_ERROR(CLIENT_RULE "        cert: certs/outer-client.pem\n", "8:15",
                 "'cert' needs 'key' beside it");
}

static void key_without_cert(void)
{
    EXPECT_ERROR(CLIENT_RULE "        key: certs/outer-client.key\n", "8:14",
                 "'key' needs 'cert' beside it");
}

static void cert_file_holding_a_key(void)
{
    EXPECT_ERROR(CLIENT_RULE "        cert: certs/outer-client.key\n"
                             "        key: certs/outer-client.key\n",
                 "8:15", "no certificate in 'cert' file 'certs/outer-client.key'");
}

static void ca_file_without_certificates(void)
{
    EXPECT_ERROR(CLIENT_RULE "        ca: certs/outer-client.key\n", "8:13",
                 "OpenSSL rejects 'ca' file 'certs/outer-client.key'", "no certificate");
}

static void encrypted_key_is_refused_without_prompt(void)
{
    char src[PATH_MAX + 32], dst[PATH_MAX + 16];
    snprintf(src, sizeof(src), "%s/outer-client.key", certs);
    snprintf(dst, sizeof(dst), "%s/enc.key", tmp);
    FILE *in = fopen(src, "r");
    CHECK(in != NULL, "cannot read %s", src);
    EVP_PKEY *key = PEM_read_PrivateKey(in, NULL, NULL, NULL);
    fclose(in);
    CHECK(key != NULL, "cannot parse %s", src);
    FILE *out = fopen(dst, "w");
    bool written = out != NULL && PEM_write_PrivateKey(out, key, EVP_aes_128_cbc(),
                                                       (unsigned char *)"secret", 6, NULL,
                                                       NULL) == 1;
    if (out != NULL)
        fclose(out);
    EVP_PKEY_free(key);
    CHECK(written, "cannot write %s", dst);
    chmod(dst, 0600);
    EXPECT_ERROR(CLIENT_RULE "        cert: certs/outer-client.pem\n        key: enc.key\n", "9:14",
                 "'key' file 'enc.key' is encrypted");
}

static void bad_cipher_list_gives_openssl_reason(void)
{
    EXPECT_MESSAGE(CLIENT_RULE "        ciphers: NOPE\n", "8:18",
                   "layer 1 of rule 'db': OpenSSL rejects 'ciphers' 'NOPE': no cipher match");
}

static void unknown_ciphersuite_is_named(void)
{
    EXPECT_ERROR(CLIENT_RULE "        ciphersuites: TLS_AES_128_GCM_SHA256:TLS_NOPE\n", "8:23",
                 "unknown TLS 1.3 ciphersuite 'TLS_NOPE' in 'ciphersuites'");
}

static void unknown_group_is_named(void)
{
    EXPECT_ERROR(CLIENT_RULE "        groups: X25519:NOPE\n", "8:17",
                 "unknown group 'NOPE' in 'groups'");
}

static void readable_key_warns(void)
{
    char src[PATH_MAX + 32], dst[PATH_MAX + 16], log[PATH_MAX + 16], text[4096];
    snprintf(src, sizeof(src), "%s/outer-client.key", certs);
    snprintf(dst, sizeof(dst), "%s/loose.key", tmp);
    snprintf(log, sizeof(log), "%s/warn.log", tmp);
    FILE *in = fopen(src, "r");
    CHECK(in != NULL, "cannot read %s", src);
    size_t n = fread(text, 1, sizeof(text) - 1, in);
    fclose(in);
    text[n] = '\0';
    CHECK(write_file(dst, text, 0644), "cannot write %s", dst);

    nl_log_configure(NL_LOG_WARN, log);
    struct nl_policy *p;
    char err[NL_ERR_MAX];
    int rc = load_text(CLIENT_RULE "        cert: certs/outer-client.pem\n        key: loose.key\n",
                       &p, err);
    nl_log_configure(NL_LOG_INFO, "stderr");
    nl_policy_free(p);
    CHECK(rc == 0, "load failed: %s", err);

    FILE *fp = fopen(log, "r");
    CHECK(fp != NULL, "no warning written to %s", log);
    n = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[n] = '\0';
    CHECK(strstr(text, "loose.key is readable by others (mode 644)") != NULL,
          "expected the warning, log has \"%s\"", text);
}

/* --- valid loads ------------------------------------------------------- */

static void minimal_policy_has_defaults(void)
{
    struct nl_policy *p;
    LOAD_OK("version: 1\n", p);
    char real_dir[PATH_MAX];
    bool dir_ok = realpath(tmp, real_dir) != NULL && strcmp(p->dir, real_dir) == 0;
    bool ok = p->n_rules == 0 && p->settings.log_level == NL_LOG_WARN &&
              strcmp(p->settings.log_file, "stderr") == 0 &&
              p->settings.default_action == NL_ACTION_PASSTHROUGH &&
              p->settings.handshake_timeout_ms == 10000 && p->settings.linger_ms == 2000 &&
              p->path[0] == '/' && strstr(p->path, "/p.yaml") != NULL;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", p->dir);
    nl_policy_free(p);
    CHECK(ok, "defaults not as documented");
    CHECK(dir_ok, "dir is %s, expected %s", dir, real_dir);
}

static void empty_rules_and_settings_are_fine(void)
{
    struct nl_policy *p;
    LOAD_OK("version: 1\nsettings:\nrules: []\n", p);
    size_t n = p->n_rules;
    nl_policy_free(p);
    CHECK(n == 0, "%zu rules", n);
}

static bool same_file(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    return a != NULL && b != NULL && realpath(a, ra) != NULL && realpath(b, rb) != NULL &&
           strcmp(ra, rb) == 0;
}

static void full_fixture_loads_with_relative_paths(void)
{
    const char *rel = "tests/fixtures/policy/full.yaml";
    char err[NL_ERR_MAX], ca[PATH_MAX + 32];
    struct nl_policy *p = NULL;
    CHECK(nl_policy_load(rel, &p, err, sizeof(err)) == 0, "load failed: %s", err);
    snprintf(ca, sizeof(ca), "%s/outer-ca.pem", certs);
    const struct nl_rule *db = find_rule(p, "db"), *in = find_rule(p, "inbound");
    const struct nl_rule *last = p->n_rules == 3 ? &p->rules[2] : NULL;
    const struct nl_layer *l0 = db ? &db->layers[0] : NULL;
    bool ok = db && in && last && p->path[0] == '/' && p->settings.log_level == NL_LOG_DEBUG &&
              p->settings.log_file[0] == '/' && strstr(p->settings.log_file, "/nestls.log") &&
              p->settings.default_action == NL_ACTION_DENY &&
              p->settings.handshake_timeout_ms == 5000 && p->settings.linger_ms == 0;
    CHECK_SOFT(ok, "rules or settings wrong");
    CHECK_SOFT(ok && db->role == NL_ROLE_CLIENT && db->n_addrs == 4 && db->n_ports == 2 &&
                   db->n_layers == 2 && strcmp(db->program, "redis-cli") == 0 &&
                   db->action == NL_ACTION_WRAP,
               "rule db wrong");
    CHECK_SOFT(ok && l0->ca[0] == '/' && same_file(l0->ca, ca) && l0->key[0] == '/' &&
                   l0->n_alpn == 2 && l0->alpn_wire_len == 12 &&
                   memcmp(l0->alpn_wire, "\x02h2\x08http/1.1", 12) == 0,
               "layer paths or alpn wrong (ca %s)", ok ? l0->ca : "?");
    CHECK_SOFT(ok && l0->client_ctx != NULL && l0->server_ctx == NULL &&
                   db->layers[1].client_ctx != NULL,
               "client rule contexts wrong");
    CHECK_SOFT(ok && in->layers[0].server_ctx != NULL && in->layers[0].client_ctx == NULL,
               "server rule contexts wrong");
    CHECK_SOFT(ok && strcmp(last->name, "rule 3") == 0 && last->action == NL_ACTION_PASSTHROUGH &&
                   last->n_addrs == 1 && last->addrs[0].kind == NL_ADDR_ANY,
               "unnamed rule wrong");
    nl_policy_free(p);
}

static void both_roles_build_both_contexts(void)
{
    char err[NL_ERR_MAX], alpn[64];
    struct nl_policy *p = NULL;
    CHECK(nl_policy_load("tests/fixtures/policy/both-roles.yaml", &p, err, sizeof(err)) == 0,
          "load failed: %s", err);
    const struct nl_layer *l = &p->rules[0].layers[0];
    bool both = p->rules[0].role == NL_ROLE_ANY && l->client_ctx && l->server_ctx;
    bool hs = both && handshake(l->client_ctx, l->server_ctx, alpn, sizeof(alpn));
    nl_policy_free(p);
    CHECK(both, "expected a client and a server context");
    /* The client has no certificate but the server requires one. */
    CHECK(!hs, "handshake passed although the server requires a client certificate");
}

static void contexts_carry_layer_settings(void)
{
    struct nl_policy *p;
    LOAD_OK("version: 1\nrules:\n"
            "  - name: out\n    match: {role: client}\n    layers:\n"
            "      - ca: system\n        min_version: TLSv1.3\n"
            "  - name: in\n    match: {role: server}\n    layers:\n"
            "      - cert: certs/outer-server.pem\n        key: certs/outer-server.key\n"
            "        client_ca: certs/outer-ca.pem\n        max_version: TLSv1.2\n"
            "  - name: lax\n    match: {role: client}\n    layers:\n"
            "      - verify: false\n        insecure: true\n",
            p);
    SSL_CTX *c = p->rules[0].layers[0].client_ctx, *s = p->rules[1].layers[0].server_ctx;
    SSL_CTX *lax = p->rules[2].layers[0].client_ctx;
    long opts = (long)(SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    CHECK_SOFT(strcmp(p->rules[0].layers[0].ca, "system") == 0, "ca system not kept");
    CHECK_SOFT(SSL_CTX_get_min_proto_version(c) == TLS1_3_VERSION &&
                   SSL_CTX_get_max_proto_version(c) == TLS1_3_VERSION,
               "client versions wrong");
    CHECK_SOFT(SSL_CTX_get_min_proto_version(s) == TLS1_2_VERSION &&
                   SSL_CTX_get_max_proto_version(s) == TLS1_2_VERSION,
               "server versions wrong");
    CHECK_SOFT(SSL_CTX_get_verify_mode(c) == SSL_VERIFY_PEER, "client does not verify");
    CHECK_SOFT(SSL_CTX_get_verify_mode(s) == (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
               "server does not require client certificates");
    CHECK_SOFT(SSL_CTX_get_verify_mode(lax) == SSL_VERIFY_NONE, "insecure layer verifies");
    CHECK_SOFT(((long)SSL_CTX_get_options(c) & opts) == opts &&
                   ((long)SSL_CTX_get_options(s) & opts) == opts,
               "compression or renegotiation left on");
    /* Released per idle connection by the engine (nl_onion_trim), not per
     * record by OpenSSL. */
    CHECK_SOFT((SSL_CTX_get_mode(c) & SSL_MODE_RELEASE_BUFFERS) == 0, "per-record buffer release is on");
    CHECK_SOFT(SSL_CTX_get_session_cache_mode(c) == SSL_SESS_CACHE_CLIENT,
               "client session cache off");
    CHECK_SOFT(SSL_CTX_get_client_CA_list(s) != NULL &&
                   sk_X509_NAME_num(SSL_CTX_get_client_CA_list(s)) == 1,
               "client CA list not sent");
    nl_policy_free(p);
}

#define HANDSHAKE_POLICY                                                      \
    "version: 1\nrules:\n"                                                    \
    "  - name: out\n    match: {role: client}\n    layers:\n"                 \
    "      - ca: certs/outer-ca.pem\n        alpn: [h2, http/1.1]\n"          \
    "  - name: mtls-out\n    match: {role: client}\n    layers:\n"            \
    "      - ca: certs/outer-ca.pem\n        cert: certs/outer-client.pem\n"  \
    "        key: certs/outer-client.key\n"                                   \
    "  - name: wrong-ca\n    match: {role: client}\n    layers:\n"            \
    "      - ca: certs/inner-ca.pem\n"                                        \
    "  - name: in\n    match: {role: server}\n    layers:\n"                  \
    "      - cert: certs/outer-server.pem\n        key: certs/outer-server.key\n" \
    "        alpn: [http/1.1, h2]\n"                                          \
    "  - name: in-other-alpn\n    match: {role: server}\n    layers:\n"       \
    "      - cert: certs/outer-server.pem\n        key: certs/outer-server.key\n" \
    "        alpn: [spdy/3]\n"                                                \
    "  - name: mtls-in\n    match: {role: server}\n    layers:\n"             \
    "      - cert: certs/outer-server.pem\n        key: certs/outer-server.key\n" \
    "        client_ca: certs/outer-ca.pem\n"

static SSL_CTX *ctx_of(const struct nl_policy *p, const char *rule, bool server)
{
    const struct nl_rule *r = find_rule(p, rule);
    if (r == NULL)
        return NULL;
    return server ? r->layers[0].server_ctx : r->layers[0].client_ctx;
}

static void alpn_server_preference_wins(void)
{
    struct nl_policy *p;
    char alpn[64] = "?";
    LOAD_OK(HANDSHAKE_POLICY, p);
    bool ok = handshake(ctx_of(p, "out", false), ctx_of(p, "in", true), alpn, sizeof(alpn));
    nl_policy_free(p);
    CHECK(ok, "handshake failed");
    CHECK(strcmp(alpn, "http/1.1") == 0, "negotiated '%s', expected 'http/1.1'", alpn);
}

static void alpn_without_overlap_negotiates_none(void)
{
    struct nl_policy *p;
    char alpn[64] = "?";
    LOAD_OK(HANDSHAKE_POLICY, p);
    bool ok = handshake(ctx_of(p, "out", false), ctx_of(p, "in-other-alpn", true), alpn,
                        sizeof(alpn));
    nl_policy_free(p);
    CHECK(ok, "handshake failed");
    CHECK(alpn[0] == '\0', "negotiated '%s', expected nothing", alpn);
}

static void client_certificate_required_by_client_ca(void)
{
    struct nl_policy *p;
    char alpn[64];
    LOAD_OK(HANDSHAKE_POLICY, p);
    bool with = handshake(ctx_of(p, "mtls-out", false), ctx_of(p, "mtls-in", true), alpn,
                          sizeof(alpn));
    bool without = handshake(ctx_of(p, "out", false), ctx_of(p, "mtls-in", true), alpn,
                             sizeof(alpn));
    nl_policy_free(p);
    CHECK(with, "handshake with a client certificate failed");
    CHECK(!without, "handshake without a client certificate passed");
}

static void client_rejects_server_from_other_ca(void)
{
    struct nl_policy *p;
    char alpn[64];
    LOAD_OK(HANDSHAKE_POLICY, p);
    bool ok = handshake(ctx_of(p, "wrong-ca", false), ctx_of(p, "in", true), alpn, sizeof(alpn));
    nl_policy_free(p);
    CHECK(!ok, "server certificate from another CA was accepted");
}

/* --- matching ---------------------------------------------------------- */

static void match_cidr_v4_and_v6(void)
{
    struct nl_policy *p;
    LOAD_OK("version: 1\nrules:\n"
            "  - name: v4\n    match: {address: 10.1.0.0/16}\n    action: deny\n"
            "  - name: v6\n    match: {address: 'fd00:1::/32'}\n    action: deny\n"
            "  - name: host\n    match: {address: [192.0.2.7, '2001:db8::1']}\n    action: deny\n",
            p);
    const struct nl_rule *a = query(p, NL_ROLE_CLIENT, "10.1.200.3", 80, NULL, NULL);
    const struct nl_rule *b = query(p, NL_ROLE_CLIENT, "10.2.0.1", 80, NULL, NULL);
    const struct nl_rule *c = query(p, NL_ROLE_CLIENT, "fd00:1:ffff::9", 80, NULL, NULL);
    const struct nl_rule *d = query(p, NL_ROLE_CLIENT, "fd00:2::9", 80, NULL, NULL);
    const struct nl_rule *e = query(p, NL_ROLE_CLIENT, "192.0.2.7", 80, NULL, NULL);
    const struct nl_rule *f = query(p, NL_ROLE_CLIENT, "2001:db8::1", 80, NULL, NULL);
    const struct nl_rule *g = query(p, NL_ROLE_CLIENT, "192.0.2.8", 80, NULL, NULL);
    const struct nl_rule *h = query(p, NL_ROLE_CLIENT, NULL, 0, NULL, NULL);
    EXPECT_MATCH(a, "v4");
    EXPECT_MATCH(b, "(none)");
    EXPECT_MATCH(c, "v6");
    EXPECT_MATCH(d, "(none)");
    EXPECT_MATCH(e, "host");
    EXPECT_MATCH(f, "host");
    EXPECT_MATCH(g, "(none)");
    EXPECT_MATCH(h, "(none)");
    nl_policy_free(p);
}

static void match_mapped_v4_as_v4(void)
{
    struct nl_policy *p;
    LOAD_OK("version: 1\nrules:\n"
            "  - name: v4\n    match: {address: 10.0.0.0/8}\n    action: deny\n"
            "  - name: mapped-rule\n    match: {address: '::ffff:192.168.1.0/120'}\n"
            "    action: deny\n",
            p);
    const struct nl_rule *a = query(p, NL_ROLE_CLIENT, "::ffff:10.9.8.7", 80, NULL, NULL);
    const struct nl_rule *b = query(p, NL_ROLE_CLIENT, "192.168.1.44", 80, NULL, NULL);
    const struct nl_rule *c = query(p, NL_ROLE_CLIENT, "::ffff:192.168.1.44", 80, NULL, NULL);
    const struct nl_rule *d = query(p, NL_ROLE_CLIENT, "::a09:807", 80, NULL, NULL);
    int fam = p->rules[1].addrs[0].family, prefix = p->rules[1].addrs[0].prefix;
    EXPECT_MATCH(a, "v4");
    EXPECT_MATCH(b, "mapped-rule");
    EXPECT_MATCH(c, "mapped-rule");
    EXPECT_MATCH(d, "(none)");
    nl_policy_free(p);
    CHECK(fam == AF_INET && prefix == 24, "mapped rule stored as family %d /%d", fam, prefix);
}

/* Linux routes a connect to 0.0.0.0 to 127.0.0.1 and :: to ::1: a
 * loopback rule must catch them (a client to 0.0.0.0 left in plaintext). */
static void match_unspecified_as_loopback(void)
{
    struct nl_policy *p;
    LOAD_OK("version: 1\nrules:\n"
            "  - name: lo4\n    match: {address: 127.0.0.0/8}\n    action: deny\n"
            "  - name: lo6\n    match: {address: '::1'}\n    action: deny\n",
            p);
    const struct nl_rule *a = query(p, NL_ROLE_CLIENT, "0.0.0.0", 80, NULL, NULL);
    const struct nl_rule *b = query(p, NL_ROLE_CLIENT, "::", 80, NULL, NULL);
    const struct nl_rule *c = query(p, NL_ROLE_CLIENT, "::ffff:0.0.0.0", 80, NULL, NULL);
    const struct nl_rule *d = query(p, NL_ROLE_SERVER, "0.0.0.0", 80, NULL, NULL);
    EXPECT_MATCH(a, "lo4");
    EXPECT_MATCH(b, "lo6");
    EXPECT_MATCH(c, "lo4");
    EXPECT_MATCH(d, "(none)");
    nl_policy_free(p);
}

static void cidr_host_bits_are_masked(void)
{
    struct nl_policy *p;
    LOAD_OK(MATCH_RULE("      address: 10.1.2.3/8\n"), p);
    const struct nl_addr_match *m = &p->rules[0].addrs[0];
    bool ok = m->kind == NL_ADDR_CIDR && m->family == AF_INET && m->prefix == 8 &&
              m->addr[0] == 10 && m->addr[1] == 0 && m->addr[2] == 0 && m->addr[3] == 0;
    nl_policy_free(p);
    CHECK(ok, "10.1.2.3/8 not stored as 10.0.0.0/8");
}

static void match_host_names_and_wildcards(void)
{
    struct nl_policy *p;
    LOAD_OK("version: 1\nrules:\n"
            "  - name: exact\n    match: {address: DB.Example.com}\n    action: deny\n"
            "  - name: wild\n    match: {address: '*.internal.example'}\n    action: deny\n",
            p);
    const struct nl_rule *a = query(p, NL_ROLE_CLIENT, "10.0.0.1", 80, "db.example.COM", NULL);
    const struct nl_rule *b = query(p, NL_ROLE_CLIENT, "10.0.0.1", 80, "db.example.com.", NULL);
    const struct nl_rule *c = query(p, NL_ROLE_CLIENT, "10.0.0.1", 80, "x.db.example.com", NULL);
    const struct nl_rule *d = query(p, NL_ROLE_CLIENT, "10.0.0.1", 80, "a.internal.example", NULL);
    const struct nl_rule *e = query(p, NL_ROLE_CLIENT, NULL, 0, "a.b.Internal.Example", NULL);
    const struct nl_rule *f = query(p, NL_ROLE_CLIENT, "10.0.0.1", 80, "internal.example", NULL);
    const struct nl_rule *g = query(p, NL_ROLE_CLIENT, "10.0.0.1", 80, "xinternal.example", NULL);
    const struct nl_rule *h = query(p, NL_ROLE_CLIENT, "10.0.0.1", 80, NULL, NULL);
    bool lower = strcmp(p->rules[0].addrs[0].host, "db.example.com") == 0;
    EXPECT_MATCH(a, "exact");
    EXPECT_MATCH(b, "exact");
    EXPECT_MATCH(c, "(none)");
    EXPECT_MATCH(d, "wild");
    EXPECT_MATCH(e, "wild");
    EXPECT_MATCH(f, "(none)");
    EXPECT_MATCH(g, "(none)");
    EXPECT_MATCH(h, "(none)");
    nl_policy_free(p);
    CHECK(lower, "host not stored in lower case");
}

static void match_ports_ranges_and_lists(void)
{
    struct nl_policy *p;
    LOAD_OK("version: 1\nrules:\n"
            "  - name: web\n    match: {port: [80, 443, 8000-8100]}\n    action: deny\n",
            p);
    const struct nl_rule *a = query(p, NL_ROLE_CLIENT, "10.0.0.1", 443, NULL, NULL);
    const struct nl_rule *b = query(p, NL_ROLE_CLIENT, "::1", 8000, NULL, NULL);
    const struct nl_rule *c = query(p, NL_ROLE_CLIENT, "10.0.0.1", 8100, NULL, NULL);
    const struct nl_rule *d = query(p, NL_ROLE_CLIENT, "10.0.0.1", 8101, NULL, NULL);
    const struct nl_rule *e = query(p, NL_ROLE_CLIENT, "10.0.0.1", 81, NULL, NULL);
    const struct nl_rule *f = query(p, NL_ROLE_CLIENT, NULL, 0, "web.example", NULL);
    EXPECT_MATCH(a, "web");
    EXPECT_MATCH(b, "web");
    EXPECT_MATCH(c, "web");
    EXPECT_MATCH(d, "(none)");
    EXPECT_MATCH(e, "(none)");
    EXPECT_MATCH(f, "(none)");
    nl_policy_free(p);
}

static void match_program_and_role(void)
{
    struct nl_policy *p;
    LOAD_OK("version: 1\nrules:\n"
            "  - name: redis\n    match: {program: redis-cli}\n    action: deny\n"
            "  - name: servers\n    match: {role: server}\n    action: passthrough\n",
            p);
    const struct nl_rule *a = query(p, NL_ROLE_CLIENT, "10.0.0.1", 6379, NULL, "redis-cli");
    const struct nl_rule *b = query(p, NL_ROLE_CLIENT, "10.0.0.1", 6379, NULL, "redis-server");
    const struct nl_rule *c = query(p, NL_ROLE_CLIENT, "10.0.0.1", 6379, NULL, NULL);
    const struct nl_rule *d = query(p, NL_ROLE_SERVER, "10.0.0.1", 6379, NULL, "redis-server");
    const struct nl_rule *e = query(p, NL_ROLE_SERVER, "10.0.0.1", 6379, NULL, "redis-cli");
    EXPECT_MATCH(a, "redis");
    EXPECT_MATCH(b, "(none)");
    EXPECT_MATCH(c, "(none)");
    EXPECT_MATCH(d, "servers");
    EXPECT_MATCH(e, "redis"); /* no role: both roles */
    nl_policy_free(p);
}

static void match_first_rule_wins(void)
{
    struct nl_policy *p;
    LOAD_OK("version: 1\nrules:\n"
            "  - name: narrow\n    match: {address: 10.0.0.5, port: 22}\n    action: deny\n"
            "  - name: broad\n    match: {address: 10.0.0.0/8}\n    action: passthrough\n"
            "  - name: anything\n    match: {address: '*'}\n    action: deny\n",
            p);
    const struct nl_rule *a = query(p, NL_ROLE_CLIENT, "10.0.0.5", 22, NULL, NULL);
    const struct nl_rule *b = query(p, NL_ROLE_CLIENT, "10.0.0.5", 23, NULL, NULL);
    const struct nl_rule *c = query(p, NL_ROLE_CLIENT, "192.0.2.1", 23, NULL, NULL);
    const struct nl_rule *d = query(p, NL_ROLE_SERVER, NULL, 0, NULL, NULL);
    EXPECT_MATCH(a, "narrow");
    EXPECT_MATCH(b, "broad");
    EXPECT_MATCH(c, "anything");
    EXPECT_MATCH(d, "anything");
    nl_policy_free(p);
}

static void match_nothing_returns_null(void)
{
    struct nl_policy *p;
    LOAD_OK("version: 1\nsettings: {default_action: deny}\nrules:\n"
            "  - name: only\n    match: {role: client, port: 1}\n    action: deny\n",
            p);
    const struct nl_rule *a = query(p, NL_ROLE_CLIENT, "10.0.0.1", 2, NULL, NULL);
    const struct nl_rule *b = query(p, NL_ROLE_SERVER, "10.0.0.1", 1, NULL, NULL);
    enum nl_action fallback = p->settings.default_action;
    EXPECT_MATCH(a, "(none)");
    EXPECT_MATCH(b, "(none)");
    nl_policy_free(p);
    CHECK(fallback == NL_ACTION_DENY, "default_action not read");
}

static void names_of_enumerations(void)
{
    CHECK(strcmp(nl_role_name(NL_ROLE_ANY), "any") == 0 &&
              strcmp(nl_role_name(NL_ROLE_CLIENT), "client") == 0 &&
              strcmp(nl_role_name(NL_ROLE_SERVER), "server") == 0,
          "role names");
    CHECK(strcmp(nl_action_name(NL_ACTION_WRAP), "wrap") == 0 &&
              strcmp(nl_action_name(NL_ACTION_PASSTHROUGH), "passthrough") == 0 &&
              strcmp(nl_action_name(NL_ACTION_DENY), "deny") == 0,
          "action names");
    CHECK(strcmp(nl_tls_version_name(TLS1_2_VERSION), "TLSv1.2") == 0 &&
              strcmp(nl_tls_version_name(TLS1_3_VERSION), "TLSv1.3") == 0,
          "version names");
}

/* --- main -------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static bool setup(void)
{
    const char *env = getenv("NESTLS_CERTS");
    char probe[PATH_MAX + 32];
    if (realpath(env != NULL && env[0] != '\0' ? env : "certs", certs) == NULL) {
        printf("Bail out! certs directory not found (run make certs, or set NESTLS_CERTS)\n");
        return false;
    }
    snprintf(probe, sizeof(probe), "%s/outer-ca.pem", certs);
    if (access(probe, R_OK) != 0) {
        printf("Bail out! %s missing (run make certs)\n", probe);
        return false;
    }
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof(tmp), "%s/nestls-policy-XXXXXX", base != NULL && base[0] ? base : "/tmp");
    if (mkdtemp(tmp) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return false;
    }
    char link[PATH_MAX + 16];
    snprintf(link, sizeof(link), "%s/certs", tmp);
    snprintf(policy_path, sizeof(policy_path), "%s/p.yaml", tmp);
    if (symlink(certs, link) != 0) {
        printf("Bail out! symlink: %s\n", strerror(errno));
        return false;
    }
    verbose = getenv("NESTLS_TEST_VERBOSE") != NULL;
    return true;
}

int main(void)
{
    if (!setup())
        return 1;

    RUN(yaml_syntax_error_points_at_problem);
    RUN(yaml_unterminated_quote_is_syntax_error);
    RUN(unquoted_wildcard_gets_quoting_hint);
    RUN(empty_file_is_empty_policy);
    RUN(comment_only_file_is_empty_policy);
    RUN(top_level_must_be_mapping);
    RUN(line_breaks_in_a_quoted_value_stay_on_one_line);
    RUN(second_yaml_document_is_refused);
    RUN(missing_version_points_at_top_mapping);
    RUN(version_must_be_1);
    RUN(version_must_be_scalar);
    RUN(unreadable_policy_file);
    RUN(error_names_file_as_given);

    RUN(policy_over_1_mib_is_refused);
    RUN(policy_of_exactly_1_mib_loads);
    RUN(device_and_directory_are_not_policies);
    RUN(fifo_is_refused_without_blocking);
    RUN(alias_expansion_past_the_limit_is_refused);
    RUN(alias_inside_its_own_anchor_is_refused);
    RUN(shared_layers_by_alias_load);
    RUN(nesting_past_the_depth_limit_is_refused);
    RUN(nesting_at_the_depth_limit_is_only_checked_for_sense);
    RUN(more_anchors_than_the_limit_are_refused);
    RUN(nodes_past_the_limit_without_aliases_are_refused);
    RUN(layers_past_the_total_limit_are_refused);
    RUN(layers_at_the_total_limit_load);

    RUN(unknown_layer_key_suggests_nearest);
    RUN(unknown_top_key_suggests_transposition);
    RUN(unknown_match_key_suggests_nearest);
    RUN(unknown_key_far_from_all_lists_valid_keys);
    RUN(duplicate_key_points_at_second);

    RUN(port_mapping_is_wrong_type);
    RUN(host_name_in_server_rule_is_refused);
    RUN(malformed_server_name_is_refused);
    RUN(settings_list_is_wrong_type);
    RUN(rules_mapping_is_wrong_type);
    RUN(layer_scalar_is_wrong_type);
    RUN(ca_list_is_wrong_type);
    RUN(log_level_bad_value_lists_allowed);
    RUN(role_bad_value_lists_allowed);
    RUN(default_action_wrap_is_refused);
    RUN(timeout_zero_is_out_of_range);
    RUN(negative_linger_is_not_a_number);
    RUN(verify_must_be_boolean);
    RUN(log_file_directory_must_exist);
    RUN(program_must_be_basename);

    RUN(cidr_v4_prefix_too_long);
    RUN(cidr_v6_prefix_too_long_in_list);
    RUN(bad_ipv4_is_not_a_host_name);
    RUN(bad_host_name);
    RUN(empty_address_list);
    RUN(port_range_reversed);
    RUN(port_zero_in_list);
    RUN(port_too_big);
    RUN(port_not_a_number);

    RUN(rule_needs_layers_or_action);
    RUN(wrap_action_needs_layers);
    RUN(empty_layers_with_wrap);
    RUN(layers_with_deny_have_no_effect);
    RUN(starttls_bad_value_lists_valid_ones);
    RUN(starttls_with_deny_or_passthrough_is_refused);
    RUN(starttls_values_load);
    RUN(nine_layers_points_at_ninth);
    RUN(server_layer_needs_cert_and_key);
    RUN(both_roles_layer_needs_cert_or_client_role);
    RUN(verify_false_needs_insecure);
    RUN(crl_needs_verification);
    RUN(server_crl_needs_client_ca);
    RUN(crl_file_without_crl);
    RUN(padding_needs_tls13);
    RUN(sni_certs_errors);
    RUN(ocsp_errors);
    RUN(min_version_above_max);
    RUN(unknown_tls_version);
    RUN(alpn_empty_entry);
    RUN(alpn_entry_too_long);

    RUN(unreadable_ca_names_key_and_path);
    RUN(key_that_is_a_directory);
    RUN(cert_key_mismatch);
    RUN(cert_without_key);
    RUN(key_without_cert);
    RUN(cert_file_holding_a_key);
    RUN(ca_file_without_certificates);
    RUN(encrypted_key_is_refused_without_prompt);
    RUN(bad_cipher_list_gives_openssl_reason);
    RUN(unknown_ciphersuite_is_named);
    RUN(unknown_group_is_named);
    RUN(readable_key_warns);

    RUN(minimal_policy_has_defaults);
    RUN(empty_rules_and_settings_are_fine);
    RUN(full_fixture_loads_with_relative_paths);
    RUN(both_roles_build_both_contexts);
    RUN(contexts_carry_layer_settings);
    RUN(alpn_server_preference_wins);
    RUN(alpn_without_overlap_negotiates_none);
    RUN(client_certificate_required_by_client_ca);
    RUN(client_rejects_server_from_other_ca);

    RUN(match_cidr_v4_and_v6);
    RUN(match_mapped_v4_as_v4);
    RUN(match_unspecified_as_loopback);
    RUN(cidr_host_bits_are_masked);
    RUN(match_host_names_and_wildcards);
    RUN(match_ports_ranges_and_lists);
    RUN(match_program_and_role);
    RUN(match_first_rule_wins);
    RUN(match_nothing_returns_null);
    RUN(names_of_enumerations);

    nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return unit_summary();
}
