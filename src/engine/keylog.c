/* keylog_file: every layer's TLS secrets, one NSS key log line each, so a
 * capture can be decrypted with Wireshark. Off unless the policy names the
 * file; never driven by SSLKEYLOGFILE or any other environment variable. */
#include "engine/keylog.h"
#include "common/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/fdtable.h"
#include "common/log.h"

static int keylog_fd = -1;

static void write_line(const SSL *ssl, const char *line)
{
    (void)ssl;
    struct iovec iov[2] = {{(void *)line, strlen(line)}, {"\n", 1}};
    ssize_t w = writev(keylog_fd, iov, 2); /* O_APPEND: one line at a time */
    (void)w;
}

void nl_keylog_attach_ctx(SSL_CTX *ctx, void *unused)
{
    (void)unused;
    if (keylog_fd >= 0)
        SSL_CTX_set_keylog_callback(ctx, write_line);
}

int nl_keylog_attach(const struct nl_policy *policy, char *err, size_t errlen)
{
    const char *path = policy->settings.keylog_file;
    if (path == NULL)
        return 0;
    /* O_NONBLOCK for the open only: a FIFO without a reader is an error
     * (exit 78) instead of a start-up blocked forever. */
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: keylog_file %s: %s", policy->path, path, strerror(errno));
        return -1;
    }
    fcntl(fd, F_SETFL, O_APPEND);
    keylog_fd = nl_guard_dup_high(fd);
    nl_sys_close(fd);
    if (keylog_fd < 0) {
        snprintf(err, errlen, "keylog_file %s: %s", path, strerror(errno));
        return -1;
    }
    for (size_t r = 0; r < policy->n_rules; r++)
        for (size_t i = 0; i < policy->rules[r].n_layers; i++)
            nl_layer_each_ctx(&policy->rules[r].layers[i], nl_keylog_attach_ctx, NULL);
    nl_warn("keylog_file %s: the TLS secrets of every layer are written there; anyone who can "
            "read it can decrypt this traffic (INSECURE, for debugging only)", path);
    return 0;
}
