/* The descriptor table (src/common/fdtable.c) on its own, with real
 * descriptors: which numbers are the program's wrapped sockets (and the
 * TCP facts they carry), which are nestls's own, and how both follow
 * dup, close, reuse of a number and descriptor ranges. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/fdtable.h"
#include "unit.h"

static int make_pair(int *other)
{
    int sv[2];
    *other = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return -1;
    *other = sv[1];
    return sv[0];
}

/* Wrap fd with a fresh entry; the table holds its own reference. */
static struct nl_sock *wrap(int fd)
{
    struct nl_sock *s = nl_sock_new(AF_INET);
    if (s == NULL || nl_wrapped_add(fd, s) != 0)
        return NULL;
    nl_sock_put(s); /* ours; the table keeps one */
    return s;
}

static void wrapped_descriptor_is_found_and_forgotten(void)
{
    int other, fd = make_pair(&other);
    CHECK(fd >= 0, "socketpair");
    struct nl_sock *s = wrap(fd);
    CHECK(s != NULL, "wrap");
    CHECK(nl_wrapped_any() && nl_wrapped_maybe(fd), "the hint says fd may be wrapped");
    struct nl_sock *got = nl_wrapped_get(fd);
    CHECK(got == s, "get returns the entry");
    nl_sock_put(got);
    nl_wrapped_remove(fd);
    CHECK(nl_wrapped_get(fd) == NULL, "removed");
    CHECK(!nl_wrapped_any(), "nothing wrapped any more");
    close(fd);
    close(other);
}

static void a_reused_number_is_not_mistaken_for_the_wrapped_socket(void)
{
    int other, fd = make_pair(&other);
    CHECK(wrap(fd) != NULL, "wrap");
    /* Closed behind the table's back (a raw syscall), then reused. */
    close(fd);
    int other2, again = make_pair(&other2);
    if (again != fd) {
        CHECK(dup2(again, fd) == fd, "dup2 onto the old number");
        close(again);
    }
    CHECK(nl_wrapped_get(fd) == NULL, "another file on the same number is not the wrapped one");
    CHECK(!nl_wrapped_any(), "and the stale entry is gone");
    close(fd);
    close(other);
    close(other2);
}

static void dup_carries_the_entry_and_each_copy_is_forgotten_alone(void)
{
    int other, fd = make_pair(&other);
    struct nl_sock *s = wrap(fd);
    CHECK(s != NULL, "wrap");
    int copy = dup(fd);
    nl_wrapped_dup(fd, copy);
    struct nl_sock *a = nl_wrapped_get(fd), *b = nl_wrapped_get(copy);
    CHECK(a == s && b == s, "both numbers name the same socket");
    nl_sock_put(a);
    nl_sock_put(b);
    nl_wrapped_remove(fd);
    b = nl_wrapped_get(copy);
    CHECK(b == s, "the copy is still wrapped after the original is forgotten");
    nl_sock_put(b);
    nl_wrapped_remove(copy);
    CHECK(!nl_wrapped_any(), "nothing left");
    close(fd);
    close(copy);
    close(other);
}

static void dup_of_an_unwrapped_descriptor_clears_the_target(void)
{
    int other, fd = make_pair(&other);
    CHECK(wrap(fd) != NULL, "wrap");
    int plain = open("/dev/null", O_RDONLY);
    CHECK(dup2(plain, fd) == fd, "dup2 a plain file over the wrapped number");
    nl_wrapped_dup(plain, fd);
    CHECK(nl_wrapped_get(fd) == NULL, "the number now holds an unwrapped file");
    close(plain);
    close(fd);
    close(other);
}

static long elapsed_ms(struct timespec a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
}

static void a_range_walks_the_table_not_the_number_space(void)
{
    int o1, o2, low = make_pair(&o1), high = make_pair(&o2);
    CHECK(wrap(low) != NULL && wrap(high) != NULL, "wrap");
    int lo = low < high ? low : high, hi = low < high ? high : low;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    nl_wrapped_remove_range((unsigned)hi, ~0U); /* closefrom(hi) */
    long ms = elapsed_ms(t);
    struct nl_sock *s = nl_wrapped_get(lo);
    CHECK(s != NULL, "below the range: still wrapped");
    nl_sock_put(s);
    CHECK(nl_wrapped_get(hi) == NULL, "in the range: forgotten");
    /* 2^32 numbers one by one take seconds; the table, microseconds. */
    CHECK(ms < 1000, "the range up to ~0U took %ld ms", ms);
    nl_wrapped_remove_range(0, ~0U);
    CHECK(!nl_wrapped_any(), "everything forgotten");
    close(low);
    close(high);
    close(o1);
    close(o2);
}

static void guarded_descriptors_sit_high_and_are_found_in_ranges(void)
{
    int other, fd = make_pair(&other);
    int high = nl_guard_dup_high(fd);
    CHECK(high > fd, "moved up (%d from %d)", high, fd);
    CHECK(nl_guard_has(high) && !nl_guard_has(fd), "only the copy is guarded");
    CHECK((fcntl(high, F_GETFD) & FD_CLOEXEC) != 0, "close-on-exec");
    CHECK(nl_guard_next(0, ~0U) == high, "the lowest guarded descriptor is found");
    CHECK(nl_guard_next((unsigned)high + 1, ~0U) == -1, "none above it");
    CHECK(nl_guard_next(0, (unsigned)high - 1) == -1, "none below it");
    nl_guard_remove(high);
    CHECK(!nl_guard_has(high), "removed");
    close(high);
    close(fd);
    close(other);
}

int main(void)
{
    RUN(wrapped_descriptor_is_found_and_forgotten);
    RUN(a_reused_number_is_not_mistaken_for_the_wrapped_socket);
    RUN(dup_carries_the_entry_and_each_copy_is_forgotten_alone);
    RUN(dup_of_an_unwrapped_descriptor_clears_the_target);
    RUN(a_range_walks_the_table_not_the_number_space);
    RUN(guarded_descriptors_sit_high_and_are_found_in_ranges);
    return unit_summary();
}
