/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ops.c - drives the public API from a byte string: each byte triple
 * is an operation (allocate, free, reallocate, free a pointer that is not
 * a live block; on private heaps: create one, mapped or in a buffer,
 * allocate, free, reallocate, reset, destroy) and its arguments. Whatever
 * the bytes, valid operations must succeed with their contents intact,
 * invalid and stale frees must fail with EINVAL, and allocator_verify()
 * must find every heap sound.
 *
 * Built two ways: as a libFuzzer target (make fuzz, with clang), and as a
 * plain program run by make check that feeds it seeded random inputs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pallocator.h>

#include "testutil.h"

#define SLOTS 64

struct slot {
    unsigned char *p;
    size_t n;
};

static void fuzz_fail(const char *what, size_t op)
{
    fprintf(stderr, "fuzz_ops: %s at operation %zu\n", what, op);
    abort();
}

static size_t size_from(uint8_t a, uint8_t b)
{
    /* Mostly small, sometimes up to 2 MiB (past the large threshold). */
    switch (a & 3) {
    case 0:
    case 1:
        return b;
    case 2:
        return (size_t)b << 6;
    default:
        return (size_t)b << 13;
    }
}

static void check_and_free(struct slot *s, size_t op)
{
    if (!test_check_fill(s->p, s->n < 256 ? s->n : 256))
        fuzz_fail("block contents changed", op);
    if (myfree(s->p) != 0)
        fuzz_fail("valid free refused", op);
    s->p = NULL;
}

/* A pointer that is certainly not a live block start. */
static void free_invalid(struct slot *slots, uint8_t arg, size_t op)
{
    static int not_heap;
    struct slot *s = &slots[arg % SLOTS];
    unsigned char *bad;
    if (s->p)
        bad = s->p + 1 + (arg % (myalloc_usable_size(s->p) - 1)); /* interior or misaligned */
    else
        bad = (unsigned char *)&not_heap;
    errno = 0;
    if (myfree(bad) != -1 || errno != EINVAL)
        fuzz_fail("invalid free accepted", op);
}

/* ---- private heaps ---- */

#define HEAPS 3
#define HEAP_BUFFER ((size_t)256 << 10)

struct pheap {
    myheap_t *h;
    int in_buffer;
    int limited; /* a limit or a buffer: an allocation may fail with ENOMEM */
};

/* A block of a private heap. */
struct hslot {
    unsigned char *p;
    size_t n;
    int heap;
};

struct heaps {
    struct pheap heap[HEAPS];
    struct hslot slot[SLOTS];
};

static _Alignas(64) unsigned char heap_buffers[HEAPS][HEAP_BUFFER];

static void hslot_check_free(struct heaps *hs, struct hslot *s, int by_myfree, size_t op)
{
    struct pheap *ph = &hs->heap[s->heap];
    if (!test_check_fill(s->p, s->n < 256 ? s->n : 256))
        fuzz_fail("private block contents changed", op);
    int rc = by_myfree && !ph->in_buffer ? myfree(s->p) : myheap_free(ph->h, s->p);
    if (rc != 0)
        fuzz_fail("valid private free refused", op);
    errno = 0;
    if (myheap_free(ph->h, s->p) != -1 || errno != EINVAL)
        fuzz_fail("private double free accepted", op);
    s->p = NULL;
}

/* Every block of heap k is gone (reset or destroy): one stale free must
 * fail, and the slots are forgotten. */
static void heap_forget_blocks(struct heaps *hs, int k, size_t op)
{
    int tested = 0;
    for (int j = 0; j < SLOTS; j++) {
        struct hslot *s = &hs->slot[j];
        if (!s->p || s->heap != k)
            continue;
        if (!tested++) {
            errno = 0;
            if (myheap_free(hs->heap[k].h, s->p) != -1 || errno != EINVAL)
                fuzz_fail("stale private free accepted", op);
            errno = 0;
            if (!hs->heap[k].in_buffer && (myfree(s->p) != -1 || errno != EINVAL))
                fuzz_fail("stale myfree of a private block accepted", op);
        }
        s->p = NULL;
    }
}

static void heap_destroy_op(struct heaps *hs, int k, size_t op)
{
    struct pheap *ph = &hs->heap[k];
    if (!ph->h)
        return;
    if (myheap_destroy(ph->h) != 0)
        fuzz_fail("myheap_destroy failed", op);
    heap_forget_blocks(hs, k, op);
    errno = 0;
    if (myheap_alloc(ph->h, 16) != NULL || errno != EINVAL)
        fuzz_fail("a destroyed heap allocated", op);
    ph->h = NULL;
}

