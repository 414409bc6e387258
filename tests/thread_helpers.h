/* SPDX-License-Identifier: MIT */
/*
 * thread_helpers.h - what the Check programs with concurrency enabled share
 * (check_threads_*): the failure record of helper threads, a random size mix,
 * blocks traded between threads, the churn thread and the fixture, which
 * initialises the allocator in the concurrent mode.
 *
 * Only <pallocator.h> is used.  Helper threads never call ck_assert (Check
 * assertions are only safe in the test's own thread): they record the first
 * failure, and the test asserts after joining them.  Every test leaves the
 * allocator cleaned up, so the programs also pass with CK_FORK=no.
 */
#ifndef PA_THREAD_HELPERS_H
#define PA_THREAD_HELPERS_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pallocator.h>

#define TEST_FULL_FILL_LIMIT ((size_t)16 << 10)
#define TEST_EDGE_FILL ((size_t)2048)
#include "testutil.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

/* The first failure seen by a helper thread, asserted by the test later. */
struct failure {
    atomic_ulong count;
    pthread_mutex_t mu;
    char msg[256];
};

#define FAILURE_INIT { 0, PTHREAD_MUTEX_INITIALIZER, "" }

static inline void fail_note(struct failure *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void fail_note(struct failure *f, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&f->mu);
    if (atomic_fetch_add(&f->count, 1) == 0) {
        va_start(ap, fmt);
        vsnprintf(f->msg, sizeof f->msg, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&f->mu);
}

static inline void assert_no_failure(struct failure *f)
{
    ck_assert_msg(atomic_load(&f->count) == 0, "%lu failure(s) in threads, first: %s",
                  (unsigned long)atomic_load(&f->count), f->msg);
}

/* Mostly small, some medium, rarely large (own mapping). */
static inline size_t random_size(uint64_t *rng)
{
    size_t r = test_rand_below(rng, 1000);
    if (r < 850)
        return test_rand_below(rng, 257);
    if (r < 998)
        return 257 + test_rand_below(rng, 16 * KiB);
    return MiB + test_rand_below(rng, MiB / 2);
}

static inline size_t stats_allocated(void)
{
    size_t a = SIZE_MAX;
    ck_assert_int_eq(allocator_stats(&a, NULL, NULL), 0);
    return a;
}

/*
 * Blocks passed between threads through a shared array: each begins with
 * its requested size, and the rest holds the address pattern.
 */
#define XSLOTS 64
static _Atomic(unsigned char *) xslots[XSLOTS];

static inline unsigned char *xblock_new(size_t n)
{
    unsigned char *p = myalloc(n);
    if (p) {
        memcpy(p, &n, sizeof n);
        block_fill(p + 16, n - 16);
    }
    return p;
}

/* Checks and frees a block made by xblock_new in any thread. */
static inline void xblock_release(unsigned char *p, struct failure *f)
{
    size_t n;
    int r, e;
    memcpy(&n, p, sizeof n);
    if (n < 32 || n > 64 * KiB) {
        fail_note(f, "shared block %p has a corrupt size word %zu", (void *)p, n);
        return;
    }
    if (myalloc_usable_size(p) < n)
        fail_note(f, "shared block %p: usable %zu < %zu", (void *)p, myalloc_usable_size(p), n);
    if (!block_ok(p + 16, n - 16))
        fail_note(f, "shared block %p (%zu bytes) overwritten", (void *)p, n);
    errno = 0;
    r = myfree(p);
    e = errno;
    if (r != 0)
        fail_note(f, "myfree(shared block %p) = %d errno %d", (void *)p, r, e);
}

static inline void xslots_drain(struct failure *f)
{
    for (int i = 0; i < XSLOTS; i++) {
        unsigned char *p = atomic_exchange(&xslots[i], NULL);
        if (p)
            xblock_release(p, f);
    }
}

/* A thread that allocates, checks, reallocates and frees at random. */
struct churn {
    pthread_t tid;
    uint64_t seed;
    size_t max_ops;     /* 0: run until *stop */
    atomic_int *stop;
    int cross;          /* also trade blocks with other threads */
    size_t ops;
    atomic_int running; /* set once the thread has done its first operation */
    struct failure *fail;
};

#define LSLOTS 96

static inline void *churn_main(void *arg)
{
    struct churn *w = arg;
    struct {
        unsigned char *p;
        size_t n;
    } b[LSLOTS];
    uint64_t rng = w->seed;

    memset(b, 0, sizeof b);
    for (w->ops = 0; w->max_ops ? w->ops < w->max_ops : !atomic_load(w->stop); w->ops++) {
        size_t k = test_rand_below(&rng, LSLOTS), r = test_rand_below(&rng, 100);
        if (w->ops == 1)
            atomic_store(&w->running, 1);
        if (atomic_load(&w->fail->count))
            break;
        if (w->cross && r < 12) {
            unsigned char *q = xblock_new(32 + test_rand_below(&rng, 4000)), *old;
            if (!q) {
                fail_note(w->fail, "myalloc for a shared block failed");
                break;
            }
            old = atomic_exchange(&xslots[test_rand_below(&rng, XSLOTS)], q);
            if (old)
                xblock_release(old, w->fail);
        } else if (!b[k].p) {
            size_t s = random_size(&rng);
            b[k].p = myalloc(s);
            if (!b[k].p || !is_aligned(b[k].p) || myalloc_usable_size(b[k].p) < s) {
                fail_note(w->fail, "myalloc(%zu) = %p (usable %zu)", s, (void *)b[k].p,
                          b[k].p ? myalloc_usable_size(b[k].p) : 0);
                b[k].p = NULL;
                break;
            }
            b[k].n = s;
            block_fill(b[k].p, s);
        } else if (r < 60) {
            int rc;
            if (!block_ok(b[k].p, b[k].n))
                fail_note(w->fail, "block %p (%zu bytes) overwritten", (void *)b[k].p, b[k].n);
            rc = myfree(b[k].p);
            if (rc != 0)
                fail_note(w->fail, "myfree(own block %p) = %d", (void *)b[k].p, rc);
            b[k].p = NULL;
        } else {
            size_t s = random_size(&rng), keep = s < b[k].n ? s : b[k].n;
            unsigned char *q;
            if (!block_ok(b[k].p, b[k].n))
                fail_note(w->fail, "block %p (%zu bytes) overwritten", (void *)b[k].p, b[k].n);
            q = myrealloc(b[k].p, s);
            if (!q || !is_aligned(q) || myalloc_usable_size(q) < s) {
                fail_note(w->fail, "myrealloc(%p, %zu) = %p", (void *)b[k].p, s, (void *)q);
                if (!q)
                    continue;
            } else if (!moved_ok(q, b[k].p, b[k].n, keep)) {
                fail_note(w->fail, "myrealloc(%zu -> %zu) lost contents", b[k].n, s);
            }
            b[k].p = q;
            b[k].n = s;
            block_fill(q, s);
        }
    }
    for (int k = 0; k < LSLOTS; k++) {
        if (!b[k].p)
            continue;
        if (!block_ok(b[k].p, b[k].n))
            fail_note(w->fail, "block %p (%zu bytes) overwritten", (void *)b[k].p, b[k].n);
        if (myfree(b[k].p) != 0)
            fail_note(w->fail, "final myfree(%p) failed", (void *)b[k].p);
    }
    return NULL;
}

static inline void churn_start(struct churn *w, int n, size_t max_ops, int cross, atomic_int *stop,
                        struct failure *f)
{
    for (int i = 0; i < n; i++) {
        w[i].seed = 0x1000 + 7919 * (uint64_t)i;
        w[i].max_ops = max_ops;
        w[i].stop = stop;
        w[i].cross = cross;
        w[i].fail = f;
        ck_assert_int_eq(pthread_create(&w[i].tid, NULL, churn_main, &w[i]), 0);
    }
}

static inline void churn_join(struct churn *w, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(pthread_join(w[i].tid, NULL), 0);
}

/* All allocated blocks are gone: nothing is counted and the heap is sound. */
static inline void assert_heap_empty(void)
{
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_uint_eq(stats_allocated(), 0);
}

/* ------------------------------------------------------------------ */
/* Fixture: every test starts in the concurrent mode                    */
/* ------------------------------------------------------------------ */

static void setup(void)
{
    allocator_cleanup();
    ck_assert_int_eq(allocator_init(1), 0);
    for (int i = 0; i < XSLOTS; i++)
        atomic_store(&xslots[i], NULL);
}

static void teardown(void)
{
    allocator_cleanup();
}

#endif /* PA_THREAD_HELPERS_H */
