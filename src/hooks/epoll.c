/* epoll_ctl(): remembering registrations so connect() can move them.
 *
 * epoll watches open files, not descriptor numbers. When connect() swaps
 * the file behind a descriptor the program already registered, the old
 * registration would keep watching the TCP socket the engine now owns.
 * We record (epoll fd, events, data) per descriptor and re-create them on
 * the new file.
 *
 * errno contract: exactly the kernel's (we only observe successes). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/real.h"
#include "common/util.h"
#include "common/locking.h"
#include "hooks/export.h"
#include "hooks/hooks.h"

struct nl_epoll_reg {
    int epfd;
    struct epoll_event ev;
    struct nl_epoll_reg *next;
};

struct nl_epoll_saved {
    struct nl_epoll_reg *regs;
};

static pthread_mutex_t regs_lock = PTHREAD_MUTEX_INITIALIZER;

void nl_epoll_fork_lock(void) { pthread_mutex_lock(&regs_lock); }
void nl_epoll_fork_unlock(void) { pthread_mutex_unlock(&regs_lock); }
void nl_epoll_after_fork(void) { pthread_mutex_init(&regs_lock, NULL); }
static struct nl_epoll_reg **regs_by_fd;
static size_t regs_cap;
/* Every epoll descriptor a registration names (a program has a few):
 * closing one must drop what was recorded for it, or a later epoll
 * descriptor on the same number would get registrations it never made. */
static int *epfds;
static size_t n_epfds, epfds_cap;

static void note_epfd(int epfd)
{
    for (size_t i = 0; i < n_epfds; i++)
        if (epfds[i] == epfd)
            return;
    if (n_epfds == epfds_cap) {
        size_t n = epfds_cap ? epfds_cap * 2 : 8;
        int *p = realloc(epfds, n * sizeof(*p));
        if (p == NULL)
            return;
        epfds = p;
        epfds_cap = n;
    }
    epfds[n_epfds++] = epfd;
}

static struct nl_epoll_reg **slot(int fd, bool grow)
{
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= regs_cap) {
        if (!grow)
            return NULL;
        size_t n = regs_cap ? regs_cap : 1024;
        while (n <= (size_t)fd)
            n *= 2;
        struct nl_epoll_reg **p = realloc(regs_by_fd, n * sizeof(*p));
        if (p == NULL)
            return NULL;
        memset(p + regs_cap, 0, (n - regs_cap) * sizeof(*p));
        regs_by_fd = p;
        regs_cap = n;
    }
    return &regs_by_fd[fd];
}

static void record(int epfd, int op, int fd, const struct epoll_event *ev)
{
    nl_mutex_lock(&regs_lock);
    struct nl_epoll_reg **head = slot(fd, op == EPOLL_CTL_ADD);
    if (head != NULL) {
        struct nl_epoll_reg **p = head;
        while (*p && (*p)->epfd != epfd)
            p = &(*p)->next;
        if (op == EPOLL_CTL_DEL) {
            if (*p) {
                struct nl_epoll_reg *gone = *p;
                *p = gone->next;
                free(gone);
            }
        } else if (ev != NULL) {
            if (*p == NULL && (*p = calloc(1, sizeof(**p))) != NULL) {
                (*p)->epfd = epfd;
                note_epfd(epfd);
            }
            if (*p)
                (*p)->ev = *ev;
        }
    }
    nl_mutex_unlock(&regs_lock);
}

struct nl_epoll_saved *nl_epoll_detach(int fd)
{
    nl_mutex_lock(&regs_lock);
    struct nl_epoll_reg **head = slot(fd, false);
    struct nl_epoll_reg *list = head ? *head : NULL;
    if (head)
        *head = NULL;
    nl_mutex_unlock(&regs_lock);
    if (list == NULL)
        return NULL;
    struct nl_epoll_saved *saved = malloc(sizeof(*saved));
    if (saved == NULL) {
        while (list) {
            struct nl_epoll_reg *next = list->next;
            free(list);
            list = next;
        }
        return NULL;
    }
    saved->regs = list;
    for (struct nl_epoll_reg *r = list; r; r = r->next)
        nl_real.epoll_ctl(r->epfd, EPOLL_CTL_DEL, fd, NULL);
    return saved;
}

void nl_epoll_reattach(int fd, struct nl_epoll_saved *saved)
{
    if (saved == NULL)
        return;
    for (struct nl_epoll_reg *r = saved->regs, *next; r; r = next) {
        next = r->next;
        if (nl_real.epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &r->ev) == 0)
            record(r->epfd, EPOLL_CTL_ADD, fd, &r->ev);
        free(r);
    }
    free(saved);
}

/* fd is being closed: if it is an epoll descriptor, forget every
 * registration made in it. */
static void forget_epfd(int fd)
{
    struct nl_epoll_reg *gone = NULL;
    nl_mutex_lock(&regs_lock);
    size_t i = 0;
    while (i < n_epfds && epfds[i] != fd)
        i++;
    if (i < n_epfds) {
        epfds[i] = epfds[--n_epfds];
        for (size_t f = 0; f < regs_cap; f++)
            for (struct nl_epoll_reg **p = &regs_by_fd[f]; *p;) {
                if ((*p)->epfd != fd) {
                    p = &(*p)->next;
                    continue;
                }
                struct nl_epoll_reg *r = *p;
                *p = r->next;
                r->next = gone;
                gone = r;
            }
    }
    nl_mutex_unlock(&regs_lock);
    while (gone) {
        struct nl_epoll_reg *next = gone->next;
        free(gone);
        gone = next;
    }
}

void nl_epoll_forget_range(unsigned first, unsigned last)
{
    struct nl_epoll_reg *gone = NULL;
    nl_mutex_lock(&regs_lock);
    size_t end = (size_t)last + 1 < regs_cap ? (size_t)last + 1 : regs_cap;
    for (size_t fd = first; fd < end; fd++) {
        while (regs_by_fd[fd] != NULL) {
            struct nl_epoll_reg *r = regs_by_fd[fd];
            regs_by_fd[fd] = r->next;
            r->next = gone;
            gone = r;
        }
    }
    int closing[16];
    size_t n_closing = 0;
    for (size_t i = 0; i < n_epfds && n_closing < NL_ARRAY_LEN(closing); i++)
        if ((unsigned)epfds[i] >= first && (unsigned)epfds[i] <= last)
            closing[n_closing++] = epfds[i];
    nl_mutex_unlock(&regs_lock);
    for (size_t i = 0; i < n_closing; i++)
        forget_epfd(closing[i]);
    while (gone) {
        struct nl_epoll_reg *next = gone->next;
        free(gone);
        gone = next;
    }
}

void nl_epoll_forget_fd(int fd)
{
    forget_epfd(fd);
    nl_mutex_lock(&regs_lock);
    struct nl_epoll_reg **head = slot(fd, false);
    struct nl_epoll_reg *list = head ? *head : NULL;
    if (head)
        *head = NULL;
    nl_mutex_unlock(&regs_lock);
    while (list) {
        struct nl_epoll_reg *next = list->next;
        free(list);
        list = next;
    }
}

NL_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (!nl_started())
        return nl_real.epoll_ctl(epfd, op, fd, ev);
    int r = nl_real.epoll_ctl(epfd, op, fd, ev);
    if (r == 0 && !nl_in_vfork_child())
        record(epfd, op, fd, ev);
    return r;
}
