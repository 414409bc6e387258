/* SPDX-License-Identifier: MIT */
/*
 * check_pages.c - the page-mapping layer, the segment map and segments:
 * aligned mappings, O(1) lookups that never touch foreign memory, the live
 * map (a byte per granule), and the retire/reuse cycle of segments.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "os.h"
#include "segmap.h"
#include "segment.h"
#include "testutil.h"

static struct heap *const fake_owner = (struct heap *)(uintptr_t)0x1000;
static struct arena *const fake_arena = (struct arena *)(uintptr_t)0x2000;

/* Returns 1 when [addr, addr + size) lies inside one line of /proc/self/maps. */
static int mapped_in_maps(const void *addr, size_t size)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    unsigned long lo, hi;
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= (uintptr_t)addr &&
            (uintptr_t)addr + size <= hi)
            found = 1;
    fclose(f);
    return found;
}

START_TEST(test_map_aligned_alignments)
{
    static const size_t aligns[] = {4096, 65536, 1 << 20, PA_SEGMENT_SIZE};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        size_t size = 3 * aligns[i];
        char *p = pa_os_map_aligned(size, aligns[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % aligns[i], 0);
        memset(p, 0xab, size);
        ck_assert_int_eq(p[size - 1], (char)0xab);
        ck_assert(mapped_in_maps(p, size));
        pa_os_unmap(p, size);
        ck_assert(!mapped_in_maps(p, 1));
    }
}
END_TEST

START_TEST(test_map_aligned_overflow)
{
    ck_assert_ptr_null(pa_os_map_aligned(SIZE_MAX - 4095, PA_SEGMENT_SIZE));
}
END_TEST

START_TEST(test_segmap_register_lookup)
{
    char *base = pa_os_map_aligned(2 * PA_SEGMENT_SIZE, PA_SEGMENT_SIZE);
    ck_assert_ptr_nonnull(base);
    ck_assert_uint_eq(segmap_lookup(base), 0);
    ck_assert(pa_segmap_register((uintptr_t)base, PA_SEGMENT_SIZE, SEGMAP_POOLED));
    ck_assert_uint_eq(segmap_lookup(base), SEGMAP_POOLED);
    ck_assert_uint_eq(segmap_lookup(base + PA_SEGMENT_SIZE - 1), SEGMAP_POOLED);
    ck_assert_uint_eq(segmap_lookup(base + PA_SEGMENT_SIZE), 0);
    ck_assert_uint_eq(pa_segmap_count(), 1);
    /* A segment's entry names its owner, and whether it holds slabs. */
    pa_segmap_update((uintptr_t)base, PA_SEGMENT_SIZE, (uintptr_t)fake_owner | SEGMAP_SLABS);
    ck_assert_uint_eq(segmap_lookup(base + 100), (uintptr_t)fake_owner | SEGMAP_SLABS);

    /* A large mapping covers several slots, each naming its base. */
    ck_assert(pa_segmap_register((uintptr_t)base, 2 * PA_SEGMENT_SIZE,
                              (uintptr_t)base | SEGMAP_LARGE));
    ck_assert_uint_eq(segmap_lookup(base + PA_SEGMENT_SIZE + 100),
                      (uintptr_t)base | SEGMAP_LARGE);
    ck_assert_uint_eq(pa_segmap_count(), 2);
    pa_segmap_unregister((uintptr_t)base, 2 * PA_SEGMENT_SIZE);
    ck_assert_uint_eq(segmap_lookup(base), 0);
    ck_assert_uint_eq(segmap_lookup(base + PA_SEGMENT_SIZE), 0);
    ck_assert_uint_eq(pa_segmap_count(), 0);
    /* Reset unmaps the table itself (allocator_cleanup leaves no mapping). */
    uintptr_t *table = pa_segmap_table();
    ck_assert_ptr_nonnull(table);
    ck_assert(test_is_mapped(table));
    pa_segmap_reset();
    ck_assert_uint_eq(segmap_lookup(base), 0);
    ck_assert(!test_is_mapped(table));
    /* And the map works again after a reset. */
    ck_assert(pa_segmap_register((uintptr_t)base, PA_SEGMENT_SIZE, SEGMAP_POOLED));
    ck_assert_uint_eq(segmap_lookup(base), SEGMAP_POOLED);
    pa_segmap_unregister((uintptr_t)base, PA_SEGMENT_SIZE);
    pa_segmap_reset();
    pa_os_unmap(base, 2 * PA_SEGMENT_SIZE);
}
END_TEST

