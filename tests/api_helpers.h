/* SPDX-License-Identifier: MIT */
/*
 * api_helpers.h - what the single-threaded Check programs of the public
 * interface share (check_alloc, check_realloc, check_free, check_lifecycle,
 * check_introspect): the statistics triple, the test of a rejected pointer,
 * a random size mix, the overlap check and the fixture.  Only <pallocator.h>
 * is used: these tests hold the library to its contract, not to its
 * internals.
 *
 * Every test leaves the allocator cleaned up (the fixture's teardown calls
 * allocator_cleanup()), so the programs also pass with CK_FORK=no.
 */
#ifndef PA_API_HELPERS_H
#define PA_API_HELPERS_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pallocator.h>

#define TEST_FULL_FILL_LIMIT ((size_t)64 << 10)
#define TEST_EDGE_FILL ((size_t)4096)
#include "testutil.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

struct pa_stats {
    size_t allocated, freed, peak;
};

static inline struct pa_stats get_stats(void)
{
    struct pa_stats s = { SIZE_MAX, SIZE_MAX, SIZE_MAX };
    ck_assert_int_eq(allocator_stats(&s.allocated, &s.freed, &s.peak), 0);
    return s;
}

static inline int stats_equal(struct pa_stats a, struct pa_stats b)
{
    return a.allocated == b.allocated && a.freed == b.freed && a.peak == b.peak;
}

/* Mostly small sizes, some medium, a few up to max_large. */
static inline size_t random_size(uint64_t *rng, size_t max_large)
{
    size_t r = test_rand_below(rng, 1000);
    if (r < 800)
        return test_rand_below(rng, 257);
    if (r < 990)
        return 257 + test_rand_below(rng, 64 * KiB);
    return 64 * KiB + test_rand_below(rng, max_large - 64 * KiB + 1);
}

/*
 * An invalid pointer must be rejected by myfree, myalloc_usable_size and
 * myrealloc with EINVAL, and must leave the heap exactly as it was.
 */
static inline void check_invalid_pointer(void *ptr, const char *what)
{
    struct pa_stats before = get_stats(), after;
    int r, e;
    size_t u;
    void *q;

    errno = 0;
    r = myfree(ptr);
    e = errno;
    ck_assert_msg(r == -1 && e == EINVAL,
                  "myfree(%s = %p) returned %d, errno %d; want -1/EINVAL",
                  what, ptr, r, e);
    after = get_stats();
    ck_assert_msg(stats_equal(before, after),
                  "myfree(%s) changed the stats: allocated %zu->%zu freed %zu->%zu peak %zu->%zu",
                  what, before.allocated, after.allocated, before.freed,
                  after.freed, before.peak, after.peak);
    ck_assert_msg(allocator_verify() == 0, "heap unsound after myfree(%s)", what);

    errno = 0;
    u = myalloc_usable_size(ptr);
    e = errno;
    ck_assert_msg(u == 0 && e == EINVAL,
                  "myalloc_usable_size(%s) returned %zu, errno %d; want 0/EINVAL",
                  what, u, e);

    errno = 0;
    q = myrealloc(ptr, 48);
    e = errno;
    ck_assert_msg(q == NULL && e == EINVAL,
                  "myrealloc(%s, 48) returned %p, errno %d; want NULL/EINVAL",
                  what, q, e);
    after = get_stats();
    ck_assert_msg(stats_equal(before, after), "myrealloc(%s) changed the stats", what);
    ck_assert_msg(allocator_verify() == 0, "heap unsound after myrealloc(%s)", what);
}

static inline int cmp_uintptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* A block a test keeps, for check_disjoint(). */
struct live_block {
    unsigned char *p;
    size_t n; /* requested */
    size_t u; /* usable */
};

static inline void check_disjoint(const struct live_block *b, size_t n)
{
    uintptr_t *starts = malloc(2 * n * sizeof *starts);
    size_t m = 0;
    ck_assert_ptr_nonnull(starts);
    for (size_t i = 0; i < n; i++) {
        if (!b[i].p)
            continue;
        starts[2 * m] = (uintptr_t)b[i].p;
        starts[2 * m + 1] = (uintptr_t)b[i].u;
        m++;
    }
    /* Sort (start, usable) pairs by start. */
    qsort(starts, m, 2 * sizeof *starts, cmp_uintptr);
    for (size_t i = 0; i + 1 < m; i++)
        ck_assert_msg(starts[2 * i] + starts[2 * i + 1] <= starts[2 * i + 2],
                      "block %#lx (usable %lu) overlaps block %#lx",
                      (unsigned long)starts[2 * i], (unsigned long)starts[2 * i + 1],
                      (unsigned long)starts[2 * i + 2]);
    free(starts);
}

/* ------------------------------------------------------------------ */
/* Fixture                                                              */
/* ------------------------------------------------------------------ */

static void setup(void)
{
    /* Start from the uninitialised state whatever ran before (CK_FORK=no). */
    allocator_cleanup();
}

static void teardown(void)
{
    allocator_cleanup();
}

/* Loop tests run with _i = 0 (allocator_init(0)) and _i = 1 (allocator_init(1)). */

#endif /* PA_API_HELPERS_H */
