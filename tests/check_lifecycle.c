/* SPDX-License-Identifier: MIT */
/*
 * check_lifecycle.c - allocator_cleanup() unmapping all the library
 * mapped, and allocator_init() in both modes.
 *
 * Single-threaded, through <pallocator.h> only; the helpers and the
 * fixture are in api_helpers.h.
 */
#include "api_helpers.h"
#include "check_main.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

/* /proc/self/maps, read without allocating (no stdio, a static buffer). */
static char maps_text[8 << 20];

static size_t read_maps(void)
{
    int fd = open("/proc/self/maps", O_RDONLY);
    size_t n = 0;
    ssize_t r;
    ck_assert_msg(fd >= 0, "cannot open /proc/self/maps");
    while (n < sizeof maps_text - 1 &&
           (r = read(fd, maps_text + n, sizeof maps_text - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    maps_text[n] = '\0';
    return n;
}

/* Whether any mapping of the last read_maps() intersects [lo, hi). */
static int maps_intersect(uintptr_t lo, uintptr_t hi, char *line, size_t line_cap)
{
    const char *s = maps_text;
    while (*s) {
        char *end;
        uintptr_t start = (uintptr_t)strtoull(s, &end, 16);
        uintptr_t stop = (uintptr_t)strtoull(end + 1, NULL, 16);
        const char *nl = strchr(s, '\n');
        if (start < hi && lo < stop) {
            size_t len = nl ? (size_t)(nl - s) : strlen(s);
            if (len >= line_cap)
                len = line_cap - 1;
            memcpy(line, s, len);
            line[len] = '\0';
            return 1;
        }
        if (!nl)
            break;
        s = nl + 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Cleanup                                                              */
/* ------------------------------------------------------------------ */

struct range {
    uintptr_t lo, hi;
};

struct thread_blocks {
    struct range *r;
    size_t n;
};

static void *alloc_in_thread(void *arg)
{
    struct thread_blocks *tb = arg;
    for (size_t i = 0; i < tb->n; i++) {
        size_t s = (i % 50 == 0) ? 2 * MiB : 16 + i % 3000;
        unsigned char *p = myalloc(s);
        if (!p) {
            tb->r[i].lo = tb->r[i].hi = 0;
            continue;
        }
        p[0] = 1;
        tb->r[i].lo = (uintptr_t)p;
        tb->r[i].hi = (uintptr_t)p + myalloc_usable_size(p);
    }
    return NULL;
}

START_TEST(test_cleanup_unmaps)
{
    const size_t nsmall = test_scale(5000), nmed = test_scale(300), nthr = test_scale(1000);
    static const size_t large[] = { MiB + 1, 2 * MiB, 5 * MiB, 8 * MiB + 4096 };
    const size_t total = nsmall + nmed + 4 + nthr;
    struct range *r = calloc(total, sizeof *r);
    uint64_t rng = 5;

    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(allocator_cleanup(), 0); /* not initialised: fine */
    ck_assert_int_eq(allocator_cleanup(), 0);

    for (int round = 0; round < 2; round++) {
        size_t n = 0;
        char line[256];
        struct pa_stats s;
        ck_assert_int_eq(allocator_init(_i), 0);
        for (size_t i = 0; i < nsmall; i++) {
            unsigned char *p = myalloc(test_rand_below(&rng, 600));
            ck_assert_ptr_nonnull(p);
            r[n].lo = (uintptr_t)p;
            r[n++].hi = (uintptr_t)p + myalloc_usable_size(p);
        }
        for (size_t i = 0; i < nmed; i++) {
            unsigned char *p = myalloc(60000 + test_rand_below(&rng, 8000));
            ck_assert_ptr_nonnull(p);
            p[0] = 1;
            r[n].lo = (uintptr_t)p;
            r[n++].hi = (uintptr_t)p + myalloc_usable_size(p);
            if (i % 3 == 0)
                ck_assert_int_eq(myfree(p), 0); /* leave holes, free blocks */
        }
        for (size_t i = 0; i < 4; i++) {
            unsigned char *p = myalloc(large[i]);
            ck_assert_ptr_nonnull(p);
            p[large[i] - 1] = 1;
            r[n].lo = (uintptr_t)p;
            r[n++].hi = (uintptr_t)p + myalloc_usable_size(p);
        }
        if (_i) {
            /* Another thread's heap, orphaned when the thread ends. */
            pthread_t t;
            struct thread_blocks tb = { r + n, nthr };
            ck_assert_int_eq(pthread_create(&t, NULL, alloc_in_thread, &tb), 0);
            ck_assert_int_eq(pthread_join(t, NULL), 0);
            for (size_t i = 0; i < nthr; i++)
                ck_assert_msg(r[n + i].lo != 0, "allocation in a thread failed");
            n += nthr;
        }
        ck_assert_int_eq(allocator_verify(), 0);

        ck_assert_int_eq(allocator_cleanup(), 0);
        s = get_stats();
        ck_assert(s.allocated == 0 && s.freed == 0 && s.peak == 0);
        read_maps();
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(!maps_intersect(r[i].lo, r[i].hi, line, sizeof line),
                          "round %d: block %#lx..%#lx still mapped after cleanup: %s",
                          round, (unsigned long)r[i].lo, (unsigned long)r[i].hi, line);
        check_invalid_pointer((void *)r[0].lo, "first block before cleanup");
        check_invalid_pointer((void *)r[n - 1].lo, "last block before cleanup");

        /* Works again afresh. */
        {
            unsigned char *p = myalloc(100), *q = myalloc(2 * MiB);
            ck_assert(p && q);
            test_fill(p, 100);
            ck_assert(test_check_fill(p, 100));
            ck_assert_uint_eq(get_stats().allocated,
                              myalloc_usable_size(p) + myalloc_usable_size(q));
            ck_assert_int_eq(myfree(p), 0);
            ck_assert_int_eq(myfree(q), 0);
            ck_assert_int_eq(allocator_verify(), 0);
            ck_assert_uint_eq(get_stats().allocated, 0);
        }
        ck_assert_int_eq(allocator_cleanup(), 0);
    }
    free(r);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Initialisation                                                       */
/* ------------------------------------------------------------------ */

static void expect_init_busy(int mode)
{
    int r, e;
    errno = 0;
    r = allocator_init(mode);
    e = errno;
    ck_assert_msg(r == -1 && e == EBUSY, "allocator_init(%d) = %d errno %d, want -1/EBUSY",
                  mode, r, e);
}

START_TEST(test_init_modes)
{
    void *p;

    ck_assert_int_eq(allocator_init(0), 0);
    ck_assert_int_eq(allocator_init(0), 0);
    expect_init_busy(1);
    expect_init_busy(2);
    ck_assert_int_eq(allocator_cleanup(), 0);

    ck_assert_int_eq(allocator_init(1), 0);
    ck_assert_int_eq(allocator_init(1), 0);
    ck_assert_int_eq(allocator_init(7), 0); /* any non-zero value: concurrent */
    expect_init_busy(0);
    ck_assert_int_eq(allocator_cleanup(), 0);

    /* Automatic initialisation is the concurrent mode. */
    p = myalloc(10);
    ck_assert_ptr_nonnull(p);
    test_fill(p, 10);
    ck_assert_int_eq(allocator_init(1), 0);
    expect_init_busy(0);
    ck_assert(test_check_fill(p, 10)); /* the init calls changed nothing */
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_int_eq(allocator_cleanup(), 0);

    /* Re-initialising in the same mode keeps live blocks live. */
    ck_assert_int_eq(allocator_init(0), 0);
    p = myalloc(1000);
    ck_assert_ptr_nonnull(p);
    test_fill(p, 1000);
    ck_assert_int_eq(allocator_init(0), 0);
    ck_assert(test_check_fill(p, 1000));
    ck_assert_uint_eq(get_stats().allocated, myalloc_usable_size(p));
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(allocator_cleanup(), 0);

    /* Other entry points also initialise automatically (concurrent mode). */
    p = mycalloc(4, 4);
    ck_assert_ptr_nonnull(p);
    expect_init_busy(0);
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_int_eq(allocator_cleanup(), 0);
    p = myrealloc(NULL, 4);
    ck_assert_ptr_nonnull(p);
    expect_init_busy(0);
    ck_assert_int_eq(myfree(p), 0);
    ck_assert_int_eq(allocator_cleanup(), 0);

    /* Calls that allocate nothing do not initialise (in any mode). */
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myfree(NULL), 0);
    ck_assert_int_eq(allocator_stats(NULL, NULL, NULL), 0);
    ck_assert_int_eq(allocator_init(0), 0);
    ck_assert_int_eq(allocator_cleanup(), 0);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *lifecycle_suite(void)
{
    Suite *s = suite_create("lifecycle");
    TCase *tc;

    tc = tcase_create("lifecycle");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_cleanup_unmaps, 0, 2);
    tcase_add_test(tc, test_init_modes);
    suite_add_tcase(s, tc);
    return s;
}

PA_CHECK_MAIN(lifecycle_suite)
