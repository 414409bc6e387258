/* SPDX-License-Identifier: MIT */
/*
 * check_large.c - blocks above the large threshold: the cache of freed
 * mappings (reuse, its bounds, giving it back, stale pointers into it),
 * realloc by resizing mappings, requests the kernel must refuse, and
 * allocation under an address-space limit (RLIMIT_AS, in forked children).
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pallocator.h>

#include "check_main.h"
#include "large.h"
#include "segment.h"
#include "testutil.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define TiB ((size_t)1 << 40)

static void setup(void)
{
    allocator_cleanup();
}

static void teardown(void)
{
    allocator_cleanup();
}

static size_t cached_count(void)
{
    size_t count, bytes;
    pa_segment_cache_usage(&count, &bytes);
    return count;
}

static size_t cached_bytes(void)
{
    size_t count, bytes;
    pa_segment_cache_usage(&count, &bytes);
    return bytes;
}

/* Loop tests run with _i = 0 (allocator_init(0)) and _i = 1 (allocator_init(1)). */

START_TEST(test_reuse_same_mapping)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    char *p = myalloc(2 * MiB);
    ck_assert_ptr_nonnull(p);
    memset(p, 0x5a, 2 * MiB);
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_uint_eq(cached_count(), 1);
    /* The same size, and a slightly smaller one, come from the cache. */
    char *q = myalloc(2 * MiB);
    ck_assert_ptr_eq(q, p);
    ck_assert_uint_eq(cached_count(), 0);
    ck_assert_uint_ge(myalloc_usable_size(q), 2 * MiB);
    block_fill(q, 2 * MiB);
    ck_assert_int_eq(myfree(q), 0);
    char *r = myalloc(2 * MiB - 100 * KiB);
    ck_assert_ptr_eq(r, p);
    block_fill(r, 2 * MiB - 100 * KiB);
    ck_assert(block_ok(r, 2 * MiB - 100 * KiB));
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myfree(r), 0);
    /* A request of more than half the mapping takes it whole; one of less
     * gets it with the pages of its tail given back, the address space
     * kept (up to four times the request: test_cache_trim_bounded). */
    char *big = myalloc(4 * MiB);
    ck_assert_ptr_nonnull(big);
    ck_assert_ptr_ne(big, p);
    memset(big, 0x5a, 4 * MiB);
    ck_assert_int_eq(myfree(big), 0);
    char *s = myalloc(1 * MiB + 1);
    ck_assert_ptr_eq(s, p);
    ck_assert_uint_ge(myalloc_usable_size(s), 2 * MiB);
    char *t = myalloc(1 * MiB + 1);
    ck_assert_ptr_eq(t, big);
    ck_assert_uint_ge(myalloc_usable_size(t), 4 * MiB);
    ck_assert(test_page_resident(big + MiB - 1));
    ck_assert(!test_page_resident(big + 3 * MiB));
    /* The tail is the block's to use. */
    block_fill(t, myalloc_usable_size(t));
    ck_assert(block_ok(t, myalloc_usable_size(t)));
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myfree(s), 0);
    ck_assert_int_eq(myfree(t), 0);
    /* Freed again, the whole mapping serves a request of its old size. */
    char *u = myalloc(4 * MiB);
    ck_assert_ptr_eq(u, big);
    ck_assert_int_eq(myfree(u), 0);
}
END_TEST

/* A cached mapping far larger than a request keeps four times the
 * request's address space, no more: the rest is unmapped. */
START_TEST(test_cache_trim_bounded)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    char *big = myalloc(16 * MiB);
    ck_assert_ptr_nonnull(big);
    memset(big, 0x5a, 16 * MiB);
    ck_assert_int_eq(myfree(big), 0);
    ck_assert_uint_eq(cached_count(), 1);
    char *p = myalloc(1 * MiB + 1);
    ck_assert_ptr_eq(p, big);
    size_t usable = myalloc_usable_size(p);
    ck_assert_uint_ge(usable, 4 * MiB);
    ck_assert_uint_le(usable, MAPPING_KEEP_FACTOR * (1 * MiB + 64 * KiB));
    ck_assert(test_is_mapped(p + usable - 1));
    ck_assert(!test_is_mapped(p + 8 * MiB));
    ck_assert(!test_page_resident(p + 3 * MiB));
    block_fill(p, usable);
    ck_assert(block_ok(p, usable));
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myfree(p), 0);
}
END_TEST