START_TEST(test_segmap_foreign_addresses)
{
    int local;
    static int global;
    ck_assert_uint_eq(segmap_lookup(NULL), 0);
    ck_assert_uint_eq(segmap_lookup((void *)1), 0);
    ck_assert_uint_eq(segmap_lookup(&local), 0);
    ck_assert_uint_eq(segmap_lookup(&global), 0);
    /* Beyond the user address space: refused without reading the table. */
    ck_assert_uint_eq(segmap_lookup((void *)(uintptr_t)0xffff800000001000ULL), 0);
    ck_assert_uint_eq(segmap_lookup((void *)UINTPTR_MAX), 0);
    /* The same once the table exists; the last piece it covers reads 0
     * until registered, and a range past its end cannot be registered. */
    char *base = pa_os_map_aligned(PA_SEGMENT_SIZE, PA_SEGMENT_SIZE);
    ck_assert_ptr_nonnull(base);
    ck_assert(pa_segmap_register((uintptr_t)base, PA_SEGMENT_SIZE, SEGMAP_POOLED));
    uintptr_t end = (uintptr_t)1 << SEGMAP_VA_BITS;
    ck_assert_uint_eq(segmap_lookup(&local), 0);
    ck_assert_uint_eq(segmap_lookup((void *)(end - 1)), 0);
    ck_assert_uint_eq(segmap_lookup((void *)end), 0);
    ck_assert_uint_eq(segmap_lookup((void *)(uintptr_t)0xffff800000001000ULL), 0);
    ck_assert_uint_eq(segmap_lookup((void *)UINTPTR_MAX), 0);
    ck_assert(!pa_segmap_register(end, PA_SEGMENT_SIZE, SEGMAP_POOLED));
    ck_assert(pa_segmap_register(end - PA_SEGMENT_SIZE, PA_SEGMENT_SIZE, SEGMAP_POOLED));
    ck_assert_uint_eq(segmap_lookup((void *)(end - 1)), SEGMAP_POOLED);
    ck_assert_uint_eq(pa_segmap_count(), 2);
    pa_segmap_unregister(end - PA_SEGMENT_SIZE, PA_SEGMENT_SIZE);
    pa_segmap_unregister((uintptr_t)base, PA_SEGMENT_SIZE);
    ck_assert_uint_eq(pa_segmap_count(), 0);
    pa_segmap_reset();
    pa_os_unmap(base, PA_SEGMENT_SIZE);
}
END_TEST

/* The table starts as a window around the first range registered and
 * moves to one for the whole address space when a range falls outside,
 * keeping every entry. */
START_TEST(test_segmap_window_grows)
{
    char *base = pa_os_map_aligned(PA_SEGMENT_SIZE, PA_SEGMENT_SIZE);
    ck_assert_ptr_nonnull(base);
    ck_assert(pa_segmap_register((uintptr_t)base, PA_SEGMENT_SIZE, SEGMAP_POOLED));
    ck_assert_uint_eq(segmap_bounds_limit(pa_segmap.bounds), SEGMAP_WINDOW_ENTRIES);
    /* 4 TiB away: beyond the window whichever way; not mapped, which
     * registering does not need. */
    uintptr_t away = (uintptr_t)1 << 42;
    uintptr_t far = (uintptr_t)base > away ? (uintptr_t)base - away : (uintptr_t)base + away;
    ck_assert_uint_eq(segmap_lookup((void *)far), 0);
    ck_assert(pa_segmap_covers(far, PA_SEGMENT_SIZE));
    ck_assert_uint_eq(segmap_bounds_limit(pa_segmap.bounds), SEGMAP_ENTRIES);
    ck_assert(pa_segmap_register(far, PA_SEGMENT_SIZE, (uintptr_t)fake_owner));
    ck_assert_uint_eq(segmap_lookup((void *)(far + 5)), (uintptr_t)fake_owner);
    ck_assert_uint_eq(segmap_lookup(base + 5), SEGMAP_POOLED);
    ck_assert_uint_eq(pa_segmap_count(), 2);
    pa_segmap_unregister(far, PA_SEGMENT_SIZE);
    pa_segmap_unregister((uintptr_t)base, PA_SEGMENT_SIZE);
    ck_assert_uint_eq(segmap_lookup(base + 5), 0);
    pa_segmap_reset();
    pa_os_unmap(base, PA_SEGMENT_SIZE);
}
END_TEST

/* Sets, tests and clears marks at p and q in segment s (of either kind),
 * plainly and atomically. */
static void check_live_marks(segment_t *s, char *p, char *q)
{
    for (int atomic = 0; atomic < 2; atomic++) {
        ck_assert(!segment_live_test(s, p));
        segment_live_set(s, p, atomic);
        segment_live_set(s, q, atomic);
        ck_assert(segment_live_test(s, p));
        ck_assert(!segment_live_test(s, p + PA_GRANULE));
        ck_assert(!segment_live_test(s, p - PA_GRANULE));
        ck_assert(segment_live_clear(s, p, atomic));
        ck_assert(!segment_live_clear(s, p, atomic));
        ck_assert(segment_live_test(s, q));
        ck_assert(segment_live_clear(s, q, atomic));
        ck_assert(!segment_live_test(s, q));
    }
}

