/* Which host name a client connection is for (src/hooks/names.c) and the
 * decision taken on it (src/hooks/decide.c), without a preload: both files
 * are compiled into this test, the resolver below stands in for libc's,
 * and nestls's start-up is stubbed.
 *
 * The rule they prove: the name matched and verified is the one this
 * program resolved for this connection; a later lookup of another name for
 * the same address never stands in for it; several candidates are
 * ambiguous (the strictest decision, the address verified); no candidate
 * leaves the address alone to decide.
 *
 * Runs from the repository root (make build/tests/test_names). */
#include "hooks/names.c"
#include "hooks/decide.c"
#include "unit.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

/* --- what nestls's other files would provide -------------------------- */

struct nl_real nl_real;
bool nl_started_flag = true;
bool nl_started_slow(void) { return true; }
static bool in_vfork_child;
bool nl_in_vfork_child(void) { return in_vfork_child; }
const struct nl_policy *nl_policy;

/* --- a resolver: NAME=ADDRESS pairs, lists laid out as glibc's ------- */

static const char *const zone[][2] = {
    {"first.test", "10.0.0.1"},  {"second.test", "10.0.0.1"}, {"third.test", "10.0.0.3"},
    {"alone.test", "10.0.0.4"},  {"also.test", "10.0.0.4"},   {"Mixed.Test", "10.0.0.5"},
    {"mixed.test.", "10.0.0.5"}, {"many.test", "10.0.0.6"},
};

/* One block per entry (addrinfo, then its sockaddr), as glibc's
 * freeaddrinfo expects; each address once per socket type, as an
 * unspecified socktype gives. */
static int fake_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                            struct addrinfo **res)
{
    (void)service, (void)hints;
    *res = NULL;
    struct addrinfo **tail = res;
    for (size_t i = 0; i < NL_ARRAY_LEN(zone); i++) {
        if (strcmp(zone[i][0], node) != 0)
            continue;
        for (int type = SOCK_STREAM; type <= SOCK_DGRAM; type++) {
            struct addrinfo *ai = calloc(1, sizeof(*ai) + sizeof(struct sockaddr_in));
            struct sockaddr_in *sin = (struct sockaddr_in *)(ai + 1);
            sin->sin_family = AF_INET;
            sin->sin_port = htons(443);
            inet_pton(AF_INET, zone[i][1], &sin->sin_addr);
            *ai = (struct addrinfo){.ai_family = AF_INET, .ai_socktype = type,
                                    .ai_addrlen = sizeof(*sin), .ai_addr = (struct sockaddr *)sin};
            *tail = ai;
            tail = &ai->ai_next;
        }
    }
    return *res ? 0 : EAI_NONAME;
}

/* The stand-in resolver's freeaddrinfo: one block per entry. */
static void free_list(struct addrinfo *res)
{
    while (res != NULL) {
        struct addrinfo *next = res->ai_next;
        free(res);
        res = next;
    }
}

/* freeaddrinfo that frees nothing: a forgotten list's memory stays
 * readable, so that connecting to its old pointer can be tried. */
static void keep_freed(struct addrinfo *res) { (void)res; }

static struct addrinfo *resolve(const char *name)
{
    struct addrinfo *res = NULL;
    return getaddrinfo(name, "443", NULL, &res) == 0 ? res : NULL;
}

static struct sockaddr_in copy_of(const struct addrinfo *ai)
{
    struct sockaddr_in sin;
    memcpy(&sin, ai->ai_addr, sizeof(sin));
    return sin;
}

static struct sockaddr_in ipv4(const char *text)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(443)};
    inet_pton(AF_INET, text, &sin.sin_addr);
    return sin;
}

/* --- the names a connection gets, as one string ----------------------- */

struct seen {
    char text[512];
};

static void collect(const char *name, void *ctx)
{
    struct seen *s = ctx;
    size_t n = strlen(s->text);
    snprintf(s->text + n, sizeof(s->text) - n, "%s%s", n ? " " : "", name);
}

/* "SOURCE: name name ..." for a connection to sa, e.g. "exact: first.test". */
static const char *names_of(const void *sa, char *buf, size_t len)
{
    static const char *const sources[] = {"none", "exact", "this thread"};
    struct seen s = {""};
    enum nl_names_source src = nl_names_for(sa, collect, &s);
    snprintf(buf, len, "%s:%s%s", sources[src], s.text[0] ? " " : "", s.text);
    return buf;
}

#define EXPECT_NAMES(sa, want)                                                          \
    do {                                                                               \
        char got_[600];                                                                \
        CHECK(strcmp(names_of(sa, got_, sizeof(got_)), want) == 0, "names: got '%s', want '%s'", \
              got_, want);                                                             \
    } while (0)

/* --- cases: names ------------------------------------------------------ */

