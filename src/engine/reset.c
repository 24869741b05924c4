/* How a socketpair end is made to say ECONNRESET.
 *
 * Linux sets ECONNRESET on an AF_UNIX stream socket when its peer is
 * closed while the peer still has unread data queued. The engine cannot
 * queue data on its own end, but the program's end can: a byte sent from a
 * copy of the program's end lands unread in the engine's end, and closing
 * the engine's end then resets the program's. The copy is the one kept
 * during the handshake, or a fresh dup of the program's descriptor number
 * checked to still be the same file. If neither exists the program has
 * closed its end and nobody is left to tell. */
#include "engine/reset.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/real.h"
#include "common/sys.h"

static int copy_of_program_end(int prog_fd, const struct nl_sock *sock)
{
    if (prog_fd < 0 || sock == NULL)
        return -1;
    int fd = nl_sys_dupfd(prog_fd, 3, 1);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_ino != sock->ino || st.st_dev != sock->dev) {
        nl_real.close(fd);
        return -1;
    }
    return fd;
}

void nl_reset_poke(int prog_hold, int prog_fd, struct nl_sock *sock)
{
    int prog = prog_hold >= 0 ? prog_hold : copy_of_program_end(prog_fd, sock);
    if (prog >= 0) {
        ssize_t n = nl_real.send(prog, "!", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)n; /* EAGAIN: the engine's end is already full of unread data */
    }
    if (prog >= 0 && prog != prog_hold)
        nl_real.close(prog);
}
