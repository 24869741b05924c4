/* Session cache: see sessions.h. A small fixed table; the newest session
 * for a key replaces the older one, and a full table replaces its oldest
 * entry, so memory stays bounded. */
#include "engine/sessions.h"
#include "common/locking.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define SESSIONS_KEPT 256
#define KEY_MAX 400

struct session_entry {
    char key[KEY_MAX];
    SSL_SESSION *session;
    unsigned long stamp;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session_entry cache[SESSIONS_KEPT];
static unsigned long clock_ticks;
static int key_index = -1; /* SSL ex_data slot holding the layer's key */
/* Each client context gets a number no other context of this process
 * ever gets (SSL_CTX ex_data): the cache key names it. Not the context's
 * address: a reload frees contexts, and a new one at a freed address
 * would be offered the sessions of the old, made under its older trust
 * and CRL, which resumption does not check again. */
static int generation_index = -1;
static unsigned long generations;

static void free_key(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

static struct session_entry *find(const char *key)
{
    for (size_t i = 0; i < SESSIONS_KEPT; i++)
        if (cache[i].session != NULL && strcmp(cache[i].key, key) == 0)
            return &cache[i];
    return NULL;
}

static struct session_entry *slot_for(const char *key)
{
    struct session_entry *e = find(key), *oldest = &cache[0];
    if (e != NULL)
        return e;
    for (size_t i = 0; i < SESSIONS_KEPT; i++) {
        if (cache[i].session == NULL)
            return &cache[i];
        if (cache[i].stamp < oldest->stamp)
            oldest = &cache[i];
    }
    return oldest;
}

/* OpenSSL hands us each new session (TLS 1.3: each ticket, after the
 * handshake). Returning 1 keeps our reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *session)
{
    const char *key = SSL_get_ex_data(ssl, key_index);
    if (key == NULL || !SSL_SESSION_is_resumable(session))
        return 0;
    nl_mutex_lock(&cache_lock);
    struct session_entry *e = slot_for(key);
    if (e->session != NULL)
        SSL_SESSION_free(e->session);
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->session = session;
    e->stamp = ++clock_ticks;
    nl_mutex_unlock(&cache_lock);
    return 1;
}

void nl_sessions_attach_ctx(SSL_CTX *ctx)
{
    if (ctx == NULL)
        return;
    /* Under the engine lock (or at start-up, before any thread). */
    SSL_CTX_set_ex_data(ctx, generation_index, (void *)(uintptr_t)++generations);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
}

void nl_sessions_attach(const struct nl_policy *policy)
{
    key_index = SSL_get_ex_new_index(0, "nestls session key", NULL, NULL, free_key);
    generation_index = SSL_CTX_get_ex_new_index(0, "nestls context number", NULL, NULL, NULL);
    for (size_t r = 0; r < policy->n_rules; r++)
        for (size_t i = 0; i < policy->rules[r].n_layers; i++)
            nl_sessions_attach_ctx(policy->rules[r].layers[i].client_ctx);
}

void nl_sessions_prepare(SSL *ssl, size_t layer, const char *name, const struct sockaddr *peer)
{
    if (key_index < 0)
        return;
    char addr[80], *key = malloc(KEY_MAX);
    if (key == NULL)
        return;
    nl_format_addr(peer, addr, sizeof(addr));
    /* The context (by its number) pins the rule, the layer's trust and
     * identity settings; the name and address pin the server. */
    uintptr_t generation = (uintptr_t)SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), generation_index);
    snprintf(key, KEY_MAX, "%lu|%zu|%s|%s", (unsigned long)generation, layer, name ? name : "",
             addr);
    nl_mutex_lock(&cache_lock);
    struct session_entry *e = find(key);
    if (e != NULL) {
        SSL_set_session(ssl, e->session); /* takes its own reference */
        e->stamp = ++clock_ticks;
    }
    nl_mutex_unlock(&cache_lock);
    if (SSL_set_ex_data(ssl, key_index, key) != 1)
        free(key);
}

void nl_sessions_fork_lock(void) { pthread_mutex_lock(&cache_lock); }
void nl_sessions_fork_unlock(void) { pthread_mutex_unlock(&cache_lock); }

void nl_sessions_after_fork(void)
{
    pthread_mutex_init(&cache_lock, NULL);
}
