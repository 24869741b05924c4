/* The program's epoll registrations, as nestls records them: for each
 * descriptor, every (epoll descriptor, events, data) it was added with.
 * A plain table with its own lock (a leaf: see hooks/forking.c); epoll.c
 * feeds it from the epoll_ctl hook and moves the registrations at
 * connect. Unit-tested in tests/unit/test_epoll_registry.c. */
#include <stdlib.h>
#include <string.h>

#include "common/locking.h"
#include "common/util.h"
#include "hooks/epoll_registry.h"

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

void nl_epoll_record(int epfd, int op, int fd, const struct epoll_event *ev)
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

struct nl_epoll_reg *nl_epoll_take(int fd)
{
    nl_mutex_lock(&regs_lock);
    struct nl_epoll_reg **head = slot(fd, false);
    struct nl_epoll_reg *list = head ? *head : NULL;
    if (head)
        *head = NULL;
    nl_mutex_unlock(&regs_lock);
    return list;
}

void nl_epoll_free_list(struct nl_epoll_reg *list)
{
    while (list) {
        struct nl_epoll_reg *next = list->next;
        free(list);
        list = next;
    }
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
    nl_epoll_free_list(gone);
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
    nl_mutex_unlock(&regs_lock);
    /* Epoll descriptors in the range: each forget_epfd drops one from the
     * list, however many there are. */
    for (;;) {
        int epfd = -1;
        nl_mutex_lock(&regs_lock);
        for (size_t i = 0; i < n_epfds && epfd < 0; i++)
            if ((unsigned)epfds[i] >= first && (unsigned)epfds[i] <= last)
                epfd = epfds[i];
        nl_mutex_unlock(&regs_lock);
        if (epfd < 0)
            break;
        forget_epfd(epfd);
    }
    nl_epoll_free_list(gone);
}

bool nl_epoll_watches_input(int epfd, int fd)
{
    bool watches = false;
    nl_mutex_lock(&regs_lock);
    struct nl_epoll_reg **head = slot(fd, false);
    for (struct nl_epoll_reg *r = head ? *head : NULL; r && !watches; r = r->next)
        watches = r->epfd == epfd && (r->ev.events & EPOLLIN);
    nl_mutex_unlock(&regs_lock);
    return watches;
}

bool nl_epoll_knows(int fd)
{
    if (fd < 0)
        return false;
    nl_mutex_lock(&regs_lock);
    bool known = (size_t)fd < regs_cap && regs_by_fd[fd] != NULL;
    for (size_t i = 0; i < n_epfds && !known; i++)
        known = epfds[i] == fd;
    nl_mutex_unlock(&regs_lock);
    return known;
}

void nl_epoll_forget_fd(int fd)
{
    forget_epfd(fd);
    nl_epoll_free_list(nl_epoll_take(fd));
}
