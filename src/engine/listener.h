/* Wrapped listeners in the engine: accept from the real TCP listener, run
 * the server side of every layer, and hand each connection to the program
 * through the hand-over queue only once its layers are up (the queue and
 * its message: common/handover.h; the program's side: hooks/listen.c and
 * hooks/accept.c). */
#ifndef NESTLS_LISTENER_H
#define NESTLS_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/fdtable.h"

struct nl_listener;
struct nl_conn;

/* Serve a listener taken over at listen(): tcp_fd is a guarded copy of the
 * real TCP listener, queue_fd the guarded engine end of the hand-over
 * queue; both now belong to the engine, also when this fails (-1, errno).
 * sock describes the program's listening descriptor (a reference is
 * taken): sock->tcp_fd reads tcp_fd while the engine keeps it. */
int nl_engine_listen(struct nl_sock *sock, int tcp_fd, int queue_fd);

/* The program closed a descriptor of a listener this process serves: when
 * that was the last copy anywhere, stop listening now (so that the port
 * is free when close returns, as with TCP), not at the engine's next
 * wake-up. */
void nl_engine_listener_closed(struct nl_sock *sock);

/* Descriptors went in bulk (close_range, closefrom, dup2 over one): stop
 * every listener of this process whose last program copy went with them. */
void nl_engine_listeners_check(void);

/* The program shut its listening descriptor down for reading: stop
 * listening, whoever else holds a copy. */
void nl_engine_listener_shut(struct nl_sock *sock);

/* accept() in the process whose engine serves a connection it received
 * as descriptor fd: the engine's own facts for it (a new reference), found
 * by the identity of the program's end, or NULL. The engine learns fd, so
 * that a failure can reset the program's end (engine/reset.c); a
 * connection another process accepted ends in EOF instead. */
struct nl_sock *nl_engine_handed_sock(dev_t dev, ino_t ino, int fd);

/* For the engine (engine lock held): */
struct nl_conn_end;
void nl_listener_event(struct nl_conn_end *e, uint32_t events, uint64_t now_ms);
/* A connection of a listener ran: hand it over if its layers are up, or
 * forget it if it ended. */
void nl_listener_settle(struct nl_conn *c);
/* Free the listeners closed during the last batch of events. */
void nl_listeners_reap(void);
/* One line for a server connection the policy did not wrap: denied (warn)
 * or passed through (debug); rule NULL means the default action. local
 * is the address to name, peer may be NULL. Also the late road's
 * (hooks/accept.c). */
struct nl_rule;
struct sockaddr;
void nl_log_server_unwrapped(const struct nl_rule *rule, bool denied, const char *local,
                             const struct sockaddr *peer);
/* Earliest time a paused listener tries accept again, or 0. */
uint64_t nl_listeners_due(void);
void nl_listeners_run_due(uint64_t now_ms);
int nl_listeners_relocate_fd(int fd); /* 0 moved, -1 not a listener's */
void nl_listeners_close_all(void); /* process exit */
/* fork (engine lock held): the child may accept on every listener. */
void nl_listeners_mark_shared(void);
/* Whether any listener was shared by fork (exec hands those to a relay). */
bool nl_listeners_shared(void);
/* Exit: true when a listener's queue has no hang-up, i.e. another process
 * still holds the program's end (after this one closed its copies). */
bool nl_listeners_held_elsewhere(void);
/* A relay's new epoll set: register every listener again. */
void nl_listeners_register_again(void);
void nl_listeners_fork_child(void);
void nl_listeners_forget_for_relay(void);
/* This process handed its listeners to a relay: forget them here, out of
 * the epoll set first (the relay's copies keep the files open). */
void nl_listeners_forget_handed_off(void);

#endif
