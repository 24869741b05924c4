/* The STARTTLS preludes, one small state machine per role and protocol
 * (see starttls.h for what the program sees before and after).
 *
 * Every reply and command line is read into one buffer of
 * NL_STARTTLS_REPLY_MAX bytes and parsed only once it is complete; one
 * that does not fit is refused. The server role answers at most
 * NL_STARTTLS_MAX_COMMANDS commands. The connection's deadline
 * (handshake_timeout_ms) bounds the time.
 *
 * Once the last plaintext answer is read (client) or sent (server), no
 * other plaintext byte may be there: a server that sent more after its
 * "220 ready", or a client that pipelined bytes after its STARTTLS, would
 * have those bytes taken as if they came from inside TLS (the STARTTLS
 * command injection of CVE-2011-0411, CVE-2021-23214): the prelude fails
 * instead. Nothing is read past that point, so the first byte of TLS
 * stays in the socket for layer 1. */
#include "engine/starttls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/real.h"

/* PostgreSQL's requests sent instead of a StartupMessage (protocol 3). */
#define PG_SSL_REQUEST 80877103u
#define PG_GSSENC_REQUEST 80877104u
#define PG_CANCEL_REQUEST 80877102u

enum { WAIT_INPUT = 0, DONE = 1, FAILED = -1, ACTED = 2 };

struct nl_starttls {
    enum nl_starttls_proto proto;
    enum nl_role role;
    int step;                /* position in the protocol, from 0 */
    unsigned commands;       /* server: commands answered */
    bool finished;           /* last answer read (client) or queued (server) */
    bool quit;               /* server: the client said QUIT/LOGOUT */
    bool gss_refused;        /* server, postgres: a GSSENCRequest was answered 'N' */
    bool failed;
    int err;
    unsigned char *greeting; /* client: the greeting the program gets (program_greeting) */
    size_t greeting_len;
    bool swallow;            /* server: the program's greeting is still to be dropped */
    bool sw_first_line;
    size_t sw_line_len, sw_total;
    char sw_head[4];         /* first 4 bytes of the program's current line */
    char sw_code[3];         /* the reply code of its first line */
    size_t out_len, out_off;
    size_t in_len;
    char error[480];
    char out[768];
    char in[NL_STARTTLS_REPLY_MAX];
};

static const char *proto_name(const struct nl_starttls *s)
{
    const char *n = nl_starttls_name(s->proto);
    return n ? n : "?";
}

static int fail(struct nl_starttls *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct nl_starttls *s, int err, const char *fmt, ...)
{
    if (s->failed)
        return FAILED;
    int n = snprintf(s->error, sizeof(s->error), "starttls %s: ", proto_name(s));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error + n, sizeof(s->error) - (size_t)n, fmt, ap);
    va_end(ap);
    s->failed = true;
    s->err = err;
    return FAILED;
}

/* A peer's bytes for a log line: trailing line ends trimmed, lines joined
 * with " / ", anything unprintable as '.', cut at about 200 characters. */
static const char *quote(const char *p, size_t n, char *buf, size_t cap)
{
    while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' '))
        n--;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 8 >= cap) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\r')
            continue;
        if (ch == '\n') {
            memcpy(buf + o, " / ", 3);
            o += 3;
            continue;
        }
        buf[o++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '.';
    }
    buf[o] = '\0';
    return buf;
}

static int refused(struct nl_starttls *s, size_t len, const char *why)
{
    char q[200];
    return fail(s, EPROTO, "server answered '%s'%s%s%s", quote(s->in, len, q, sizeof(q)),
                why ? " (" : "", why ? why : "", why ? ")" : "");
}

static void consume(struct nl_starttls *s, size_t n)
{
    memmove(s->in, s->in + n, s->in_len - n);
    s->in_len -= n;
}

static int queue(struct nl_starttls *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int queue(struct nl_starttls *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->out + s->out_len, sizeof(s->out) - s->out_len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(s->out) - s->out_len)
        return fail(s, EPROTO, "answer too long"); /* cannot happen: names and tags are bounded */
    s->out_len += (size_t)n;
    return ACTED;
}

/* Length of the line at in[from] with its '\n', or 0 while incomplete. */
static size_t line_len(const struct nl_starttls *s, size_t from)
{
    const char *nl = memchr(s->in + from, '\n', s->in_len - from);
    return nl ? (size_t)(nl - (s->in + from)) + 1 : 0;
}

