/* SPDX-License-Identifier: MIT */
/*
 * check_realloc.c - myrealloc: NULL, contents kept, a block kept while
 * the request fits it, growth that moves, invalid pointers, size 0 and a failed request that keeps the block.
 *
 * Single-threaded, through <pallocator.h> only; the helpers and the
 * fixture are in api_helpers.h.
 */
#include "api_helpers.h"
#include "check_main.h"

/* ------------------------------------------------------------------ */
/* myrealloc                                                            */
/* ------------------------------------------------------------------ */

START_TEST(test_realloc_null_is_alloc)
{
    void *p = myrealloc(NULL, 100);
    ck_assert_ptr_nonnull(p);
    ck_assert(is_aligned(p));
    ck_assert_uint_ge(myalloc_usable_size(p), 100);
    ck_assert_uint_eq(get_stats().allocated, myalloc_usable_size(p));
    test_fill(p, 100);
    ck_assert(test_check_fill(p, 100));
    ck_assert_int_eq(myfree(p), 0);
    p = myrealloc(NULL, 3 * MiB);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(myalloc_usable_size(p), 3 * MiB);
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_uint_eq(get_stats().allocated, 0);
}
END_TEST

START_TEST(test_realloc_keeps_contents)
{
    static const size_t steps[] = {
        100, 200, 1000, 1001, 4096, 10000, 100000, MiB - 1, 2 * MiB, 8 * MiB,
        8 * MiB + 1, 3 * MiB, MiB + 1, MiB, 500000, 1000, 17, 1, 0, 64, 2 * MiB,
    };
    const size_t maxs = 8 * MiB + 1;
    unsigned char *ref = malloc(maxs);
    uint64_t rng = 4242;
    unsigned char *p;
    size_t cur;

    ck_assert_ptr_nonnull(ref);
    for (size_t i = 0; i < maxs; i++)
        ref[i] = (unsigned char)test_rand(&rng);
    ck_assert_int_eq(allocator_init(_i), 0);

    cur = steps[0];
    p = myalloc(cur);
    ck_assert_ptr_nonnull(p);
    memcpy(p, ref, cur);
    for (size_t k = 1; k < sizeof steps / sizeof steps[0]; k++) {
        size_t s = steps[k], keep = cur < s ? cur : s;
        unsigned char *q = myrealloc(p, s);
        ck_assert_msg(q != NULL, "myrealloc(%zu -> %zu) failed", cur, s);
        ck_assert(is_aligned(q));
        ck_assert_msg(myalloc_usable_size(q) >= s, "myrealloc to %zu: usable %zu",
                      s, myalloc_usable_size(q));
        ck_assert_msg(memcmp(q, ref, keep) == 0,
                      "myrealloc(%zu -> %zu) lost the first %zu bytes", cur, s, keep);
        if (q != p) {
            errno = 0;
            ck_assert_msg(myfree(p) == -1 && errno == EINVAL,
                          "old pointer still live after myrealloc moved it");
        }
        memcpy(q, ref, s);
        p = q;
        cur = s;
        ck_assert_int_eq(allocator_verify(), 0);
    }
    ck_assert_uint_eq(get_stats().allocated, myalloc_usable_size(p));
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_uint_eq(get_stats().allocated, 0);
    free(ref);
}
END_TEST

/* A request within an arena block's usable size and at least three
 * quarters of it keeps the block as it is, so a buffer growing step by
 * step pays nothing until it outgrows its block; a shrink below that
 * gives the tail back. */
START_TEST(test_realloc_within_block_keeps_it)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    unsigned char *p = myalloc(45000), *q;
    ck_assert_ptr_nonnull(p);
    size_t usable = myalloc_usable_size(p);
    ck_assert_uint_gt(usable, 46000); /* the class of 45000 starts at 48 KiB */
    test_fill(p, 45000);
    q = myrealloc(p, 45100);
    ck_assert_ptr_eq(q, p);
    ck_assert_uint_eq(myalloc_usable_size(p), usable);
    q = myrealloc(p, 38000);
    ck_assert_ptr_eq(q, p);
    ck_assert_uint_eq(myalloc_usable_size(p), usable);
    ck_assert(test_check_fill(p, 38000));
    q = myrealloc(p, 20000);
    ck_assert_ptr_eq(q, p); /* its successor is free: trimmed in place */
    ck_assert_uint_lt(myalloc_usable_size(p), usable);
    ck_assert_uint_ge(myalloc_usable_size(p), 20000);
    ck_assert(test_check_fill(p, 20000));
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_uint_eq(get_stats().allocated, 0);
}
END_TEST

/* A medium block that outgrows itself by a little, hemmed in by its
 * neighbour, moves to a block an eighth larger, where the next steps
 * fit; one that grows at once by half or more gets its size's class. */
START_TEST(test_realloc_step_leaves_room)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    unsigned char *p = myalloc(40000), *wall = myalloc(40000), *q;
    ck_assert(p && wall);
    size_t usable = myalloc_usable_size(p), step = usable + 100;
    /* wall lies right behind p in a fresh heap: p cannot grow in place. */
    unsigned char *copy = malloc(usable);
    ck_assert_ptr_nonnull(copy);
    test_fill(p, usable);
    memcpy(copy, p, usable);
    q = myrealloc(p, step);
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_ne(q, p);
    ck_assert(memcmp(q, copy, usable) == 0);
    ck_assert_uint_ge(myalloc_usable_size(q), step + step / 8);
    /* The next steps stay where it is. */
    unsigned char *r = myrealloc(q, step + 1000);
    ck_assert_ptr_eq(r, q);
    r = myrealloc(q, 65536); /* half again: its class, a sixteenth more */
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_ge(myalloc_usable_size(r), 65536);
    ck_assert_uint_lt(myalloc_usable_size(r), 65536 + 65536 / 8);
    ck_assert(memcmp(r, copy, usable) == 0);
    free(copy);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myfree(r), 0);
    ck_assert_int_eq(myfree(wall), 0);
    ck_assert_uint_eq(get_stats().allocated, 0);
}
END_TEST

