/* SPDX-License-Identifier: MIT */
/*
 * check_alloc.c - myalloc and mycalloc: alignment, no overlap,
 * contents kept, myalloc(0), reuse of freed memory, boundary sizes and
 * zeroed mycalloc blocks.
 *
 * Single-threaded, through <pallocator.h> only; the helpers and the
 * fixture are in api_helpers.h.
 */
#include "api_helpers.h"
#include "check_main.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static void expect_enomem_alloc(size_t size, const char *what)
{
    void *p;
    int e;
    errno = 0;
    p = myalloc(size);
    e = errno;
    ck_assert_msg(p == NULL && e == ENOMEM,
                  "myalloc(%s = %zu) returned %p errno %d; want NULL/ENOMEM",
                  what, size, p, e);
}

static void expect_enomem_calloc(size_t count, size_t size)
{
    void *p;
    int e;
    errno = 0;
    p = mycalloc(count, size);
    e = errno;
    ck_assert_msg(p == NULL && e == ENOMEM,
                  "mycalloc(%zu, %zu) returned %p errno %d; want NULL/ENOMEM",
                  count, size, p, e);
}

/* ------------------------------------------------------------------ */
/* Alignment                                                            */
/* ------------------------------------------------------------------ */

START_TEST(test_alignment)
{
    static const size_t large[] = {
        MiB - 1, MiB, MiB + 1, MiB + 8, MiB + 17, 3 * MiB + 5, 10 * MiB + 3,
    };
    const size_t nsmall = 4097;
    void **blocks = calloc(nsmall, sizeof *blocks);
    void *big[sizeof large / sizeof large[0]];
    ck_assert_ptr_nonnull(blocks);
    ck_assert_int_eq(allocator_init(_i), 0);

    /* Every size 0..4096 with myalloc, all live at once. */
    for (size_t s = 0; s < nsmall; s++) {
        void *p = myalloc(s);
        ck_assert_msg(p != NULL, "myalloc(%zu) failed", s);
        ck_assert_msg(is_aligned(p), "myalloc(%zu) = %p not 16-aligned", s, p);
        ck_assert_msg(myalloc_usable_size(p) >= s, "usable size of myalloc(%zu) too small", s);
        if (s)
            ((unsigned char *)p)[s - 1] = 0xee;
        blocks[s] = p;
    }
    for (size_t s = 0; s < nsmall; s++)
        ck_assert_int_eq(myfree(blocks[s]), 0);

    /* mycalloc, both argument orders. */
    for (size_t s = 0; s < nsmall; s++) {
        void *p = (s & 1) ? mycalloc(s, 1) : mycalloc(1, s);
        ck_assert_msg(p != NULL, "mycalloc for %zu bytes failed", s);
        ck_assert_msg(is_aligned(p), "mycalloc(%zu) = %p not 16-aligned", s, p);
        blocks[s] = p;
    }
    for (size_t s = 0; s < nsmall; s++)
        ck_assert_int_eq(myfree(blocks[s]), 0);

    /* myrealloc: one block walked through every size, up and down. */
    {
        void *p = NULL;
        for (size_t s = 0; s < nsmall; s += 3) {
            void *q = myrealloc(p, s);
            ck_assert_msg(q != NULL, "myrealloc to %zu failed", s);
            ck_assert_msg(is_aligned(q), "myrealloc(%zu) = %p not 16-aligned", s, q);
            p = q;
        }
        for (size_t s = nsmall - 1;; s -= 7) {
            void *q = myrealloc(p, s);
            ck_assert_msg(q != NULL, "myrealloc down to %zu failed", s);
            ck_assert_msg(is_aligned(q), "myrealloc(%zu) = %p not 16-aligned", s, q);
            p = q;
            if (s < 7)
                break;
        }
        ck_assert_int_eq(myfree(p), 0);
    }

    /* Large sizes, through all three calls. */
    for (size_t k = 0; k < sizeof large / sizeof large[0]; k++) {
        big[k] = myalloc(large[k]);
        ck_assert_msg(big[k] != NULL, "myalloc(%zu) failed", large[k]);
        ck_assert_msg(is_aligned(big[k]), "myalloc(%zu) = %p not 16-aligned", large[k], big[k]);
        ck_assert(myalloc_usable_size(big[k]) >= large[k]);
        ((unsigned char *)big[k])[large[k] - 1] = 1;
    }
    for (size_t k = 0; k < sizeof large / sizeof large[0]; k++) {
        void *c = mycalloc(large[k], 1);
        void *r;
        ck_assert_msg(c != NULL && is_aligned(c), "mycalloc(%zu) = %p", large[k], c);
        r = myrealloc(big[k], large[k] + 4096 * k + 1);
        ck_assert_msg(r != NULL && is_aligned(r), "myrealloc(large) = %p", r);
        big[k] = r;
        ck_assert_int_eq(myfree(c), 0);
    }
    for (size_t k = 0; k < sizeof large / sizeof large[0]; k++)
        ck_assert_int_eq(myfree(big[k]), 0);

    ck_assert_int_eq(allocator_verify(), 0);
    free(blocks);
}
END_TEST

