/* swar: byte tests on eight bytes at once, for scanners that skip runs of
 * ordinary bytes (jscan's strings, http_lex's field values). Each test sets
 * the high bit of every byte it flags; the LOWEST flagged byte is exact (a
 * borrow can only make false hits above a real one), so a caller takes
 * swar_first() of the tests or-ed together and decides that byte itself. */
#ifndef CHATD_SWAR_H
#define CHATD_SWAR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SWAR_ONES  0x0101010101010101ULL
#define SWAR_HIGHS 0x8080808080808080ULL

/* The eight bytes at p (any alignment). */
static inline uint64_t swar_load(const void *p)
{
    uint64_t x;
    memcpy(&x, p, sizeof x);
    return x;
}

/* Flags the bytes below n (n at most 0x80). */
static inline uint64_t swar_below(uint64_t x, unsigned char n)
{
    return (x - SWAR_ONES * n) & ~x & SWAR_HIGHS;
}

/* Flags the bytes equal to c. */
static inline uint64_t swar_equal(uint64_t x, unsigned char c)
{
    uint64_t y = x ^ (SWAR_ONES * c);
    return (y - SWAR_ONES) & ~y & SWAR_HIGHS;
}

/* Flags the bytes 0x80 and above. */
static inline uint64_t swar_high(uint64_t x)
{
    return x & SWAR_HIGHS;
}

/* The index (0..7) of the lowest flagged byte; flags must not be 0. */
static inline size_t swar_first(uint64_t flags)
{
    return (size_t)(__builtin_ctzll(flags) >> 3);
}

#endif