START_TEST(test_cached_pointer_refused)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    char *p = myalloc(3 * MiB);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_uint_eq(cached_count(), 1);
    errno = 0;
    ck_assert_int_eq(myfree(p), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(myrealloc(p, 4 * MiB));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(myrealloc(p, 100));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_uint_eq(myalloc_usable_size(p), 0);
    ck_assert_int_eq(errno, EINVAL);
    /* Still cached, untouched by the refused calls, and not counted live. */
    ck_assert_uint_eq(cached_count(), 1);
    size_t allocated, freed, peak;
    ck_assert_int_eq(allocator_stats(&allocated, &freed, &peak), 0);
    ck_assert_uint_lt(allocated, 3 * MiB);
    ck_assert_int_eq(allocator_verify(), 0);
    char *q = myalloc(3 * MiB);
    ck_assert_ptr_eq(q, p);
    ck_assert_int_eq(myfree(q), 0);
}
END_TEST

START_TEST(test_calloc_after_reuse)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    size_t n = 2 * MiB + 12345;
    unsigned char *p = myalloc(n);
    ck_assert_ptr_nonnull(p);
    memset(p, 0xab, myalloc_usable_size(p));
    ck_assert_int_eq(myfree(p), 0);
    unsigned char *q = mycalloc(n, 1);
    ck_assert_ptr_eq(q, p);
    ck_assert(test_all_bytes(q, n, 0));
    ck_assert_int_eq(myfree(q), 0);
    /* A fresh mapping too. */
    unsigned char *r = mycalloc(1, 5 * MiB);
    ck_assert_ptr_nonnull(r);
    ck_assert(test_all_bytes(r, 5 * MiB, 0));
    ck_assert_int_eq(myfree(r), 0);
}
END_TEST

/* Grows one block from 64 KiB in 64 KiB steps, writing a marker at the
 * end of each step; every marker and the first bytes must survive, and
 * the block must move at few of the steps. */
START_TEST(test_realloc_growth)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    size_t step = 64 * KiB, top = test_scale(320) * step;
    if (top < 4 * MiB)
        top = 4 * MiB;
    unsigned char *p = myalloc(step);
    ck_assert_ptr_nonnull(p);
    test_fill(p, step);
    const unsigned char *first = p;
    size_t moves = 0, steps = 0;
    for (size_t n = 2 * step; n <= top; n += step, steps++) {
        unsigned char *q = myrealloc(p, n);
        ck_assert_ptr_nonnull(q);
        moves += q != p;
        p = q;
        p[n - 1] = (unsigned char)(n / step);
    }
#ifndef PA_CHECKED
    ck_assert_msg(moves * 4 <= steps, "moved at %zu of %zu steps", moves, steps);
#else
    (void)moves; /* the checked builds copy a large block on realloc */
#endif
    for (size_t i = 0; i < step; i++)
        ck_assert_uint_eq(p[i], test_pattern_byte(first, i));
    for (size_t n = 2 * step; n <= top; n += step)
        ck_assert_uint_eq(p[n - 1], (unsigned char)(n / step));
    ck_assert_uint_ge(myalloc_usable_size(p), top);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myfree(p), 0);
}
END_TEST