/* Length of the whole SMTP or FTP reply at the head of in[], or 0 while
 * incomplete. A first line "ddd-" opens a multi-line reply, which ends at
 * the line that starts "ddd " (RFC 5321 4.2.1; RFC 959 4.2, where the
 * lines between may be any text). */
static size_t coded_reply_len(const struct nl_starttls *s)
{
    size_t first = line_len(s, 0);
    if (first == 0)
        return 0;
    if (first < 4 || s->in[3] != '-')
        return first;
    for (size_t off = first;;) {
        size_t n = line_len(s, off);
        if (n == 0)
            return 0;
        const char *l = s->in + off;
        off += n;
        if (n >= 4 && memcmp(l, s->in, 3) == 0 && l[3] != '-')
            return off;
    }
}

static int reply_code(const struct nl_starttls *s)
{
    if (s->in_len < 3)
        return -1;
    int code = 0;
    for (int i = 0; i < 3; i++) {
        if (s->in[i] < '0' || s->in[i] > '9')
            return -1;
        code = code * 10 + (s->in[i] - '0');
    }
    return code;
}

/* Whether a line (or the reply at p) starts with word, case aside,
 * followed by a space, a line end or nothing. */
static bool starts_word(const char *p, size_t n, const char *word)
{
    size_t w = strlen(word);
    return n >= w && strncasecmp(p, word, w) == 0 &&
           (n == w || p[w] == ' ' || p[w] == '\r' || p[w] == '\n');
}

/* The EHLO reply lists STARTTLS as one of its "250-KEYWORD" lines. */
static bool offers_starttls(const char *p, size_t len)
{
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(p + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (p + off)) + 1 : len - off;
        if (n > 4 && starts_word(p + off + 4, n - 4, "STARTTLS"))
            return true;
        off += n;
    }
    return false;
}

/* The greeting the program gets (client role). Not the server's: those
 * bytes came before TLS, from whoever was on the path, and an attacker's
 * extra lines in them ("250 ..." inside a 220- reply, a forged IMAP
 * CAPABILITY) would reach the program as if through the layers. RFC 3207
 * and RFC 2595 say to forget what was learned before TLS. The server's
 * greeting was checked (its code) and is in the log at debug level. */
static const char *program_greeting(enum nl_starttls_proto proto)
{
    switch (proto) {
    case NL_STARTTLS_SMTP:
        return "220 nestls.invalid ESMTP STARTTLS done (the server's greeting is not passed on)\r\n";
    case NL_STARTTLS_IMAP:
        return "* OK nestls: STARTTLS done (the server's greeting is not passed on)\r\n";
    case NL_STARTTLS_POP3:
        return "+OK nestls: STLS done (the server's greeting is not passed on)\r\n";
    case NL_STARTTLS_FTP:
        return "220 nestls: AUTH TLS done (the server's greeting is not passed on)\r\n";
    default:
        return NULL;
    }
}

static int keep_greeting(struct nl_starttls *s, size_t len)
{
    char q[200];
    nl_debug("starttls %s: the server greeted '%s' (not passed on to the program)",
             proto_name(s), quote(s->in, len, q, sizeof(q)));
    const char *g = program_greeting(s->proto);
    if (g == NULL)
        return ACTED;
    s->greeting = (unsigned char *)strdup(g);
    if (s->greeting == NULL)
        return fail(s, ENOMEM, "out of memory");
    s->greeting_len = strlen(g);
    return ACTED;
}

/* The client's last answer is read: the layers start on what follows. */
static int client_done(struct nl_starttls *s, size_t len)
{
    consume(s, len);
    s->finished = true;
    return ACTED;
}

/* Our host name, for the server role's greetings (and EHLO): "localhost"
 * when it is not a plain DNS name. */
static const char *server_name(char *buf, size_t cap)
{
    if (gethostname(buf, cap) != 0 || (buf[cap - 1] = '\0', buf[0] == '\0') ||
        buf[strspn(buf, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")] != '\0')
        snprintf(buf, cap, "localhost");
    buf[cap - 1] = '\0';
    return buf;
}

/* RFC 5321 4.1.1.1: EHLO names the client: the machine's name when it is
 * a fully qualified one, else the address literal of our end ("[1.2.3.4]"),
 * which a server can check against the connection. (Not the server's own
 * name: some servers refuse a client that greets with theirs.) */
static void ehlo_name(int fd, char *out, size_t cap)
{
    char host[256];
    if (strchr(server_name(host, sizeof(host)), '.') != NULL) {
        snprintf(out, cap, "%s", host);
        return;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN];
    if (nl_real.getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET &&
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip))) {
            snprintf(out, cap, "[%s]", ip);
            return;
        }
        if (ss.ss_family == AF_INET6 &&
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip))) {
            snprintf(out, cap, "[IPv6:%s]", ip);
            return;
        }
    }
    snprintf(out, cap, "localhost");
}

