/* Reload without restart: the engine thread watches the files the
 * policy's layers read and takes up valid changes (reload.c). All calls
 * from the engine thread with the engine lock held, but the fork and
 * relocation ones, which the process-life code makes under that lock. */
#ifndef NESTLS_RELOAD_H
#define NESTLS_RELOAD_H

#include <stdbool.h>
#include <stdint.h>

/* With the engine (epoll exists): watch, and check once at now. */
void nl_reload_start_locked(uint64_t now);
/* Whether an epoll event's data is the watch. */
bool nl_reload_is_marker(const void *ptr);
/* The watch saw a change: check once the changes settle. */
void nl_reload_event(uint64_t now);
/* When the next check is due (0: none), for epoll_wait's timeout. */
uint64_t nl_reload_due(void);
void nl_reload_run_due(uint64_t now);
/* A fork child drops the parent's watch; a relay's new epoll set gets it
 * again; a program's dup2 onto its number moves it (-1: not the watch). */
void nl_reload_fork_child(void);
void nl_reload_register_again(void);
int nl_reload_relocate_fd(int fd);

#endif
