/* SPDX-License-Identifier: MIT */
/*
 * check_slab.c - slabs: the size classes, blocks packed without headers, a
 * slab's way from current to full to partial to free, segments going back
 * to the pool, and frees that must be refused. The first tests drive a
 * slab set on its own, as the heap does, with no allocator behind it; the
 * others run the allocator in single-threaded mode and look at its one
 * heap's slabs.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <pallocator.h>

#include "heap.h"
#include "segmap.h"
#include "testutil.h"

/* ---- a slab set on its own ------------------------------------------- */

/* Stands for the heap a set's segments name: the slab layer only passes
 * it on to the segment map. */
static char bare_owner;
static slab_set_t bare;
static pa_stats_t bare_held;

static void bare_setup(void)
{
    pa_slab_tables_init();
    bare_held = (pa_stats_t){0};
    pa_slab_set_init(&bare, (struct heap *)&bare_owner, &bare_held);
}

static void bare_teardown(void)
{
    pa_slab_release_all(&bare);
    pa_segment_pool_release_all();
}

static void bare_give(void *p)
{
    slab_give(&bare, slab_of(segment_of(p), p), p);
}

START_TEST(test_bare_set_takes_and_gives)
{
    const unsigned c = slab_class_of(64);
    const size_t per_slab = SLAB_SIZE / 64, n = per_slab * 2 + 5;
    char **p = calloc(n, sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) {
        p[i] = slab_take(&bare, c);
        ck_assert_ptr_nonnull(p[i]);
        segment_t *s = segment_of(p[i]);
        ck_assert(segment_has_slabs(s));
        ck_assert_uint_eq(segmap_lookup(p[i]), (uintptr_t)&bare_owner | SEGMAP_SLABS);
        ck_assert(slab_holds_block(slab_of(s, p[i]), p[i]));
        test_fill(p[i], 64);
    }
    /* Three slabs with a class, each charged whole to the set's stats. */
    ck_assert_uint_eq(bare.assigned, 3);
    ck_assert_uint_eq(bare_held.allocated, 3 * SLAB_SIZE);
    ck_assert_uint_eq(bare_held.peak, 3 * SLAB_SIZE);
    slab_t *first = slab_of(segment_of(p[0]), p[0]);
    ck_assert_uint_eq(first->state, SLAB_FULL);
    ck_assert_uint_eq(bare.current[c]->state, SLAB_CURRENT);

    bare_give(p[3]);
    ck_assert_uint_eq(first->state, SLAB_PARTIAL);
    ck_assert_ptr_eq(bare.partial[c], first);
    for (size_t i = 0; i < per_slab; i++) {
        ck_assert(i == 3 || test_check_fill(p[i], 64)); /* p[3] is freed */
        if (i != 3)
            bare_give(p[i]);
    }
    /* Emptied, the slab loses its class and its charge; the peak stays. */
    ck_assert_uint_eq(first->state, SLAB_FREE);
    ck_assert_ptr_null(bare.partial[c]);
    ck_assert_uint_eq(bare.assigned, 2);
    ck_assert_uint_eq(bare_held.allocated, 2 * SLAB_SIZE);
    ck_assert_uint_eq(bare_held.peak, 3 * SLAB_SIZE);

    for (size_t i = per_slab; i < n; i++)
        bare_give(p[i]);
    /* The current slab keeps its class until the set shrinks. */
    pa_slab_shrink(&bare);
    ck_assert_uint_eq(bare.assigned, 0);
    ck_assert_uint_eq(bare_held.allocated, 0);
    ck_assert_uint_eq(bare.segment_count, 0);
    ck_assert_uint_ge(pa_segment_pool_count(), 1);
    free(p);
}
END_TEST

/* bare_give and slab_take with the live marks (and, hardened, the
 * canaries) a verify checks, set as an allocation sets them. */
static void *bare_take_live(unsigned c)
{
    void *p = slab_take(&bare, c);
    if (p) {
        slab_t *sl = slab_of(segment_of(p), p);
        pa_canary_set(p, sl->block_size);
        slab_live_set(sl, p);
    }
    return p;
}

static void bare_give_live(void *p)
{
    ck_assert(segment_live_clear(segment_of(p), p, /*atomic=*/false));
    bare_give(p);
}

/* Partly used slabs serve in the order their first block came back: the
 * one that has waited longest has had the most frees since. */