static void the_result_connected_to_names_its_own_lookup(void)
{
    struct addrinfo *first = resolve("first.test"), *second = resolve("second.test");
    CHECK(first && second, "the fake resolver answers");
    EXPECT_NAMES(first->ai_addr, "exact: first.test");
    EXPECT_NAMES(first->ai_next->ai_addr, "exact: first.test");
    EXPECT_NAMES(second->ai_addr, "exact: second.test");
    freeaddrinfo(first);
    freeaddrinfo(second);
}

static void a_copied_address_has_every_name_resolved_to_it(void)
{
    struct addrinfo *first = resolve("first.test"), *second = resolve("second.test");
    struct sockaddr_in copy = copy_of(first);
    EXPECT_NAMES(&copy, "this thread: second.test first.test");
    freeaddrinfo(first);
    freeaddrinfo(second);
    /* Python frees the list before it connects: the history still knows. */
    EXPECT_NAMES(&copy, "this thread: second.test first.test");
}

static void a_freed_list_no_longer_names_its_pointer(void)
{
    struct addrinfo *first = resolve("first.test");
    nl_real.freeaddrinfo = keep_freed;
    freeaddrinfo(first); /* forgotten, its memory kept */
    struct addrinfo *second = resolve("second.test");
    EXPECT_NAMES(first->ai_addr, "this thread: second.test first.test");
    nl_real.freeaddrinfo = free_list;
    free(first->ai_next);
    free(first);
    freeaddrinfo(second);
}

static void only_the_newest_lists_are_kept(void)
{
    struct addrinfo *oldest = resolve("third.test"), *rest[LISTS_KEPT];
    for (size_t i = 0; i < LISTS_KEPT; i++)
        rest[i] = resolve("first.test");
    char want[] = "this thread: third.test";
    EXPECT_NAMES(oldest->ai_addr, want); /* dropped: no longer exact */
    EXPECT_NAMES(rest[0]->ai_addr, "exact: first.test");
    freeaddrinfo(oldest);
    for (size_t i = 0; i < LISTS_KEPT; i++)
        freeaddrinfo(rest[i]);
}

/* A thread that resolves one name, then waits to be told to end. */
struct resolver_thread {
    pthread_t t;
    const char *name;
    int resolved[2], end[2];
};

static void *resolve_and_wait(void *arg)
{
    struct resolver_thread *r = arg;
    char c = 1;
    freeaddrinfo(resolve(r->name));
    if (write(r->resolved[1], &c, 1) != 1 || read(r->end[0], &c, 1) < 0)
        return NULL;
    return NULL;
}

static bool resolver_start(struct resolver_thread *r, const char *name)
{
    char c;
    r->name = name;
    return pipe(r->resolved) == 0 && pipe(r->end) == 0 &&
           pthread_create(&r->t, NULL, resolve_and_wait, r) == 0 &&
           read(r->resolved[0], &c, 1) == 1;
}

static void resolver_end(struct resolver_thread *r)
{
    close(r->end[1]);
    pthread_join(r->t, NULL);
    close(r->end[0]);
    close(r->resolved[0]);
    close(r->resolved[1]);
}

static void names_from_running_threads_never_count(void)
{
    struct sockaddr_in alone = ipv4("10.0.0.4");
    struct resolver_thread r;
    CHECK(resolver_start(&r, "alone.test"), "thread started");
    /* Another thread, still running, resolved it: not for our connection
     * (its name would get its certificate accepted on ours). */
    EXPECT_NAMES(&alone, "none:");
    /* Our own lookup of another name for it, later: ours wins. */
    freeaddrinfo(resolve("also.test"));
    EXPECT_NAMES(&alone, "this thread: also.test");
    /* Once the thread has ended, its answer may have been handed to us. */
    resolver_end(&r);
    EXPECT_NAMES(&alone, "this thread: also.test alone.test");
}

static void names_differing_only_in_case_or_final_dot_are_one(void)
{
    freeaddrinfo(resolve("Mixed.Test"));
    freeaddrinfo(resolve("mixed.test."));
    struct sockaddr_in sin = ipv4("10.0.0.5");
    EXPECT_NAMES(&sin, "this thread: mixed.test.");
}

static void an_ipv4_mapped_address_is_its_ipv4_address(void)
{
    freeaddrinfo(resolve("third.test"));
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:10.0.0.3", &mapped.sin6_addr);
    EXPECT_NAMES(&mapped, "this thread: third.test");
}

static void a_vfork_child_records_nothing(void)
{
    in_vfork_child = true;
    struct addrinfo *many = resolve("many.test");
    in_vfork_child = false;
    CHECK(many != NULL, "the lookup itself works");
    EXPECT_NAMES(many->ai_addr, "none:");
    freeaddrinfo(many);
}

/* --- cases: decisions -------------------------------------------------- */

static char certs[PATH_MAX], tmpdir[] = "/tmp/nestls-names-XXXXXX";

