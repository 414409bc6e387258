/* SPDX-License-Identifier: MIT */
/*
 * check_aligned.c - myalloc_aligned, mystrdup and mystrndup: every
 * alignment from 1 to 2 MiB against a range of sizes, contents, pointers
 * inside a block refused, usable sizes, myrealloc, the cost of a
 * page-aligned page, bad alignments, frees from another thread.
 *
 * Through <pallocator.h> only; loop tests run with _i = 0 (allocator_init(0))
 * and _i = 1 (allocator_init(1)).
 */
#include "api_helpers.h"
#include "check_main.h"

/* PA_CANARY_SIZE: a hardened build's blocks end in a canary beyond their
 * usable bytes, so a page-aligned page takes the next aligned class. */
#include "annotate.h"

#define ALIGN_MAX (2 * MiB)

static const size_t sizes[] = {
    0, 1, 15, 16, 17, 100, 1000, 4095, 4096, 4097, 5000, 8192, 8193, 12288,
    65536, 100000, 300000, MiB - 1, MiB, MiB + 1, 3 * MiB,
};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void init_mode(int concurrent)
{
    ck_assert_int_eq(allocator_init(concurrent), 0);
}

/* The sizes to try with alignment a: the fixed ones and a's neighbours. */
static size_t size_at(size_t i, size_t a)
{
    if (i < NSIZES)
        return sizes[i];
    return a - 1 + (i - NSIZES); /* a - 1, a, a + 1 */
}
#define NTRY (NSIZES + 3)

/* Every block is aligned, large enough, disjoint from the others, keeps
 * its contents and is freed exactly at its start. */
START_TEST(test_aligned_every_alignment)
{
    init_mode(_i);
    size_t nalign = 0;
    for (size_t a = 1; a <= ALIGN_MAX; a <<= 1)
        nalign++;
    struct live_block *b = calloc(nalign * NTRY, sizeof *b);
    ck_assert_ptr_nonnull(b);
    size_t n = 0;
    for (size_t a = 1; a <= ALIGN_MAX; a <<= 1) {
        for (size_t i = 0; i < NTRY; i++, n++) {
            size_t size = size_at(i, a);
            errno = 0;
            unsigned char *p = myalloc_aligned(a, size);
            ck_assert_msg(p != NULL, "myalloc_aligned(%zu, %zu) failed, errno %d", a, size,
                          errno);
            ck_assert_msg(((uintptr_t)p & (a - 1)) == 0 && is_aligned(p),
                          "myalloc_aligned(%zu, %zu) = %p", a, size, (void *)p);
            size_t u = myalloc_usable_size(p);
            ck_assert_msg(u >= size && u > 0, "usable %zu for %zu bytes at alignment %zu", u, size, a);
            block_fill(p, u);
            b[n] = (struct live_block){p, size, u};
        }
    }
    check_disjoint(b, n);
    ck_assert_int_eq(allocator_verify(), 0);
    for (size_t k = 0; k < n; k++) {
        ck_assert_msg(block_ok(b[k].p, b[k].u), "block %p of %zu bytes overwritten",
                      (void *)b[k].p, b[k].n);
        ck_assert_uint_eq(myalloc_usable_size(b[k].p), b[k].u);
        ck_assert_int_eq(myfree(b[k].p), 0);
    }
    ck_assert_uint_eq(get_stats().allocated, 0);
    ck_assert_int_eq(allocator_verify(), 0);
    free(b);
}
END_TEST

/* A pointer inside an aligned block, or just before it, is no block. */
START_TEST(test_aligned_interior_refused)
{
    init_mode(_i);
    static const size_t aligns[] = {32, 64, 4096, 16384, 65536, MiB, 2 * MiB};
    static const size_t lens[] = {24, 5000, 20000, 2 * MiB};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
            unsigned char *p = myalloc_aligned(aligns[i], lens[j]);
            ck_assert_ptr_nonnull(p);
            check_invalid_pointer(p + 16, "16 bytes into an aligned block");
            check_invalid_pointer(p + 16 + lens[j] / 2 / 16 * 16, "middle of an aligned block");
            check_invalid_pointer(p - 16, "16 bytes before an aligned block");
            ck_assert_int_eq(myfree(p), 0);
            check_invalid_pointer(p, "freed aligned block");
        }
    }
}
END_TEST

