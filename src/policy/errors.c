/* Load errors: one line, "FILE:LINE:COL: message", pointing at the node at
 * fault. Only the first error is kept: the loader stops at it, and a later
 * message (from unwinding) must not hide the cause. */
#include "policy/loader.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

struct nl_pos nl_node_pos(const yaml_node_t *node)
{
    struct nl_pos pos = {1, 1};
    if (node != NULL) {
        pos.line = (int)node->start_mark.line + 1;
        pos.col = (int)node->start_mark.column + 1;
    }
    return pos;
}

/* Copy src to dst (of size len) with control characters spelled out: a
 * value quoted in a message may hold a line break, and the error must stay
 * one line. Cut at a character boundary when dst is full. */
static void copy_one_line(char *dst, size_t len, const char *src)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; p++) {
        char esc[5];
        if (*p == '\n')
            snprintf(esc, sizeof(esc), "\\n");
        else if (*p == '\t')
            snprintf(esc, sizeof(esc), "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            snprintf(esc, sizeof(esc), "\\x%02x", *p);
        else
            esc[0] = (char)*p, esc[1] = '\0';
        size_t n = strlen(esc);
        if (o + n >= len)
            break;
        memcpy(dst + o, esc, n);
        o += n;
    }
    dst[o] = '\0';
}

static int vfail(struct nl_loader *L, int line, int col, bool with_where, const char *fmt,
                 va_list ap)
{
    if (L->failed || L->errlen == 0)
        return -1;
    L->failed = true;
    char raw[2048];
    int n = snprintf(raw, sizeof(raw), "%s:%d:%d: ", L->file, line, col);
    if (n < 0 || (size_t)n >= sizeof(raw))
        n = 0;
    if (with_where && L->where[0] != '\0') {
        int m = snprintf(raw + n, sizeof(raw) - (size_t)n, "%s: ", L->where);
        if (m > 0 && (size_t)(n + m) < sizeof(raw))
            n += m;
    }
    vsnprintf(raw + n, sizeof(raw) - (size_t)n, fmt, ap);
    copy_one_line(L->err, L->errlen, raw);
    return -1;
}

int nl_fail(struct nl_loader *L, const yaml_node_t *node, const char *fmt, ...)
{
    struct nl_pos pos = nl_node_pos(node);
    va_list ap;
    va_start(ap, fmt);
    vfail(L, pos.line, pos.col, true, fmt, ap);
    va_end(ap);
    return -1;
}

int nl_fail_raw(struct nl_loader *L, const yaml_node_t *node, const char *fmt, ...)
{
    struct nl_pos pos = nl_node_pos(node);
    va_list ap;
    va_start(ap, fmt);
    vfail(L, pos.line, pos.col, false, fmt, ap);
    va_end(ap);
    return -1;
}

int nl_fail_mark(struct nl_loader *L, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(L, line, col, false, fmt, ap);
    va_end(ap);
    return -1;
}

const char *nl_ssl_reason(void)
{
    /* The first entry with a reason is the root cause ("no cipher match",
     * "no start line"); later ones only say which wrapper gave up. */
    const char *reason = NULL;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        const char *r = ERR_reason_error_string(e);
        if (reason == NULL && r != NULL)
            reason = r;
    }
    return reason;
}
