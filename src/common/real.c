/* Binding the real libc functions behind our hooks.
 *
 * dlsym(RTLD_NEXT) finds the next definition after libnestls.so in the
 * lookup order, i.e. libc's. Binding happens once, in the constructor and
 * before any hook can run (pthread_once makes a racing first call safe).
 * A symbol that resolves back into this library would make the hook call
 * itself forever; we refuse to start instead. */
#include "common/real.h"
#include "common/sys.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct nl_real nl_real;

static pthread_once_t bind_once = PTHREAD_ONCE_INIT;

static int in_this_library(void *sym)
{
    Dl_info mine, theirs;
    if (!dladdr((void *)nl_real_bind, &mine) || !dladdr(sym, &theirs))
        return 0;
    return mine.dli_fbase == theirs.dli_fbase;
}

static void *bind_symbol(const char *name, int required)
{
    void *sym = dlsym(RTLD_NEXT, name);
    if (sym == NULL) {
        if (!required)
            return NULL;
        char msg[256];
        int n = snprintf(msg, sizeof(msg), "nestls[%ld] error: cannot bind libc symbol %s\n",
                         (long)getpid(), name);
        ssize_t w = nl_sys_write(STDERR_FILENO, msg, (size_t)n);
        (void)w;
        nl_sys_exit(78);
    }
    if (in_this_library(sym)) {
        char msg[256];
        int n = snprintf(msg, sizeof(msg),
                         "nestls[%ld] error: %s binds to nestls itself (preloaded twice?)\n",
                         (long)getpid(), name);
        ssize_t w = nl_sys_write(STDERR_FILENO, msg, (size_t)n);
        (void)w;
        nl_sys_exit(78);
    }
    return sym;
}

#define BIND(field) nl_real.field = (__typeof__(nl_real.field))bind_symbol(#field, 1)
#define BIND_OPTIONAL(field) nl_real.field = (__typeof__(nl_real.field))bind_symbol(#field, 0)

static void bind_all(void)
{
    BIND(connect);
    BIND(accept);
    BIND(accept4);
    BIND(listen);
    BIND(close);
    BIND(fcntl);
    BIND_OPTIONAL(fcntl64);
    BIND(dup2);
    BIND(dup3);
    BIND_OPTIONAL(close_range); /* glibc >= 2.34 */
    BIND_OPTIONAL(closefrom);   /* glibc >= 2.34 */
    BIND(shutdown);
    BIND(write);
    BIND(read);
    BIND(recv);
    BIND(__read_chk);
    BIND(__recv_chk);
    BIND(poll);
    BIND(__poll_chk);
    BIND(ppoll);
    BIND(epoll_wait);
    BIND(epoll_pwait);
    BIND(send);
    BIND(sendto);
    BIND(sendmsg);
    BIND(sendmmsg);
    BIND(getpeername);
    BIND(getsockname);
    BIND(getsockopt);
    BIND(setsockopt);
    BIND(getaddrinfo);
    BIND(freeaddrinfo);
    BIND(gethostbyname);
    BIND(gethostbyname2);
    BIND(gethostbyname_r);
    BIND(epoll_ctl);
    BIND(_exit);
    BIND(_Exit);
    BIND(execve);
    BIND_OPTIONAL(execveat);
    BIND(fexecve);
    BIND(execv);
    BIND(execvp);
    BIND(execvpe);
    BIND(posix_spawn);
    BIND(posix_spawnp);
    BIND(system);
    BIND(popen);
}

void nl_real_bind(void)
{
    pthread_once(&bind_once, bind_all);
}