/* ------------------------------------------------------------------ */
/* No overlap, contents kept                                            */
/* ------------------------------------------------------------------ */

START_TEST(test_no_overlap)
{
    const size_t n = test_scale(3000);
    struct live_block *b = calloc(n, sizeof *b);
    uint64_t rng = 0x9e3779b97f4a7c15ULL + (uint64_t)_i;
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(allocator_init(_i), 0);

    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < n; i++) {
            size_t s;
            if (b[i].p)
                continue;
            s = random_size(&rng, 2 * MiB);
            b[i].p = myalloc(s);
            ck_assert_msg(b[i].p != NULL, "myalloc(%zu) failed", s);
            ck_assert_msg(is_aligned(b[i].p), "myalloc(%zu) = %p misaligned", s, (void *)b[i].p);
            b[i].n = s;
            b[i].u = myalloc_usable_size(b[i].p);
            ck_assert_msg(b[i].u >= s, "usable %zu < requested %zu", b[i].u, s);
            test_fill(b[i].p, s);
        }
        check_disjoint(b, n);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(test_check_fill(b[i].p, b[i].n),
                          "round %d: block %zu (%p, %zu bytes) was overwritten",
                          round, i, (void *)b[i].p, b[i].n);
        /* Free a random half, checking contents first. */
        for (size_t i = 0; i < n; i++) {
            if (test_rand(&rng) & 1)
                continue;
            ck_assert(test_check_fill(b[i].p, b[i].n));
            ck_assert_int_eq(myfree(b[i].p), 0);
            b[i].p = NULL;
        }
        ck_assert_int_eq(allocator_verify(), 0);
    }
    for (size_t i = 0; i < n; i++) {
        if (!b[i].p)
            continue;
        ck_assert_msg(test_check_fill(b[i].p, b[i].n), "block %zu overwritten", i);
        ck_assert_int_eq(myfree(b[i].p), 0);
    }
    ck_assert_uint_eq(get_stats().allocated, 0);
    ck_assert_int_eq(allocator_verify(), 0);
    free(b);
}
END_TEST

/* ------------------------------------------------------------------ */
/* myalloc(0)                                                           */
/* ------------------------------------------------------------------ */

