/* SPDX-License-Identifier: MIT */
/*
 * check_introspect.c - allocator_stats() and allocator_verify() over long
 * random sequences (allocator_dump() is in check_dump.c).
 *
 * Single-threaded, through <pallocator.h> only; the helpers and the
 * fixture are in api_helpers.h.
 */
#include "api_helpers.h"
#include "check_main.h"

/* ------------------------------------------------------------------ */
/* Statistics                                                           */
/* ------------------------------------------------------------------ */

/* Single-threaded, peak is exact even when heap and large blocks peak at
 * different times. */
START_TEST(test_peak_exact_with_large_blocks)
{
    ck_assert_int_eq(allocator_init(0), 0);
    void *a = myalloc(1000);
    void *big = myalloc(3 * MiB);
    ck_assert(a && big);
    size_t ua = myalloc_usable_size(a), ubig = myalloc_usable_size(big);
    ck_assert_int_eq(myfree(big), 0);
    void *b = myalloc(5000);
    ck_assert_ptr_nonnull(b);
    size_t ub = myalloc_usable_size(b);
    struct pa_stats st = get_stats();
    ck_assert_uint_eq(st.allocated, ua + ub);
    ck_assert_uint_eq(st.peak, ua + ubig);
    ck_assert_int_eq(myfree(a), 0);
    ck_assert_int_eq(myfree(b), 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

START_TEST(test_stats)
{
    static const size_t sizes[] = { 10, 100, 1000, 5000, 40000, 300000, 2 * MiB + 3, 64 };
    enum { NS = sizeof sizes / sizeof sizes[0] };
    void *p[NS];
    size_t a = 7, f = 7, pk = 7, requested = 0, usable = 0, maxa = 0;
    struct pa_stats s;

    /* Uninitialised: all zero. */
    ck_assert_int_eq(allocator_stats(&a, &f, &pk), 0);
    ck_assert(a == 0 && f == 0 && pk == 0);
    ck_assert_int_eq(allocator_init(_i), 0);

    for (int k = 0; k < NS; k++) {
        p[k] = myalloc(sizes[k]);
        ck_assert_ptr_nonnull(p[k]);
        requested += sizes[k];
        usable += myalloc_usable_size(p[k]);
        s = get_stats();
        ck_assert_uint_eq(s.allocated, usable);
        ck_assert_uint_ge(s.peak, s.allocated);
        if (s.allocated > maxa)
            maxa = s.allocated;
    }
    s = get_stats();
    ck_assert_uint_ge(s.allocated, requested);
    if (_i == 0)
        ck_assert_uint_eq(s.peak, maxa);

    /* Free every other block. */
    for (int k = 0; k < NS; k += 2) {
        usable -= myalloc_usable_size(p[k]);
        ck_assert_int_eq(myfree(p[k]), 0);
        s = get_stats();
        ck_assert_uint_eq(s.allocated, usable);
        ck_assert_uint_ge(s.peak, maxa);
    }
    ck_assert_uint_gt(s.freed, 0);
    for (int k = 1; k < NS; k += 2)
        ck_assert_int_eq(myfree(p[k]), 0);
    s = get_stats();
    ck_assert_uint_eq(s.allocated, 0);
    ck_assert_uint_gt(s.freed, 0);
    ck_assert_uint_ge(s.peak, maxa);
    if (_i == 0)
        ck_assert_uint_eq(s.peak, maxa);

    /* Peak stays while allocated rises again below it. */
    p[0] = myalloc(10);
    ck_assert_ptr_nonnull(p[0]);
    ck_assert_uint_ge(get_stats().peak, maxa);
    ck_assert_int_eq(myfree(p[0]), 0);

    /* NULL arguments, in every combination. */
    s = get_stats();
    ck_assert_int_eq(allocator_stats(NULL, NULL, NULL), 0);
    a = f = pk = 12345;
    ck_assert_int_eq(allocator_stats(&a, NULL, NULL), 0);
    ck_assert(a == s.allocated && f == 12345 && pk == 12345);
    a = 12345;
    ck_assert_int_eq(allocator_stats(NULL, &f, NULL), 0);
    ck_assert(f == s.freed && a == 12345 && pk == 12345);
    f = 12345;
    ck_assert_int_eq(allocator_stats(NULL, NULL, &pk), 0);
    ck_assert(pk == s.peak && a == 12345 && f == 12345);
    ck_assert_int_eq(allocator_stats(&a, &f, NULL), 0);
    ck_assert(a == s.allocated && f == s.freed);
    ck_assert_int_eq(allocator_stats(NULL, &f, &pk), 0);
    ck_assert(f == s.freed && pk == s.peak);

    /* After cleanup: zero again. */
    ck_assert_int_eq(allocator_cleanup(), 0);
    a = f = pk = 9;
    ck_assert_int_eq(allocator_stats(&a, &f, &pk), 0);
    ck_assert(a == 0 && f == 0 && pk == 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* verify over long random sequences                                    */
/* ------------------------------------------------------------------ */

START_TEST(test_verify_random_ops)
{
    enum { SLOTS = 2048 };
    struct live_block *b = calloc(SLOTS, sizeof *b);
    const size_t ops = test_scale(200000);
    uint64_t rng = 0xabcdef12345ULL + (uint64_t)_i;
    size_t usable_sum = 0;

    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(allocator_init(_i), 0);
    for (size_t op = 1; op <= ops; op++) {
        size_t k = test_rand_below(&rng, SLOTS);
        size_t r = test_rand_below(&rng, 100);
        if (!b[k].p) {
            size_t s = random_size(&rng, 3 * MiB / 2);
            if (r < 30) {
                b[k].p = mycalloc(1, s);
                ck_assert_ptr_nonnull(b[k].p);
                ck_assert_msg(test_all_bytes(b[k].p, s < 4096 ? s : 4096, 0), "mycalloc not zeroed");
            } else {
                b[k].p = myalloc(s);
                ck_assert_msg(b[k].p != NULL, "op %zu: myalloc(%zu) failed", op, s);
            }
            ck_assert(is_aligned(b[k].p));
            b[k].n = s;
            b[k].u = myalloc_usable_size(b[k].p);
            ck_assert_uint_ge(b[k].u, s);
            usable_sum += b[k].u;
            block_fill(b[k].p, s);
        } else if (r < 55) {
            ck_assert_msg(block_ok(b[k].p, b[k].n), "op %zu: block %p (%zu bytes) overwritten",
                          op, (void *)b[k].p, b[k].n);
            usable_sum -= b[k].u;
            ck_assert_int_eq(myfree(b[k].p), 0);
            b[k].p = NULL;
        } else {
            size_t s = random_size(&rng, 3 * MiB / 2), keep = s < b[k].n ? s : b[k].n;
            unsigned char *q;
            ck_assert(block_ok(b[k].p, b[k].n));
            q = myrealloc(b[k].p, s);
            ck_assert_msg(q != NULL, "op %zu: myrealloc(%zu -> %zu) failed", op, b[k].n, s);
            ck_assert(is_aligned(q));
            ck_assert_msg(moved_ok(q, b[k].p, b[k].n, keep),
                          "op %zu: myrealloc(%zu -> %zu) lost contents", op, b[k].n, s);
            usable_sum -= b[k].u;
            b[k].p = q;
            b[k].n = s;
            b[k].u = myalloc_usable_size(q);
            ck_assert_uint_ge(b[k].u, s);
            usable_sum += b[k].u;
            block_fill(q, s);
        }
        if (op % 10000 == 0 || op == ops) {
            struct pa_stats s = get_stats();
            ck_assert_msg(allocator_verify() == 0, "verify failed after %zu ops", op);
            ck_assert_msg(s.allocated == usable_sum, "op %zu: allocated %zu, live usable %zu",
                          op, s.allocated, usable_sum);
            ck_assert_uint_ge(s.peak, s.allocated);
            check_disjoint(b, SLOTS);
        }
    }
    for (size_t k = 0; k < SLOTS; k++) {
        if (!b[k].p)
            continue;
        ck_assert(block_ok(b[k].p, b[k].n));
        ck_assert_int_eq(myfree(b[k].p), 0);
    }
    ck_assert_uint_eq(get_stats().allocated, 0);
    ck_assert_int_eq(allocator_verify(), 0);
    free(b);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *introspect_suite(void)
{
    Suite *s = suite_create("introspect");
    TCase *tc;

    tc = tcase_create("introspect");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_peak_exact_with_large_blocks);
    tcase_add_loop_test(tc, test_stats, 0, 2);
    tcase_add_loop_test(tc, test_verify_random_ops, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

PA_CHECK_MAIN(introspect_suite)
