/* Key logging for debugging with a packet analyser: only when the policy
 * names settings.keylog_file, and announced as insecure at start-up. */
#ifndef NESTLS_KEYLOG_H
#define NESTLS_KEYLOG_H

#include "policy/policy.h"

/* Returns 0, or -1 with an error line in err when the file cannot be
 * opened (a start-up error: the policy asked for it by name). */
int nl_keylog_attach(const struct nl_policy *policy, char *err, size_t errlen);
/* One more context (a reload's): its secrets too, when keylog_file is on. */
void nl_keylog_attach_ctx(SSL_CTX *ctx, void *unused);

#endif