START_TEST(test_realloc_grow_moves)
{
    /* a is hemmed in by b, so a big growth cannot happen in place. */
    unsigned char *a = myalloc(256), *b = myalloc(256), *c;
    unsigned char copy[256];
    size_t newsize = 200000;

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    test_fill(a, 256);
    test_fill(b, 256);
    memcpy(copy, a, 256);
    c = myrealloc(a, newsize);
    ck_assert_ptr_nonnull(c);
    ck_assert(is_aligned(c));
    ck_assert_uint_ge(myalloc_usable_size(c), newsize);
    ck_assert(memcmp(c, copy, 256) == 0);
    memset(c + 256, 0x11, newsize - 256);      /* all of it is writable */
    ck_assert_msg(test_check_fill(b, 256), "growing a overwrote its neighbour b");
    if (c != a)
        check_invalid_pointer(a, "block moved away by myrealloc");
    ck_assert_uint_eq(get_stats().allocated,
                      myalloc_usable_size(b) + myalloc_usable_size(c));
    /* And into a mapping of its own. */
    a = myrealloc(c, 5 * MiB);
    ck_assert_ptr_nonnull(a);
    ck_assert(memcmp(a, copy, 256) == 0);
    ck_assert(a[newsize - 1] == 0x11);
    a[5 * MiB - 1] = 1;
    ck_assert(test_check_fill(b, 256));
    ck_assert_int_eq(myfree(a), 0);
    ck_assert_int_eq(myfree(b), 0);
    ck_assert_uint_eq(get_stats().allocated, 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

START_TEST(test_realloc_invalid)
{
    _Alignas(16) char on_stack[64];
    unsigned char *p = myalloc(300);
    unsigned char *q;
    ck_assert_ptr_nonnull(p);
    test_fill(p, 300);

    check_invalid_pointer(on_stack, "stack array");
    check_invalid_pointer(p + 16, "interior pointer p+16");
    check_invalid_pointer(p + 1, "interior pointer p+1");
    ck_assert(test_check_fill(p, 300));

    q = myalloc(40);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(myfree(q), 0);
    check_invalid_pointer(q, "freed block");

    ck_assert(test_check_fill(p, 300));
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

START_TEST(test_realloc_zero)
{
    unsigned char *p = myalloc(500), *q, *r;
    ck_assert_ptr_nonnull(p);
    q = myrealloc(p, 0);
    ck_assert_msg(q != NULL, "myrealloc(p, 0) must return a block, not free");
    ck_assert(is_aligned(q));
    if (q != p)
        check_invalid_pointer(p, "block replaced by myrealloc(p, 0)");
    ck_assert_uint_gt(myalloc_usable_size(q), 0);
    /* Large too. */
    r = myalloc(2 * MiB);
    ck_assert_ptr_nonnull(r);
    p = myrealloc(r, 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(myfree(q), 0);
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_uint_eq(get_stats().allocated, 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

START_TEST(test_realloc_enomem_keeps_block)
{
    static const size_t huge[] = { SIZE_MAX, SIZE_MAX - 8, SIZE_MAX - 4096,
                                   (size_t)PTRDIFF_MAX + 1 };
    unsigned char *small = myalloc(700), *large = myalloc(3 * MiB);
    ck_assert_ptr_nonnull(small);
    ck_assert_ptr_nonnull(large);
    test_fill(small, 700);
    block_fill(large, 3 * MiB);
    for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
        struct pa_stats before = get_stats();
        void *r;
        int e;
        errno = 0;
        r = myrealloc(small, huge[k]);
        e = errno;
        ck_assert_msg(r == NULL && e == ENOMEM, "myrealloc(small, %zu) = %p errno %d",
                      huge[k], r, e);
        errno = 0;
        r = myrealloc(large, huge[k]);
        e = errno;
        ck_assert_msg(r == NULL && e == ENOMEM, "myrealloc(large, %zu) = %p errno %d",
                      huge[k], r, e);
        ck_assert(stats_equal(before, get_stats()));
        ck_assert(myalloc_usable_size(small) >= 700);
        ck_assert(myalloc_usable_size(large) >= 3 * MiB);
        ck_assert(test_check_fill(small, 700));
        ck_assert(block_ok(large, 3 * MiB));
    }
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myfree(small), 0);
    ck_assert_int_eq(myfree(large), 0);
    ck_assert_uint_eq(get_stats().allocated, 0);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *realloc_suite(void)
{
    Suite *s = suite_create("realloc");
    TCase *tc;

    tc = tcase_create("realloc");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_realloc_null_is_alloc);
    tcase_add_loop_test(tc, test_realloc_keeps_contents, 0, 2);
    tcase_add_loop_test(tc, test_realloc_within_block_keeps_it, 0, 2);
    tcase_add_loop_test(tc, test_realloc_step_leaves_room, 0, 2);
    tcase_add_test(tc, test_realloc_grow_moves);
    tcase_add_test(tc, test_realloc_invalid);
    tcase_add_test(tc, test_realloc_zero);
    tcase_add_test(tc, test_realloc_enomem_keeps_block);
    suite_add_tcase(s, tc);
    return s;
}

PA_CHECK_MAIN(realloc_suite)
