/* SPDX-License-Identifier: MIT */
/*
 * check_region.c - regions (lib/region.c) on their own, under each fit:
 * layout limits, exact validation of every kind of bad pointer, usage
 * counts, reset, the largest request, aligned blocks, seeded random
 * sequences with fill patterns and a verify after every step, purging,
 * and the POW2 bound played adversarially (held at the bound, broken in a
 * region half its size).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "annotate.h"
#include "block.h"
#include "os.h"
#include "region.h"
#include "tlsf.h"
#include "testutil.h"

#define REGION_SIZE ((size_t)4 << 20)

static const region_fit_t fits[] = {REGION_FIT_GOOD, REGION_FIT_BEST, REGION_FIT_POW2};

/* A fresh mapping per region, so every test starts from zeroed memory. */
typedef struct mapped {
    void *base;
    size_t size;
    region_t *r;
} mapped_t;

static mapped_t region_map(size_t size, region_fit_t fit, region_purge_fn purge)
{
    mapped_t m = {pa_os_map(size), size, NULL};
    ck_assert_ptr_nonnull(m.base);
    m.r = pa_region_init(m.base, size, fit, purge);
    ck_assert_ptr_nonnull(m.r);
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    return m;
}

static void region_unmap(mapped_t *m)
{
    pa_os_unmap(m->base, m->size);
}

static size_t usage_allocated(const region_t *r)
{
    region_usage_t u;
    pa_region_usage(r, &u);
    return u.allocated;
}

/* ---- layout ----------------------------------------------------------- */

START_TEST(test_too_small)
{
    region_fit_t fit = fits[_i];
    size_t min = pa_region_min_size();
    ck_assert_uint_eq(min % PA_GRANULE, 0);
    void *base = pa_os_map(REGION_SIZE);
    ck_assert_ptr_nonnull(base);
    ck_assert_ptr_null(pa_region_init(base, min - PA_GRANULE, fit, NULL));
    ck_assert_ptr_null(pa_region_init(base, 0, fit, NULL));
    ck_assert_ptr_null(pa_region_init((char *)base + 8, REGION_SIZE - 16, fit, NULL));
    ck_assert_ptr_null(pa_region_init(base, REGION_SIZE, (region_fit_t)7, NULL));
    ck_assert_ptr_null(pa_region_init(NULL, REGION_SIZE, fit, NULL));
    /* An area of 512 GiB or more has no TLSF bin (nothing is written). */
    ck_assert_ptr_null(pa_region_init(base, (size_t)1 << 40, fit, NULL));
    ck_assert_ptr_null(pa_region_init(base, SIZE_MAX, fit, NULL));
    ck_assert_uint_eq(pa_region_max_request(min - PA_GRANULE), 0);
    /* The least region serves its largest request once. */
    region_t *r = pa_region_init(base, min, fit, NULL);
    ck_assert_ptr_nonnull(r);
    size_t max = pa_region_max_request_fit(fit, min);
    ck_assert_uint_ge(max, 1);
    void *p = pa_region_alloc(r, max);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(pa_region_alloc(r, 1));
    ck_assert_int_eq(pa_region_verify(r), 0);
    pa_region_free(r, p);
    ck_assert(pa_region_is_empty(r));
    ck_assert_int_eq(pa_region_verify(r), 0);
    pa_os_unmap(base, REGION_SIZE);
}
END_TEST

/* The largest request is served by a fresh region, one byte more is not,
 * and pa_region_size_for's size serves what it was asked for. */
