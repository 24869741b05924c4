/* The JSON writer: see json.h. */
#include "cli/json.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

void nl_json_init(struct nl_json *j, FILE *out)
{
    memset(j, 0, sizeof(*j));
    j->out = out;
}

static void indent(struct nl_json *j)
{
    for (int i = 0; i < j->depth; i++)
        fputs("  ", j->out);
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 when the bytes
 * there are not one: JSON text must be UTF-8, and names in certificates
 * or paths on disk need not be. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static void write_string(FILE *out, const char *value)
{
    const unsigned char *s = (const unsigned char *)value;
    fputc('"', out);
    while (*s != '\0') {
        if (*s == '"' || *s == '\\') {
            fputc('\\', out);
            fputc(*s++, out);
        } else if (*s == '\n') {
            fputs("\\n", out);
            s++;
        } else if (*s == '\t') {
            fputs("\\t", out);
            s++;
        } else if (*s < 0x20 || *s == 0x7f) {
            fprintf(out, "\\u%04x", *s++);
        } else {
            size_t n = utf8_len(s);
            if (n == 0) {
                fputs("\\ufffd", out); /* a stray byte: the replacement character */
                s++;
            } else {
                fwrite(s, 1, n, out);
                s += n;
            }
        }
    }
    fputc('"', out);
}

/* Everything before a value: the comma after the previous member, the
 * line break, the indentation and the key. */
static void member(struct nl_json *j, const char *key)
{
    if (j->depth > 0) {
        if (j->has_items[j->depth])
            fputc(',', j->out);
        fputc('\n', j->out);
        j->has_items[j->depth] = true;
        indent(j);
    }
    if (key != NULL) {
        write_string(j->out, key);
        fputs(": ", j->out);
    }
}

static void open_container(struct nl_json *j, const char *key, char bracket)
{
    member(j, key);
    fputc(bracket, j->out);
    /* Deeper than any schema here needs: keep writing valid text anyway. */
    if (j->depth + 1 < NL_JSON_MAX_DEPTH)
        j->depth++;
    j->has_items[j->depth] = false;
}

static void close_container(struct nl_json *j, char bracket)
{
    bool had = j->has_items[j->depth];
    if (j->depth > 0)
        j->depth--;
    if (had) {
        fputc('\n', j->out);
        indent(j);
    }
    fputc(bracket, j->out);
}

void nl_json_object(struct nl_json *j, const char *key)
{
    open_container(j, key, '{');
}

void nl_json_array(struct nl_json *j, const char *key)
{
    open_container(j, key, '[');
}

void nl_json_end_object(struct nl_json *j)
{
    close_container(j, '}');
}

void nl_json_end_array(struct nl_json *j)
{
    close_container(j, ']');
}

void nl_json_str(struct nl_json *j, const char *key, const char *value)
{
    member(j, key);
    if (value == NULL)
        fputs("null", j->out);
    else
        write_string(j->out, value);
}

void nl_json_int(struct nl_json *j, const char *key, long long value)
{
    member(j, key);
    fprintf(j->out, "%lld", value);
}

void nl_json_num(struct nl_json *j, const char *key, double value)
{
    member(j, key);
    if (isfinite(value))
        fprintf(j->out, "%.3f", value);
    else
        fputs("null", j->out);
}

void nl_json_bool(struct nl_json *j, const char *key, bool value)
{
    member(j, key);
    fputs(value ? "true" : "false", j->out);
}

void nl_json_null(struct nl_json *j, const char *key)
{
    member(j, key);
    fputs("null", j->out);
}

void nl_json_finish(struct nl_json *j)
{
    fputc('\n', j->out);
    fflush(j->out);
}

void nl_json_error_doc(FILE *out, const char *message)
{
    struct nl_json j;
    nl_json_init(&j, out);
    nl_json_object(&j, NULL);
    nl_json_str(&j, "error", message);
    nl_json_end_object(&j);
    nl_json_finish(&j);
}
