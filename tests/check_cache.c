/* SPDX-License-Identifier: MIT */
/*
 * check_cache.c - the heap's cache of freed blocks (arena blocks and the
 * largest slab classes): the size classes arena requests round up to,
 * exact refusal of a cached block, statistics that count cached blocks as
 * free, allocator_verify catching a damaged cache, the bounds on what it
 * holds, and its return to the arena and slabs when a thread exits.
 * Looks at the caller's heap (either mode) through the internal headers.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <pallocator.h>

#include "heap.h"
#include "testutil.h"

#define KiB ((size_t)1 << 10)

static heap_t *my_heap(void)
{
    return pa_is_concurrent() ? pa_thread.heap : pa_single_heap;
}

static size_t allocated_now(void)
{
    size_t allocated = SIZE_MAX;
    ck_assert_int_eq(allocator_stats(&allocated, NULL, NULL), 0);
    return allocated;
}

static void teardown(void)
{
    ck_assert_int_eq(allocator_verify(), 0);
    allocator_cleanup();
}

/* Every medium request rounds up to a class's block, on a TLSF bin
 * boundary, wasting less than a fifth, and a request of a power of two
 * less than a sixteenth; a block of that size (or a granule more, when
 * TLSF leaves a sliver) is filed under the class the request asks. */
START_TEST(test_cache_classes)
{
    size_t bad = 0;
    for (size_t n = SLAB_REQUEST_MAX + 1; n <= PA_LARGE_THRESHOLD && !bad; n++) {
        size_t size = cache_block_size_for(n), need = align_up(n, PA_GRANULE) + BLOCK_HEADER_SIZE;
        unsigned k = cache_class_of_request(n);
        bool power = (n & (n - 1)) == 0;
        bool ok = size >= need && size - need < need / 5 &&
                  (!power || size - need < n / 16) &&
                  (size & (((size_t)1 << (bit_highest(size) - TLSF_SL_SHIFT)) - 1)) == 0 &&
                  cache_takes_class(k) && cache_class_of_block(size) == k &&
                  cache_class_of_block(size + PA_GRANULE) == k &&
                  (n == SLAB_REQUEST_MAX + 1 || cache_class_of_request(n - 1) <= k);
        if (!ok)
            bad = n;
    }
    ck_assert_msg(bad == 0, "request %zu: block size %zu, class %u", bad, cache_block_size_for(bad),
                  cache_class_of_request(bad));
    /* The cached slab classes start right above CACHE_SLAB_MIN_REQUEST. */
    ck_assert_uint_eq(pa_slab_class_size[CACHE_SLAB_FIRST - 1], CACHE_SLAB_MIN_REQUEST);
    ck_assert_uint_gt(pa_slab_class_size[CACHE_SLAB_FIRST], CACHE_SLAB_MIN_REQUEST);
    /* Blocks shrunk in place below every class are not taken. */
    ck_assert(!cache_takes_class(cache_class_of_block(128)));
    ck_assert(!cache_takes_class(cache_class_of_block(SLAB_REQUEST_MAX)));
    ck_assert(!cache_takes_class(
        cache_class_of_block(cache_block_size_for(SLAB_REQUEST_MAX + 1) - PA_GRANULE)));
    ck_assert(cache_takes_class(cache_class_of_block(cache_block_size_for(SLAB_REQUEST_MAX + 1))));
}
END_TEST

/* A cached block is refused like any freed block, and the next request of
 * its size gets it back. */
START_TEST(test_cache_refuses_and_reuses)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    unsigned char *keep = myalloc(20000), *p = myalloc(20000);
    ck_assert(keep && p);
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_uint_eq(pa_cache_count(&my_heap()->cache), 1);
    errno = 0;
    ck_assert_int_eq(myfree(p), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_uint_eq(myalloc_usable_size(p), 0);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(myrealloc(p, 100));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_uint_eq(pa_cache_count(&my_heap()->cache), 1);
    unsigned char *q = myalloc(19000); /* the same class */
    ck_assert_ptr_eq(q, p);
    ck_assert_uint_eq(pa_cache_count(&my_heap()->cache), 0);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myfree(q), 0);
    ck_assert_int_eq(myfree(keep), 0);
    ck_assert_uint_eq(allocated_now(), 0);
}
END_TEST

