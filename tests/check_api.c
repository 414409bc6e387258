/*
 * check_api.c - the public interface of libpallocator, one call at a time,
 * in a single thread.  Only <pallocator.h> is used: these tests hold the
 * library to its contract, not to its internals.
 *
 * Every test leaves the allocator cleaned up (the fixture's teardown calls
 * allocator_cleanup()), so the suite also passes with CK_FORK=no.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pallocator.h>

#define TEST_FULL_FILL_LIMIT ((size_t)64 << 10)
#define TEST_EDGE_FILL ((size_t)4096)
#include "testutil.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)


/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

struct pa_stats {
    size_t allocated, freed, peak;
};

static struct pa_stats get_stats(void)
{
    struct pa_stats s = { SIZE_MAX, SIZE_MAX, SIZE_MAX };
    ck_assert_int_eq(allocator_stats(&s.allocated, &s.freed, &s.peak), 0);
    return s;
}

static int stats_equal(struct pa_stats a, struct pa_stats b)
{
    return a.allocated == b.allocated && a.freed == b.freed && a.peak == b.peak;
}

/* Mostly small sizes, some medium, a few up to max_large. */
static size_t random_size(uint64_t *rng, size_t max_large)
{
    size_t r = test_rand_below(rng, 1000);
    if (r < 800)
        return test_rand_below(rng, 257);
    if (r < 990)
        return 257 + test_rand_below(rng, 64 * KiB);
    return 64 * KiB + test_rand_below(rng, max_large - 64 * KiB + 1);
}

/*
 * An invalid pointer must be rejected by myfree, myalloc_usable_size and
 * myrealloc with EINVAL, and must leave the heap exactly as it was.
 */
static void check_invalid_pointer(void *ptr, const char *what)
{
    struct pa_stats before = get_stats(), after;
    int r, e;
    size_t u;
    void *q;

    errno = 0;
    r = myfree(ptr);
    e = errno;
    ck_assert_msg(r == -1 && e == EINVAL,
                  "myfree(%s = %p) returned %d, errno %d; want -1/EINVAL",
                  what, ptr, r, e);
    after = get_stats();
    ck_assert_msg(stats_equal(before, after),
                  "myfree(%s) changed the stats: allocated %zu->%zu freed %zu->%zu peak %zu->%zu",
                  what, before.allocated, after.allocated, before.freed,
                  after.freed, before.peak, after.peak);
    ck_assert_msg(allocator_verify() == 0, "heap unsound after myfree(%s)", what);

    errno = 0;
    u = myalloc_usable_size(ptr);
    e = errno;
    ck_assert_msg(u == 0 && e == EINVAL,
                  "myalloc_usable_size(%s) returned %zu, errno %d; want 0/EINVAL",
                  what, u, e);

    errno = 0;
    q = myrealloc(ptr, 48);
    e = errno;
    ck_assert_msg(q == NULL && e == EINVAL,
                  "myrealloc(%s, 48) returned %p, errno %d; want NULL/EINVAL",
                  what, q, e);
    after = get_stats();
    ck_assert_msg(stats_equal(before, after), "myrealloc(%s) changed the stats", what);
    ck_assert_msg(allocator_verify() == 0, "heap unsound after myrealloc(%s)", what);
}

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

static int cmp_uintptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

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

/* Runs allocator_dump() with stderr sent to a temporary file; returns the
 * output (NUL-terminated, malloc'd) and its length. */