/* --- client role ------------------------------------------------------ */

static int client_smtp(struct nl_starttls *s, int fd)
{
    size_t len = coded_reply_len(s);
    if (len == 0)
        return WAIT_INPUT;
    int code = reply_code(s);
    char name[300];
    switch (s->step) {
    case 0: /* the greeting */
        if (code != 220)
            return refused(s, len, NULL);
        if (keep_greeting(s, len) == FAILED)
            return FAILED;
        consume(s, len);
        ehlo_name(fd, name, sizeof(name));
        s->step = 1;
        return queue(s, "EHLO %s\r\n", name);
    case 1:
        if (code != 250)
            return refused(s, len, NULL);
        if (!offers_starttls(s->in, len))
            return refused(s, len, "no STARTTLS in its EHLO reply");
        consume(s, len);
        s->step = 2;
        return queue(s, "STARTTLS\r\n");
    default:
        return code == 220 ? client_done(s, len) : refused(s, len, NULL);
    }
}

/* IMAP's tagged answer to our one command, with any untagged lines before
 * it: its length, or 0 while incomplete. */
static size_t tagged_reply_len(const struct nl_starttls *s, const char *tag)
{
    for (size_t off = 0;;) {
        size_t n = line_len(s, off);
        if (n == 0)
            return 0;
        bool tagged = starts_word(s->in + off, n, tag);
        off += n;
        if (tagged)
            return off;
    }
}

static int client_imap(struct nl_starttls *s, int fd)
{
    (void)fd;
    if (s->step == 0) {
        size_t len = line_len(s, 0);
        if (len == 0)
            return WAIT_INPUT;
        if (!starts_word(s->in, len, "* OK"))
            return refused(s, len, starts_word(s->in, len, "* PREAUTH")
                                       ? "already authenticated: STARTTLS is not allowed"
                                       : NULL);
        if (keep_greeting(s, len) == FAILED)
            return FAILED;
        consume(s, len);
        s->step = 1;
        return queue(s, "a001 STARTTLS\r\n");
    }
    size_t len = tagged_reply_len(s, "a001");
    if (len == 0)
        return WAIT_INPUT;
    /* The tagged line is the last one of the reply. */
    size_t last = len - 1;
    while (last > 0 && s->in[last - 1] != '\n')
        last--;
    if (!starts_word(s->in + last, len - last, "a001 OK"))
        return refused(s, len, NULL);
    return client_done(s, len);
}

static int client_pop3(struct nl_starttls *s, int fd)
{
    (void)fd;
    size_t len = line_len(s, 0);
    if (len == 0)
        return WAIT_INPUT;
    if (!starts_word(s->in, len, "+OK"))
        return refused(s, len, NULL);
    if (s->step == 1)
        return client_done(s, len);
    if (keep_greeting(s, len) == FAILED)
        return FAILED;
    consume(s, len);
    s->step = 1;
    return queue(s, "STLS\r\n");
}

static int client_ftp(struct nl_starttls *s, int fd)
{
    (void)fd;
    size_t len = coded_reply_len(s);
    if (len == 0)
        return WAIT_INPUT;
    int code = reply_code(s);
    if (s->step == 1)
        return code == 234 ? client_done(s, len) : refused(s, len, NULL);
    if (code != 220)
        return refused(s, len, NULL);
    if (keep_greeting(s, len) == FAILED)
        return FAILED;
    consume(s, len);
    s->step = 1;
    return queue(s, "AUTH TLS\r\n");
}

static int client_postgres(struct nl_starttls *s, int fd)
{
    (void)fd;
    if (s->step == 0) {
        /* SSLRequest: length 8, then the request code, both big-endian. */
        uint32_t msg[2] = {htonl(8), htonl(PG_SSL_REQUEST)};
        memcpy(s->out + s->out_len, msg, sizeof(msg));
        s->out_len += sizeof(msg);
        s->step = 1;
        return ACTED;
    }
    if (s->in_len == 0)
        return WAIT_INPUT;
    if (s->in[0] == 'S')
        return client_done(s, 1);
    if (s->in[0] == 'N' && s->in_len == 1)
        return refused(s, 1, "the server does not accept SSL: ssl is off");
    return refused(s, s->in_len, NULL);
}

