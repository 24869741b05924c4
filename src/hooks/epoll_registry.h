/* The program's epoll registrations, recorded (epoll_registry.c). */
#ifndef NESTLS_EPOLL_REGISTRY_H
#define NESTLS_EPOLL_REGISTRY_H

#include <stdbool.h>
#include <sys/epoll.h>

struct nl_epoll_reg {
    int epfd;
    struct epoll_event ev;
    struct nl_epoll_reg *next;
};

/* What the kernel accepted: EPOLL_CTL_ADD/MOD record, DEL forgets. */
void nl_epoll_record(int epfd, int op, int fd, const struct epoll_event *ev);
/* Remove and return fd's registrations (NULL: none); free the list with
 * nl_epoll_free_list. */
struct nl_epoll_reg *nl_epoll_take(int fd);
void nl_epoll_free_list(struct nl_epoll_reg *list);
/* fd was closed: forget its registrations, and, if it was an epoll
 * descriptor, every registration made in it. */
void nl_epoll_forget_fd(int fd);
/* The same for every descriptor in [first, last], walking the table. */
void nl_epoll_forget_range(unsigned first, unsigned last);

/* Whether fd is registered in epfd for input (EPOLLIN). */
bool nl_epoll_watches_input(int epfd, int fd);

/* Whether fd has registrations, or is an epoll descriptor some were made
 * in: whether closing it has anything here to forget. */
bool nl_epoll_knows(int fd);

/* fork (hooks/forking.c). */
void nl_epoll_fork_lock(void);
void nl_epoll_fork_unlock(void);
void nl_epoll_after_fork(void);

#endif