static char *capture_dump(size_t *len_out)
{
    char path[] = "/tmp/pa_check_api_dumpXXXXXX";
    int fd = mkstemp(path);
    int saved;
    off_t len;
    char *text;
    ck_assert_msg(fd >= 0, "mkstemp failed");
    unlink(path);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    ck_assert(saved >= 0);
    ck_assert(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    allocator_dump();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    len = lseek(fd, 0, SEEK_END);
    ck_assert(len >= 0);
    text = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert(pread(fd, text, (size_t)len, 0) == (ssize_t)len);
    text[len] = '\0';
    close(fd);
    *len_out = (size_t)len;
    return text;
}

static int contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i;
        for (i = 0; i < n; i++) {
            char a = hay[i], b = needle[i];
            if (a >= 'A' && a <= 'Z')
                a = (char)(a - 'A' + 'a');
            if (b >= 'A' && b <= 'Z')
                b = (char)(b - 'A' + 'a');
            if (a != b)
                break;
        }
        if (i == n)
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Fixture                                                              */
/* ------------------------------------------------------------------ */

static void setup(void)
{
    /* Start from the uninitialised state whatever ran before (CK_FORK=no). */
    allocator_cleanup();
}

static void teardown(void)
{
    allocator_cleanup();
}

/* Loop tests run with _i = 0 (allocator_init(0)) and _i = 1 (allocator_init(1)). */

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

struct live_block {
    unsigned char *p;
    size_t n; /* requested */
    size_t u; /* usable */
};

static void check_disjoint(const struct live_block *b, size_t n)
{
    uintptr_t *starts = malloc(2 * n * sizeof *starts);
    size_t m = 0;
    ck_assert_ptr_nonnull(starts);
    for (size_t i = 0; i < n; i++) {
        if (!b[i].p)
            continue;
        starts[2 * m] = (uintptr_t)b[i].p;
        starts[2 * m + 1] = (uintptr_t)b[i].u;
        m++;
    }
    /* Sort (start, usable) pairs by start. */
    qsort(starts, m, 2 * sizeof *starts, cmp_uintptr);
    for (size_t i = 0; i + 1 < m; i++)
        ck_assert_msg(starts[2 * i] + starts[2 * i + 1] <= starts[2 * i + 2],
                      "block %#lx (usable %lu) overlaps block %#lx",
                      (unsigned long)starts[2 * i], (unsigned long)starts[2 * i + 1],
                      (unsigned long)starts[2 * i + 2]);
    free(starts);
}

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
 * whole slab empties and goes to another size; TLSF blocks are merged at
 * once.
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
/* dump                                                                 */
/* ------------------------------------------------------------------ */

START_TEST(test_dump)
{
    enum { N = 200 };
    void *blocks[N];
    void *a, *b, *big;
    size_t len0, len1, len2;
    char *out;
    struct pa_stats before;

    /* Uninitialised: must not crash. */
    out = capture_dump(&len0);
    free(out);

    ck_assert_int_eq(allocator_init(_i), 0);
    a = myalloc(40);
    b = myalloc(3000);
    big = myalloc(2 * MiB);
    ck_assert(a && b && big);
    ck_assert_int_eq(myfree(a), 0);
    before = get_stats();
    out = capture_dump(&len1);
    ck_assert_msg(len1 > 0, "allocator_dump printed nothing");
    ck_assert_msg(contains_nocase(out, "heap"), "dump does not mention a heap:\n%.2000s", out);
    free(out);
    ck_assert(stats_equal(before, get_stats()));
    ck_assert_int_eq(allocator_verify(), 0);

    /* Every block is listed: 200 more live blocks make it longer. */
    for (int i = 0; i < N; i++) {
        blocks[i] = myalloc(24 + (size_t)i);
        ck_assert_ptr_nonnull(blocks[i]);
    }
    out = capture_dump(&len2);
    free(out);
    ck_assert_msg(len2 >= len1 + N * 8, "dump grew from %zu to %zu bytes for %d more blocks",
                  len1, len2, N);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(myfree(blocks[i]), 0);
    ck_assert_int_eq(myfree(b), 0);
    ck_assert_int_eq(myfree(big), 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
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

    tc = tcase_create("realloc");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_realloc_null_is_alloc);
    tcase_add_loop_test(tc, test_realloc_keeps_contents, 0, 2);
    tcase_add_test(tc, test_realloc_grow_moves);
    tcase_add_test(tc, test_realloc_invalid);
    tcase_add_test(tc, test_realloc_zero);
    tcase_add_test(tc, test_realloc_enomem_keeps_block);
    suite_add_tcase(s, tc);

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

    tc = tcase_create("lifecycle");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_stats, 0, 2);
    tcase_add_test(tc, test_peak_exact_with_large_blocks);
    tcase_add_loop_test(tc, test_cleanup_unmaps, 0, 2);
    tcase_add_test(tc, test_init_modes);
    tcase_add_loop_test(tc, test_verify_random_ops, 0, 2);
    tcase_add_loop_test(tc, test_dump, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(api_suite());
    int failed;
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
