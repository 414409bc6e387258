/* SPDX-License-Identifier: MIT */
/*
 * check_myheap.c - private heaps (myheap_create(3)): each call and each of
 * its errors, every kind of invalid pointer against myheap_free, what
 * myfree, myalloc_usable_size and myrealloc do with private blocks, the
 * limit, the release policies, the locked heap's loop without page faults,
 * heaps in caller buffers (also before allocator_init), reset and destroy
 * with live blocks followed by stale frees, concurrent use of one heap and
 * frees racing destroy, fork, and the heaps as allocator_stats,
 * allocator_dump, allocator_verify and allocator_cleanup see them.
 *
 * Through <pallocator.h> only. Helper threads never call ck_assert: they
 * count failures, and the test asserts after joining them.
 */
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "api_helpers.h"
#include "check_main.h"

#define CHUNK_ALIGN ((size_t)4 << 20) /* chunks are aligned to the segment size */

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

struct heap_stats {
    size_t allocated, freed, peak;
};

static struct heap_stats heap_stats_of(myheap_t *h)
{
    struct heap_stats s = {SIZE_MAX, SIZE_MAX, SIZE_MAX};
    ck_assert_int_eq(myheap_stats(h, &s.allocated, &s.freed, &s.peak), 0);
    return s;
}

static int heap_stats_equal(struct heap_stats a, struct heap_stats b)
{
    return a.allocated == b.allocated && a.freed == b.freed && a.peak == b.peak;
}

/* ptr is not a live block of h: myheap_free, myheap_usable_size and
 * myheap_realloc refuse it with EINVAL and leave h as it was. */
static void check_heap_refuses(myheap_t *h, void *ptr, const char *what)
{
    struct heap_stats before = heap_stats_of(h);
    errno = 0;
    int r = myheap_free(h, ptr);
    ck_assert_msg(r == -1 && errno == EINVAL, "myheap_free(%s) returned %d, errno %d", what, r,
                  errno);
    errno = 0;
    size_t u = myheap_usable_size(h, ptr);
    ck_assert_msg(u == 0 && errno == EINVAL, "myheap_usable_size(%s) returned %zu", what, u);
    errno = 0;
    void *q = myheap_realloc(h, ptr, 48);
    ck_assert_msg(q == NULL && errno == EINVAL, "myheap_realloc(%s) returned %p, errno %d",
                  what, q, errno);
    ck_assert_msg(heap_stats_equal(before, heap_stats_of(h)), "%s changed the heap's figures",
                  what);
    ck_assert_msg(myheap_verify(h) == 0, "heap unsound after %s", what);
}

/* The handle is refused by every call with EINVAL. */
static void check_handle_refused(myheap_t *h, const char *what)
{
    size_t a, f, p;
    errno = 0;
    ck_assert_msg(myheap_alloc(h, 16) == NULL && errno == EINVAL, "alloc on %s", what);
    errno = 0;
    ck_assert_msg(myheap_calloc(h, 2, 16) == NULL && errno == EINVAL, "calloc on %s", what);
    errno = 0;
    ck_assert_msg(myheap_calloc(h, SIZE_MAX, 16) == NULL && errno == EINVAL,
                  "overflowing calloc on %s", what);
    errno = 0;
    ck_assert_msg(myheap_realloc(h, NULL, 16) == NULL && errno == EINVAL, "realloc on %s", what);
    errno = 0;
    ck_assert_msg(myheap_alloc_aligned(h, 64, 16) == NULL && errno == EINVAL, "aligned on %s",
                  what);
    int dummy = 0;
    errno = 0;
    ck_assert_msg(myheap_free(h, &dummy) == -1 && errno == EINVAL, "free on %s", what);
    errno = 0;
    ck_assert_msg(myheap_free(h, NULL) == -1 && errno == EINVAL, "free(NULL) on %s", what);
    errno = 0;
    ck_assert_msg(myheap_usable_size(h, &dummy) == 0 && errno == EINVAL, "usable on %s", what);
    errno = 0;
    ck_assert_msg(myheap_reset(h) == -1 && errno == EINVAL, "reset on %s", what);
    errno = 0;
    ck_assert_msg(myheap_stats(h, &a, &f, &p) == -1 && errno == EINVAL, "stats on %s", what);
    errno = 0;
    ck_assert_msg(myheap_verify(h) == -1 && errno == EINVAL, "verify on %s", what);
    errno = 0;
    ck_assert_msg(myheap_destroy(h) == -1 && errno == EINVAL, "destroy on %s", what);
}

static myheap_t *heap_new(size_t limit, unsigned flags, unsigned release)
{
    struct myheap_options o = {.size = sizeof o, .limit = limit, .flags = flags,
                               .release = release};
    myheap_t *h = myheap_create(&o);
    ck_assert_msg(h != NULL, "myheap_create failed: errno %d", errno);
    return h;
}

/* ------------------------------------------------------------------ */
/* Creation                                                             */
/* ------------------------------------------------------------------ */

