/* The epoll registry (src/hooks/epoll_registry.c) on its own: what nestls
 * remembers of the program's epoll_ctl calls, so that connect can move a
 * socket's registrations to the new file, and what it forgets when a
 * descriptor, an epoll descriptor or a range of them is closed. No real
 * epoll is involved: the registry records what the kernel accepted. */
#include <stdint.h>
#include <stdlib.h>

#include "hooks/epoll_registry.h"
#include "unit.h"

static struct epoll_event ev(uint32_t events, uint64_t data)
{
    return (struct epoll_event){.events = events, .data.u64 = data};
}

/* How many registrations fd has, put back afterwards. */
static int count(int fd)
{
    struct nl_epoll_reg *list = nl_epoll_take(fd);
    int n = 0;
    for (struct nl_epoll_reg *r = list; r; r = r->next) {
        struct epoll_event e = r->ev;
        nl_epoll_record(r->epfd, EPOLL_CTL_ADD, fd, &e);
        n++;
    }
    nl_epoll_free_list(list);
    return n;
}

static void add_mod_del_are_remembered_per_epoll_descriptor(void)
{
    struct epoll_event a = ev(EPOLLIN, 1), b = ev(EPOLLOUT, 2), m = ev(EPOLLIN | EPOLLET, 3);
    nl_epoll_record(7, EPOLL_CTL_ADD, 5, &a);
    nl_epoll_record(8, EPOLL_CTL_ADD, 5, &b);
    nl_epoll_record(7, EPOLL_CTL_MOD, 5, &m);
    struct nl_epoll_reg *list = nl_epoll_take(5);
    int n = 0;
    bool seen7 = false, seen8 = false;
    for (struct nl_epoll_reg *r = list; r; r = r->next, n++) {
        if (r->epfd == 7)
            seen7 = r->ev.events == (EPOLLIN | EPOLLET) && r->ev.data.u64 == 3;
        if (r->epfd == 8)
            seen8 = r->ev.events == EPOLLOUT && r->ev.data.u64 == 2;
    }
    nl_epoll_free_list(list);
    CHECK(n == 2 && seen7 && seen8, "two registrations, the MOD applied (n=%d)", n);
    CHECK(nl_epoll_take(5) == NULL, "take leaves nothing behind");
    nl_epoll_record(7, EPOLL_CTL_ADD, 5, &a);
    nl_epoll_record(7, EPOLL_CTL_DEL, 5, NULL);
    CHECK(count(5) == 0, "DEL forgets");
}

static void closing_a_descriptor_forgets_its_registrations(void)
{
    struct epoll_event a = ev(EPOLLIN, 1);
    nl_epoll_record(7, EPOLL_CTL_ADD, 6, &a);
    nl_epoll_forget_fd(6);
    CHECK(count(6) == 0, "closed: forgotten");
}

static void closing_an_epoll_descriptor_forgets_what_was_made_in_it(void)
{
    struct epoll_event a = ev(EPOLLIN, 1);
    nl_epoll_record(20, EPOLL_CTL_ADD, 9, &a);
    nl_epoll_record(21, EPOLL_CTL_ADD, 9, &a);
    nl_epoll_record(20, EPOLL_CTL_ADD, 10, &a);
    nl_epoll_forget_fd(20); /* the epoll descriptor 20 is closed */
    struct nl_epoll_reg *list = nl_epoll_take(9);
    CHECK(list != NULL && list->epfd == 21 && list->next == NULL,
          "only the registration in epoll 21 is left for fd 9");
    nl_epoll_free_list(list);
    CHECK(count(10) == 0, "fd 10 was only in epoll 20");
}

static void ranges_walk_the_table_and_take_epoll_descriptors_with_them(void)
{
    struct epoll_event a = ev(EPOLLIN, 1);
    nl_epoll_record(30, EPOLL_CTL_ADD, 3, &a);
    nl_epoll_record(30, EPOLL_CTL_ADD, 40, &a);
    nl_epoll_record(31, EPOLL_CTL_ADD, 4000, &a); /* the table grows */
    nl_epoll_forget_range(30, ~0U);               /* closefrom(30) */
    CHECK(count(3) == 0, "fd 3's registration was in epoll 30, which is closed");
    CHECK(count(40) == 0 && count(4000) == 0, "fds in the range are forgotten");
}

static void registrations_on_other_numbers_are_untouched(void)
{
    struct epoll_event a = ev(EPOLLIN, 1);
    nl_epoll_record(50, EPOLL_CTL_ADD, 11, &a);
    nl_epoll_record(50, EPOLL_CTL_ADD, 12, &a);
    nl_epoll_forget_fd(11);
    nl_epoll_forget_range(13, 49);
    CHECK(count(12) == 1, "fd 12 keeps its registration");
    nl_epoll_forget_fd(50);
    CHECK(count(12) == 0, "until its epoll descriptor closes");
}

static void a_range_forgets_any_number_of_epoll_descriptors(void)
{
    struct epoll_event a = ev(EPOLLIN, 1);
    for (int epfd = 100; epfd < 140; epfd++) /* 40 epoll descriptors */
        nl_epoll_record(epfd, EPOLL_CTL_ADD, 60, &a);
    nl_epoll_forget_range(100, 139);
    CHECK(count(60) == 0, "all 40 went with the range (%d left)", count(60));
}

int main(void)
{
    RUN(add_mod_del_are_remembered_per_epoll_descriptor);
    RUN(closing_a_descriptor_forgets_its_registrations);
    RUN(closing_an_epoll_descriptor_forgets_what_was_made_in_it);
    RUN(ranges_walk_the_table_and_take_epoll_descriptors_with_them);
    RUN(registrations_on_other_numbers_are_untouched);
    RUN(a_range_forgets_any_number_of_epoll_descriptors);
    return unit_summary();
}
