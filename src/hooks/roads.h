/* Entry points that lead to the wire, shared by the hooks that reach them
 * by another road: sendto/sendmsg with MSG_FASTOPEN connect (send_addressed.c),
 * syscall() reaches connect, accept and the sends (syscall.c). */
#ifndef NESTLS_ROADS_H
#define NESTLS_ROADS_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

/* connect.c: connect() as the hook does it. *plaintext set: the policy
 * passes the connection through (or it is not TCP), nothing was done, and
 * the caller makes its own kernel call (a connect, or a TFO send that
 * keeps its data in the SYN). Otherwise connect()'s result and errno. */
int nl_connect_road(int fd, const struct sockaddr *addr, socklen_t len, bool *plaintext);

/* write.c: send() as the hook does it (the direct path included). */
ssize_t nl_send_road(int fd, const void *buf, size_t len, int flags);
/* write.c: the kernel's answer to a send after shutdown(SHUT_WR). */
ssize_t nl_broken_pipe(int flags);

/* accept.c: accept4() as the hook does it. */
int nl_accept_road(int listener, struct sockaddr *addr, socklen_t *addrlen, int flags);
/* listen: a listener a server rule may wrap or deny is taken over
 * (hooks/listen.c). */
int nl_listen_road(int fd, int backlog);

/* send_addressed.c */
ssize_t nl_sendto_road(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                       socklen_t tolen);
ssize_t nl_sendmsg_road(int fd, const struct msghdr *msg, int flags);
int nl_sendmmsg_road(int fd, struct mmsghdr *vec, unsigned vlen, int flags);

#endif
