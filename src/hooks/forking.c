/* fork: every lock nestls has, in one place and one order.
 *
 * A fork while another thread holds a lock leaves the child a lock that
 * nobody will ever release: its next getaddrinfo, connect or epoll_ctl
 * would hang. So before fork every lock is taken, in this order; the
 * parent releases them; the child makes each one new (its only thread is
 * the one that forked, and every table is consistent, since no other
 * thread was inside one).
 *
 * The order, which all code keeps (never take a lock while holding one
 * below it):
 *   1. engine.lock  engine/engine.c    the engine and its connections
 *   2. table_lock   common/fdtable.c   wrapped and guarded descriptors
 *   3. regs_lock    hooks/epoll.c      the program's epoll registrations
 *   4. names_lock   hooks/names.c      names the program resolved
 *   5. cache_lock   engine/sessions.c  TLS sessions kept for resumption
 * 3, 4 and 5 are leaves: nothing is taken while one of them is held.
 *
 * vfork and CLONE_VM children run none of this (glibc runs no atfork
 * handler for them): they share the parent's memory and must not touch
 * it at all (nl_in_vfork_child). */
#include <pthread.h>

#include "common/fdtable.h"
#include "engine/engine.h"
#include "engine/sessions.h"
#include "hooks/hooks.h"

static void before_fork(void)
{
    nl_engine_fork_prepare();
    nl_fdtable_lock();
    nl_epoll_fork_lock();
    nl_names_fork_lock();
    nl_sessions_fork_lock();
}

static void in_parent(void)
{
    nl_sessions_fork_unlock();
    nl_names_fork_unlock();
    nl_epoll_fork_unlock();
    nl_fdtable_unlock();
    nl_engine_fork_parent();
}

static void in_child(void)
{
    nl_owner_is_me();
    nl_sessions_after_fork();
    nl_names_after_fork();
    nl_epoll_after_fork();
    nl_fdtable_after_fork();
    nl_engine_fork_child();
}

void nl_forking_install(void)
{
    pthread_atfork(before_fork, in_parent, in_child);
}