START_TEST(test_segment_live_marks)
{
    segment_t *s = pa_segment_acquire(fake_owner, NULL, -1);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq((uintptr_t)s % PA_SEGMENT_SIZE, 0);
    ck_assert_ptr_eq(s->owner, fake_owner);
    ck_assert_uint_eq(segmap_lookup((char *)s + 12345), (uintptr_t)fake_owner | SEGMAP_SLABS);
    char *p = (char *)segment_first_block(s) + BLOCK_HEADER_SIZE;
    check_live_marks(s, p, p + 64 * PA_GRANULE); /* a mark 64 bytes further on */
    ck_assert_uint_eq(s->live.mark[segment_granule(p)], 0);
    pa_segment_unmap(s);
    pa_segmap_reset();
}
END_TEST

/* An arena segment's marks are bits: neighbouring granules share a byte,
 * and one mark never touches another's. */
START_TEST(test_arena_live_marks_are_bits)
{
    segment_t *s = pa_segment_acquire(fake_owner, fake_arena, -1);
    ck_assert_ptr_nonnull(s);
    char *p = (char *)segment_first_block(s) + BLOCK_HEADER_SIZE + 3 * PA_GRANULE;
    check_live_marks(s, p, p + PA_GRANULE * 2); /* the same byte of the map */
    size_t g = segment_granule(p);
    segment_live_set(s, p, false);
    ck_assert_uint_eq(s->live.mark[g >> 3], 1u << (g & 7));
    for (size_t i = 0; i < SEGMENT_GRANULES / 8; i++)
        if (i != g >> 3)
            ck_assert_uint_eq(s->live.mark[i], 0);
    /* A mark of the last granule lies in the map's first eighth. */
    char *last = (char *)s + PA_SEGMENT_SIZE - PA_GRANULE;
    segment_live_set(s, last, true);
    ck_assert(segment_live_test(s, last));
    ck_assert_uint_eq(s->live.mark[SEGMENT_GRANULES / 8 - 1], 0x80);
    ck_assert(segment_live_clear(s, last, true));
    ck_assert(segment_live_clear(s, p, false));
    pa_segment_unmap(s);
    pa_segmap_reset();
}
END_TEST

START_TEST(test_segment_retire_and_reuse)
{
    segment_t *s = pa_segment_acquire(fake_owner, fake_arena, -1);
    ck_assert_ptr_nonnull(s);
    char *p = (char *)segment_first_block(s) + BLOCK_HEADER_SIZE;
    ck_assert_uint_eq(segmap_lookup(p), (uintptr_t)fake_owner); /* no slabs */
    segment_live_set(s, p, false);
    memset(p, 0x5a, 1 << 20);
    pa_segment_retire(s);
    /* Still readable and still in the map, but owned by nobody and with no
     * live mark: a racing free finds nothing to free. */
    ck_assert_ptr_null(s->owner);
    ck_assert(!segment_live_test(s, p));
    ck_assert_uint_eq(segmap_lookup(p), SEGMAP_POOLED);
    ck_assert_int_eq(p[100], 0); /* pages went back to the OS */
    ck_assert_uint_eq(pa_segment_pool_count(), 1);
    segment_t *again = pa_segment_acquire(fake_owner, fake_arena, -1);
    ck_assert_ptr_eq(again, s);
    ck_assert_uint_eq(pa_segment_pool_count(), 0);
    pa_segment_retire(again);
    pa_segment_pool_release_all();
    ck_assert_uint_eq(pa_segment_pool_count(), 0);
    ck_assert_uint_eq(segmap_lookup(p), 0);
    ck_assert(!mapped_in_maps(s, 1));
    pa_segmap_reset();
}
END_TEST

static Suite *pages_suite(void)
{
    Suite *s = suite_create("pages");
    TCase *tc = tcase_create("os");
    tcase_add_test(tc, test_map_aligned_alignments);
    tcase_add_test(tc, test_map_aligned_overflow);
    suite_add_tcase(s, tc);
    tc = tcase_create("pa_segmap");
    tcase_add_test(tc, test_segmap_register_lookup);
    tcase_add_test(tc, test_segmap_foreign_addresses);
    tcase_add_test(tc, test_segmap_window_grows);
    suite_add_tcase(s, tc);
    tc = tcase_create("segment");
    tcase_add_test(tc, test_segment_live_marks);
    tcase_add_test(tc, test_arena_live_marks_are_bits);
    tcase_add_test(tc, test_segment_retire_and_reuse);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pages_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