#ifndef PA_CHECKED
START_TEST(test_realloc_shrink_in_place)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    unsigned char *p = myalloc(16 * MiB);
    ck_assert_ptr_nonnull(p);
    block_fill(p, 2 * MiB);
    pa_large_lock();
    size_t mapped_before = pa_large_stats().mapped;
    pa_large_unlock();
    unsigned char *q = myrealloc(p, 2 * MiB);
    ck_assert_ptr_eq(q, p);
    ck_assert(block_ok(q, 2 * MiB));
    ck_assert_uint_ge(myalloc_usable_size(q), 2 * MiB);
    ck_assert_uint_lt(myalloc_usable_size(q), 2 * MiB + 64 * KiB);
    pa_large_lock();
    ck_assert_uint_le(pa_large_stats().mapped + 14 * MiB, mapped_before);
    pa_large_unlock();
    /* The pages given back are gone: the old end is no longer ours. */
    ck_assert(!test_is_mapped(p + 15 * MiB));
    ck_assert_int_eq(allocator_verify(), 0);
    /* Below the threshold it moves into a heap, keeping its contents. */
    unsigned char *r = myrealloc(q, 100 * KiB);
    ck_assert_ptr_nonnull(r);
    ck_assert(moved_ok(r, p, 2 * MiB, 100 * KiB));
    ck_assert_int_eq(myfree(r), 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST
#endif

START_TEST(test_cache_bounds)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    enum { N = MAPPING_CACHE_SLOTS + 4 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = myalloc(2 * MiB);
        ck_assert_ptr_nonnull(p[i]);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(myfree(p[i]), 0);
    ck_assert_uint_eq(cached_count(), MAPPING_CACHE_SLOTS);
    /* The oldest went back to the OS, the latest were kept. */
    ck_assert(!test_is_mapped(p[0]));
    ck_assert(test_is_mapped(p[N - 1]));
    /* Bytes bound the cache too. */
    size_t big = MAPPING_CACHE_BYTES / 3;
    for (int i = 0; i < 4; i++) {
        p[i] = myalloc(big);
        ck_assert_ptr_nonnull(p[i]);
    }
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(myfree(p[i]), 0);
    ck_assert_uint_le(cached_bytes(), MAPPING_CACHE_BYTES);
    ck_assert_uint_ge(cached_bytes(), 2 * big);
    /* A mapping above the bound is never kept. */
    size_t before = cached_bytes();
    void *huge = myalloc(MAPPING_CACHE_BYTES + MiB);
    ck_assert_ptr_nonnull(huge);
    ck_assert_int_eq(myfree(huge), 0);
    ck_assert_uint_le(cached_bytes(), before);
    ck_assert(!test_is_mapped(huge));
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

/* A request no cached mapping fits, while the cache is at least half
 * full: the oldest mapping grows in place (the address space after a
 * mapping is free up to the next segment boundary, unless the kernel put
 * another mapping there) instead of a fresh one being mapped. */
START_TEST(test_cache_grows_oldest)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    enum { N = MAPPING_CACHE_SLOTS / 2 };
    char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = myalloc(1 * MiB + 1);
        ck_assert_ptr_nonnull(p[i]);
        block_fill(p[i], 1 * MiB + 1);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(myfree(p[i]), 0);
    ck_assert_uint_eq(cached_count(), N);
    size_t before = cached_bytes();
    char *q = myalloc(3 * MiB);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_ge(myalloc_usable_size(q), 3 * MiB);
    block_fill(q, 3 * MiB);
    ck_assert(block_ok(q, 3 * MiB));
    ck_assert_int_eq(allocator_verify(), 0);
    if (q != p[0]) {
        /* The kernel placed something after the oldest: a fresh mapping,
         * the cache untouched. */
        fprintf(stderr, "check_large: the oldest cached mapping could not grow in place\n");
        ck_assert_uint_eq(cached_count(), N);
        ck_assert_uint_eq(cached_bytes(), before);
    } else {
        ck_assert_uint_eq(cached_count(), N - 1);
        ck_assert_uint_lt(cached_bytes(), before);
    }
    ck_assert_int_eq(myfree(q), 0);
    ck_assert_int_eq(allocator_verify(), 0);
    /* Below half full, a request that fits nothing gets a fresh mapping. */
    allocator_cleanup();
    ck_assert_int_eq(allocator_init(_i), 0);
    char *r = myalloc(1 * MiB + 1);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(myfree(r), 0);
    char *t = myalloc(3 * MiB);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(cached_count(), 1);
    ck_assert(test_is_mapped(r));
    ck_assert_int_eq(myfree(t), 0);
}
END_TEST

START_TEST(test_cache_given_back)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    void *p = myalloc(2 * MiB), *q = myalloc(3 * MiB);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_int_eq(myfree(q), 0);
    ck_assert_uint_eq(cached_count(), 2);
    /* Not yet: both were cached just now. */
    pa_segment_cache_expire(pa_segment_clock_ms());
    ck_assert_uint_eq(cached_count(), 2);
    /* After the decay time without reuse they are unmapped. */
    pa_segment_cache_expire(pa_segment_clock_ms() + MAPPING_CACHE_DECAY_MS + 50);
    ck_assert_uint_eq(cached_count(), 0);
    ck_assert(!test_is_mapped(p));
    ck_assert(!test_is_mapped(q));
    /* allocator_cleanup gives back whatever is cached. */
    p = myalloc(2 * MiB);
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_uint_eq(cached_count(), 1);
    ck_assert(test_is_mapped(p));
    allocator_cleanup();
    ck_assert_uint_eq(cached_count(), 0);
    ck_assert(!test_is_mapped(p));
}
END_TEST

