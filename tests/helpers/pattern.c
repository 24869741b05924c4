/* pattern NBYTES: write NBYTES of the test stream (pattern.h) to stdout.
 * NBYTES may end in K, M or G (powers of 1024). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pattern.h"

int main(int argc, char **argv)
{
    long long total = argc == 2 ? pattern_parse_size(argv[1]) : -1;
    if (total < 0) {
        fprintf(stderr, "usage: pattern NBYTES[K|M|G]\n");
        return 1;
    }
    static unsigned char buf[1 << 16];
    long long done = 0;
    while (done < total) {
        size_t len = total - done < (long long)sizeof(buf) ? (size_t)(total - done) : sizeof(buf);
        pattern_fill(buf, len, (uint64_t)done);
        for (size_t off = 0; off < len;) {
            ssize_t n = write(STDOUT_FILENO, buf + off, len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                fprintf(stderr, "pattern: write: %s\n", strerror(errno));
                return 1;
            }
            off += (size_t)n;
        }
        done += (long long)len;
    }
    return 0;
}