/* Grows *p (20,000 bytes, filled) by realloc past *wall, a live block
 * allocated right after it, so that it moves; checks the move and that
 * the block left behind is not cached. Returns the new block. */
static unsigned char *realloc_past_wall(unsigned char **p, unsigned char **wall)
{
    *p = myalloc(20000);
    *wall = myalloc(20000);
    ck_assert(*p && *wall);
    memset(*p, 0xa5, 20000);
    unsigned char *q = myrealloc(*p, 60000); /* the live wall forces a move */
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_ne(q, *p);
    ck_assert(test_all_bytes(q, 20000, 0xa5));
    ck_assert_uint_eq(pa_cache_count(&my_heap()->cache), 0);
    ck_assert_int_eq(allocator_verify(), 0);
    return q;
}

/* A block a realloc moves out of goes back to the arena, not the cache:
 * the program has outgrown its class. Its bytes then serve a request of
 * another class, which a cached block could not. */
START_TEST(test_cache_skips_block_realloc_left)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    unsigned char *p, *wall, *q = realloc_past_wall(&p, &wall);
    /* A smaller class is carved from where p was. */
    unsigned char *r = myalloc(12000);
    ck_assert_ptr_eq(r, p);
    ck_assert_int_eq(myfree(r), 0);
    ck_assert_int_eq(myfree(q), 0);
    ck_assert_int_eq(myfree(wall), 0);
    ck_assert_uint_eq(allocated_now(), 0);
}
END_TEST

/* The same for a slab block of a class the cache takes: it goes back to
 * its slab, which a cached block would keep from emptying. */
static unsigned char *realloc_slab_block_up(unsigned char **p)
{
    *p = myalloc(3000);
    ck_assert_ptr_nonnull(*p);
    memset(*p, 0x5a, 3000);
    unsigned char *q = myrealloc(*p, 6000); /* three classes up: a move */
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_ne(q, *p);
    ck_assert(test_all_bytes(q, 3000, 0x5a));
    ck_assert_uint_eq(pa_cache_count(&my_heap()->cache), 0);
    ck_assert_int_eq(allocator_verify(), 0);
    return q;
}

START_TEST(test_cache_skips_slab_block_realloc_left)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    unsigned char *p, *q = realloc_slab_block_up(&p);
    /* Back in its slab, the block serves its class again. */
    unsigned char *r = myalloc(3000);
    ck_assert_ptr_eq(r, p);
    ck_assert_int_eq(myfree(r), 0);
    ck_assert_int_eq(myfree(q), 0);
    ck_assert_uint_eq(allocated_now(), 0);
}
END_TEST

static void *thread_frees(void *p)
{
    return (void *)(intptr_t)myfree(p);
}

/* The same once another thread has freed one of the heap's blocks: the
 * heap is shared, and its own frees take the slow path, which must skip
 * the cache too. */
START_TEST(test_cache_skips_block_realloc_left_shared)
{
    ck_assert_int_eq(allocator_init(1), 0);
    void *x = myalloc(64), *ret = NULL;
    ck_assert_ptr_nonnull(x);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, thread_frees, x), 0);
    ck_assert_int_eq(pthread_join(t, &ret), 0);
    ck_assert_ptr_null(ret);
    ck_assert(__atomic_load_n(&my_heap()->shared, __ATOMIC_RELAXED));
    unsigned char *p, *wall, *q = realloc_past_wall(&p, &wall);
    unsigned char *small, *moved = realloc_slab_block_up(&small);
    ck_assert_int_eq(myfree(moved), 0);
    ck_assert_int_eq(myfree(q), 0);
    ck_assert_int_eq(myfree(wall), 0);
    ck_assert_uint_eq(allocated_now(), 0);
}
END_TEST