START_TEST(test_bare_set_partial_slabs_serve_oldest_first)
{
    const unsigned c = slab_class_of(64);
    const size_t per_slab = SLAB_SIZE / 64, n = per_slab * 4;
    char **p = calloc(n, sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        ck_assert_ptr_nonnull(p[i] = bare_take_live(c));
    slab_t *sl[4];
    for (size_t k = 0; k < 4; k++) {
        sl[k] = slab_of(segment_of(p[k * per_slab]), p[k * per_slab]);
        ck_assert_uint_eq(sl[k]->state, k < 3 ? SLAB_FULL : SLAB_CURRENT);
    }
    /* Slab 1 then 0 then 2 get a block back; 0 gets two more. */
    bare_give_live(p[per_slab + 1]);
    bare_give_live(p[0]);
    bare_give_live(p[2 * per_slab + 5]);
    bare_give_live(p[1]);
    bare_give_live(p[2]);
    ck_assert_int_eq(pa_slab_set_verify(&bare, NULL), 0);
    /* The current slab is spent: slab 1 serves next, then 0, then 2. */
    const size_t order[] = {1, 0, 0, 0, 2};
    const char *expect[] = {p[per_slab + 1], NULL, NULL, NULL, p[2 * per_slab + 5]};
    for (size_t i = 0; i < 5; i++) {
        char *q = bare_take_live(c);
        ck_assert_ptr_eq(slab_of(segment_of(q), q), sl[order[i]]);
        ck_assert(expect[i] == NULL || q == expect[i]);
        ck_assert_int_eq(pa_slab_set_verify(&bare, NULL), 0);
    }
    /* Slab 0 leaves from the middle of the queue when it empties. */
    bare_give_live(p[per_slab + 2]);
    bare_give_live(p[3]);
    bare_give_live(p[3 * per_slab]);
    for (size_t i = 0; i < per_slab; i++)
        if (i != 3)
            bare_give_live(p[i]);
    ck_assert_uint_eq(sl[0]->state, SLAB_FREE);
    ck_assert_int_eq(pa_slab_set_verify(&bare, NULL), 0);
    char *q = bare_take_live(c);
    ck_assert_ptr_eq(q, p[per_slab + 2]);
    q = bare_take_live(c);
    ck_assert_ptr_eq(q, p[3 * per_slab]);
    ck_assert_ptr_null(bare.partial[c]);
    ck_assert_int_eq(pa_slab_set_verify(&bare, NULL), 0);
    /* Every block back, so none is live when the segments are unmapped. */
    for (size_t i = 0; i < n; i++)
        if (segment_live_test(segment_of(p[i]), p[i]))
            bare_give_live(p[i]);
    ck_assert_uint_eq(bare.assigned, 1); /* the current slab keeps its class */
    free(p);
}
END_TEST

START_TEST(test_bare_set_classes_share_segments)
{
    void *a = slab_take(&bare, slab_class_of(16));
    void *b = slab_take(&bare, slab_class_of(SLAB_REQUEST_MAX));
    ck_assert(a && b);
    ck_assert_ptr_eq(segment_of(a), segment_of(b));
    ck_assert_ptr_ne(slab_of(segment_of(a), a), slab_of(segment_of(b), b));
    ck_assert_uint_eq(bare.segment_count, 1);
    ck_assert_uint_eq(bare_held.allocated, 2 * SLAB_SIZE);
    bare_give(a);
    bare_give(b);
}
END_TEST

/* ---- slabs in the allocator ------------------------------------------ */

static size_t allocated_now(void)
{
    size_t allocated = SIZE_MAX;
    ck_assert_int_eq(allocator_stats(&allocated, NULL, NULL), 0);
    return allocated;
}

static slab_set_t *slabs(void)
{
    return &pa_single_heap->slabs;
}

static slab_t *slab_holding(const void *p)
{
    return slab_of(segment_of(p), p);
}

static void setup(void)
{
    ck_assert_int_eq(allocator_init(0), 0);
}

static void teardown(void)
{
    ck_assert_int_eq(allocator_verify(), 0);
    allocator_cleanup();
}

/* The usable size of the slab block for a request of n bytes: a hardened
 * build's blocks keep a granule of their own beside their canary. */
static size_t slab_usable_for(size_t n)
{
    if (PA_CANARY_SIZE && n < PA_GRANULE)
        n = PA_GRANULE;
    return pa_slab_class_size[slab_class_of(n + PA_CANARY_SIZE)] - PA_CANARY_SIZE;
}

START_TEST(test_slab_classes_fit_tightly)
{
    for (size_t n = 0; n <= SLAB_REQUEST_MAX; n++) {
        unsigned c = slab_class_of(n);
        ck_assert_uint_lt(c, SLAB_CLASSES);
        ck_assert_uint_ge(pa_slab_class_size[c], n);
        ck_assert(c == 0 || pa_slab_class_size[c - 1] < n);
        ck_assert_uint_eq(pa_slab_class_size[c] % PA_GRANULE, 0);
    }
    /* A hardened build's canary takes the last bytes of each block. */
    for (size_t n = 1; n <= SLAB_REQUEST_MAX - PA_CANARY_SIZE; n += 7) {
        unsigned char *p = myalloc(n);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % PA_GRANULE, 0);
        ck_assert(segment_has_slabs(segment_of(p)));
        ck_assert_uint_eq(myalloc_usable_size(p), slab_usable_for(n));
        ck_assert_int_eq(myfree(p), 0);
    }
}
END_TEST