START_TEST(test_max_request)
{
    region_fit_t fit = fits[_i];
    static const size_t sizes[] = {8192, 65536 + 48, 1000000, (size_t)4 << 20, (size_t)9 << 20};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        mapped_t m = region_map(sizes[s], fit, NULL);
        size_t max = pa_region_max_request_fit(fit, sizes[s]);
        ck_assert_uint_le(pa_region_max_request(sizes[s]), max);
        ck_assert_ptr_null(pa_region_alloc(m.r, max + 1));
        void *p = pa_region_alloc(m.r, max);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_ge(pa_region_usable(m.r, p), max);
        block_fill(p, max);
        ck_assert(block_ok(p, max));
        ck_assert_int_eq(pa_region_verify(m.r), 0);
        /* Every fit serves the least of the three maxima. */
        pa_region_free(m.r, p);
        p = pa_region_alloc(m.r, pa_region_max_request(sizes[s]));
        ck_assert_ptr_nonnull(p);
        region_unmap(&m);
    }
    static const size_t asks[][2] = {{1, 0}, {5000, 16}, {100000, 4096}, {(size_t)3 << 20, 65536}};
    for (size_t a = 0; a < sizeof asks / sizeof asks[0]; a++) {
        size_t size = pa_region_size_for(fit, asks[a][0], asks[a][1]);
        ck_assert_uint_ge(size, pa_region_min_size());
        mapped_t m = region_map(size, fit, NULL);
        void *p = pa_region_alloc_aligned(m.r, asks[a][1] ? asks[a][1] : 1, asks[a][0]);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % (asks[a][1] ? asks[a][1] : 16), 0);
        ck_assert_int_eq(pa_region_verify(m.r), 0);
        region_unmap(&m);
    }
    /* The size is the least that serves the request. */
    for (size_t n = 1; n < ((size_t)1 << 26); n = n * 5 / 4 + 7) {
        size_t size = pa_region_size_for(fit, n, 0);
        ck_assert_uint_ge(pa_region_max_request_fit(fit, size), n);
        ck_assert_uint_lt(pa_region_max_request_fit(fit, size - PA_GRANULE), n);
    }
    ck_assert_uint_eq(pa_region_size_for(fit, SIZE_MAX, 0), 0);
    ck_assert_uint_eq(pa_region_size_for(fit, TLSF_MAX_BLOCK, 0), 0);
    ck_assert_uint_eq(pa_region_size_for(fit, 64, (size_t)1 << 62), 0);
}
END_TEST

/* A region of GiBs: blocks beyond a segment's size, with the first level
 * of the TLSF widened (GOOD, BEST) or a high class (POW2). */
START_TEST(test_huge_region)
{
    region_fit_t fit = fits[_i];
    size_t size = (size_t)3 << 30;
    mapped_t m = region_map(size, fit, NULL);
    size_t big = ((size_t)1 << 30) - 16; /* POW2: exactly a 1 GiB block */
    char *p = pa_region_alloc(m.r, big);
    ck_assert_ptr_nonnull(p);
    p[0] = 1;
    p[big - 1] = 2;
    void *q = pa_region_alloc(m.r, (size_t)600 << 20);
    ck_assert_ptr_nonnull(q);
    void *small = pa_region_alloc(m.r, 100);
    ck_assert_ptr_nonnull(small);
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    pa_region_free(m.r, p);
    pa_region_free(m.r, q);
    pa_region_free(m.r, small);
    ck_assert(pa_region_is_empty(m.r));
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    size_t max = pa_region_max_request_fit(fit, size);
    ck_assert_uint_ge(max, ((size_t)2 << 30) - 16);
    if (fit == REGION_FIT_POW2) /* its classes never merge: the top is spent */
        pa_region_reset(m.r);
    ck_assert_ptr_nonnull(pa_region_alloc(m.r, max));
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    region_unmap(&m);
}
END_TEST

/* ---- validation ------------------------------------------------------- */