/* Statistics count cached blocks as free (handing them back to the
 * arena), and allocator_verify checks the cache and leaves it empty. */
START_TEST(test_cache_counts_as_free)
{
    enum { N = 10 };
    void *p[N];
    ck_assert_int_eq(allocator_init(_i), 0);
    size_t before = allocated_now(), freed = 0;
    for (int i = 0; i < N; i++) {
        p[i] = myalloc(16000 + (size_t)i * 100);
        ck_assert_ptr_nonnull(p[i]);
    }
    ck_assert_uint_ge(allocated_now(), before + N * 16000);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(myfree(p[i]), 0);
    ck_assert_uint_eq(pa_cache_count(&my_heap()->cache), N);
    ck_assert_int_eq(allocator_stats(NULL, &freed, NULL), 0);
    ck_assert_uint_ge(freed, N * 16000);
    ck_assert_uint_eq(allocated_now(), before);
    ck_assert_uint_eq(pa_cache_count(&my_heap()->cache), 0);
    for (int i = 0; i < N; i++)
        ck_assert_ptr_nonnull(p[i] = myalloc(17000));
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(myfree(p[i]), 0);
    ck_assert_uint_eq(pa_cache_count(&my_heap()->cache), N);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_uint_eq(pa_cache_count(&my_heap()->cache), 0);
}
END_TEST

/* A write through a stale pointer into a cached block's link is caught. */
START_TEST(test_cache_verify_catches_damage)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    unsigned char *keep = myalloc(30000), *p = myalloc(30000), *q = myalloc(30000);
    ck_assert(keep && p && q);
    ck_assert_int_eq(myfree(q), 0);
    ck_assert_int_eq(myfree(p), 0); /* p's link names q */
    /* Through the link macros: freed memory is closed to the checkers. */
    void *link = PA_LINK_LOAD(*(void **)p);
    void *bad[] = {(void *)(uintptr_t)0x1000, keep - BLOCK_HEADER_SIZE, p + 64,
                   p - BLOCK_HEADER_SIZE};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        PA_LINK_STORE(*(void **)p, bad[i]);
        ck_assert_int_eq(allocator_verify(), -1);
        PA_LINK_STORE(*(void **)p, link);
    }
    ck_assert_uint_eq(pa_cache_count(&my_heap()->cache), 2);
    my_heap()->cache.bytes += PA_GRANULE;
    ck_assert_int_eq(allocator_verify(), -1);
    my_heap()->cache.bytes -= 2 * PA_GRANULE;
    ck_assert_int_eq(allocator_verify(), -1);
    my_heap()->cache.bytes += PA_GRANULE;
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myfree(keep), 0);
}
END_TEST

/* However many medium blocks are freed, the cache keeps at most its bound;
 * the rest goes back to the arena. */
START_TEST(test_cache_is_bounded)
{
    enum { N = 600 };
    static void *p[N];
    ck_assert_int_eq(allocator_init(_i), 0);
    size_t peak_used = 0;
    for (int i = 0; i < N; i++) {
        p[i] = myalloc(100 * KiB + (size_t)(i % 7) * 4000);
        ck_assert_ptr_nonnull(p[i]);
    }
    peak_used = heap_arena_used(my_heap());
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(myfree(p[i]), 0);
        ck_assert_uint_le(my_heap()->cache.bytes, cache_limit(peak_used));
    }
    ck_assert_uint_le(my_heap()->cache.bytes, CACHE_MAX_BYTES);
    ck_assert_uint_lt(pa_cache_count(&my_heap()->cache), N);
    ck_assert_uint_eq(allocated_now(), 0);
}
END_TEST

/* The largest slab classes: refused while cached, handed out again, and
 * within their limit. */
