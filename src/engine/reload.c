/* Reload without restart (settings: reload, on by default). The engine
 * thread watches the directories of every file the layers read (inotify,
 * not a signal: signals belong to the program). A burst of changes is
 * waited out, then each layer's files are hashed; when some differ, the
 * whole policy file is loaded again, which checks the new material as a
 * start would (cert matches key, chains and CRLs load), and the changed
 * layers take the new contexts: new connections use them, established
 * ones keep the contexts they started with (an SSL holds a reference to
 * its SSL_CTX). Anything invalid leaves the old material in use, with one
 * error line saying why.
 *
 * The policy is otherwise never changed after load. Only this file
 * writes to it, in the engine thread and under the engine lock, which
 * every connection also holds while it makes its SSLs (onion.c) — so no
 * reader sees a context half swapped. Watching starts with the engine:
 * a process that never made a wrapped connection has nothing to reload,
 * and at start the engine checks once for changes made before it ran. */
#include "engine/reload.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/fdtable.h"
#include "common/log.h"
#include "common/real.h"
#include "common/util.h"
#include "engine/engine_state.h"
#include "engine/keylog.h"
#include "engine/sessions.h"

/* A change shows as several events (write, close, rename; cert then key):
 * act once they have stopped for SETTLE_MS, or MAX_WAIT_MS after the first. */
#define SETTLE_MS 250
#define MAX_WAIT_MS 2000

static int watch_fd = -1;
static char reload_marker; /* epoll data of watch_fd */
static uint64_t first_ms, due_ms;
static bool rewatch; /* a watched directory went away: watch again */
/* The state of the files the last failed reload saw: a failure is said
 * once, not again for every event until the files change. */
static unsigned char failed_state[NL_HASH_LEN];
static bool failed;

bool nl_reload_is_marker(const void *ptr)
{
    return ptr == &reload_marker;
}

static void register_watch(void)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &reload_marker};
    nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_ADD, watch_fd, &ev);
}

/* The directory part of path ("/a/b.pem" -> "/a"), into buf. */
static const char *dir_of(const char *path, char *buf, size_t len)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
    if (n == 0 || n >= len)
        return NULL;
    memcpy(buf, path, n);
    buf[n] = '\0';
    return buf;
}

/* Directories, not files: a file replaced by rename (what editors, cert
 * tools and Kubernetes' secret volumes do) is a new inode a watch on the
 * old one would never see. inotify makes one watch per directory however
 * often it is added. */
/* A directory that cannot be watched (deleted, not yet made again) is
 * tried again every RETRY_MS: said once, until all are watched again. */
#define RETRY_MS 1000
static bool missing_said;

static void watch_directories(const struct nl_policy *p, uint64_t now)
{
    const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                          IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
    bool all = true;
    for (size_t r = 0; r < p->n_rules; r++)
        for (size_t i = 0; i < p->rules[r].n_layers; i++) {
            const char *files[NL_LAYER_MAX_FILES];
            size_t n = nl_layer_files(&p->rules[r].layers[i], files, NL_LAYER_MAX_FILES);
            for (size_t k = 0; k < n; k++) {
                char dir[4096];
                if (dir_of(files[k], dir, sizeof(dir)) == NULL ||
                    inotify_add_watch(watch_fd, dir, mask) >= 0)
                    continue;
                if (!missing_said)
                    nl_warn("reload: cannot watch %s: %s; trying again every %d ms", dir,
                            strerror(errno), RETRY_MS);
                missing_said = true;
                all = false;
            }
        }
    if (all) {
        missing_said = false;
        return;
    }
    rewatch = true;
    if (due_ms == 0 || due_ms > now + RETRY_MS)
        due_ms = now + RETRY_MS;
}

/* Whether any layer reads a file at all ("ca: system" alone does not). */
static bool names_files(const struct nl_policy *p)
{
    for (size_t r = 0; r < p->n_rules; r++)
        for (size_t i = 0; i < p->rules[r].n_layers; i++) {
            const char *files[NL_LAYER_MAX_FILES];
            if (nl_layer_files(&p->rules[r].layers[i], files, NL_LAYER_MAX_FILES) > 0)
                return true;
        }
    return false;
}

void nl_reload_start_locked(uint64_t now)
{
    if (!nl_policy->settings.reload || watch_fd >= 0 || !names_files(nl_policy))
        return;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        nl_warn("reload: cannot watch the policy's files: %s; changes need a restart",
                strerror(errno));
        return;
    }
    watch_fd = nl_guard_dup_high(fd);
    nl_real.close(fd);
    if (watch_fd < 0)
        return;
    watch_directories(nl_policy, now);
    register_watch();
    due_ms = now; /* files changed between the load and now */
}

void nl_reload_event(uint64_t now)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    /* Which file does not matter (the hashes tell); a watch that ended
     * (its directory deleted or moved) does: it is made again. */
    while ((n = nl_real.read(watch_fd, buf, sizeof(buf))) > 0)
        for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
                rewatch = true;
            off += (ssize_t)sizeof(*ev) + ev->len;
        }
    if (due_ms == 0)
        first_ms = now;
    due_ms = now + SETTLE_MS;
    if (due_ms > first_ms + MAX_WAIT_MS)
        due_ms = first_ms + MAX_WAIT_MS;
}