/* The overcommit policy decides whether the kernel refuses impossible
 * requests; 1 ("always") never does. */
static int overcommit_policy(void)
{
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    int policy = -1;
    if (f) {
        if (fscanf(f, "%d", &policy) != 1)
            policy = -1;
        fclose(f);
    }
    return policy;
}

START_TEST(test_impossible_request_refused)
{
    if (overcommit_policy() == 1) {
        fprintf(stderr, "check_large: vm.overcommit_memory is 1, the kernel refuses nothing: "
                        "test_impossible_request_refused skipped\n");
        return;
    }
    ck_assert_int_eq(allocator_init(_i), 0);
    errno = 0;
    ck_assert_ptr_null(myalloc(64 * TiB));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(mycalloc(64, TiB));
    ck_assert_int_eq(errno, ENOMEM);
    /* A block asked to grow that far stays as it was. */
    unsigned char *p = myalloc(2 * MiB);
    ck_assert_ptr_nonnull(p);
    block_fill(p, 2 * MiB);
    errno = 0;
    ck_assert_ptr_null(myrealloc(p, 64 * TiB));
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert(block_ok(p, 2 * MiB));
    ck_assert_uint_ge(myalloc_usable_size(p), 2 * MiB);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myfree(p), 0);
}
END_TEST

/* Two threads resizing and freeing large blocks of their own, through the
 * shared cache. */
static void *large_churn(void *arg)
{
    uint64_t seed = (uintptr_t)arg;
    unsigned char *p[4] = {0};
    size_t n[4] = {0};
    for (size_t round = 0; round < test_scale(400); round++) {
        size_t k = test_rand_below(&seed, 4);
        size_t size = 1 * MiB + 1 + test_rand_below(&seed, 6 * MiB);
        if (p[k] && !block_ok(p[k], n[k]))
            return (void *)"contents lost";
        if (!p[k] || test_rand_below(&seed, 3) == 0) {
            if (p[k] && myfree(p[k]) != 0)
                return (void *)"free failed";
            p[k] = myalloc(size);
        } else {
            unsigned char *q = myrealloc(p[k], size);
            if (q && !moved_ok(q, p[k], n[k], n[k] < size ? n[k] : size))
                return (void *)"realloc lost contents";
            p[k] = q;
        }
        if (!p[k])
            return (void *)"allocation failed";
        n[k] = size;
        block_fill(p[k], size);
    }
    for (int k = 0; k < 4; k++)
        if (p[k] && myfree(p[k]) != 0)
            return (void *)"final free failed";
    return NULL;
}

START_TEST(test_threads_share_cache)
{
    ck_assert_int_eq(allocator_init(1), 0);
    pthread_t t[2];
    for (uintptr_t i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, large_churn, (void *)(i * 7919 + 1)), 0);
    for (int i = 0; i < 2; i++) {
        void *err;
        ck_assert_int_eq(pthread_join(t[i], &err), 0);
        ck_assert_msg(err == NULL, "%s", (const char *)err);
    }
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_uint_le(cached_count(), MAPPING_CACHE_SLOTS);
}
END_TEST

/* ---- under an address-space limit, in a forked child ---- */

/* The process's mapped address space (VmSize), in bytes; 0 when unknown. */
static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %zu kB", &kib) == 1)
            break;
    fclose(f);
    return kib * KiB;
}

static bool limit_address_space(size_t extra)
{
    size_t now = vm_size();
    if (!now)
        return false;
    struct rlimit rl = {now + extra, now + extra};
    return setrlimit(RLIMIT_AS, &rl) == 0;
}

/* Runs body in a child and returns its exit status (0: passed). */
static int in_child(int (*body)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(body());
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "child died (status %d)", status);
    return WEXITSTATUS(status);
}

