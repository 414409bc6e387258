/* SPDX-License-Identifier: MIT */
/*
 * check_free.c - myfree of pointers it must refuse: foreign,
 * interior and misaligned pointers, double frees (after merges, after
 * reuse, of large blocks) and frees after allocator_cleanup().
 *
 * Single-threaded, through <pallocator.h> only; the helpers and the
 * fixture are in api_helpers.h.
 */
#include "api_helpers.h"
#include "check_main.h"

/* ------------------------------------------------------------------ */
/* Invalid frees                                                        */
/* ------------------------------------------------------------------ */

static _Alignas(16) char global_buffer[256];
static const _Alignas(16) char global_const[64] = "a constant";

START_TEST(test_free_foreign_pointers)
{
    _Alignas(16) char on_stack[128];
    int local = 0;
    char *libc_block = malloc(64);
    char *libc_big = malloc(2 * MiB);
    unsigned char *live;

    ck_assert_int_eq(allocator_init(_i), 0);
    live = myalloc(100);
    ck_assert_ptr_nonnull(libc_block);
    ck_assert_ptr_nonnull(libc_big);
    ck_assert_ptr_nonnull(live);
    test_fill(live, 100);

    ck_assert_int_eq(myfree(NULL), 0);
    errno = 0;
    ck_assert_uint_eq(myalloc_usable_size(NULL), 0);

    check_invalid_pointer(on_stack, "stack array");
    check_invalid_pointer(&local, "stack int");
    check_invalid_pointer(global_buffer, "global array");
    check_invalid_pointer(global_buffer + 16, "global array + 16");
    check_invalid_pointer((void *)(uintptr_t)global_const, "const global");
    check_invalid_pointer((void *)(uintptr_t)"a string literal", "string literal");
    check_invalid_pointer(libc_block, "libc malloc block");
    check_invalid_pointer(libc_big, "libc malloc large block");
    check_invalid_pointer((void *)(uintptr_t)&cmp_uintptr, "function address");
    check_invalid_pointer((void *)(uintptr_t)16, "address 16");
    check_invalid_pointer((void *)(uintptr_t)0x1001, "address 0x1001");
    check_invalid_pointer((void *)(uintptr_t)0x10000, "address 0x10000");
    check_invalid_pointer((void *)(UINTPTR_MAX & ~(uintptr_t)15), "top of address space");
    check_invalid_pointer((void *)((uintptr_t)1 << 46), "unmapped address 2^46");

    ck_assert(test_check_fill(live, 100));
    ck_assert_int_eq(myfree(live), 0);
    free(libc_block);
    free(libc_big);
}
END_TEST

START_TEST(test_free_interior_and_misaligned)
{
    unsigned char *p = myalloc(256), *big = myalloc(2 * MiB);
    static const size_t offs[] = { 1, 2, 4, 8, 15, 16, 17, 32, 128, 240, 255 };
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(big);
    test_fill(p, 256);
    block_fill(big, 2 * MiB);
    for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
        char what[64];
        snprintf(what, sizeof what, "small block + %zu", offs[k]);
        check_invalid_pointer(p + offs[k], what);
        snprintf(what, sizeof what, "large block + %zu", offs[k]);
        check_invalid_pointer(big + offs[k], what);
    }
    check_invalid_pointer(big + MiB, "large block + 1 MiB");
    check_invalid_pointer(big + 4096, "large block + 4096");
    ck_assert(test_check_fill(p, 256));
    ck_assert(block_ok(big, 2 * MiB));
    ck_assert_uint_ge(myalloc_usable_size(p), 256);
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_int_eq(myfree(big), 0);
    ck_assert_uint_eq(get_stats().allocated, 0);
}
END_TEST

START_TEST(test_double_free)
{
    void *p, *z;
    ck_assert_int_eq(allocator_init(_i), 0);
    p = myalloc(100);
    z = myalloc(0);
    ck_assert_ptr_nonnull(z);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(myfree(p), 0);
    check_invalid_pointer(p, "block freed just before");
    check_invalid_pointer(p, "block freed just before (third time)");
    ck_assert_int_eq(myfree(z), 0);
    check_invalid_pointer(z, "zero-size block freed before");
    ck_assert_uint_eq(get_stats().allocated, 0);
}
END_TEST

/* a, b, c, d adjacent; free a, c, then b (merging with both), then d.
 * Freeing 64 other blocks of the same size first would fill any per-size
 * cache in front of the free lists, so that a, b and c really reach them
 * and merge. */
static void check_free_after_merge(size_t size)
{
    enum { FILLERS = 64 };
    unsigned char *filler[FILLERS];
    unsigned char *a, *b, *c, *d;
    char what[80];

    for (int i = 0; i < FILLERS; i++) {
        filler[i] = myalloc(size);
        ck_assert_ptr_nonnull(filler[i]);
    }
    a = myalloc(size);
    b = myalloc(size);
    c = myalloc(size);
    d = myalloc(size);
    ck_assert(a && b && c && d);
    test_fill(d, size);
    for (int i = 0; i < FILLERS; i++)
        ck_assert_int_eq(myfree(filler[i]), 0);
    ck_assert_int_eq(myfree(a), 0);
    ck_assert_int_eq(myfree(c), 0);
    ck_assert_int_eq(myfree(b), 0); /* merges with both neighbours */
    snprintf(what, sizeof what, "%zu-byte block merged with both freed neighbours", size);
    check_invalid_pointer(b, what);
    snprintf(what, sizeof what, "first %zu-byte block of a merged run", size);
    check_invalid_pointer(a, what);
    snprintf(what, sizeof what, "last %zu-byte block of a merged run", size);
    check_invalid_pointer(c, what);
    check_invalid_pointer(filler[FILLERS / 2], "freed filler block");
    ck_assert(test_check_fill(d, size));
    ck_assert_int_eq(myfree(d), 0);
    snprintf(what, sizeof what, "%zu-byte block merged into the free remainder", size);
    check_invalid_pointer(d, what);
}