uint64_t nl_reload_due(void)
{
    return due_ms;
}

/* One line per reloaded layer: the certificate it now shows, and until when. */
static void log_reloaded(const struct nl_rule *rule, size_t index, const struct nl_layer *l)
{
    SSL_CTX *ctx = l->server_ctx != NULL ? l->server_ctx : l->client_ctx;
    X509 *cert = ctx != NULL ? SSL_CTX_get0_certificate(ctx) : NULL;
    if (cert == NULL) {
        nl_info("rule '%s' layer %zu: reloaded (no certificate of its own: CAs, CRL)", rule->name,
                index + 1);
        return;
    }
    char subject[256], until[40];
    nl_tls_subject_text(cert, subject, sizeof(subject));
    nl_info("rule '%s' layer %zu: reloaded: certificate \"%s\" valid until %s%s", rule->name,
            index + 1, subject, nl_tls_time_text(X509_get0_notAfter(cert), until, sizeof(until)),
            l->n_certs > 1 ? " (and its other certs)" : "");
}

static void each_into_caches(SSL_CTX *ctx, void *arg)
{
    (void)arg;
    nl_keylog_attach_ctx(ctx, NULL);
}

/* Hashes of every layer's files now, into now[], and one over them all. */
static bool anything_changed(const struct nl_policy *p, unsigned char all[NL_HASH_LEN])
{
    bool changed = false;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return false;
    }
    for (size_t r = 0; r < p->n_rules; r++)
        for (size_t i = 0; i < p->rules[r].n_layers; i++) {
            unsigned char h[NL_HASH_LEN];
            nl_layer_files_hash(&p->rules[r].layers[i], h);
            EVP_DigestUpdate(md, h, sizeof(h));
            if (memcmp(h, p->rules[r].layers[i].files_hash, sizeof(h)) != 0)
                changed = true;
        }
    EVP_DigestFinal_ex(md, all, NULL);
    EVP_MD_CTX_free(md);
    return changed;
}

static void reload(struct nl_policy *live)
{
    unsigned char state[NL_HASH_LEN];
    if (!anything_changed(live, state))
        return;
    if (failed && memcmp(state, failed_state, sizeof(state)) == 0)
        return;
    struct nl_policy *donor;
    char err[NL_ERR_MAX];
    failed = true;
    memcpy(failed_state, state, sizeof(state));
    if (nl_policy_load(live->source, &donor, err, sizeof(err)) != 0) {
        nl_error("reload: %s; the files in use stay in use", err);
        return;
    }
    if (memcmp(donor->text_hash, live->text_hash, NL_HASH_LEN) != 0) {
        nl_error("reload: %s has changed since this program started: only a restart applies a "
                 "new policy; the files in use stay in use", live->path);
        nl_policy_free(donor);
        return;
    }
    failed = false;
    for (size_t r = 0; r < live->n_rules; r++)
        for (size_t i = 0; i < live->rules[r].n_layers; i++) {
            struct nl_layer *now = &live->rules[r].layers[i];
            struct nl_layer *fresh = &donor->rules[r].layers[i];
            if (memcmp(now->files_hash, fresh->files_hash, NL_HASH_LEN) == 0)
                continue;
            nl_sessions_attach_ctx(fresh->client_ctx);
            nl_layer_each_ctx(fresh, each_into_caches, NULL);
            nl_layer_take_contexts(now, fresh);
            log_reloaded(&live->rules[r], i, now);
        }
    nl_policy_free(donor); /* with the old contexts: each SSL keeps its own */
    watch_directories(live, nl_now_ms()); /* files named relative to a moved policy live elsewhere now */
}

void nl_reload_run_due(uint64_t now)
{
    if (due_ms == 0 || due_ms > now)
        return;
    due_ms = 0;
    struct nl_policy *live = (struct nl_policy *)nl_policy; /* the one writer: see the top */
    if (rewatch) { /* a directory made again, or a new one the files moved to */
        rewatch = false;
        watch_directories(live, now);
    }
    reload(live);
}

void nl_reload_fork_child(void)
{
    /* The inotify queue is shared with the parent, which reads it: the
     * child makes its own when its engine starts. */
    if (watch_fd >= 0) {
        nl_guard_remove(watch_fd);
        nl_real.close(watch_fd);
    }
    watch_fd = -1;
    due_ms = 0;
}

void nl_reload_register_again(void)
{
    if (watch_fd >= 0)
        register_watch();
}

int nl_reload_relocate_fd(int fd)
{
    if (watch_fd < 0 || fd != watch_fd)
        return -1;
    nl_real.epoll_ctl(nl_engine.epfd, EPOLL_CTL_DEL, fd, NULL);
    int r = nl_move_guarded(&watch_fd);
    register_watch();
    return r;
}
