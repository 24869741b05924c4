/* The environment a new program image gets keeps nestls (exec_env.c). */
#ifndef NESTLS_EXEC_ENV_H
#define NESTLS_EXEC_ENV_H

#include <stdbool.h>

/* Start-up, once the policy is loaded and announced. */
void nl_exec_env_init(const char *policy_path);

/* envp, or a vector with nestls's LD_PRELOAD and NESTLS_POLICY put back
 * (this thread's, valid until its next call); NULL with ENOMEM when none
 * can be made: the exec must then fail. Safe in a vfork child: no lock,
 * no malloc, nothing left behind per call. */
char *const *nl_exec_env(char *const envp[]);

/* For the calls that spawn with the process's own environment inside
 * glibc (system, popen): put nestls's entries back into environ. 0, or -1
 * with errno. */
int nl_exec_env_restore_environ(void);

#endif
