/* The bulk payload: a pseudo-random byte stream with a period of
 * NLB_PATTERN_PERIOD bytes, so the sink can check every byte it receives
 * at the cost of a memcmp. The period is prime, so no TLS record size,
 * socket buffer or read size is a multiple of it: a lost, repeated or
 * reordered record shifts the stream and fails the comparison (an
 * all-'x' payload would hide exactly those bugs). */
#include <string.h>

#include "nlb.h"

/* One period plus one chunk, so any offset has NLB_CHUNK bytes after it
 * without wrapping. */
static unsigned char pattern[NLB_PATTERN_PERIOD + NLB_CHUNK];
static bool ready;

static void init(void)
{
    uint64_t x = 0x9e3779b97f4a7c15u; /* xorshift64: fixed seed, same on both ends */
    for (size_t i = 0; i < NLB_PATTERN_PERIOD; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pattern[i] = (unsigned char)(x >> 32);
    }
    for (size_t i = NLB_PATTERN_PERIOD; i < sizeof(pattern); i++)
        pattern[i] = pattern[i - NLB_PATTERN_PERIOD];
    ready = true;
}

const unsigned char *nlb_pattern_at(uint64_t offset)
{
    if (!ready)
        init();
    return pattern + offset % NLB_PATTERN_PERIOD;
}

size_t nlb_pattern_match(uint64_t offset, const unsigned char *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t n = len - done < NLB_CHUNK ? len - done : NLB_CHUNK;
        const unsigned char *want = nlb_pattern_at(offset + done);
        if (memcmp(data + done, want, n) != 0) {
            size_t i = 0;
            while (data[done + i] == want[i])
                i++;
            return done + i;
        }
        done += n;
    }
    return len;
}