START_TEST(test_cache_slab_blocks)
{
    enum { N = 64 };
    void *p[N];
    ck_assert_int_eq(allocator_init(_i), 0);
    unsigned char *a = myalloc(5000), *keep = myalloc(5000);
    ck_assert(a && keep);
    ck_assert_int_eq(myfree(a), 0);
    ck_assert_uint_eq(pa_cache_count(&my_heap()->cache), 1);
    errno = 0;
    ck_assert_int_eq(myfree(a), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_uint_eq(myalloc_usable_size(a), 0);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(myrealloc(a, 10));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_eq(myalloc(4700), a); /* the same class */
    ck_assert_int_eq(myfree(a), 0);
    /* A damaged link is caught, and nothing else changes. */
    void *link = PA_LINK_LOAD(*(void **)a);
    PA_LINK_STORE(*(void **)a, keep);
    ck_assert_int_eq(allocator_verify(), -1);
    PA_LINK_STORE(*(void **)a, a + 16);
    ck_assert_int_eq(allocator_verify(), -1);
    PA_LINK_STORE(*(void **)a, link);
    ck_assert_int_eq(allocator_verify(), 0);
    for (int i = 0; i < N; i++)
        ck_assert_ptr_nonnull(p[i] = myalloc(5000));
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(myfree(p[i]), 0);
        unsigned k = slab_class_of(5000) - CACHE_SLAB_FIRST;
        ck_assert_uint_le(my_heap()->cache.slab_bytes[k],
                          cache_slab_limit(my_heap()->slabs.assigned));
    }
    ck_assert_uint_gt(pa_cache_count(&my_heap()->cache), 0);
    ck_assert_int_eq(myfree(keep), 0);
    ck_assert_uint_eq(allocated_now(), 0);
    ck_assert_uint_eq(pa_cache_count(&my_heap()->cache), 0);
}
END_TEST

static void *thread_caches_and_exits(void *arg)
{
    void *p[8];
    for (int i = 0; i < 8; i++)
        p[i] = myalloc(i % 2 ? 40000 : 3000);
    for (int i = 0; i < 8; i++)
        if (!p[i] || myfree(p[i]) != 0)
            return NULL;
    heap_t **h = arg;
    *h = pa_thread.heap;
    return pa_cache_count(&(*h)->cache) == 8 ? arg : NULL;
}

/* A thread's exit gives its cached blocks back to its heap's arena. */
START_TEST(test_cache_emptied_at_thread_exit)
{
    ck_assert_int_eq(allocator_init(1), 0);
    heap_t *h = NULL;
    void *ret = NULL;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, thread_caches_and_exits, &h), 0);
    ck_assert_int_eq(pthread_join(t, &ret), 0);
    ck_assert_ptr_nonnull(ret);
    ck_assert_uint_eq(h->state, HEAP_ABANDONED);
    ck_assert_uint_eq(pa_cache_count(&h->cache), 0);
    ck_assert_uint_eq(h->cache.bytes, 0);
    ck_assert_uint_eq(allocated_now(), 0);
}
END_TEST

static Suite *cache_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("cache");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_cache_classes);
    tcase_add_loop_test(tc, test_cache_refuses_and_reuses, 0, 2);
    tcase_add_loop_test(tc, test_cache_skips_block_realloc_left, 0, 2);
    tcase_add_loop_test(tc, test_cache_skips_slab_block_realloc_left, 0, 2);
    tcase_add_test(tc, test_cache_skips_block_realloc_left_shared);
    tcase_add_loop_test(tc, test_cache_counts_as_free, 0, 2);
    tcase_add_loop_test(tc, test_cache_verify_catches_damage, 0, 2);
    tcase_add_loop_test(tc, test_cache_is_bounded, 0, 2);
    tcase_add_loop_test(tc, test_cache_slab_blocks, 0, 2);
    tcase_add_test(tc, test_cache_emptied_at_thread_exit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cache_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