START_TEST(test_invalid_pointers)
{
    region_fit_t fit = fits[_i];
    mapped_t m = region_map(REGION_SIZE, fit, NULL);
    region_t *r = m.r;
    char *a = pa_region_alloc(r, 100);
    char *b = pa_region_alloc(r, 1000);
    char *c = pa_region_alloc_aligned(r, 256, 40);
    char *d = pa_region_alloc(r, 50);
    ck_assert(a && b && c && d);
    ck_assert_uint_eq((uintptr_t)c % 256, 0);
    ck_assert_uint_ge(pa_region_usable(r, a), 100);
    ck_assert_uint_ge(pa_region_usable(r, b), 1000);
    ck_assert_uint_ge(pa_region_usable(r, c), 40);
    pa_region_free(r, d);
    char *sentinel = (char *)m.base + m.size - BLOCK_HEADER_SIZE;
    const char *bad[] = {
        b + 16, b + 512, b - 16, b - 8, b + 1, b + 8, c - 16, c + 16, a + 96,
        d, /* freed */
        (char *)m.base, (char *)m.base + 64, (char *)r + 4096, /* header and live map */
        (char *)m.base - 16, (char *)m.base + m.size, (char *)m.base + m.size + 4096,
        sentinel, sentinel + 16, sentinel - 16, NULL, (char *)(uintptr_t)-16,
        (char *)m.base + m.size - 4096, /* untouched, inside the area */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(pa_region_usable(r, bad[i]) == 0, "pointer %zu (%p) accepted", i,
                      (void *)bad[i]);
    ck_assert(pa_region_contains(r, sentinel));
    ck_assert(pa_region_contains(r, b));
    ck_assert(!pa_region_contains(r, m.base));
    ck_assert(!pa_region_contains(r, (char *)m.base + m.size));
    ck_assert(!pa_region_contains(r, NULL));
    ck_assert_int_eq(pa_region_verify(r), 0);
    pa_region_free(r, a);
    ck_assert_uint_eq(pa_region_usable(r, a), 0);
    ck_assert_uint_ge(pa_region_usable(r, b), 1000);
    ck_assert_int_eq(pa_region_verify(r), 0);
    region_unmap(&m);
}
END_TEST

/* verify notices a live map that disagrees with the blocks. */
START_TEST(test_verify_catches_damage)
{
    region_fit_t fit = fits[_i];
    mapped_t m = region_map(REGION_SIZE, fit, NULL);
    char *a = pa_region_alloc(m.r, 100);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    /* Corrupt the block's header size: the chain or the payload header no
     * longer add up. */
    block_t *h = block_from_payload(a);
    size_t saved = h->size_flags;
    h->size_flags = saved + 3 * PA_GRANULE;
    ck_assert_int_eq(pa_region_verify(m.r), -1);
    h->size_flags = saved;
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    region_unmap(&m);
}
END_TEST

/* ---- usage and reset -------------------------------------------------- */

START_TEST(test_usage_exact)
{
    region_fit_t fit = fits[_i];
    mapped_t m = region_map(REGION_SIZE, fit, NULL);
    region_usage_t fresh, u;
    pa_region_usage(m.r, &fresh);
    ck_assert_uint_eq(fresh.allocated, 0);
    ck_assert_uint_eq(fresh.blocks, 0);
    ck_assert_uint_eq(fresh.size, REGION_SIZE);
    /* A fresh region's free bytes are its largest request (exact fit). */
    ck_assert_uint_eq(fresh.freed, pa_region_max_request_fit(REGION_FIT_BEST, REGION_SIZE));
    static const size_t sizes[] = {0, 1, 16, 17, 100, 1000, 4000, 65536, 100000};
    enum { N = sizeof sizes / sizeof sizes[0] };
    void *p[N];
    size_t sum = 0;
    for (size_t i = 0; i < N; i++) {
        p[i] = pa_region_alloc(m.r, sizes[i]);
        ck_assert_ptr_nonnull(p[i]);
        size_t usable = pa_region_usable(m.r, p[i]);
        ck_assert_uint_ge(usable, sizes[i] ? sizes[i] : 1);
        sum += usable;
        pa_region_usage(m.r, &u);
        ck_assert_uint_eq(u.allocated, sum);
        ck_assert_uint_eq(u.peak, sum);
        ck_assert_uint_eq(u.blocks, i + 1);
        /* Blocks carved in a row from the one free block: every byte is a
         * live block's, a header, or the rest's. */
        ck_assert_uint_eq(u.allocated + u.freed + (i + 1) * BLOCK_HEADER_SIZE, fresh.freed);
    }
    size_t peak = sum;
    for (size_t i = 0; i < N; i += 2) {
        size_t usable = pa_region_usable(m.r, p[i]);
        ck_assert_uint_eq(pa_region_free(m.r, p[i]), usable);
        sum -= usable;
        ck_assert_uint_eq(usage_allocated(m.r), sum);
    }
    pa_region_usage(m.r, &u);
    ck_assert_uint_eq(u.peak, peak);
    ck_assert_uint_eq(u.blocks, N / 2);
    for (size_t i = 1; i < N; i += 2)
        pa_region_free(m.r, p[i]);
    pa_region_usage(m.r, &u);
    ck_assert_uint_eq(u.allocated, 0);
    ck_assert_uint_eq(u.peak, peak);
    if (fit != REGION_FIT_POW2)
        ck_assert_uint_eq(u.freed, fresh.freed); /* all merged again */
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    pa_region_reset(m.r);
    pa_region_usage(m.r, &u);
    ck_assert_uint_eq(u.peak, 0);
    ck_assert_uint_eq(u.freed, fresh.freed);
    region_unmap(&m);
}
END_TEST

typedef struct live_tally {
    const region_t *r;
    size_t blocks, usable;
    const char *last;
} live_tally_t;

static void tally_live(void *p, size_t usable, void *ctx)
{
    live_tally_t *t = ctx;
    ck_assert((const char *)p > t->last);
    ck_assert_uint_eq(pa_region_usable(t->r, p), usable);
    t->last = p;
    t->blocks++;
    t->usable += usable;
}

START_TEST(test_reset_refuses_old_pointers)
{
    region_fit_t fit = fits[_i];
    mapped_t m = region_map(REGION_SIZE, fit, NULL);
    enum { MAX = 200000 };
    void **ptrs = malloc(MAX * sizeof *ptrs);
    ck_assert_ptr_nonnull(ptrs);
    uint64_t seed = 77 + (uint64_t)_i;
    size_t n = 0;
    void *p;
    while (n < MAX && (p = pa_region_alloc(m.r, test_rand_below(&seed, 48))) != NULL)
        ptrs[n++] = p;
    ck_assert_uint_gt(n, 10000);
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    for (size_t i = 0; i < n; i += 3)
        pa_region_free(m.r, ptrs[i]);
    /* Every live block is visited once, in address order. */
    live_tally_t t = {m.r, 0, 0, NULL};
    region_usage_t u;
    pa_region_each_live(m.r, tally_live, &t);
    pa_region_usage(m.r, &u);
    ck_assert_uint_eq(t.blocks, u.blocks);
    ck_assert_uint_eq(t.blocks, n - (n + 2) / 3);
    ck_assert_uint_eq(t.usable, u.allocated);
    pa_region_reset(m.r);
    t = (live_tally_t){m.r, 0, 0, NULL};
    pa_region_each_live(m.r, tally_live, &t);
    ck_assert_uint_eq(t.blocks, 0);
    ck_assert(pa_region_is_empty(m.r));
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(pa_region_usable(m.r, ptrs[i]), 0);
    ck_assert_uint_eq(usage_allocated(m.r), 0);
    /* Room again for the largest request. */
    size_t max = pa_region_max_request_fit(fit, REGION_SIZE);
    p = pa_region_alloc(m.r, max);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(pa_region_usable(m.r, ptrs[n / 2]), 0);
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    free(ptrs);
    region_unmap(&m);
}
END_TEST

/* ---- aligned blocks --------------------------------------------------- */

START_TEST(test_aligned)
{
    region_fit_t fit = fits[_i];
    mapped_t m = region_map((size_t)16 << 20, fit, NULL);
    ck_assert_ptr_null(pa_region_alloc_aligned(m.r, 0, 10));
    ck_assert_ptr_null(pa_region_alloc_aligned(m.r, 48, 10));
    void *keep[64];
    size_t n = 0;
    for (size_t align = 1; align <= ((size_t)1 << 20); align <<= 1) {
        for (size_t size = 0; size < 3000; size += 999) {
            char *p = pa_region_alloc_aligned(m.r, align, size);
            ck_assert_ptr_nonnull(p);
            ck_assert_uint_eq((uintptr_t)p % (align < 16 ? 16 : align), 0);
            ck_assert_uint_ge(pa_region_usable(m.r, p), size);
            block_fill(p, size);
            ck_assert_int_eq(pa_region_verify(m.r), 0);
            if (n < 64 && size % 2 == 0)
                keep[n++] = p;
            else
                pa_region_free(m.r, p);
        }
    }
    for (size_t i = 0; i < n; i++)
        pa_region_free(m.r, keep[i]);
    ck_assert(pa_region_is_empty(m.r));
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    region_unmap(&m);
}
END_TEST

/* ---- random sequences ------------------------------------------------- */

START_TEST(test_random_sequence)
{
    region_fit_t fit = fits[_i % 3];
    mapped_t m = region_map(REGION_SIZE, fit, NULL);
    enum { SLOTS = 256 };
    char *slot[SLOTS] = {0};
    size_t want[SLOTS] = {0};
    uint64_t seed = 0x51ed270b27ULL + (uint64_t)_i * 7919;
    size_t ops = test_scale(6000), failed = 0;
    for (size_t op = 0; op < ops; op++) {
        size_t k = test_rand_below(&seed, SLOTS);
        size_t n = test_rand_below(&seed, 8) ? test_rand_below(&seed, 300)
                                              : test_rand_below(&seed, 40000);
        unsigned what = (unsigned)test_rand_below(&seed, 4);
        if (slot[k] && what == 0) {
            /* Resize in place: the kept bytes must survive. */
            size_t keep = n < want[k] ? n : want[k];
            size_t before = pa_region_usable(m.r, slot[k]);
            if (pa_region_resize(m.r, slot[k], n)) {
                ck_assert_uint_ge(pa_region_usable(m.r, slot[k]), n);
                ck_assert(test_check_fill(slot[k], keep));
                test_fill(slot[k], n);
                want[k] = n;
            } else {
                ck_assert_uint_lt(before, n);
                ck_assert_uint_eq(pa_region_usable(m.r, slot[k]), before);
                ck_assert(test_check_fill(slot[k], want[k]));
            }
        } else if (slot[k]) {
            ck_assert(test_check_fill(slot[k], want[k]));
            size_t usable = pa_region_usable(m.r, slot[k]);
            ck_assert_uint_eq(pa_region_free(m.r, slot[k]), usable);
            ck_assert_uint_eq(pa_region_usable(m.r, slot[k]), 0);
            slot[k] = NULL;
        } else {
            size_t align = what == 1 ? (size_t)1 << test_rand_below(&seed, 14) : 0;
            char *p = align ? pa_region_alloc_aligned(m.r, align, n) : pa_region_alloc(m.r, n);
            if (!p) {
                failed++;
                continue;
            }
            ck_assert_uint_eq((uintptr_t)p % (align > 16 ? align : 16), 0);
            ck_assert(pa_region_contains(m.r, p));
            ck_assert_uint_ge(pa_region_usable(m.r, p), n);
            for (size_t j = 0; j < SLOTS; j++) /* no overlap with a live block */
                if (slot[j])
                    ck_assert(p + n <= slot[j] || slot[j] + want[j] <= p);
            test_fill(p, n);
            slot[k] = p;
            want[k] = n;
        }
        ck_assert_int_eq(pa_region_verify(m.r), 0);
    }
    ck_assert_uint_lt(failed, ops / 4);
    for (size_t k = 0; k < SLOTS; k++)
        if (slot[k]) {
            ck_assert(test_check_fill(slot[k], want[k]));
            pa_region_free(m.r, slot[k]);
        }
    ck_assert(pa_region_is_empty(m.r));
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    region_unmap(&m);
}
END_TEST

/* BEST takes the smallest free block that fits, searching past a list's
 * head and into the next non-empty bin; GOOD takes the first list sure
 * to fit. */
START_TEST(test_best_fit_exact)
{
    mapped_t m = region_map(REGION_SIZE, REGION_FIT_BEST, NULL);
    /* Free blocks (usable sizes) 1008, 592, 608, 800 between used walls;
     * 592 and 608 share a bin, 608 freed last heads its list. */
    static const size_t sizes[] = {1000, 590, 600, 800};
    char *hole[4];
    for (size_t i = 0; i < 4; i++) {
        hole[i] = pa_region_alloc(m.r, sizes[i]);
        ck_assert_ptr_nonnull(pa_region_alloc(m.r, 16));
    }
    for (size_t i = 0; i < 4; i++)
        pa_region_free(m.r, hole[i]);
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    ck_assert_ptr_eq(pa_region_alloc(m.r, 580), hole[1]); /* not the head, 608 */
    ck_assert_ptr_eq(pa_region_alloc(m.r, 700), hole[3]); /* next bin: 800, not 1008 */
    ck_assert_ptr_eq(pa_region_alloc(m.r, 600), hole[2]);
    ck_assert_ptr_eq(pa_region_alloc(m.r, 1000), hole[0]); /* not the area's tail */
    /* The smallest free block now is what 700 left of the 800 hole. */
    ck_assert_ptr_eq(pa_region_alloc(m.r, 1), hole[3] + 720);
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    region_unmap(&m);
}
END_TEST

/* ---- purging --------------------------------------------------------- */

static size_t purge_calls, purge_bytes;
static const region_t *purge_region;

/* Stands for MADV_DONTNEED, harder: the pages get garbage, so a purge that
 * reached a header, a link or a live block shows in verify or a fill. */
static void purge_scribble(void *start, size_t size)
{
    size_t page = os_page_size();
    ck_assert_uint_eq((uintptr_t)start % page, 0);
    ck_assert_uint_eq(size % page, 0);
    ck_assert_uint_gt(size, 0);
    ck_assert(pa_region_contains(purge_region, start));
    ck_assert(pa_region_contains(purge_region, (char *)start + size - 1));
    /* Free memory is closed to memory checkers: opened for the scribble
     * only (madvise would not touch it from user space). */
    pa_mem_open(start, size);
    memset(start, 0xa5, size);
    pa_mem_close(start, size);
    purge_calls++;
    purge_bytes += size;
}

START_TEST(test_purge)
{
    region_fit_t fit = fits[_i % 3];
    mapped_t m = region_map((size_t)32 << 20, fit, purge_scribble);
    purge_region = m.r;
    purge_calls = purge_bytes = 0;
    /* Small frees between used blocks never purge. */
    char *small[8];
    for (size_t i = 0; i < 8; i++)
        small[i] = pa_region_alloc(m.r, 1000);
    for (size_t i = 0; i < 8; i += 2)
        pa_region_free(m.r, small[i]);
    ck_assert_uint_eq(purge_calls, 0);
    /* A large block freed gives back its inner pages. */
    char *big = pa_region_alloc(m.r, (size_t)1 << 20);
    char *wall = pa_region_alloc(m.r, 100);
    ck_assert(big && wall);
    test_fill(wall, 100);
    pa_region_free(m.r, big);
    ck_assert_uint_ge(purge_calls, 1);
    ck_assert_uint_ge(purge_bytes, ((size_t)1 << 20) - 2 * os_page_size());
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    ck_assert(test_check_fill(wall, 100));
    /* Seeded churn of large and small blocks: live data and metadata
     * survive every purge. */
    enum { SLOTS = 64 };
    char *slot[SLOTS] = {0};
    size_t want[SLOTS] = {0};
    uint64_t seed = 4242 + (uint64_t)_i;
    size_t ops = test_scale(3000);
    for (size_t op = 0; op < ops; op++) {
        size_t k = test_rand_below(&seed, SLOTS);
        if (slot[k] && test_rand_below(&seed, 3) == 0) {
            size_t n = test_rand_below(&seed, 400000);
            if (pa_region_resize(m.r, slot[k], n)) {
                size_t keep = n < want[k] ? n : want[k];
                ck_assert(moved_ok(slot[k], slot[k], want[k], keep));
                block_fill(slot[k], n);
                want[k] = n;
            }
        } else if (slot[k]) {
            ck_assert(block_ok(slot[k], want[k]));
            pa_region_free(m.r, slot[k]);
            slot[k] = NULL;
        } else {
            size_t n = test_rand_below(&seed, 2) ? test_rand_below(&seed, 400000)
                                                  : test_rand_below(&seed, 2000);
            slot[k] = pa_region_alloc(m.r, n);
            if (slot[k]) {
                block_fill(slot[k], n);
                want[k] = n;
            }
        }
        ck_assert_int_eq(pa_region_verify(m.r), 0);
        for (size_t j = 0; j < SLOTS; j++)
            if (slot[j])
                ck_assert(block_ok(slot[j], want[j]));
    }
    ck_assert_uint_gt(purge_calls, 10);
    for (size_t k = 0; k < SLOTS; k++)
        if (slot[k])
            pa_region_free(m.r, slot[k]);
    ck_assert(test_check_fill(wall, 100));
    size_t before = purge_calls;
    pa_region_reset(m.r);
    ck_assert_uint_eq(purge_calls, before + 1);
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    /* Blocks carved from the purged area work as before. */
    for (size_t i = 0; i < 20; i++) {
        char *p = pa_region_alloc(m.r, 70000);
        ck_assert_ptr_nonnull(p);
        block_fill(p, 70000);
        ck_assert(block_ok(p, 70000));
    }
    ck_assert_int_eq(pa_region_verify(m.r), 0);
    region_unmap(&m);
}
END_TEST

/* ---- the POW2 bound --------------------------------------------------- */

#define BOUND_PEAK ((size_t)256 << 10)
#define BOUND_LARGEST ((size_t)16 << 10)

/* What a request weighs in the bound: at least a granule, an aligned one
 * its alignment less a granule more. */
static size_t pow2_weight(size_t n, size_t align)
{
    return (n < 16 ? 16 : n) + (align > 16 ? align - 16 : 0);
}

typedef struct bound_run {
    region_t *r;
    size_t live_weight, failures, served;
    void **live;
    size_t *weight;
    size_t count, cap;
} bound_run_t;

/* One request under the peak; false when the region refused it. */
static bool bound_alloc(bound_run_t *b, size_t n, size_t align)
{
    size_t w = pow2_weight(n, align);
    ck_assert_uint_le(b->live_weight + w, BOUND_PEAK);
    ck_assert_uint_le(w, BOUND_LARGEST);
    ck_assert_uint_lt(b->count, b->cap);
    void *p = align > 16 ? pa_region_alloc_aligned(b->r, align, n) : pa_region_alloc(b->r, n);
    if (!p) {
        b->failures++;
        return false;
    }
    b->served++;
    b->live[b->count] = p;
    b->weight[b->count++] = w;
    b->live_weight += w;
    return true;
}

static void bound_free_at(bound_run_t *b, size_t i)
{
    pa_region_free(b->r, b->live[i]);
    b->live_weight -= b->weight[i];
    b->live[i] = b->live[--b->count];
    b->weight[i] = b->weight[b->count];
}

static void bound_free_all(bound_run_t *b)
{
    while (b->count)
        bound_free_at(b, b->count - 1);
}

/* The request that wastes most in class k (weight just over half the
 * block less its header; class 6's 17 bytes waste most of all). */
static size_t worst_request(unsigned k)
{
    if (k == 5)
        return 16;
    if (k == 6)
        return 17;
    return ((size_t)1 << (k - 1)) - 15;
}

/* Each class in turn filled to the peak with its most wasteful request,
 * then emptied, upwards and then downwards: the classes' blocks pile up
 * as the proof says they may. Stops at the first refusal. */
static void bound_class_sweep(bound_run_t *b)
{
    unsigned top = 5;
    while (((size_t)1 << top) < BOUND_LARGEST + 16)
        top++;
    for (unsigned pass = 0; pass < 2; pass++)
        for (unsigned i = 0; i <= top - 5; i++) {
            unsigned k = pass == 0 ? 5 + i : top - i;
            size_t n = worst_request(k);
            while (b->live_weight + pow2_weight(n, 16) <= BOUND_PEAK)
                if (!bound_alloc(b, n, 16))
                    return;
            bound_free_all(b);
        }
}

/* Random requests (sizes spread over the classes, some aligned) kept at
 * the peak: a request that would pass it frees random blocks first. */
static void bound_random(bound_run_t *b, uint64_t seed, size_t ops)
{
    for (size_t op = 0; op < ops && !b->failures; op++) {
        unsigned bits = 4 + (unsigned)test_rand_below(&seed, 11);
        size_t n = test_rand_below(&seed, (size_t)1 << bits);
        size_t align = 16;
        if (test_rand_below(&seed, 8) == 0)
            align = (size_t)32 << test_rand_below(&seed, 6);
        if (pow2_weight(n, align) > BOUND_LARGEST)
            continue;
        while (b->live_weight + pow2_weight(n, align) > BOUND_PEAK)
            bound_free_at(b, test_rand_below(&seed, b->count));
        bound_alloc(b, n, align);
    }
}

static bound_run_t bound_start(size_t size)
{
    bound_run_t b = {0};
    b.cap = BOUND_PEAK / 16 + 1;
    b.live = malloc(b.cap * sizeof *b.live);
    b.weight = malloc(b.cap * sizeof *b.weight);
    ck_assert(b.live && b.weight);
    void *base = pa_os_map(size);
    ck_assert_ptr_nonnull(base);
    b.r = pa_region_init(base, size, REGION_FIT_POW2, NULL);
    ck_assert_ptr_nonnull(b.r);
    return b;
}

static void bound_end(bound_run_t *b, size_t size)
{
    ck_assert_int_eq(pa_region_verify(b->r), 0);
    free(b->live);
    free(b->weight);
    pa_os_unmap(b->r, size);
}

START_TEST(test_pow2_bound_formula)
{
    /* 4 x peak x (K - 4) in the area, K = ceil(log2(largest + 16)). */
    size_t bound = pa_region_pow2_bound(BOUND_PEAK, BOUND_LARGEST);
    size_t area = 4 * BOUND_PEAK * (15 - 4);
    ck_assert_uint_ge(bound, area + 16);
    ck_assert_uint_lt(bound, area + area / 64);
    ck_assert_uint_eq(pa_region_pow2_bound(SIZE_MAX / 2, 100), 0);
    ck_assert_uint_eq(pa_region_pow2_bound(100, SIZE_MAX), 0);
    ck_assert_uint_ge(pa_region_pow2_bound(0, 0), pa_region_min_size());
    /* The largest request always fits a fresh region of the bound. */
    for (size_t largest = 1; largest < ((size_t)1 << 24); largest = largest * 3 + 1) {
        size_t size = pa_region_pow2_bound(largest, largest);
        ck_assert_uint_ge(pa_region_max_request_fit(REGION_FIT_POW2, size), largest);
    }
}
END_TEST

START_TEST(test_pow2_bound_holds)
{
    size_t size = pa_region_pow2_bound(BOUND_PEAK, BOUND_LARGEST);
    bound_run_t b = bound_start(size);
    bound_class_sweep(&b);
    ck_assert_uint_eq(b.failures, 0);
    ck_assert_uint_gt(b.served, BOUND_PEAK / 16);
    /* Random requests at the peak, on top of what the sweeps stranded. */
    bound_random(&b, 1234567 + (uint64_t)_i, test_scale(300000));
    ck_assert_uint_eq(b.failures, 0);
    bound_free_all(&b);
    bound_class_sweep(&b);
    ck_assert_uint_eq(b.failures, 0);
    bound_end(&b, size);
}
END_TEST

/* In half the bound the class sweep runs out: the bound is not loose by
 * a factor of two. */
START_TEST(test_pow2_half_bound_fails)
{
    size_t size = pa_region_pow2_bound(BOUND_PEAK, BOUND_LARGEST) / 2 & ~(size_t)15;
    bound_run_t b = bound_start(size);
    bound_class_sweep(&b);
    ck_assert_uint_eq(b.failures, 1);
    bound_free_all(&b);
    bound_end(&b, size);
}
END_TEST

static Suite *region_suite(void)
{
    Suite *s = suite_create("region");
    TCase *tc = tcase_create("layout");
    tcase_add_loop_test(tc, test_too_small, 0, 3);
    tcase_add_loop_test(tc, test_max_request, 0, 3);
    tcase_add_loop_test(tc, test_huge_region, 0, 3);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("blocks");
    tcase_add_loop_test(tc, test_invalid_pointers, 0, 3);
    tcase_add_loop_test(tc, test_verify_catches_damage, 0, 3);
    tcase_add_loop_test(tc, test_usage_exact, 0, 3);
    tcase_add_loop_test(tc, test_reset_refuses_old_pointers, 0, 3);
    tcase_add_loop_test(tc, test_aligned, 0, 3);
    tcase_add_test(tc, test_best_fit_exact);
    tcase_add_loop_test(tc, test_random_sequence, 0, 6);
    tcase_add_loop_test(tc, test_purge, 0, 3);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    tc = tcase_create("pow2 bound");
    tcase_add_test(tc, test_pow2_bound_formula);
    tcase_add_loop_test(tc, test_pow2_bound_holds, 0, 2);
    tcase_add_test(tc, test_pow2_half_bound_fails);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(region_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