static int compare_pointers(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return (x > y) - (x < y);
}

/* The first blocks that slabs hand out lie in different cache sets: one
 * block of each class up to 1 KiB, in a fresh heap, each the first of its
 * slab, falls in at least three quarters as many L1 sets (64 lines a way)
 * as there are classes, not in the one or two that the slabs' starts
 * share. */
START_TEST(test_slab_first_blocks_spread_over_cache_sets)
{
    enum { LINES = 64 };
    bool set_used[LINES] = {false};
    unsigned classes = 0, sets = 0;
    void *p[SLAB_CLASSES];
    for (unsigned c = 0; c < SLAB_CLASSES && pa_slab_class_size[c] <= 1024; c++) {
        /* A hardened build serves no request from the 16-byte class: its
         * canary and the smallest request fill 24 bytes. */
        if (PA_CANARY_SIZE && pa_slab_class_size[c] - PA_CANARY_SIZE < PA_GRANULE)
            continue;
        p[classes] = myalloc(pa_slab_class_size[c] - PA_CANARY_SIZE);
        ck_assert_ptr_nonnull(p[classes]);
        slab_t *sl = slab_holding(p[classes]);
        ck_assert_uint_eq(sl->cls, c);
        ck_assert_uint_eq(slab_used(sl), 1);
        ck_assert(slab_holds_block(sl, p[classes]));
        size_t set = (uintptr_t)p[classes] / PA_CACHE_LINE % LINES;
        sets += !set_used[set];
        set_used[set] = true;
        classes++;
    }
    ck_assert_uint_ge(classes, 16);
    ck_assert_msg(sets * 4 >= classes * 3, "%u first blocks in %u cache sets", classes, sets);
    for (unsigned i = 0; i < classes; i++)
        ck_assert_int_eq(myfree(p[i]), 0);
}
END_TEST

START_TEST(test_slab_blocks_are_packed)
{
    enum { N = 100 };
    unsigned char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = myalloc(40); /* the 48-byte class */
        ck_assert_ptr_nonnull(p[i]);
        test_fill(p[i], myalloc_usable_size(p[i]));
    }
    /* Side by side from the slab's start, in whatever order the first
     * carve hands them out (slab_first_carve_start). */
    unsigned char *sorted[N];
    memcpy(sorted, p, sizeof sorted);
    qsort(sorted, N, sizeof *sorted, compare_pointers);
    ck_assert_ptr_eq(sorted[0], slab_holding(p[0])->start);
    for (int i = 1; i < N; i++)
        ck_assert_ptr_eq(sorted[i], sorted[i - 1] + 48);
    for (int i = 0; i < N; i++) {
        ck_assert(test_check_fill(p[i], myalloc_usable_size(p[i])));
        ck_assert_int_eq(myfree(p[i]), 0);
    }
    /* The last block freed is the first handed out again. */
    unsigned char *again = myalloc(48 - PA_CANARY_SIZE);
    ck_assert_ptr_eq(again, p[N - 1]);
    ck_assert_int_eq(myfree(again), 0);
}
END_TEST

