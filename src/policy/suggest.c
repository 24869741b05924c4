/* "did you mean ...?" for misspelt keys: the valid key at the smallest edit
 * distance (insert, delete, substitute, or swap two neighbours), when it is
 * small enough to be a typo rather than a different word. And for a key
 * written at the wrong indentation (a layer's 'ca' at rule level), where it
 * belongs. */
#include "policy/loader.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define MAX_WORD 64

/* Optimal string alignment distance, case-insensitive. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n >= MAX_WORD || m >= MAX_WORD)
        return MAX_WORD;
    size_t d[MAX_WORD + 1][MAX_WORD + 1];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            size_t cost = ca == cb ? 0 : 1;
            size_t best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[n][m];
}

const char *nl_suggest(const char *word, const char *const valid[])
{
    /* Two edits turn "ca" into "key": short words only get one. */
    size_t limit = strlen(word) <= 3 ? 1 : 2;
    const char *best = NULL;
    size_t best_distance = limit + 1;
    for (size_t i = 0; valid[i] != NULL; i++) {
        size_t d = edit_distance(word, valid[i]);
        if (d < best_distance) {
            best = valid[i];
            best_distance = d;
        }
    }
    return best;
}

void nl_suggest_text(const char *word, const char *const valid[], char *buf, size_t size)
{
    const char *near = nl_suggest(word, valid);
    if (near != NULL) {
        snprintf(buf, size, "did you mean '%s'?", near);
        return;
    }
    size_t used = (size_t)snprintf(buf, size, "valid keys:");
    for (size_t i = 0; valid[i] != NULL && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s %s", i == 0 ? "" : ",", valid[i]);
}

/* Every place a key can be, and how to say where it is. */
static const struct {
    const char *const *keys;
    const char *where;
} places[] = {
    {nl_top_keys, "at the top level (not indented)"},
    {nl_settings_keys, "under 'settings:'"},
    {nl_rule_keys, "in a rule (an entry under 'rules:')"},
    {nl_match_keys, "under 'match:' in a rule"},
    {nl_layer_keys, "inside a layer (under 'layers:')"},
};

bool nl_suggest_place(const char *word, const char *const valid[], char *buf, size_t size)
{
    for (size_t p = 0; p < sizeof(places) / sizeof(places[0]); p++) {
        if (places[p].keys == valid)
            continue;
        for (size_t i = 0; places[p].keys[i] != NULL; i++)
            if (strcmp(word, places[p].keys[i]) == 0) {
                snprintf(buf, size, "'%s' belongs %s", word, places[p].where);
                return true;
            }
    }
    return false;
}
