/* epoll_ctl(): remembering registrations so connect() can move them.
 *
 * epoll watches open files, not descriptor numbers. When connect() swaps
 * the file behind a descriptor the program already registered, the old
 * registration would keep watching the TCP socket the engine now owns.
 * We record (epoll fd, events, data) per descriptor (epoll_registry.c)
 * and re-create them on the new file.
 *
 * errno contract: exactly the kernel's (we only observe successes). */
#include <stdlib.h>

#include "common/real.h"
#include "hooks/epoll_registry.h"
#include "hooks/export.h"
#include "hooks/hooks.h"

struct nl_epoll_saved {
    struct nl_epoll_reg *regs;
};

struct nl_epoll_saved *nl_epoll_detach(int fd)
{
    struct nl_epoll_reg *list = nl_epoll_take(fd);
    if (list == NULL)
        return NULL;
    struct nl_epoll_saved *saved = malloc(sizeof(*saved));
    if (saved == NULL) {
        nl_epoll_free_list(list);
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
            nl_epoll_record(r->epfd, EPOLL_CTL_ADD, fd, &r->ev);
        free(r);
    }
    free(saved);
}

NL_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (!nl_started())
        return nl_real.epoll_ctl(epfd, op, fd, ev);
    int r = nl_real.epoll_ctl(epfd, op, fd, ev);
    /* Also in a vfork child: its epoll descriptor is the parent's epoll
     * file, so what it changed there is what the record must say. */
    if (r == 0)
        nl_epoll_record(epfd, op, fd, ev);
    return r;
}