/* A page-aligned page costs one page: a slab block of 4 KiB (with a
 * hardened build's canary, of 8 KiB). */
START_TEST(test_aligned_page_cost)
{
    init_mode(_i);
    const size_t page_block = PA_CANARY_SIZE ? 8192 : 4096;
    const size_t line_block = PA_CANARY_SIZE ? 128 : 64;
    enum { N = 64 };
    void *p[N];
    for (int k = 0; k < N; k++) {
        p[k] = myalloc_aligned(4096, 4096);
        ck_assert_ptr_nonnull(p[k]);
        ck_assert_uint_eq((uintptr_t)p[k] & 4095, 0);
        ck_assert_uint_eq(myalloc_usable_size(p[k]), page_block - PA_CANARY_SIZE);
    }
    if (_i == 0)
        ck_assert_uint_eq(get_stats().allocated, N * (page_block - PA_CANARY_SIZE));
    for (int k = 0; k < N; k++)
        ck_assert_int_eq(myfree(p[k]), 0);
    /* The same for a 64-byte line: 64 bytes. */
    void *q = myalloc_aligned(64, 64);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(myalloc_usable_size(q), line_block - PA_CANARY_SIZE);
    ck_assert_int_eq(myfree(q), 0);
}
END_TEST

/* Over the slab sizes, the TLSF block costs its size, not the alignment. */
START_TEST(test_aligned_medium_cost)
{
    init_mode(_i);
    enum { N = 32 };
    void *p[N];
    for (int k = 0; k < N; k++) {
        p[k] = myalloc_aligned(64 * KiB, 20000);
        ck_assert_ptr_nonnull(p[k]);
        ck_assert_uint_eq((uintptr_t)p[k] & (64 * KiB - 1), 0);
        ck_assert_uint_lt(myalloc_usable_size(p[k]), 24 * KiB);
    }
    ck_assert_int_eq(allocator_verify(), 0);
    if (_i == 0)
        ck_assert_uint_lt(get_stats().allocated, N * 24 * KiB);
    for (int k = 0; k < N; k++)
        ck_assert_int_eq(myfree(p[k]), 0);
    ck_assert_uint_eq(get_stats().allocated, 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

START_TEST(test_aligned_einval)
{
    init_mode(_i);
    static const size_t bad[] = {0, 3, 6, 24, 48, 4097, 3 * MiB, SIZE_MAX, SIZE_MAX / 2};
    struct pa_stats before = get_stats();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = myalloc_aligned(bad[i], 64);
        ck_assert_msg(p == NULL && errno == EINVAL, "alignment %zu: %p, errno %d", bad[i], p,
                      errno);
    }
    ck_assert(stats_equal(before, get_stats()));
    errno = 0;
    ck_assert_ptr_null(myalloc_aligned(64, SIZE_MAX - 100));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(myalloc_aligned((size_t)1 << 62, 64));
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert(stats_equal(before, get_stats()));
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

/* myrealloc of an aligned block keeps its contents, in place or moved. */
START_TEST(test_aligned_realloc)
{
    init_mode(_i);
    static const size_t aligns[] = {32, 256, 4096, 65536, MiB, 4 * MiB};
    static const size_t lens[] = {40, 3000, 9000, 200000, 2 * MiB};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
            size_t n = lens[j];
            unsigned char *p = myalloc_aligned(aligns[i], n);
            ck_assert_ptr_nonnull(p);
            block_fill(p, n);
            size_t grown = n * 3 + 1;
            unsigned char *q = myrealloc(p, grown);
            ck_assert_ptr_nonnull(q);
            ck_assert(moved_ok(q, p, n, n < TEST_FULL_FILL_LIMIT ? n : TEST_EDGE_FILL));
            ck_assert_uint_ge(myalloc_usable_size(q), grown);
            unsigned char *r = myrealloc(q, n / 2);
            ck_assert_ptr_nonnull(r);
            ck_assert_int_eq(myfree(r), 0);
        }
    }
    ck_assert_uint_eq(get_stats().allocated, 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

struct handoff {
    void *blocks[64];
};

static void *free_all(void *arg)
{
    struct handoff *h = arg;
    for (int k = 0; k < 64; k++)
        if (myfree(h->blocks[k]) != 0)
            return (void *)1;
    return NULL;
}

/* Concurrent mode: aligned blocks freed by another thread come back. */
START_TEST(test_aligned_remote_free)
{
    init_mode(1);
    struct handoff h;
    for (int k = 0; k < 64; k++) {
        size_t a = (size_t)32 << (k % 16);
        h.blocks[k] = myalloc_aligned(a, (size_t)(k * 997) % 70000);
        ck_assert_ptr_nonnull(h.blocks[k]);
        ck_assert_uint_eq((uintptr_t)h.blocks[k] & (a - 1), 0);
    }
    pthread_t t;
    void *rc;
    ck_assert_int_eq(pthread_create(&t, NULL, free_all, &h), 0);
    ck_assert_int_eq(pthread_join(t, &rc), 0);
    ck_assert_ptr_null(rc);
    /* The owner takes them back on its next TLSF allocations. */
    for (int k = 0; k < 100; k++)
        ck_assert_int_eq(myfree(myalloc(20000)), 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

START_TEST(test_strdup)
{
    init_mode(_i);
    char *s = mystrdup("pallocator");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "pallocator");
    ck_assert_uint_ge(myalloc_usable_size(s), 11);
    char *e = mystrdup("");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e, "");
    char *n3 = mystrndup("pallocator", 3);
    ck_assert_str_eq(n3, "pal");
    char *n0 = mystrndup("pallocator", 0);
    ck_assert_str_eq(n0, "");
    /* n beyond the string: the whole string, nothing read past it. */
    char *all = mystrndup("abc", SIZE_MAX);
    ck_assert_str_eq(all, "abc");
    ck_assert_uint_lt(myalloc_usable_size(all), 64);
    /* Not NUL-terminated within n: only n bytes are read. */
    char raw[4] = {'w', 'x', 'y', 'z'};
    char *cut = mystrndup(raw, sizeof raw);
    ck_assert_str_eq(cut, "wxyz");
    size_t big = 300000;
    char *long_src = malloc(big + 1);
    memset(long_src, 'q', big);
    long_src[big] = '\0';
    char *long_copy = mystrdup(long_src);
    ck_assert_ptr_nonnull(long_copy);
    ck_assert_int_eq(memcmp(long_copy, long_src, big + 1), 0);
    free(long_src);
    char *blocks[] = {s, e, n3, n0, all, cut, long_copy};
    for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++)
        ck_assert_int_eq(myfree(blocks[k]), 0);
    ck_assert_uint_eq(get_stats().allocated, 0);
}
END_TEST

static Suite *aligned_suite(void)
{
    Suite *s = suite_create("aligned");
    TCase *tc = tcase_create("aligned");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_aligned_every_alignment, 0, 2);
    tcase_add_loop_test(tc, test_aligned_interior_refused, 0, 2);
    tcase_add_loop_test(tc, test_aligned_page_cost, 0, 2);
    tcase_add_loop_test(tc, test_aligned_medium_cost, 0, 2);
    tcase_add_loop_test(tc, test_aligned_einval, 0, 2);
    tcase_add_loop_test(tc, test_aligned_realloc, 0, 2);
    tcase_add_test(tc, test_aligned_remote_free);
    tcase_add_loop_test(tc, test_strdup, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

PA_CHECK_MAIN(aligned_suite)