static void heap_create_op(struct heaps *hs, uint8_t a, uint8_t b, size_t op)
{
    int k = b % HEAPS;
    heap_destroy_op(hs, k, op);
    struct pheap *ph = &hs->heap[k];
    static const unsigned fits[] = {0, MYHEAP_BEST_FIT, MYHEAP_POW2_FIT, 0};
    unsigned flags = fits[a & 3] | ((a & 4) ? MYHEAP_SINGLE_THREAD : 0);
    ph->in_buffer = (a >> 3) & 1;
    if (ph->in_buffer) {
        size_t size = MYHEAP_MIN_BUFFER + (size_t)(b >> 2) * 4096;
        ph->h = myheap_create_in(heap_buffers[k], size < HEAP_BUFFER ? size : HEAP_BUFFER, flags);
        ph->limited = 1;
    } else {
        struct myheap_options o = {.flags = flags, .release = (unsigned)(a >> 4) % 3,
                                   .release_delay_ms = 1u + (a >> 7),
                                   .limit = (a & 0x40) ? (size_t)8 << 20 : 0};
        ph->h = myheap_create(&o);
        ph->limited = o.limit != 0;
    }
    if (!ph->h)
        fuzz_fail("heap creation failed", op);
}

static void heap_alloc_op(struct heaps *hs, uint8_t a, uint8_t b, uint8_t c, size_t op)
{
    struct hslot *s = &hs->slot[b % SLOTS];
    int k = c % HEAPS;
    struct pheap *ph = &hs->heap[k];
    if (!ph->h)
        return;
    if (s->p)
        hslot_check_free(hs, s, a & 1, op);
    size_t n = size_from(a, c);
    size_t align = (size_t)16 << (c & 7);
    errno = 0;
    unsigned char *p = (a & 8) ? myheap_alloc_aligned(ph->h, align, n) : myheap_alloc(ph->h, n);
    if (!p) {
        if (!ph->limited || errno != ENOMEM)
            fuzz_fail("private allocation failed", op);
        return;
    }
    if ((a & 8) && ((uintptr_t)p & (align - 1)))
        fuzz_fail("private aligned block misaligned", op);
    if (myheap_usable_size(ph->h, p) < n)
        fuzz_fail("private block too small", op);
    *s = (struct hslot){p, n, k};
    test_fill(p, n < 256 ? n : 256);
    /* Another heap refuses it. */
    struct pheap *other = &hs->heap[(k + 1) % HEAPS];
    errno = 0;
    if (other->h && (myheap_free(other->h, p) != -1 || errno != EINVAL))
        fuzz_fail("a heap freed another heap's block", op);
}

static void heap_realloc_op(struct heaps *hs, uint8_t a, uint8_t b, uint8_t c, size_t op)
{
    struct hslot *s = &hs->slot[b % SLOTS];
    if (!s->p)
        return;
    struct pheap *ph = &hs->heap[s->heap];
    size_t n = size_from(a, c);
    errno = 0;
    unsigned char *q = (a & 1) && !ph->in_buffer ? myrealloc(s->p, n)
                                                 : myheap_realloc(ph->h, s->p, n);
    if (!q) {
        if (!ph->limited || errno != ENOMEM)
            fuzz_fail("private reallocation failed", op);
        return;
    }
    size_t keep = n < s->n ? n : s->n;
    for (size_t k = 0; k < keep && k < 256; k++)
        if (q[k] != test_pattern_byte(s->p, k))
            fuzz_fail("private reallocation lost contents", op);
    s->p = q;
    s->n = n;
    test_fill(q, n < 256 ? n : 256);
}

/* Operations 5 to 11: the private heaps'. */
static void heap_op(struct heaps *hs, const uint8_t *d, size_t op)
{
    int k = d[1] % HEAPS;
    switch (d[0] % 12) {
    case 5:
        heap_create_op(hs, d[2], d[1], op);
        break;
    case 6:
    case 7:
        heap_alloc_op(hs, (uint8_t)(d[0] >> 4 | d[2] << 4), d[1], d[2], op);
        break;
    case 8:
        if (hs->slot[d[1] % SLOTS].p)
            hslot_check_free(hs, &hs->slot[d[1] % SLOTS], d[2] & 1, op);
        break;
    case 9:
        heap_realloc_op(hs, (uint8_t)(d[0] >> 4 | d[2] << 4), d[1], d[2], op);
        break;
    case 10:
        if (hs->heap[k].h) {
            if (myheap_reset(hs->heap[k].h) != 0)
                fuzz_fail("myheap_reset failed", op);
            heap_forget_blocks(hs, k, op);
        }
        break;
    default:
        heap_destroy_op(hs, k, op);
        break;
    }
}