/* Sanitizers reserve terabytes of shadow memory and valgrind manages the
 * address space itself: an RLIMIT_AS test means nothing under them. */
static bool address_limit_testable(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return false;
#else
    const char *preload = getenv("LD_PRELOAD");
    return !(preload && strstr(preload, "vgpreload"));
#endif
}

enum { FILL_MAX = 4096 };
static void *fill[FILL_MAX];

/* Allocates blocks of size until the limit refuses one (ENOMEM); returns
 * how many it got, or -1 when it never failed or failed otherwise. */
static int fill_until_refused(size_t size)
{
    int n = 0;
    while (n < FILL_MAX) {
        errno = 0;
        void *p = myalloc(size);
        if (!p)
            return errno == ENOMEM && n > 0 ? n : -1;
        ((char *)p)[0] = 1;
        fill[n++] = p;
    }
    return -1;
}

static int free_all(int n)
{
    for (int i = 0; i < n; i++)
        if (myfree(fill[i]) != 0)
            return 0;
    return 1;
}

/* Heap blocks fill the limit, freeing them leaves retired segments; then a
 * 2 MiB block must still be had. Large blocks fill it, freeing them fills
 * the cache; then a block larger than any cached one must be had. */
static int body_freed_memory_reusable(void)
{
    myfree(myalloc(16));
    if (!limit_address_space(160 * MiB))
        return 10;
    int n = fill_until_refused(256 * KiB);
    if (n < 0)
        return 11;
    if (!free_all(n))
        return 12;
    if (pa_segment_pool_count() > SEGMENT_POOL_MAX)
        return 19;
    void *p = myalloc(2 * MiB);
    if (!p)
        return 13;
    memset(p, 1, 2 * MiB);
    myfree(p);
    n = fill_until_refused(6 * MiB);
    if (n < 0)
        return 14;
    if (!free_all(n))
        return 15;
    if (cached_count() == 0)
        return 16;
    p = myalloc(96 * MiB);
    if (!p)
        return 17;
    memset(p, 1, 96 * MiB);
    myfree(p);
    return allocator_verify() == 0 ? 0 : 18;
}

START_TEST(test_rlimit_freed_memory_reusable)
{
    if (!address_limit_testable())
        return;
    ck_assert_int_eq(in_child(body_freed_memory_reusable), 0);
}
END_TEST

/* The first allocation needs little address space beyond its own. */
static int body_small_limit(void)
{
    if (!limit_address_space(64 * MiB))
        return 10;
    void *p = myalloc(16);
    if (!p)
        return 11;
    void *q = myalloc(100 * KiB);
    if (!q)
        return 12;
    myfree(q);
    myfree(p);
    return allocator_verify() == 0 ? 0 : 13;
}

START_TEST(test_rlimit_small_first_allocation)
{
    if (!address_limit_testable())
        return;
    ck_assert_int_eq(in_child(body_small_limit), 0);
}
END_TEST

static Suite *large_suite(void)
{
    Suite *s = suite_create("large");
    TCase *tc = tcase_create("cache");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_reuse_same_mapping, 0, 2);
    tcase_add_loop_test(tc, test_cache_trim_bounded, 0, 2);
    tcase_add_loop_test(tc, test_cached_pointer_refused, 0, 2);
    tcase_add_loop_test(tc, test_calloc_after_reuse, 0, 2);
    tcase_add_loop_test(tc, test_cache_bounds, 0, 2);
    tcase_add_loop_test(tc, test_cache_given_back, 0, 2);
    tcase_add_loop_test(tc, test_cache_grows_oldest, 0, 2);
    tcase_add_test(tc, test_threads_share_cache);
    suite_add_tcase(s, tc);

    tc = tcase_create("realloc");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_realloc_growth, 0, 2);
#ifndef PA_CHECKED
    /* The checked builds copy a large block on realloc (so the memory
     * checkers see every byte move): no resizing in place to test. */
    tcase_add_loop_test(tc, test_realloc_shrink_in_place, 0, 2);
#endif
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_impossible_request_refused, 0, 2);
    tcase_add_test(tc, test_rlimit_freed_memory_reusable);
    tcase_add_test(tc, test_rlimit_small_first_allocation);
    suite_add_tcase(s, tc);
    return s;
}

PA_CHECK_MAIN(large_suite)