START_TEST(test_zero_size)
{
    enum { N = 1000 };
    struct live_block b[N];
    void *p, *q;

    p = myalloc(0);
    q = myalloc(0);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_ne(p, q);
    ck_assert(is_aligned(p) && is_aligned(q));
    ck_assert_uint_ge(myalloc_usable_size(p), 16);
    ck_assert_uint_ge(myalloc_usable_size(q), 16);
    test_fill(p, 16);
    test_fill(q, 16);
    ck_assert(test_check_fill(p, 16) && test_check_fill(q, 16));
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_int_eq(myfree(q), 0);
    check_invalid_pointer(p, "freed zero-size block");

    /* Many of them: all distinct and disjoint. */
    for (int i = 0; i < N; i++) {
        b[i].p = myalloc(0);
        ck_assert_ptr_nonnull(b[i].p);
        b[i].u = myalloc_usable_size(b[i].p);
        b[i].n = 16;
        ck_assert_uint_ge(b[i].u, 16);
        test_fill(b[i].p, 16);
    }
    check_disjoint(b, N);
    for (int i = 0; i < N; i++) {
        ck_assert(test_check_fill(b[i].p, 16));
        ck_assert_int_eq(myfree(b[i].p), 0);
    }

    /* The other ways of asking for nothing. */
    p = myrealloc(NULL, 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(myfree(p), 0);
    p = mycalloc(0, 0);
    q = mycalloc(0, 7);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_ne(p, q);
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_int_eq(myfree(q), 0);
    p = mycalloc(7, 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_uint_eq(get_stats().allocated, 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Reuse of freed memory                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_reuse)
{
    static const size_t sizes[] = { 1, 100, 1000, 10000, 100000, MiB - 64 };
    struct pa_stats s0, s1, s2, s3;
    void *p, *q, *warm;
    size_t up, uq;

    ck_assert_int_eq(allocator_init(_i), 0);
    warm = myalloc(50);
    ck_assert_ptr_nonnull(warm);

    s0 = get_stats();
    p = myalloc(1000);
    ck_assert_ptr_nonnull(p);
    up = myalloc_usable_size(p);
    s1 = get_stats();
    ck_assert_uint_eq(s1.allocated, s0.allocated + up);
    ck_assert_int_eq(myfree(p), 0);
    s2 = get_stats();
    ck_assert_uint_eq(s2.allocated, s0.allocated);
    ck_assert_msg(s2.freed >= s1.freed + up, "freeing %zu bytes: freed %zu -> %zu",
                  up, s1.freed, s2.freed);

    q = myalloc(1000);
    ck_assert_ptr_nonnull(q);
    uq = myalloc_usable_size(q);
    s3 = get_stats();
    ck_assert_uint_eq(s3.allocated, s0.allocated + uq);
    /* The block came out of the freed bytes, not from the OS. */
    ck_assert_msg(s3.freed + uq <= s2.freed,
                  "reallocating %zu bytes: freed %zu -> %zu, not reused",
                  uq, s2.freed, s3.freed);
    ck_assert_msg(s3.allocated + s3.freed <= s2.allocated + s2.freed,
                  "footprint grew from %zu to %zu on reuse",
                  s2.allocated + s2.freed, s3.allocated + s3.freed);
    ck_assert_int_eq(myfree(q), 0);

    /* Freeing and allocating the same size again and again never grows the
     * footprint beyond what the first round needed. */
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t foot, rounds = test_scale(2000);
        struct pa_stats t;
        p = myalloc(sizes[k]);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(myfree(p), 0);
        t = get_stats();
        foot = t.allocated + t.freed;
        for (size_t r = 0; r < rounds; r++) {
            p = myalloc(sizes[k]);
            ck_assert_ptr_nonnull(p);
            ((unsigned char *)p)[sizes[k] - 1] = (unsigned char)r;
            ck_assert_int_eq(myfree(p), 0);
            t = get_stats();
            ck_assert_msg(t.allocated + t.freed <= foot,
                          "size %zu round %zu: footprint %zu > %zu",
                          sizes[k], r, t.allocated + t.freed, foot);
        }
    }

    /* A large block's bytes are given back: allocated returns to before. */
    s0 = get_stats();
    p = myalloc(4 * MiB);
    ck_assert_ptr_nonnull(p);
    s1 = get_stats();
    ck_assert_uint_ge(s1.allocated, s0.allocated + 4 * MiB);
    ck_assert_int_eq(myfree(p), 0);
    s2 = get_stats();
    ck_assert_uint_eq(s2.allocated, s0.allocated);

    ck_assert_int_eq(myfree(warm), 0);
    ck_assert_uint_eq(get_stats().allocated, 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Boundary sizes                                                       */
/* ------------------------------------------------------------------ */

START_TEST(test_boundary_sizes)
{
    static const size_t sizes[] = {
        0, 1, 15, 16, 17, 31, 32, 33, 255, 256, 257, 1000, 1024, 4095, 4096,
        65536, MiB - 1, MiB, MiB + 1, 4 * MiB, 16 * MiB,
    };
    enum { NS = sizeof sizes / sizeof sizes[0] };
    void *p[NS];
    struct pa_stats before, after;
    size_t total = 0;

    ck_assert_int_eq(allocator_init(_i), 0);
    for (int k = 0; k < NS; k++) {
        size_t u;
        p[k] = myalloc(sizes[k]);
        ck_assert_msg(p[k] != NULL, "myalloc(%zu) failed", sizes[k]);
        ck_assert_msg(is_aligned(p[k]), "myalloc(%zu) = %p misaligned", sizes[k], p[k]);
        u = myalloc_usable_size(p[k]);
        ck_assert_msg(u >= sizes[k], "myalloc(%zu): usable %zu", sizes[k], u);
        total += u;
        block_fill(p[k], sizes[k]);
    }
    ck_assert_uint_eq(get_stats().allocated, total);
    for (int k = 0; k < NS; k++)
        ck_assert_msg(block_ok(p[k], sizes[k]), "block of %zu bytes overwritten", sizes[k]);
    ck_assert_int_eq(allocator_verify(), 0);

    /* Impossible sizes fail cleanly and change nothing. */
    before = get_stats();
    expect_enomem_alloc(SIZE_MAX, "SIZE_MAX");
    expect_enomem_alloc(SIZE_MAX - 8, "SIZE_MAX-8");
    expect_enomem_alloc(SIZE_MAX - 15, "SIZE_MAX-15");
    expect_enomem_alloc(SIZE_MAX - 4096, "SIZE_MAX-4096");
    expect_enomem_alloc((size_t)PTRDIFF_MAX + 1, "PTRDIFF_MAX+1");
    expect_enomem_alloc((size_t)PTRDIFF_MAX + 4097, "PTRDIFF_MAX+4097");
    expect_enomem_calloc(SIZE_MAX / 2, 3);
    expect_enomem_calloc(3, SIZE_MAX / 2);
    expect_enomem_calloc(SIZE_MAX, SIZE_MAX);
    expect_enomem_calloc(1, SIZE_MAX);
    expect_enomem_calloc((size_t)PTRDIFF_MAX + 1, 1);
#if SIZE_MAX > 0xffffffffu
    /* Products that wrap around to small numbers. */
    expect_enomem_calloc((size_t)1 << 32, (size_t)1 << 32);         /* == 0 mod 2^64 */
    expect_enomem_calloc(4, ((size_t)1 << 62) + 1);                  /* == 4 mod 2^64 */
    expect_enomem_calloc(((size_t)1 << 63) + 8, 2);                  /* == 16 mod 2^64 */
#endif
    after = get_stats();
    ck_assert_msg(stats_equal(before, after), "failed allocations changed the stats");
    ck_assert_int_eq(allocator_verify(), 0);

    for (int k = 0; k < NS; k++) {
        ck_assert(block_ok(p[k], sizes[k]));
        ck_assert_int_eq(myfree(p[k]), 0);
    }
    ck_assert_uint_eq(get_stats().allocated, 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* mycalloc                                                             */
/* ------------------------------------------------------------------ */

START_TEST(test_calloc_zeroed)
{
    const size_t n = test_scale(400);
    struct live_block *b = calloc(n, sizeof *b);
    uint64_t rng = 77 + (uint64_t)_i;
    unsigned char *p;

    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(allocator_init(_i), 0);

    p = mycalloc(10, 10);
    ck_assert_ptr_nonnull(p);
    ck_assert(test_all_bytes(p, 100, 0));
    ck_assert_int_eq(myfree(p), 0);

    for (int round = 0; round < 3; round++) {
        /* Dirty memory everywhere, then give it back. */
        for (size_t i = 0; i < n; i++) {
            size_t s = random_size(&rng, 3 * MiB);
            b[i].p = myalloc(s);
            ck_assert_ptr_nonnull(b[i].p);
            b[i].u = myalloc_usable_size(b[i].p);
            memset(b[i].p, 0xa5, b[i].u);
        }
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(myfree(b[i].p), 0);
        /* mycalloc must hand out zeroes even from that dirty memory. */
        for (size_t i = 0; i < n; i++) {
            size_t s = random_size(&rng, 3 * MiB), cnt = 1, each = s;
            if (s >= 8 && (i & 1)) {
                cnt = s / 8;
                each = 8;
                s = cnt * each;
            }
            b[i].p = mycalloc(cnt, each);
            ck_assert_msg(b[i].p != NULL, "mycalloc(%zu, %zu) failed", cnt, each);
            b[i].n = s;
            ck_assert_msg(test_all_bytes(b[i].p, s, 0), "mycalloc(%zu, %zu) = %p is not zeroed",
                          cnt, each, (void *)b[i].p);
            memset(b[i].p, 0x5a, s);
        }
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(myfree(b[i].p), 0);
        /* The same sizes right after freeing: most likely the very same blocks. */
        for (size_t i = 0; i < n; i++) {
            b[i].p = mycalloc(1, b[i].n);
            ck_assert_ptr_nonnull(b[i].p);
            ck_assert_msg(test_all_bytes(b[i].p, b[i].n, 0), "mycalloc(1, %zu) after reuse not zeroed",
                          b[i].n);
        }
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(myfree(b[i].p), 0);
    }
    ck_assert_uint_eq(get_stats().allocated, 0);
    ck_assert_int_eq(allocator_verify(), 0);
    free(b);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc;

    tc = tcase_create("alloc");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_alignment, 0, 2);
    tcase_add_loop_test(tc, test_no_overlap, 0, 2);
    tcase_add_test(tc, test_zero_size);
    tcase_add_loop_test(tc, test_reuse, 0, 2);
    tcase_add_loop_test(tc, test_boundary_sizes, 0, 2);
    tcase_add_loop_test(tc, test_calloc_zeroed, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

PA_CHECK_MAIN(alloc_suite)
