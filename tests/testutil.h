/* SPDX-License-Identifier: MIT */
/*
 * testutil.h - helpers shared by the Check suites: a seeded generator,
 * address-derived fill patterns, and a size scale for slow runners.
 */
#ifndef PA_TESTUTIL_H
#define PA_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* xorshift64*: reproducible across platforms, unlike rand(). */
static inline uint64_t test_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline size_t test_rand_below(uint64_t *state, size_t bound)
{
    return bound ? (size_t)(test_rand(state) % bound) : 0;
}

/* The byte expected at offset i of a block that starts at p. */
static inline unsigned char test_pattern_byte(const void *p, size_t i)
{
    uintptr_t a = (uintptr_t)p;
    return (unsigned char)((a >> 4) ^ (a >> 12) ^ (i * 31u) ^ 0x5a);
}

static inline void test_fill(void *p, size_t n)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = test_pattern_byte(p, i);
}

/* Returns 1 when every byte still holds its pattern. */
static inline int test_check_fill(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != test_pattern_byte(p, i))
            return 0;
    return 1;
}

/* Returns 1 when all n bytes at p equal v. */
static inline int test_all_bytes(const void *p, size_t n, unsigned char v)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != v)
            return 0;
    return 1;
}

/* Blocks larger than TEST_FULL_FILL_LIMIT are filled only in their first and
 * last TEST_EDGE_FILL bytes, to keep big loops fast; a suite may set both
 * before including this file. */
#ifndef TEST_FULL_FILL_LIMIT
#define TEST_FULL_FILL_LIMIT ((size_t)64 << 10)
#endif
#ifndef TEST_EDGE_FILL
#define TEST_EDGE_FILL ((size_t)4096)
#endif

static inline int is_aligned(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

static inline void block_fill(void *p, size_t n)
{
    unsigned char *c = p;
    if (n <= TEST_FULL_FILL_LIMIT) {
        test_fill(p, n);
    } else {
        test_fill(c, TEST_EDGE_FILL);
        test_fill(c + n - TEST_EDGE_FILL, TEST_EDGE_FILL);
    }
}

/* Checks exactly what block_fill() wrote. */
static inline int block_ok(const void *p, size_t n)
{
    const unsigned char *c = p;
    if (n <= TEST_FULL_FILL_LIMIT)
        return test_check_fill(p, n);
    return test_check_fill(c, TEST_EDGE_FILL) &&
           test_check_fill(c + n - TEST_EDGE_FILL, TEST_EDGE_FILL);
}

/* After a block filled by block_fill(old, old_n) moved to q (or stayed),
 * checks that the first keep bytes of q still hold what was written. */
static inline int moved_ok(const void *q, const void *old, size_t old_n, size_t keep)
{
    const unsigned char *c = q;
    const unsigned char *tail = (const unsigned char *)old + old_n - TEST_EDGE_FILL;
    for (size_t i = 0; i < keep; i++) {
        unsigned char want;
        if (old_n <= TEST_FULL_FILL_LIMIT || i < TEST_EDGE_FILL)
            want = test_pattern_byte(old, i);
        else if (i >= old_n - TEST_EDGE_FILL)
            want = test_pattern_byte(tail, i - (old_n - TEST_EDGE_FILL));
        else
            continue; /* never written */
        if (c[i] != want)
            return 0;
    }
    return 1;
}

/* Loop counts shrink under valgrind and sanitizers (PA_TEST_SCALE=small). */
static inline size_t test_scale(size_t full)
{
    const char *s = getenv("PA_TEST_SCALE");
    if (s && strcmp(s, "small") == 0)
        return full / 10 ? full / 10 : 1;
    return full;
}

/* Returns 1 when a mapping in /proc/self/maps holds address p (the test
 * aborts when the file cannot be read). */
static inline int test_is_mapped(const void *p)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps)
        abort();
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2)
            found = (uintptr_t)p >= lo && (uintptr_t)p < hi;
    }
    fclose(maps);
    return found;
}

/* Returns 1 when the page holding p is resident (the test aborts when
 * mincore fails, as it does for an address not mapped). */
static inline int test_page_resident(const void *p)
{
    long page = sysconf(_SC_PAGESIZE);
    void *start = (void *)((uintptr_t)p & ~(uintptr_t)(page - 1));
    unsigned char vec = 0;
    if (mincore(start, (size_t)page, &vec) != 0)
        abort();
    return vec & 1;
}

#endif /* PA_TESTUTIL_H */
