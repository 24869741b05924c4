/* The environment a new program image gets keeps nestls (exec_env.c). */
#ifndef NESTLS_EXEC_ENV_H
#define NESTLS_EXEC_ENV_H

#include <stddef.h>

struct nl_exec_env {
    void *addr; /* the mapped vector, or NULL when envp was kept as is */
    size_t len;
};

/* Start-up, once the policy is loaded and announced. */
void nl_exec_env_init(const char *policy_path);

/* envp, or a vector with nestls's LD_PRELOAD and NESTLS_POLICY put back
 * (mapped; give it back with nl_exec_env_done when the exec failed).
 * Safe in a vfork child: no lock, no malloc. */
char *const *nl_exec_env(char *const envp[], struct nl_exec_env *mapped);
void nl_exec_env_done(struct nl_exec_env *mapped);

#endif
