/* A small streaming JSON writer for `--json` (check, explain, probe).
 *
 * Output is pretty-printed (two spaces per level) so that a person can
 * read it too. Every member is written through one of these calls, so
 * commas, indentation and string escaping live in one place: a caller
 * cannot produce text that `python3 -m json.tool` would reject, as long
 * as it closes what it opens. The schema is docs/json.md. */
#ifndef NESTLS_CLI_JSON_H
#define NESTLS_CLI_JSON_H

#include <stdbool.h>
#include <stdio.h>

#define NL_JSON_MAX_DEPTH 16

struct nl_json {
    FILE *out;
    int depth;
    bool has_items[NL_JSON_MAX_DEPTH]; /* the open container at this depth has members */
};

void nl_json_init(struct nl_json *j, FILE *out);

/* key is the member name inside an object, NULL inside an array or at the
 * top. A NULL string value is written as null. */
void nl_json_object(struct nl_json *j, const char *key);
void nl_json_array(struct nl_json *j, const char *key);
void nl_json_end_object(struct nl_json *j);
void nl_json_end_array(struct nl_json *j);
void nl_json_str(struct nl_json *j, const char *key, const char *value);
void nl_json_int(struct nl_json *j, const char *key, long long value);
/* Milliseconds and such: three decimals, never exponent notation. */
void nl_json_num(struct nl_json *j, const char *key, double value);
void nl_json_bool(struct nl_json *j, const char *key, bool value);
void nl_json_null(struct nl_json *j, const char *key);
/* After the top-level value: the final newline, and a flush. */
void nl_json_finish(struct nl_json *j);

/* The whole document for a command that failed before it had anything
 * else to say: {"error": message}. */
void nl_json_error_doc(FILE *out, const char *message);

#endif