/* --- server role ------------------------------------------------------ */

/* The next command line, or 0 while incomplete; *line and *n without its line
 * end. A server never answers a command it has not wholly read. */
static size_t command(struct nl_starttls *s, const char **line, size_t *n)
{
    size_t len = line_len(s, 0);
    if (len == 0)
        return 0;
    *line = s->in;
    *n = len - 1;
    if (*n > 0 && s->in[*n - 1] == '\r')
        (*n)--;
    return len;
}

static int too_many(struct nl_starttls *s)
{
    if (++s->commands <= NL_STARTTLS_MAX_COMMANDS)
        return 0;
    return fail(s, EPROTO, "the client sent %d commands without STARTTLS",
                NL_STARTTLS_MAX_COMMANDS);
}

static int server_smtp(struct nl_starttls *s, int fd)
{
    (void)fd;
    char host[256];
    if (s->step == 0) {
        s->step = 1;
        return queue(s, "220 %s ESMTP nestls\r\n", server_name(host, sizeof(host)));
    }
    const char *l;
    size_t n, len = command(s, &l, &n);
    if (len == 0)
        return WAIT_INPUT;
    if (too_many(s) == FAILED)
        return FAILED;
    bool ehlo = starts_word(l, n, "EHLO"), helo = starts_word(l, n, "HELO");
    bool starttls = starts_word(l, n, "STARTTLS"), quit = starts_word(l, n, "QUIT");
    consume(s, len);
    if (ehlo)
        return queue(s, "250-%s\r\n250 STARTTLS\r\n", server_name(host, sizeof(host)));
    if (helo)
        return queue(s, "250 %s\r\n", server_name(host, sizeof(host)));
    if (starttls) {
        s->finished = true;
        return queue(s, "220 Ready to start TLS\r\n");
    }
    if (quit) {
        s->quit = true;
        return queue(s, "221 Bye\r\n");
    }
    return queue(s, "530 Must issue a STARTTLS command first\r\n");
}

static int server_imap(struct nl_starttls *s, int fd)
{
    (void)fd;
    if (s->step == 0) {
        s->step = 1;
        return queue(s, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] nestls ready\r\n");
    }
    const char *l;
    size_t n, len = command(s, &l, &n);
    if (len == 0)
        return WAIT_INPUT;
    if (too_many(s) == FAILED)
        return FAILED;
    /* "TAG COMMAND ...": a tag is printable and short, or the line is bad. */
    char tag[65];
    size_t t = 0;
    while (t < n && t < sizeof(tag) - 1 && l[t] > ' ' && l[t] < 0x7f)
        t++;
    memcpy(tag, l, t);
    tag[t] = '\0';
    if (t == 0 || t == sizeof(tag) - 1 || t >= n || l[t] != ' ') {
        consume(s, len);
        return queue(s, "* BAD Missing or invalid tag\r\n");
    }
    const char *verb = l + t + 1;
    size_t vn = n - t - 1;
    bool capability = starts_word(verb, vn, "CAPABILITY"), starttls = starts_word(verb, vn, "STARTTLS");
    bool noop = starts_word(verb, vn, "NOOP"), logout = starts_word(verb, vn, "LOGOUT");
    consume(s, len);
    if (capability)
        return queue(s, "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n%s OK CAPABILITY completed\r\n",
                     tag);
    if (starttls) {
        s->finished = true;
        return queue(s, "%s OK Begin TLS negotiation now\r\n", tag);
    }
    if (noop)
        return queue(s, "%s OK NOOP completed\r\n", tag);
    if (logout) {
        s->quit = true;
        return queue(s, "* BYE nestls logging out\r\n%s OK LOGOUT completed\r\n", tag);
    }
    return queue(s, "%s BAD Must issue STARTTLS first\r\n", tag);
}