START_TEST(test_create_defaults)
{
    myheap_t *h = myheap_create(NULL);
    ck_assert_ptr_nonnull(h);
    struct heap_stats s = heap_stats_of(h);
    ck_assert_uint_eq(s.allocated, 0);
    ck_assert_uint_eq(s.peak, 0);
    ck_assert_uint_gt(s.freed, 0);
    unsigned char *p = myheap_alloc(h, 100);
    ck_assert_ptr_nonnull(p);
    ck_assert(is_aligned(p));
    size_t u = myheap_usable_size(h, p);
    ck_assert_uint_ge(u, 100);
    test_fill(p, u);
    s = heap_stats_of(h);
    ck_assert_uint_eq(s.allocated, u);
    ck_assert_uint_eq(s.peak, u);
    ck_assert_int_eq(myheap_verify(h), 0);
    ck_assert(test_check_fill(p, u));
    ck_assert_int_eq(myheap_free(h, p), 0);
    ck_assert_int_eq(myheap_free(h, NULL), 0);
    s = heap_stats_of(h);
    ck_assert_uint_eq(s.allocated, 0);
    ck_assert_uint_eq(s.peak, u);
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

START_TEST(test_create_fits)
{
    static const unsigned fits[] = {0, MYHEAP_BEST_FIT, MYHEAP_POW2_FIT};
    for (size_t f = 0; f < 3; f++) {
        myheap_t *h = heap_new(0, fits[f], MYHEAP_RELEASE_DELAYED);
        struct live_block b[200];
        uint64_t rng = 7 + f;
        for (size_t i = 0; i < 200; i++) {
            b[i].n = random_size(&rng, 300 * KiB);
            b[i].p = myheap_alloc(h, b[i].n);
            ck_assert_ptr_nonnull(b[i].p);
            b[i].u = myheap_usable_size(h, b[i].p);
            ck_assert_uint_ge(b[i].u, b[i].n);
            block_fill(b[i].p, b[i].n);
        }
        check_disjoint(b, 200);
        ck_assert_int_eq(myheap_verify(h), 0);
        for (size_t i = 0; i < 200; i += 2) {
            ck_assert(block_ok(b[i].p, b[i].n));
            ck_assert_int_eq(myheap_free(h, b[i].p), 0);
        }
        ck_assert_int_eq(myheap_verify(h), 0);
        for (size_t i = 1; i < 200; i += 2)
            ck_assert(block_ok(b[i].p, b[i].n));
        ck_assert_int_eq(myheap_destroy(h), 0);
    }
}
END_TEST

START_TEST(test_create_bad_options)
{
    struct myheap_options o;
    struct {
        struct myheap_options o;
        const char *what;
    } bad[] = {
        {{.size = 3}, "a wrong size field"},
        {{.size = sizeof o + 8}, "a size field from the future"},
        {{.flags = 0x100}, "an unknown flag"},
        {{.flags = MYHEAP_BEST_FIT | MYHEAP_POW2_FIT}, "two fits"},
        {{.release = 3}, "an unknown release policy"},
        {{.flags = MYHEAP_LOCKED}, "a locked heap without a limit"},
        {{.flags = MYHEAP_NUMA_NODE, .numa_node = 4096}, "a node past any"},
        {{.flags = MYHEAP_NUMA_NODE, .numa_node = -1}, "node -1"},
        {{.limit = 1000}, "a limit smaller than a chunk"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        myheap_t *h = myheap_create(&bad[i].o);
        ck_assert_msg(h == NULL && errno == EINVAL, "myheap_create with %s: %p, errno %d",
                      bad[i].what, (void *)h, errno);
    }
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

START_TEST(test_create_numa_node)
{
    /* Node 0 exists on every machine. */
    struct myheap_options o = {.flags = MYHEAP_NUMA_NODE, .numa_node = 0};
    myheap_t *h = myheap_create(&o);
    ck_assert_ptr_nonnull(h);
    char *p = myheap_alloc(h, 1000);
    ck_assert_ptr_nonnull(p);
    memset(p, 1, 1000);
    ck_assert_int_eq(myheap_verify(h), 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Handles                                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_bad_handles)
{
    check_handle_refused(NULL, "NULL");
    myheap_t *h = myheap_create(NULL);
    ck_assert_ptr_nonnull(h);
    void *p = myheap_alloc(h, 64);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(myheap_destroy(h), 0);
    check_handle_refused(h, "a destroyed heap");
    /* Garbage: an aligned buffer without a heap's magic, and a pointer
     * inside a live heap's descriptor. */
    static _Alignas(64) unsigned char garbage[4096];
    memset(garbage, 0x5a, sizeof garbage);
    check_handle_refused((myheap_t *)garbage, "garbage");
    check_handle_refused((myheap_t *)(garbage + 1), "a misaligned pointer");
    myheap_t *live = myheap_create(NULL);
    ck_assert_ptr_nonnull(live);
    check_handle_refused((myheap_t *)((char *)live + 64), "the inside of a descriptor");
    ck_assert_int_eq(myheap_verify(live), 0);
    ck_assert_int_eq(myheap_destroy(live), 0);
    /* A buffer heap destroyed. */
    static _Alignas(64) unsigned char buf[64 * 1024];
    myheap_t *b = myheap_create_in(buf, sizeof buf, 0);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(myheap_destroy(b), 0);
    check_handle_refused(b, "a destroyed buffer heap");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Invalid pointers                                                     */
/* ------------------------------------------------------------------ */

START_TEST(test_free_invalid_pointers)
{
    myheap_t *h = myheap_create(NULL);
    myheap_t *other = myheap_create(NULL);
    static _Alignas(64) unsigned char buf[256 * 1024];
    myheap_t *inbuf = myheap_create_in(buf, sizeof buf, 0);
    ck_assert(h && other && inbuf);
    unsigned char *p = myheap_alloc(h, 256);
    unsigned char *keep = myheap_alloc(h, 5000);
    ck_assert(p && keep);
    test_fill(keep, 5000);

    check_heap_refuses(h, p + 16, "an interior pointer");
    check_heap_refuses(h, p + 1, "a misaligned pointer");
    check_heap_refuses(h, p - 16, "the block's header");
    int local;
    check_heap_refuses(h, &local, "a stack address");
    static int global;
    check_heap_refuses(h, &global, "a static address");
    void *small = myalloc(32), *arena = myalloc(64 * KiB), *large = myalloc(2 * MiB);
    ck_assert(small && arena && large);
    check_heap_refuses(h, small, "a myalloc slab block");
    check_heap_refuses(h, arena, "a myalloc arena block");
    check_heap_refuses(h, large, "a large myalloc block");
    void *theirs = myheap_alloc(other, 256);
    void *buffered = myheap_alloc(inbuf, 256);
    ck_assert(theirs && buffered);
    check_heap_refuses(h, theirs, "a block of another heap");
    check_heap_refuses(h, buffered, "a block of a buffer heap");
    check_heap_refuses(inbuf, p, "a mapped heap's block, to a buffer heap");
    /* The chunk's start (its header) and an address past its end inside
     * the same segment-map slot. */
    unsigned char *chunk = (unsigned char *)((uintptr_t)p & ~(CHUNK_ALIGN - 1));
    check_heap_refuses(h, chunk, "the chunk's header");
    ck_assert_int_eq(myheap_free(h, p), 0);
    check_heap_refuses(h, p, "a freed block (double free)");

    ck_assert(test_check_fill(keep, 5000));
    ck_assert_int_eq(myfree(small), 0);
    ck_assert_int_eq(myfree(arena), 0);
    ck_assert_int_eq(myfree(large), 0);
    ck_assert_int_eq(myheap_free(other, theirs), 0);
    ck_assert_int_eq(myheap_free(inbuf, buffered), 0);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
    ck_assert_int_eq(myheap_destroy(other), 0);
    ck_assert_int_eq(myheap_destroy(inbuf), 0);
}
END_TEST

/* A heap limited to less than a segment: the chunk's segment-map slot
 * covers unmapped addresses, which myfree must refuse without reading. */
START_TEST(test_free_past_small_chunk)
{
    myheap_t *h = heap_new(256 * KiB, 0, MYHEAP_RELEASE_DELAYED);
    unsigned char *p = myheap_alloc(h, 64);
    ck_assert_ptr_nonnull(p);
    unsigned char *chunk = (unsigned char *)((uintptr_t)p & ~(CHUNK_ALIGN - 1));
    /* Not the heap's (another mapping may lie there, read nothing). */
    unsigned char *beyond = chunk + 2 * MiB;
    check_heap_refuses(h, beyond, "an address past the chunk");
    errno = 0;
    ck_assert(myfree(beyond) == -1 && errno == EINVAL);
    errno = 0;
    ck_assert(myalloc_usable_size(beyond) == 0 && errno == EINVAL);
    errno = 0;
    ck_assert(myrealloc(beyond, 10) == NULL && errno == EINVAL);
    errno = 0;
    ck_assert(myfree(chunk) == -1 && errno == EINVAL);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* myfree, myalloc_usable_size and myrealloc on private blocks          */
/* ------------------------------------------------------------------ */

START_TEST(test_public_calls_on_private_blocks)
{
    myheap_t *h = myheap_create(NULL);
    ck_assert_ptr_nonnull(h);
    unsigned char *p = myheap_alloc(h, 300);
    ck_assert_ptr_nonnull(p);
    size_t u = myheap_usable_size(h, p);
    ck_assert_uint_eq(myalloc_usable_size(p), u);
    test_fill(p, 300);
    /* myrealloc keeps the block in its heap, moved or not. */
    unsigned char *q = myrealloc(p, 100 * KiB);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_ge(myheap_usable_size(h, q), 100 * KiB);
    for (size_t i = 0; i < 300; i++)
        ck_assert_uint_eq(q[i], test_pattern_byte(p, i));
    if (q != p)
        check_heap_refuses(h, p, "the old block of a moved myrealloc");
    struct heap_stats s = heap_stats_of(h);
    ck_assert_uint_eq(s.allocated, myheap_usable_size(h, q));
    /* Size 0: a minimal block, still live. */
    unsigned char *z = myrealloc(q, 0);
    ck_assert_ptr_nonnull(z);
    ck_assert_uint_gt(myheap_usable_size(h, z), 0);
    ck_assert_int_eq(myfree(z), 0);
    errno = 0;
    ck_assert(myfree(z) == -1 && errno == EINVAL);
    errno = 0;
    ck_assert(myalloc_usable_size(z) == 0 && errno == EINVAL);
    errno = 0;
    ck_assert(myrealloc(z, 10) == NULL && errno == EINVAL);
    ck_assert_uint_eq(heap_stats_of(h).allocated, 0);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

START_TEST(test_public_calls_refuse_buffer_blocks)
{
    static _Alignas(64) unsigned char buf[128 * 1024];
    myheap_t *h = myheap_create_in(buf, sizeof buf, 0);
    ck_assert_ptr_nonnull(h);
    void *p = myheap_alloc(h, 200);
    ck_assert_ptr_nonnull(p);
    struct heap_stats before = heap_stats_of(h);
    check_invalid_pointer(p, "a block of a heap in a buffer");
    ck_assert(heap_stats_equal(before, heap_stats_of(h)));
    ck_assert_uint_ge(myheap_usable_size(h, p), 200);
    ck_assert_int_eq(myheap_free(h, p), 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Each call's own errors and results                                   */
/* ------------------------------------------------------------------ */

START_TEST(test_aligned)
{
    myheap_t *h = myheap_create(NULL);
    static const size_t bad[] = {0, 3, 24, 48, 100, (size_t)1 << 20 | 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        ck_assert_msg(myheap_alloc_aligned(h, bad[i], 64) == NULL && errno == EINVAL,
                      "alignment %zu accepted", bad[i]);
    }
    void *kept[20];
    for (unsigned k = 0; k < 20; k++) {
        size_t align = (size_t)1 << k;
        kept[k] = myheap_alloc_aligned(h, align, 100 + k);
        ck_assert_ptr_nonnull(kept[k]);
        ck_assert_uint_eq((uintptr_t)kept[k] % align, 0);
        ck_assert_uint_ge(myheap_usable_size(h, kept[k]), 100 + k);
        memset(kept[k], (int)k, 100 + k);
    }
    ck_assert_int_eq(myheap_verify(h), 0);
    for (unsigned k = 0; k < 20; k++) {
        ck_assert(test_all_bytes(kept[k], 100 + k, (unsigned char)k));
        ck_assert_int_eq(myheap_free(h, kept[k]), 0);
    }
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

START_TEST(test_calloc)
{
    myheap_t *h = myheap_create(NULL);
    errno = 0;
    ck_assert(myheap_calloc(h, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    errno = 0;
    ck_assert(myheap_calloc(h, (size_t)1 << 40, (size_t)1 << 40) == NULL && errno == ENOMEM);
    ck_assert_int_eq(myheap_verify(h), 0);
    /* Zeroed also where a freed block was dirty. */
    for (int round = 0; round < 4; round++) {
        unsigned char *d = myheap_alloc(h, 4000);
        ck_assert_ptr_nonnull(d);
        memset(d, 0xee, 4000);
        ck_assert_int_eq(myheap_free(h, d), 0);
        unsigned char *c = myheap_calloc(h, 100, 40);
        ck_assert_ptr_nonnull(c);
        ck_assert(test_all_bytes(c, 4000, 0));
        ck_assert_int_eq(myheap_free(h, c), 0);
    }
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

START_TEST(test_realloc)
{
    myheap_t *h = myheap_create(NULL);
    unsigned char *p = myheap_realloc(h, NULL, 40);
    ck_assert_ptr_nonnull(p);
    test_fill(p, 40);
    size_t sizes[] = {80, 16, 3000, 200 * KiB, 10, 5 * MiB, 64};
    size_t old = 40;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *q = myheap_realloc(h, p, sizes[i]);
        ck_assert_ptr_nonnull(q);
        size_t keep = old < sizes[i] ? old : sizes[i];
        ck_assert(moved_ok(q, p, old, keep));
        ck_assert_uint_ge(myheap_usable_size(h, q), sizes[i]);
        block_fill(q, sizes[i]);
        p = q;
        old = sizes[i];
        ck_assert_int_eq(myheap_verify(h), 0);
    }
    unsigned char *z = myheap_realloc(h, p, 0);
    ck_assert_ptr_nonnull(z);
    ck_assert_uint_gt(myheap_usable_size(h, z), 0);
    ck_assert_int_eq(myheap_free(h, z), 0);
    ck_assert_uint_eq(heap_stats_of(h).allocated, 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

/* A heap at its limit: NULL with ENOMEM, and nothing else changes. */
START_TEST(test_limit)
{
    size_t limit = 12 * MiB;
    myheap_t *h = heap_new(limit, 0, MYHEAP_RELEASE_NEVER);
    void *blocks[64];
    size_t n = 0;
    for (; n < 64; n++) {
        blocks[n] = myheap_alloc(h, 512 * KiB);
        if (!blocks[n])
            break;
        block_fill(blocks[n], 512 * KiB);
    }
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_uint_gt(n, 8);
    ck_assert_uint_lt(n, 24); /* the limit held: 12 MiB is 24 such blocks */
    struct heap_stats before = heap_stats_of(h);
    errno = 0;
    ck_assert(myheap_alloc(h, 512 * KiB) == NULL && errno == ENOMEM);
    errno = 0;
    ck_assert(myheap_alloc(h, 64 * MiB) == NULL && errno == ENOMEM);
    errno = 0;
    ck_assert(myheap_alloc_aligned(h, MiB, 4 * MiB) == NULL && errno == ENOMEM);
    errno = 0;
    ck_assert(myheap_calloc(h, 1024, 1024) == NULL && errno == ENOMEM);
    errno = 0;
    ck_assert(myheap_realloc(h, blocks[0], 32 * MiB) == NULL && errno == ENOMEM);
    ck_assert(heap_stats_equal(before, heap_stats_of(h)));
    ck_assert_int_eq(myheap_verify(h), 0);
    ck_assert_int_eq(allocator_verify(), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert(block_ok(blocks[i], 512 * KiB));
    /* Room again after a free. */
    ck_assert_int_eq(myheap_free(h, blocks[n - 1]), 0);
    blocks[n - 1] = myheap_alloc(h, 512 * KiB);
    ck_assert_ptr_nonnull(blocks[n - 1]);
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

START_TEST(test_size_for)
{
    ck_assert_uint_eq(myheap_size_for(SIZE_MAX, SIZE_MAX), 0);
    ck_assert_uint_ge(myheap_size_for(0, 0), MYHEAP_MIN_BUFFER);
    size_t peak = 64 * KiB, largest = 4 * KiB;
    size_t size = myheap_size_for(peak, largest);
    ck_assert_uint_ge(size, peak);
    ck_assert_uint_ge(myheap_size_for(2 * peak, largest), size);
    /* Random requests kept at most peak live bytes never fail in a
     * buffer of that size. */
    unsigned char *buf = malloc(size);
    ck_assert_ptr_nonnull(buf);
    myheap_t *h = myheap_create_in(buf, size, MYHEAP_POW2_FIT);
    ck_assert_ptr_nonnull(h);
    enum { SLOTS = 256 };
    void *p[SLOTS] = {0};
    size_t n[SLOTS] = {0}, live = 0;
    uint64_t rng = 99;
    for (size_t round = 0; round < test_scale(20000); round++) {
        size_t k = test_rand_below(&rng, SLOTS);
        if (p[k]) {
            ck_assert_int_eq(myheap_free(h, p[k]), 0);
            live -= n[k];
            p[k] = NULL;
            continue;
        }
        size_t want = 1 + test_rand_below(&rng, largest);
        /* The bound counts each request as at least 16 bytes. */
        size_t weight = want < 16 ? 16 : want;
        if (live + weight > peak)
            continue;
        p[k] = myheap_alloc(h, want);
        ck_assert_msg(p[k] != NULL, "request %zu failed with %zu live of %zu", want, live, peak);
        n[k] = weight;
        live += weight;
    }
    ck_assert_int_eq(myheap_verify(h), 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
    free(buf);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Heaps in buffers                                                     */
/* ------------------------------------------------------------------ */

START_TEST(test_create_in_errors)
{
    static _Alignas(64) unsigned char buf[64 * 1024];
    errno = 0;
    ck_assert(myheap_create_in(NULL, sizeof buf, 0) == NULL && errno == EINVAL);
    errno = 0;
    ck_assert(myheap_create_in(buf, MYHEAP_MIN_BUFFER - 1, 0) == NULL && errno == EINVAL);
    errno = 0;
    ck_assert(myheap_create_in(buf, sizeof buf, MYHEAP_LOCKED) == NULL && errno == EINVAL);
    errno = 0;
    ck_assert(myheap_create_in(buf, sizeof buf, MYHEAP_NUMA_NODE) == NULL && errno == EINVAL);
    errno = 0;
    ck_assert(myheap_create_in(buf, sizeof buf, MYHEAP_BEST_FIT | MYHEAP_POW2_FIT) == NULL &&
              errno == EINVAL);
    errno = 0;
    ck_assert(myheap_create_in(buf, sizeof buf, 0x400) == NULL && errno == EINVAL);
    /* The smallest buffer works, also misaligned. */
    myheap_t *h = myheap_create_in(buf + 3, MYHEAP_MIN_BUFFER, 0);
    ck_assert_ptr_nonnull(h);
    ck_assert((unsigned char *)h >= buf + 3 && (unsigned char *)h < buf + 3 + MYHEAP_MIN_BUFFER);
    void *p = myheap_alloc(h, 1000);
    ck_assert_ptr_nonnull(p);
    ck_assert((unsigned char *)p > buf && (unsigned char *)p + 1000 <= buf + 3 + MYHEAP_MIN_BUFFER);
    errno = 0;
    ck_assert(myheap_alloc(h, MYHEAP_MIN_BUFFER) == NULL && errno == ENOMEM);
    ck_assert_int_eq(myheap_verify(h), 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

/* Before allocator_init, and without it: the allocator stays
 * uninitialised (allocator_init(0) then still succeeds). */
static _Alignas(64) unsigned char early_buf[512 * 1024];

START_TEST(test_create_in_before_init)
{
    myheap_t *h = myheap_create_in(early_buf, sizeof early_buf, MYHEAP_BEST_FIT);
    ck_assert_ptr_nonnull(h);
    void *p[100];
    for (int i = 0; i < 100; i++) {
        p[i] = myheap_alloc(h, 16 + (size_t)i * 37);
        ck_assert_ptr_nonnull(p[i]);
        ck_assert((unsigned char *)p[i] >= early_buf &&
                  (unsigned char *)p[i] < early_buf + sizeof early_buf);
        test_fill(p[i], 16 + (size_t)i * 37);
    }
    for (int i = 0; i < 100; i += 3)
        ck_assert_int_eq(myheap_free(h, p[i]), 0);
    ck_assert_int_eq(myheap_verify(h), 0);
    for (int i = 1; i < 100; i += 3)
        ck_assert(test_check_fill(p[i], 16 + (size_t)i * 37));
    ck_assert_int_eq(myheap_reset(h), 0);
    ck_assert_uint_eq(heap_stats_of(h).allocated, 0);
    /* Nothing initialised the allocator: the single-threaded mode can
     * still be chosen, and sees the heap. */
    ck_assert_int_eq(allocator_init(0), 0);
    void *q = myheap_alloc(h, 500);
    ck_assert_ptr_nonnull(q);
    size_t a = 0;
    ck_assert_int_eq(allocator_stats(&a, NULL, NULL), 0);
    ck_assert_uint_eq(a, myheap_usable_size(h, q));
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Reset and destroy with live blocks                                   */
/* ------------------------------------------------------------------ */

#define MANY 20000

START_TEST(test_reset_stale_frees)
{
    myheap_t *h = myheap_create(NULL);
    size_t n = test_scale(MANY);
    void **p = malloc(n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    uint64_t rng = 5;
    for (size_t i = 0; i < n; i++) {
        p[i] = myheap_alloc(h, 16 + test_rand_below(&rng, 2000));
        ck_assert_ptr_nonnull(p[i]);
    }
    ck_assert_uint_gt(heap_stats_of(h).allocated, 0);
    ck_assert_int_eq(myheap_reset(h), 0);
    struct heap_stats s = heap_stats_of(h);
    ck_assert_uint_eq(s.allocated, 0);
    ck_assert_int_eq(myheap_verify(h), 0);
    for (size_t i = 0; i < n; i += n / 50) {
        errno = 0;
        ck_assert(myheap_free(h, p[i]) == -1 && errno == EINVAL);
        errno = 0;
        ck_assert(myfree(p[i]) == -1 && errno == EINVAL);
        errno = 0;
        ck_assert(myalloc_usable_size(p[i]) == 0 && errno == EINVAL);
    }
    ck_assert(heap_stats_equal(s, heap_stats_of(h)));
    /* The heap serves again, from the memory it kept. */
    for (size_t i = 0; i < n; i++) {
        p[i] = myheap_alloc(h, 64);
        ck_assert_ptr_nonnull(p[i]);
    }
    ck_assert_int_eq(myheap_verify(h), 0);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
    free(p);
}
END_TEST

START_TEST(test_destroy_stale_frees)
{
    myheap_t *h = myheap_create(NULL);
    myheap_t *survivor = myheap_create(NULL);
    size_t n = test_scale(MANY);
    void **p = malloc(n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) {
        p[i] = myheap_alloc(h, i % 3 ? 48 : 600 * (i % 7));
        ck_assert_ptr_nonnull(p[i]);
    }
    void *big = myheap_alloc(h, 9 * MiB); /* a chunk of its own */
    ck_assert_ptr_nonnull(big);
    void *kept = myheap_alloc(survivor, 100);
    test_fill(kept, 100);
    ck_assert_int_eq(myheap_destroy(h), 0);
    ck_assert(!test_is_mapped(big));
    for (size_t i = 0; i < n; i += n / 50) {
        errno = 0;
        ck_assert(myheap_free(h, p[i]) == -1 && errno == EINVAL);
        errno = 0;
        ck_assert(myfree(p[i]) == -1 && errno == EINVAL);
    }
    errno = 0;
    ck_assert(myfree(big) == -1 && errno == EINVAL);
    ck_assert(test_check_fill(kept, 100));
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myheap_destroy(survivor), 0);
    free(p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Release policies                                                     */
/* ------------------------------------------------------------------ */

/* The free that empties a chunk of a delayed heap never releases it,
 * whatever millisecond the clock shows: the chunk's stamp once rounded up
 * to an odd count, and a free in an even millisecond then found it empty
 * for 2^64 - 1 ms. Repeated over a few milliseconds to meet both. */
START_TEST(test_release_delayed_waits)
{
    struct myheap_options o = {.release = MYHEAP_RELEASE_DELAYED, .release_delay_ms = 1000};
    myheap_t *h = myheap_create(&o);
    ck_assert_ptr_nonnull(h);
    for (int i = 0; i < 12; i++) {
        void *c = myheap_alloc(h, 6 * MiB);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(myheap_free(h, c), 0);
        ck_assert_msg(test_is_mapped(c), "round %d: released at once", i);
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

START_TEST(test_release_policies)
{
    /* A block too large for the first chunk gets a chunk of its own. */
    myheap_t *imm = heap_new(0, 0, MYHEAP_RELEASE_IMMEDIATE);
    myheap_t *never = heap_new(0, 0, MYHEAP_RELEASE_NEVER);
    /* A delay no stretch between the test's calls reaches, under memcheck
     * too (the clock counts whole, coarse milliseconds). */
    struct myheap_options o = {.release = MYHEAP_RELEASE_DELAYED, .release_delay_ms = 50};
    myheap_t *delayed = myheap_create(&o);
    ck_assert_ptr_nonnull(delayed);
    void *a = myheap_alloc(imm, 6 * MiB), *b = myheap_alloc(never, 6 * MiB),
         *c = myheap_alloc(delayed, 6 * MiB);
    ck_assert(a && b && c);
    memset(a, 1, 6 * MiB);
    memset(b, 1, 6 * MiB);
    memset(c, 1, 6 * MiB);
    ck_assert_int_eq(myheap_free(imm, a), 0);
    ck_assert_int_eq(myheap_free(never, b), 0);
    ck_assert_int_eq(myfree(c), 0);
    ck_assert(!test_is_mapped(a));
    ck_assert(test_is_mapped(b));
    ck_assert(test_is_mapped(c)); /* until a call after the delay */
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    void *d = myheap_alloc(delayed, 16);
    ck_assert_ptr_nonnull(d);
    ck_assert(!test_is_mapped(c));
    ck_assert(test_is_mapped(d));
    ck_assert_int_eq(allocator_verify(), 0);
    /* Immediate: a large free block's whole pages go back at once. */
    unsigned char *big = myheap_alloc(imm, 1 * MiB);
    unsigned char *after = myheap_alloc(imm, 64);
    ck_assert(big && after);
    memset(big, 7, MiB);
    ck_assert(test_page_resident(big + MiB / 2));
    ck_assert_int_eq(myheap_free(imm, big), 0);
    ck_assert(!test_page_resident(big + MiB / 2));
    ck_assert_int_eq(myheap_verify(imm), 0);
    ck_assert_int_eq(myheap_destroy(imm), 0);
    ck_assert_int_eq(myheap_destroy(never), 0);
    ck_assert_int_eq(myheap_destroy(delayed), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The locked heap                                                      */
/* ------------------------------------------------------------------ */

static long minor_faults(void)
{
    struct rusage ru;
    ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_minflt;
}

static void locked_loop(myheap_t *h, void **slots, size_t nslots, size_t rounds)
{
    uint64_t rng = 11;
    for (size_t r = 0; r < rounds; r++) {
        size_t k = test_rand_below(&rng, nslots);
        if (slots[k]) {
            ck_assert(myheap_free(h, slots[k]) == 0);
            slots[k] = NULL;
        } else {
            size_t n = 16 + test_rand_below(&rng, 8 * KiB);
            slots[k] = myheap_alloc(h, n);
            ck_assert(slots[k] != NULL);
            memset(slots[k], (int)r, n);
        }
    }
}

/* Under a checker, its own page faults count as the process's: valgrind's,
 * and the sanitizers', which map and give back shadow memory as blocks
 * are opened and closed. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PA_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PA_TEST_SANITIZED 1
#endif
#endif
#ifndef PA_TEST_SANITIZED
#define PA_TEST_SANITIZED 0
#endif

static const char *checker_faulting(void)
{
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload") != NULL)
        return "valgrind";
    return PA_TEST_SANITIZED ? "a sanitizer" : NULL;
}

START_TEST(test_locked_no_faults)
{
    struct myheap_options o = {.limit = 2 * MiB, .flags = MYHEAP_LOCKED};
    errno = 0;
    myheap_t *h = myheap_create(&o);
    if (!h) {
        ck_assert_msg(errno == EPERM || errno == ENOMEM || errno == EAGAIN,
                      "locked heap refused with errno %d", errno);
        fprintf(stderr, "check_myheap: mlock refused (errno %d): locked-heap loop skipped\n",
                errno);
        return;
    }
    static void *slots[64];
    size_t rounds = test_scale(100000);
    /* A first pass of the same sequence from the same state warms what is
     * not the heap's: the test's code and stack, and a checker's shadow
     * memory where one runs (reset keeps the heap's addresses). */
    memset(slots, 0, sizeof slots);
    locked_loop(h, slots, 64, rounds);
    ck_assert_int_eq(myheap_reset(h), 0);
    memset(slots, 0, sizeof slots);
    long before = minor_faults();
    locked_loop(h, slots, 64, rounds);
    long after = minor_faults();
    if (checker_faulting())
        fprintf(stderr, "check_myheap: under %s, whose own page faults count: "
                "%ld faults in the locked heap's loop not checked\n", checker_faulting(),
                after - before);
    else
        ck_assert_msg(after == before, "%ld minor faults in the locked heap's loop", after - before);
    /* It never grows past its limit. */
    errno = 0;
    ck_assert(myheap_alloc(h, 4 * MiB) == NULL && errno == ENOMEM);
    ck_assert_int_eq(myheap_verify(h), 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

START_TEST(test_locked_needs_limit)
{
    struct myheap_options o = {.flags = MYHEAP_LOCKED};
    errno = 0;
    ck_assert(myheap_create(&o) == NULL && errno == EINVAL);
    /* A limit over RLIMIT_MEMLOCK for an unprivileged process: refused
     * as mlock says, nothing left behind. */
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
    if (rl.rlim_cur != RLIM_INFINITY && geteuid() != 0) {
        struct myheap_options big = {.limit = (size_t)rl.rlim_cur + 8 * MiB,
                                     .flags = MYHEAP_LOCKED};
        errno = 0;
        ck_assert(myheap_create(&big) == NULL);
        ck_assert(errno == ENOMEM || errno == EPERM || errno == EAGAIN);
        ck_assert_int_eq(allocator_verify(), 0);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Single-threaded heaps                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_single_thread_heap)
{
    myheap_t *h = heap_new(0, MYHEAP_SINGLE_THREAD, MYHEAP_RELEASE_DELAYED);
    struct live_block b[500];
    uint64_t rng = 3;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < 500; i++) {
            b[i].n = random_size(&rng, 200 * KiB);
            b[i].p = myheap_alloc(h, b[i].n);
            ck_assert_ptr_nonnull(b[i].p);
            b[i].u = myheap_usable_size(h, b[i].p);
            block_fill(b[i].p, b[i].n);
        }
        check_disjoint(b, 500);
        for (size_t i = 0; i < 500; i++) {
            ck_assert(block_ok(b[i].p, b[i].n));
            ck_assert_int_eq(i % 2 ? myheap_free(h, b[i].p) : myfree(b[i].p), 0);
        }
        ck_assert_int_eq(myheap_verify(h), 0);
    }
    ck_assert_uint_eq(heap_stats_of(h).allocated, 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Threads                                                              */
/* ------------------------------------------------------------------ */

#define THREADS 4
#define HANDOFF 64

static atomic_ulong thread_failures;
static myheap_t *shared_heap;
/* Blocks a thread hands to the next one, which frees them with myfree. */
static _Atomic(unsigned char *) handoff[THREADS][HANDOFF];
static size_t handoff_size[THREADS][HANDOFF];

static void *heap_worker(void *arg)
{
    size_t me = (size_t)arg, next = (me + 1) % THREADS;
    uint64_t rng = 1000 + me;
    enum { SLOTS = 128 };
    unsigned char *p[SLOTS] = {0};
    size_t n[SLOTS] = {0};
    for (size_t r = 0; r < test_scale(40000); r++) {
        size_t k = test_rand_below(&rng, SLOTS);
        if (p[k]) {
            if (!block_ok(p[k], n[k]))
                atomic_fetch_add(&thread_failures, 1);
            /* Every fourth block goes to the next thread, which frees it
             * with myfree; the rest are freed here. */
            size_t h = test_rand_below(&rng, HANDOFF);
            if (r % 4 == 0 && atomic_load(&handoff[next][h]) == NULL) {
                handoff_size[next][h] = n[k];
                atomic_store(&handoff[next][h], p[k]);
            } else if ((r & 1 ? myheap_free(shared_heap, p[k]) : myfree(p[k])) != 0) {
                atomic_fetch_add(&thread_failures, 1);
            }
            p[k] = NULL;
        } else {
            n[k] = test_rand_below(&rng, 4) ? 1 + test_rand_below(&rng, 512)
                                            : 1 + test_rand_below(&rng, 64 * KiB);
            p[k] = r % 8 == 1 ? myheap_calloc(shared_heap, 1, n[k]) : myheap_alloc(shared_heap, n[k]);
            if (!p[k]) {
                atomic_fetch_add(&thread_failures, 1);
                continue;
            }
            block_fill(p[k], n[k]);
        }
        /* One reader and one writer per slot: the size is read before
         * the slot is emptied, and written after it is seen empty. */
        size_t h = test_rand_below(&rng, HANDOFF);
        unsigned char *mine = atomic_load(&handoff[me][h]);
        if (mine) {
            size_t size = handoff_size[me][h];
            atomic_store(&handoff[me][h], NULL);
            if (!block_ok(mine, size) || myfree(mine) != 0)
                atomic_fetch_add(&thread_failures, 1);
        }
    }
    for (size_t k = 0; k < SLOTS; k++)
        if (p[k] && myheap_free(shared_heap, p[k]) != 0)
            atomic_fetch_add(&thread_failures, 1);
    return NULL;
}

START_TEST(test_threads_share_heap)
{
    ck_assert_int_eq(allocator_init(1), 0);
    shared_heap = myheap_create(NULL);
    ck_assert_ptr_nonnull(shared_heap);
    atomic_store(&thread_failures, 0);
    memset(handoff, 0, sizeof handoff);
    pthread_t t[THREADS];
    for (size_t i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, heap_worker, (void *)i), 0);
    for (size_t i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ck_assert_uint_eq(atomic_load(&thread_failures), 0);
    for (size_t i = 0; i < THREADS; i++)
        for (size_t h = 0; h < HANDOFF; h++) {
            unsigned char *p = atomic_load(&handoff[i][h]);
            if (p) {
                ck_assert(block_ok(p, handoff_size[i][h]));
                ck_assert_int_eq(myfree(p), 0);
            }
        }
    ck_assert_uint_eq(heap_stats_of(shared_heap).allocated, 0);
    ck_assert_int_eq(myheap_verify(shared_heap), 0);
    ck_assert_int_eq(allocator_verify(), 0);
    ck_assert_int_eq(myheap_destroy(shared_heap), 0);
}
END_TEST

/* Stray frees of every address a heap handed out, racing with the heap's
 * destroy and the next heap's creation at the same addresses. */
#define STRAY_TARGETS 256
static _Atomic(void *) stray_seen[STRAY_TARGETS];
static atomic_int stray_stop;

static void *stray_freer(void *arg)
{
    (void)arg;
    /* No heap of its own for half the frees: the shared claim slot. */
    while (!atomic_load(&stray_stop)) {
        for (size_t i = 0; i < STRAY_TARGETS; i++) {
            void *p = atomic_load(&stray_seen[i]);
            if (!p)
                continue;
            errno = 0;
            int r = myfree(p);
            if (r != 0 && !(r == -1 && errno == EINVAL))
                atomic_fetch_add(&thread_failures, 1);
            size_t u = myalloc_usable_size(p);
            (void)u;
        }
    }
    return NULL;
}

START_TEST(test_destroy_races_stray_frees)
{
    ck_assert_int_eq(allocator_init(1), 0);
    atomic_store(&thread_failures, 0);
    atomic_store(&stray_stop, 0);
    memset(stray_seen, 0, sizeof stray_seen);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, stray_freer, NULL), 0);
    for (size_t round = 0; round < test_scale(300); round++) {
        myheap_t *h = heap_new(0, 0, round % 3);
        for (size_t i = 0; i < STRAY_TARGETS; i++) {
            void *p = myheap_alloc(h, i % 16 == 0 ? 5 * MiB : 64 + i);
            ck_assert_ptr_nonnull(p);
            atomic_store(&stray_seen[i], p);
        }
        if (round % 2)
            ck_assert_int_eq(myheap_reset(h), 0);
        ck_assert_int_eq(myheap_destroy(h), 0);
    }
    atomic_store(&stray_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ck_assert_uint_eq(atomic_load(&thread_failures), 0);
    ck_assert_int_eq(allocator_verify(), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Introspection, cleanup and fork                                      */
/* ------------------------------------------------------------------ */

static char *capture_dump(void)
{
    char path[] = "/tmp/pa_check_myheapXXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    allocator_dump();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert(pread(fd, text, (size_t)len, 0) == (ssize_t)len);
    text[len] = '\0';
    close(fd);
    return text;
}

static size_t count_substr(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *s = strstr(text, needle); s; s = strstr(s + 1, needle))
        n++;
    return n;
}

START_TEST(test_introspection_sees_heaps)
{
    ck_assert_int_eq(allocator_init(_i), 0);
    struct pa_stats base = get_stats();
    myheap_t *h = myheap_create(NULL);
    static _Alignas(64) unsigned char buf[64 * 1024];
    myheap_t *b = myheap_create_in(buf, sizeof buf, MYHEAP_POW2_FIT);
    ck_assert(h && b);
    void *p = myheap_alloc(h, 1000), *q = myheap_alloc(b, 100);
    ck_assert(p && q);
    size_t mine = myheap_usable_size(h, p) + myheap_usable_size(b, q);
    struct pa_stats s = get_stats();
    ck_assert_uint_eq(s.allocated, base.allocated + mine);
    ck_assert_uint_ge(s.peak, base.peak + mine);
    ck_assert_uint_gt(s.freed, base.freed);
    ck_assert_int_eq(allocator_verify(), 0);
    char *text = capture_dump();
    ck_assert_uint_eq(count_substr(text, "  private heap 0x"), 2);
    ck_assert_ptr_nonnull(strstr(text, "fit pow2"));
    ck_assert_ptr_nonnull(strstr(text, "in a buffer"));
    ck_assert_ptr_nonnull(strstr(text, "private heaps: 2,"));
    free(text);
    ck_assert_int_eq(myheap_free(h, p), 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
    ck_assert_int_eq(myheap_destroy(b), 0);
    s = get_stats();
    ck_assert_uint_eq(s.allocated, base.allocated);
    text = capture_dump();
    ck_assert_uint_eq(count_substr(text, "  private heap 0x"), 0);
    free(text);
}
END_TEST

START_TEST(test_cleanup_destroys_heaps)
{
    myheap_t *h = myheap_create(NULL);
    static _Alignas(64) unsigned char buf[64 * 1024];
    myheap_t *b = myheap_create_in(buf, sizeof buf, 0);
    ck_assert(h && b);
    void *p = myheap_alloc(h, 3000), *big = myheap_alloc(h, 7 * MiB);
    ck_assert(p && big);
    ck_assert_ptr_nonnull(myheap_alloc(b, 100));
    ck_assert_int_eq(allocator_cleanup(), 0);
    ck_assert(!test_is_mapped(p));
    ck_assert(!test_is_mapped(big));
    check_handle_refused(h, "a heap after allocator_cleanup");
    check_handle_refused(b, "a buffer heap after allocator_cleanup");
    errno = 0;
    ck_assert(myfree(p) == -1 && errno == EINVAL);
    /* The buffer is the caller's again. */
    memset(buf, 0, sizeof buf);
    myheap_t *again = myheap_create_in(buf, sizeof buf, 0);
    ck_assert_ptr_nonnull(again);
    ck_assert_int_eq(myheap_destroy(again), 0);
}
END_TEST

START_TEST(test_fork)
{
    ck_assert_int_eq(allocator_init(1), 0);
    myheap_t *h = myheap_create(NULL);
    unsigned char *p = myheap_alloc(h, 777);
    ck_assert_ptr_nonnull(p);
    test_fill(p, 777);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int ok = test_check_fill(p, 777) && myheap_free(h, p) == 0 &&
                 myheap_alloc(h, 100) != NULL && myheap_verify(h) == 0 &&
                 allocator_verify() == 0 && myheap_destroy(h) == 0;
        _exit(ok ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(test_check_fill(p, 777));
    ck_assert_int_eq(myheap_free(h, p), 0);
    ck_assert_int_eq(myheap_destroy(h), 0);
}
END_TEST

static Suite *myheap_suite(void)
{
    Suite *s = suite_create("myheap");
    TCase *tc = tcase_create("calls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_create_defaults);
    tcase_add_test(tc, test_create_fits);
    tcase_add_test(tc, test_create_bad_options);
    tcase_add_test(tc, test_create_numa_node);
    tcase_add_test(tc, test_bad_handles);
    tcase_add_test(tc, test_free_invalid_pointers);
    tcase_add_test(tc, test_free_past_small_chunk);
    tcase_add_test(tc, test_public_calls_on_private_blocks);
    tcase_add_test(tc, test_public_calls_refuse_buffer_blocks);
    tcase_add_test(tc, test_aligned);
    tcase_add_test(tc, test_calloc);
    tcase_add_test(tc, test_realloc);
    tcase_add_test(tc, test_limit);
    tcase_add_test(tc, test_size_for);
    tcase_add_test(tc, test_create_in_errors);
    tcase_add_test(tc, test_create_in_before_init);
    tcase_add_test(tc, test_reset_stale_frees);
    tcase_add_test(tc, test_destroy_stale_frees);
    tcase_add_test(tc, test_release_policies);
    tcase_add_test(tc, test_release_delayed_waits);
    tcase_add_test(tc, test_locked_no_faults);
    tcase_add_test(tc, test_locked_needs_limit);
    tcase_add_test(tc, test_single_thread_heap);
    tcase_add_loop_test(tc, test_introspection_sees_heaps, 0, 2);
    tcase_add_test(tc, test_cleanup_destroys_heaps);
    tcase_add_test(tc, test_fork);
    suite_add_tcase(s, tc);
    TCase *threads = tcase_create("threads");
    tcase_add_checked_fixture(threads, setup, teardown);
    tcase_set_timeout(threads, 300);
    tcase_add_test(threads, test_threads_share_heap);
    tcase_add_test(threads, test_destroy_races_stray_frees);
    suite_add_tcase(s, threads);
    return s;
}

PA_CHECK_MAIN(myheap_suite)