static int heaps_ok(const struct heaps *hs)
{
    for (int k = 0; k < HEAPS; k++)
        if (hs->heap[k].h && myheap_verify(hs->heap[k].h) != 0)
            return 0;
    return 1;
}

static void run_ops(const uint8_t *data, size_t size)
{
    struct slot slots[SLOTS] = {{0}};
    struct heaps hs;
    memset(&hs, 0, sizeof hs);
    for (size_t i = 0; i + 2 < size; i += 3) {
        size_t op = i / 3;
        struct slot *s = &slots[data[i + 1] % SLOTS];
        if (data[i] % 12 >= 5) {
            heap_op(&hs, &data[i], op);
            if (op % 64 == 63 && (allocator_verify() != 0 || !heaps_ok(&hs)))
                fuzz_fail("allocator_verify or myheap_verify failed", op);
            continue;
        }
        switch (data[i] % 12) {
        case 0: /* allocate */
        case 1:
            if (s->p)
                check_and_free(s, op);
            s->n = size_from(data[i], data[i + 2]);
            s->p = myalloc(s->n);
            if (!s->p || ((uintptr_t)s->p & 15))
                fuzz_fail("allocation failed or misaligned", op);
            test_fill(s->p, s->n < 256 ? s->n : 256);
            break;
        case 2: /* free, remembering the pointer for a double free */
            if (s->p) {
                unsigned char *stale = s->p;
                check_and_free(s, op);
                errno = 0;
                if (myfree(stale) != -1 || errno != EINVAL)
                    fuzz_fail("double free accepted", op);
            }
            break;
        case 3: /* reallocate */
            if (s->p) {
                size_t n = size_from(data[i], data[i + 2]);
                size_t keep = n < s->n ? n : s->n;
                unsigned char *q = myrealloc(s->p, n);
                if (!q)
                    fuzz_fail("reallocation failed", op);
                if (keep > 256)
                    keep = 256;
                for (size_t k = 0; k < keep; k++)
                    if (q[k] != test_pattern_byte(s->p, k))
                        fuzz_fail("reallocation lost contents", op);
                s->p = q;
                s->n = n;
                test_fill(q, n < 256 ? n : 256);
            }
            break;
        default:
            free_invalid(slots, data[i + 2], op);
            break;
        }
        if (op % 64 == 63 && allocator_verify() != 0)
            fuzz_fail("allocator_verify failed", op);
    }
    for (int k = 0; k < SLOTS; k++)
        if (slots[k].p)
            check_and_free(&slots[k], size / 3);
    if (!heaps_ok(&hs))
        fuzz_fail("myheap_verify failed at the end", size / 3);
    for (int k = 0; k < SLOTS; k++)
        if (hs.slot[k].p)
            hslot_check_free(&hs, &hs.slot[k], k & 1, size / 3);
    for (int k = 0; k < HEAPS; k++)
        heap_destroy_op(&hs, k, size / 3);
    if (allocator_verify() != 0)
        fuzz_fail("allocator_verify failed at the end", size / 3);
    size_t allocated = 1;
    allocator_stats(&allocated, NULL, NULL);
    if (allocated != 0)
        fuzz_fail("bytes still allocated after freeing everything", size / 3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_ops(data, size);
    return 0;
}

#ifndef PA_LIBFUZZER
/* Standalone: seeded random inputs, in both modes. */
int main(void)
{
    size_t rounds = test_scale(400);
    uint64_t seed = 0x2545f4914f6cdd1dULL;
    static uint8_t input[3 * 4096];
    for (size_t r = 0; r < rounds; r++) {
        size_t len = 3 * (1 + test_rand_below(&seed, 4096));
        for (size_t i = 0; i < len; i++)
            input[i] = (uint8_t)test_rand(&seed);
        if (allocator_init(r & 1) != 0)
            fuzz_fail("allocator_init failed", 0);
        run_ops(input, len);
        allocator_cleanup();
    }
    printf("fuzz_ops: %zu random inputs passed\n", rounds);
    return 0;
}
#endif
