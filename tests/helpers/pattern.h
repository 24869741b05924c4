/* The test data stream: deterministic, position-dependent bytes.
 *
 * Byte p of the stream is byte (p % 8) of splitmix64(p / 8), so a stream
 * that lost, repeated or reordered any stretch has a different SHA-256,
 * and the bytes look random to compression and never spell a marker.
 * Shared by pattern.c and sendpattern.c; tests compare `pattern N |
 * sha256sum` with what a server received. */
#ifndef NESTLS_TEST_PATTERN_H
#define NESTLS_TEST_PATTERN_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

static inline uint64_t pattern_word(uint64_t i)
{
    uint64_t z = i * 0x9E3779B97F4A7C15ULL + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Fill buf with the len bytes of the stream that start at offset. */
static inline void pattern_fill(unsigned char *buf, size_t len, uint64_t offset)
{
    uint64_t word = pattern_word(offset / 8);
    for (size_t k = 0; k < len; k++) {
        uint64_t p = offset + k;
        if (p % 8 == 0)
            word = pattern_word(p / 8);
        buf[k] = (unsigned char)(word >> (8 * (p % 8)));
    }
}

/* "1048576", "64K", "8M", "1G" (powers of 1024) -> bytes; -1 if invalid. */
static inline long long pattern_parse_size(const char *s)
{
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno != 0 || end == s || n < 0)
        return -1;
    switch (*end) {
    case '\0': return n;
    case 'K': n <<= 10; break;
    case 'M': n <<= 20; break;
    case 'G': n <<= 30; break;
    default: return -1;
    }
    return end[1] == '\0' ? n : -1;
}

#endif