START_TEST(test_double_free_after_merge)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    check_free_after_merge(64);
    check_free_after_merge(10000); /* 64 is a slab size, these two are TLSF */
    check_free_after_merge(100000);
    ck_assert_uint_eq(get_stats().allocated, 0);
}
END_TEST

/*
 * Frees count blocks of small_size (a contiguous run, closed by a guard),
 * then allocates blocks of big_size until the freed memory is handed out
 * again: the stale pointers must be rejected, except where a new block
 * happens to start at exactly the same address (then it is live again).
 * For sizes served by slabs, more blocks are freed than a slab holds, so a
 * whole slab empties and goes to another size. Freed medium blocks wait in
 * the thread's cache until statistics are read, which gives them back to
 * the arena, where they merge.
 */
static void check_stale_after_reuse(size_t small_size, size_t count, size_t big_size)
{
    enum { MAXN = 4096 };
    unsigned char **stale = calloc(count, sizeof *stale);
    unsigned char **got = calloc(MAXN, sizeof *got);
    unsigned char *guard;
    size_t n = 0, covered = 0, checked = 0;

    ck_assert(stale && got);
    for (size_t i = 0; i < count; i++) {
        stale[i] = myalloc(small_size);
        ck_assert_ptr_nonnull(stale[i]);
    }
    guard = myalloc(small_size);
    ck_assert_ptr_nonnull(guard);
    for (size_t i = 0; i < count; i++)
        ck_assert_int_eq(myfree(stale[i]), 0);
    (void)get_stats(); /* cached medium blocks go back to the arena */

    while (n < MAXN && !covered) {
        unsigned char *q = myalloc(big_size);
        size_t u;
        ck_assert_ptr_nonnull(q);
        got[n++] = q;
        u = myalloc_usable_size(q);
        for (size_t i = 0; i < count; i++)
            if (q < stale[i] && stale[i] < q + u)
                covered++;
    }
    ck_assert_msg(covered, "memory of %zu freed %zu-byte blocks was not handed out again "
                  "to %zu requests of %zu bytes", count, small_size, n, big_size);
    for (size_t i = 0; i < count; i++) {
        int live_start = 0;
        char what[96];
        for (size_t j = 0; j < n; j++)
            live_start |= got[j] == stale[i];
        if (live_start)
            continue;
        snprintf(what, sizeof what, "freed %zu-byte block %zu, memory reused by %zu-byte blocks",
                 small_size, i, big_size);
        check_invalid_pointer(stale[i], what);
        checked++;
    }
    ck_assert_uint_gt(checked, 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(myfree(got[i]), 0);
    ck_assert_int_eq(myfree(guard), 0);
    free(stale);
    free(got);
}

START_TEST(test_double_free_after_reuse)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    check_stale_after_reuse(48, 3000, 96);
    check_stale_after_reuse(32, 4500, 200);
    check_stale_after_reuse(1500, 100, 5000);
    check_stale_after_reuse(9000, 40, 30000);
    check_stale_after_reuse(20000, 20, 70000);
    ck_assert_uint_eq(get_stats().allocated, 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

START_TEST(test_double_free_large)
{
    unsigned char *p = myalloc(MiB + 1), *q = myalloc(6 * MiB), *keep = myalloc(100);
    ck_assert(p && q && keep);
    ck_assert_int_eq(myfree(p), 0);
    check_invalid_pointer(p, "large block freed before");
    ck_assert_int_eq(myfree(q), 0);
    check_invalid_pointer(q, "6 MiB block freed before");
    check_invalid_pointer(q + 4096, "inside a freed large block");
    ck_assert_int_eq(myfree(keep), 0);
    ck_assert_uint_eq(get_stats().allocated, 0);
}
END_TEST

START_TEST(test_free_after_cleanup)
{
    void *p, *q;
    struct pa_stats s;
    ck_assert_int_eq(allocator_init(_i), 0);
    p = myalloc(100);
    q = myalloc(3 * MiB);
    ck_assert(p && q);
    ck_assert_int_eq(allocator_cleanup(), 0);
    s = get_stats();
    ck_assert(s.allocated == 0 && s.freed == 0 && s.peak == 0);
    /* Nothing allocated since the cleanup, so no live block can start there. */
    check_invalid_pointer(p, "small block from before allocator_cleanup");
    check_invalid_pointer(q, "large block from before allocator_cleanup");
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *free_suite(void)
{
    Suite *s = suite_create("free");
    TCase *tc;

    tc = tcase_create("free");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_free_foreign_pointers, 0, 2);
    tcase_add_test(tc, test_free_interior_and_misaligned);
    tcase_add_loop_test(tc, test_double_free, 0, 2);
    tcase_add_loop_test(tc, test_double_free_after_merge, 0, 2);
    tcase_add_loop_test(tc, test_double_free_after_reuse, 0, 2);
    tcase_add_test(tc, test_double_free_large);
    tcase_add_loop_test(tc, test_free_after_cleanup, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

PA_CHECK_MAIN(free_suite)