static int server_pop3(struct nl_starttls *s, int fd)
{
    (void)fd;
    if (s->step == 0) {
        s->step = 1;
        return queue(s, "+OK nestls ready\r\n");
    }
    const char *l;
    size_t n, len = command(s, &l, &n);
    if (len == 0)
        return WAIT_INPUT;
    if (too_many(s) == FAILED)
        return FAILED;
    bool capa = starts_word(l, n, "CAPA"), stls = starts_word(l, n, "STLS");
    bool quit = starts_word(l, n, "QUIT");
    consume(s, len);
    if (capa)
        return queue(s, "+OK\r\nSTLS\r\n.\r\n");
    if (stls) {
        s->finished = true;
        return queue(s, "+OK Begin TLS\r\n");
    }
    if (quit) {
        s->quit = true;
        return queue(s, "+OK Bye\r\n");
    }
    return queue(s, "-ERR Must issue STLS first\r\n");
}

static int server_ftp(struct nl_starttls *s, int fd)
{
    (void)fd;
    if (s->step == 0) {
        s->step = 1;
        return queue(s, "220 nestls ready\r\n");
    }
    const char *l;
    size_t n, len = command(s, &l, &n);
    if (len == 0)
        return WAIT_INPUT;
    if (too_many(s) == FAILED)
        return FAILED;
    /* RFC 4217: AUTH TLS (TLS-C is its old name). AUTH SSL is refused
     * like any other command; clients such as curl then try AUTH TLS. */
    bool auth_tls = n >= 8 && (starts_word(l, n, "AUTH TLS") || starts_word(l, n, "AUTH TLS-C"));
    bool feat = starts_word(l, n, "FEAT"), quit = starts_word(l, n, "QUIT");
    consume(s, len);
    if (auth_tls) {
        s->finished = true;
        return queue(s, "234 AUTH TLS successful\r\n");
    }
    if (feat)
        return queue(s, "211-Features:\r\n AUTH TLS\r\n211 End\r\n");
    if (quit) {
        s->quit = true;
        return queue(s, "221 Goodbye\r\n");
    }
    return queue(s, "530 Please login with AUTH TLS first\r\n");
}

static uint32_t be32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

static int server_postgres(struct nl_starttls *s, int fd)
{
    (void)fd;
    if (s->in_len >= 4 && be32(s->in) != 8)
        return fail(s, EPROTO, "the client sent no SSLRequest (a message of %u bytes: a "
                               "plaintext StartupMessage?)", be32(s->in));
    if (s->in_len < 8)
        return WAIT_INPUT;
    uint32_t code = be32(s->in + 4);
    consume(s, 8);
    if (code == PG_SSL_REQUEST) {
        s->finished = true;
        return queue(s, "S");
    }
    /* libpq asks for GSSAPI encryption first when it may: refused, it
     * asks for SSL on the same connection. Once only. */
    if (code == PG_GSSENC_REQUEST && !s->gss_refused) {
        s->gss_refused = true;
        return queue(s, "N");
    }
    return fail(s, EPROTO, "the client sent no SSLRequest (request code %u%s)", code,
                code == PG_CANCEL_REQUEST ? ": a plaintext CancelRequest" : "");
}

typedef int (*step_fn)(struct nl_starttls *s, int fd);

/* [role - 1][proto - 1] */
static const step_fn STEPS[2][5] = {
    {client_smtp, client_imap, client_pop3, client_ftp, client_postgres},
    {server_smtp, server_imap, server_pop3, server_ftp, server_postgres},
};

/* --- the shared part ---------------------------------------------------- */

struct nl_starttls *nl_starttls_new(enum nl_starttls_proto proto, enum nl_role role)
{
    if (proto == NL_STARTTLS_NONE || (role != NL_ROLE_CLIENT && role != NL_ROLE_SERVER)) {
        errno = EINVAL;
        return NULL;
    }
    struct nl_starttls *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->proto = proto;
    s->role = role;
    s->swallow = role == NL_ROLE_SERVER && proto != NL_STARTTLS_POSTGRES;
    s->sw_first_line = true;
    return s;
}

void nl_starttls_free(struct nl_starttls *s)
{
    if (s == NULL)
        return;
    free(s->greeting);
    free(s);
}