static bool load_policy(const char *rules)
{
    char path[PATH_MAX + 16], err[NL_ERR_MAX];
    snprintf(path, sizeof(path), "%s/p.yaml", tmpdir);
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        return false;
    fprintf(fp, "version: 1\nrules:\n%s", rules);
    fclose(fp);
    struct nl_policy *p = NULL;
    if (nl_policy_load(path, &p, err, sizeof(err)) != 0) {
        printf("# %s\n", err);
        return false;
    }
    nl_policy_free((struct nl_policy *)nl_policy);
    nl_policy = p;
    return true;
}

static bool by_name_policy(void)
{
    char rules[2 * PATH_MAX];
    snprintf(rules, sizeof(rules),
             "  - name: second-denied\n    match: {role: client, address: [second.test]}\n"
             "    action: deny\n"
             "  - name: by-name\n    match: {role: client, address: [first.test, alone.test]}\n"
             "    layers:\n      - ca: %s/outer-ca.pem\n",
             certs);
    return load_policy(rules);
}

static void one_name_decides_and_is_verified(void)
{
    CHECK(by_name_policy(), "policy loads");
    struct addrinfo *first = resolve("first.test"), *second = resolve("second.test");
    char name[NL_HOST_MAX];
    struct nl_decision d = nl_decide_client(first->ai_addr, name, sizeof(name));
    CHECK(d.action == NL_ACTION_WRAP && d.rule && strcmp(d.rule->name, "by-name") == 0,
          "rule by-name wraps (action %d)", d.action);
    CHECK(d.peer_name && strcmp(d.peer_name, "first.test") == 0, "verified: %s",
          d.peer_name ? d.peer_name : "(the address)");
    freeaddrinfo(first);
    freeaddrinfo(second);
}

static void several_names_get_the_strictest_and_verify_the_address(void)
{
    CHECK(by_name_policy(), "policy loads");
    struct addrinfo *first = resolve("first.test"), *second = resolve("second.test");
    struct sockaddr_in copy = copy_of(first);
    char name[NL_HOST_MAX];
    struct nl_decision d = nl_decide_client((struct sockaddr *)&copy, name, sizeof(name));
    CHECK(d.action == NL_ACTION_DENY, "second.test's deny wins (action %d)", d.action);
    CHECK(d.peer_name == NULL, "no name is trusted: %s", d.peer_name);
    freeaddrinfo(first);
    freeaddrinfo(second);
}

static void a_rule_by_name_cannot_be_dodged_by_a_second_lookup(void)
{
    char rules[2 * PATH_MAX];
    snprintf(rules, sizeof(rules),
             "  - name: second-plain\n    match: {role: client, address: [second.test]}\n"
             "    action: passthrough\n"
             "  - name: by-name\n    match: {role: client, address: [first.test]}\n"
             "    layers:\n      - ca: %s/outer-ca.pem\n",
             certs);
    CHECK(load_policy(rules), "policy loads");
    struct addrinfo *first = resolve("first.test"), *second = resolve("second.test");
    struct sockaddr_in copy = copy_of(first);
    char name[NL_HOST_MAX];
    struct nl_decision d = nl_decide_client((struct sockaddr *)&copy, name, sizeof(name));
    CHECK(d.action == NL_ACTION_WRAP && strcmp(d.rule->name, "by-name") == 0,
          "the wrap wins over the passthrough (action %d)", d.action);
    CHECK(d.peer_name == NULL, "the address is verified, not %s", d.peer_name);
    freeaddrinfo(first);
    freeaddrinfo(second);
}

static void no_name_leaves_the_address_to_decide(void)
{
    CHECK(by_name_policy(), "policy loads");
    struct sockaddr_in nowhere = ipv4("10.9.9.9");
    char name[NL_HOST_MAX];
    struct nl_decision d = nl_decide_client((struct sockaddr *)&nowhere, name, sizeof(name));
    CHECK(d.rule == NULL && d.action == NL_ACTION_PASSTHROUGH && d.peer_name == NULL,
          "the default action, no name (action %d)", d.action);
}

int main(void)
{
    nl_real.getaddrinfo = fake_getaddrinfo;
    nl_real.freeaddrinfo = free_list;
    RUN(the_result_connected_to_names_its_own_lookup);
    RUN(a_copied_address_has_every_name_resolved_to_it);
    RUN(a_freed_list_no_longer_names_its_pointer);
    RUN(only_the_newest_lists_are_kept);
    RUN(names_from_running_threads_never_count);
    RUN(names_differing_only_in_case_or_final_dot_are_one);
    RUN(an_ipv4_mapped_address_is_its_ipv4_address);
    RUN(a_vfork_child_records_nothing);
    if (!unit_certs_and_tmpdir(certs, tmpdir))
        return 1;
    nl_log_configure(NL_LOG_ERROR, NULL); /* the warnings are the point, not the output */
    RUN(one_name_decides_and_is_verified);
    RUN(several_names_get_the_strictest_and_verify_the_address);
    RUN(a_rule_by_name_cannot_be_dodged_by_a_second_lookup);
    RUN(no_name_leaves_the_address_to_decide);
    nl_policy_free((struct nl_policy *)nl_policy);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", tmpdir);
    return unit_summary();
}