START_TEST(test_slab_full_partial_free)
{
    const size_t per_slab = SLAB_SIZE / 64;
    const size_t n = per_slab * 5 / 2;
    unsigned char **p = calloc(n, sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) {
        p[i] = myalloc(64 - PA_CANARY_SIZE); /* the 64-byte class */
        ck_assert_ptr_nonnull(p[i]);
    }
    slab_t *first = slab_holding(p[0]);
    ck_assert_uint_eq(slabs()->assigned, 3);
    ck_assert_uint_eq(first->state, SLAB_FULL);
    ck_assert_uint_eq(slab_used(first), per_slab);
    ck_assert_int_eq(allocator_verify(), 0);

    /* One block back: the slab can serve again, from its class's list. */
    ck_assert_int_eq(myfree(p[7]), 0);
    ck_assert_uint_eq(first->state, SLAB_PARTIAL);
    ck_assert_ptr_eq(slabs()->partial[slab_class_of(64)], first);
    ck_assert_int_eq(allocator_verify(), 0);

    /* All of it back: the slab loses its class and can serve any size. */
    for (size_t i = 0; i < per_slab; i++)
        if (i != 7)
            ck_assert_int_eq(myfree(p[i]), 0);
    ck_assert_uint_eq(first->state, SLAB_FREE);
    ck_assert_uint_eq(slabs()->assigned, 2);
    ck_assert_ptr_null(slabs()->partial[slab_class_of(64)]);
    ck_assert_int_eq(allocator_verify(), 0);
    unsigned char *other = myalloc(300);
    ck_assert_ptr_eq(slab_holding(other), first);
    ck_assert(slab_holds_block(first, other));
    ck_assert_uint_lt((uintptr_t)(other - (unsigned char *)first->start), SLAB_CARVE_BYTES);
    ck_assert_int_eq(myfree(other), 0);

    for (size_t i = per_slab; i < n; i++)
        ck_assert_int_eq(myfree(p[i]), 0);
    ck_assert_uint_eq(allocated_now(), 0);
    free(p);
}
END_TEST

START_TEST(test_slab_segments_go_back)
{
    /* Three segments' worth of 512-byte blocks. */
    const size_t n = 3 * SEGMENT_BLOCK_SLABS * (SLAB_SIZE / 512);
    unsigned char **p = calloc(n, sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) {
        p[i] = myalloc(512);
        ck_assert_ptr_nonnull(p[i]);
    }
    ck_assert_uint_ge(slabs()->segment_count, 3);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(myfree(p[i]), 0);
    /* Kept: the segment of the current slab, and one spare. */
    ck_assert_uint_le(slabs()->segment_count, 2);
    ck_assert_uint_ge(pa_segment_pool_count(), 1);
    ck_assert_uint_eq(allocated_now(), 0);
    free(p);
}
END_TEST

START_TEST(test_slab_refuses_bad_frees)
{
    unsigned char *a = myalloc(48), *b = myalloc(48);
    ck_assert(a && b);
    const segment_t *s = segment_of(a);
    unsigned char *bad[] = {
        a + 16,                                 /* inside a, on a granule */
        a + 8,                                  /* inside a, misaligned */
        b + 48,                                 /* never carved */
        (unsigned char *)s + 64,                /* the segment header */
        (unsigned char *)s + (SEGMENT_SLABS - 1) * SLAB_SIZE, /* a slab without a class */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        ck_assert_int_eq(myfree(bad[i]), -1);
        ck_assert_int_eq(errno, EINVAL);
    }
    ck_assert_int_eq(myfree(a), 0);
    errno = 0;
    ck_assert_int_eq(myfree(a), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(myfree(b), 0);
}
END_TEST

static Suite *slab_suite(void)
{
    Suite *s = suite_create("slab");
    TCase *bare_tc = tcase_create("bare");
    tcase_add_checked_fixture(bare_tc, bare_setup, bare_teardown);
    tcase_add_test(bare_tc, test_bare_set_takes_and_gives);
    tcase_add_test(bare_tc, test_bare_set_classes_share_segments);
    tcase_add_test(bare_tc, test_bare_set_partial_slabs_serve_oldest_first);
    suite_add_tcase(s, bare_tc);
    TCase *tc = tcase_create("slab");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_slab_classes_fit_tightly);
    tcase_add_test(tc, test_slab_first_blocks_spread_over_cache_sets);
    tcase_add_test(tc, test_slab_blocks_are_packed);
    tcase_add_test(tc, test_slab_full_partial_free);
    tcase_add_test(tc, test_slab_segments_go_back);
    tcase_add_test(tc, test_slab_refuses_bad_frees);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(slab_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