/* 1 when everything queued is sent, 0 when TCP is full, -1 on error. */
static int flush(struct nl_starttls *s, int fd)
{
    while (s->out_off < s->out_len) {
        ssize_t w = nl_real.send(fd, s->out + s->out_off, s->out_len - s->out_off,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            s->out_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return 0;
        return fail(s, w < 0 ? errno : EPIPE, "TCP: %s", strerror(w < 0 ? errno : EPIPE));
    }
    s->out_off = s->out_len = 0;
    return 1;
}

static int finish(struct nl_starttls *s)
{
    if (s->in_len > 0) {
        char q[200];
        if (s->role == NL_ROLE_CLIENT)
            return fail(s, EPROTO, "the server sent %zu more bytes after its answer, before TLS "
                                   "('%s'): refused, they would pass for bytes from inside TLS",
                        s->in_len, quote(s->in, s->in_len, q, sizeof(q)));
        return fail(s, EPROTO, "the client sent %zu more bytes right after STARTTLS, before "
                               "our answer: refused, they would pass for bytes from inside TLS",
                    s->in_len);
    }
    return DONE;
}

int nl_starttls_run(struct nl_starttls *s, int fd)
{
    const char *peer = s->role == NL_ROLE_CLIENT ? "server" : "client";
    /* Each pass sends, parses a complete reply or command (consuming it)
     * or reads: it ends in a bounded number of passes because the buffer
     * is bounded and so are the commands answered. */
    while (!s->failed) {
        int r = flush(s, fd);
        if (r <= 0)
            return r;
        if (s->quit)
            return fail(s, EPROTO, "the client quit before STARTTLS");
        if (s->finished)
            return finish(s) == DONE ? 1 : -1;
        r = STEPS[s->role - 1][s->proto - 1](s, fd);
        if (r == FAILED)
            break;
        if (r == ACTED)
            continue;
        if (s->in_len == sizeof(s->in))
            return fail(s, EPROTO, "the %s's %s is longer than %d bytes: refused", peer,
                        s->role == NL_ROLE_CLIENT ? "reply" : "line", NL_STARTTLS_REPLY_MAX);
        ssize_t n = recv(fd, s->in + s->in_len, sizeof(s->in) - s->in_len, MSG_DONTWAIT);
        if (n > 0) {
            s->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n < 0)
            return fail(s, errno, "TCP: %s", strerror(errno));
        char q[200];
        if (s->in_len > 0)
            return fail(s, EPROTO, "the %s closed the connection after '%s'", peer,
                        quote(s->in, s->in_len, q, sizeof(q)));
        return fail(s, s->role == NL_ROLE_CLIENT ? ECONNRESET : EPROTO,
                    "the %s closed the connection before STARTTLS", peer);
    }
    return -1;
}

uint32_t nl_starttls_events(const struct nl_starttls *s)
{
    return s->out_off < s->out_len ? EPOLLOUT : EPOLLIN;
}

const char *nl_starttls_error(const struct nl_starttls *s, int *err)
{
    if (err)
        *err = s->err ? s->err : EPROTO;
    return s->failed ? s->error : "starttls: no error";
}

const char *nl_starttls_proto_name(const struct nl_starttls *s)
{
    return proto_name(s);
}

unsigned char *nl_starttls_take_greeting(struct nl_starttls *s, size_t *len)
{
    unsigned char *g = s->greeting;
    *len = s->greeting_len;
    s->greeting = NULL;
    s->greeting_len = 0;
    return g;
}

bool nl_starttls_swallowing(const struct nl_starttls *s)
{
    return s != NULL && s->swallow;
}

long nl_starttls_swallow(struct nl_starttls *s, const unsigned char *buf, size_t n)
{
    bool coded = s->proto == NL_STARTTLS_SMTP || s->proto == NL_STARTTLS_FTP;
    size_t i = 0;
    while (i < n && s->swallow) {
        char ch = (char)buf[i++];
        if (++s->sw_total > NL_STARTTLS_REPLY_MAX)
            return fail(s, EPROTO, "the program's greeting is longer than %d bytes",
                        NL_STARTTLS_REPLY_MAX);
        if (s->sw_line_len < sizeof(s->sw_head))
            s->sw_head[s->sw_line_len] = ch;
        s->sw_line_len++;
        if (ch != '\n')
            continue;
        /* One line ends IMAP's and POP3's greeting; SMTP's and FTP's end
         * with the line "ddd " of the code their first line "ddd-" gave. */
        bool last;
        if (!coded)
            last = true;
        else if (s->sw_first_line)
            last = s->sw_line_len < 4 || s->sw_head[3] != '-';
        else
            last = s->sw_line_len >= 4 && memcmp(s->sw_head, s->sw_code, 3) == 0 &&
                   s->sw_head[3] != '-';
        if (s->sw_first_line)
            memcpy(s->sw_code, s->sw_head, 3);
        s->sw_first_line = false;
        s->sw_line_len = 0;
        if (last)
            s->swallow = false;
    }
    return (long)i;
}
