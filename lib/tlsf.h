/* SPDX-License-Identifier: MIT */
/*
 * tlsf.h - one TLSF control structure: first- and second-level
 * bitmaps over segregated free lists. It knows blocks only; which memory the
 * blocks live in is the caller's business, so a heap is a self-contained
 * object with no globals.
 */
#ifndef PA_TLSF_H
#define PA_TLSF_H

#include "block.h"

#define TLSF_SL_SHIFT 4
#define TLSF_SL_COUNT (1u << TLSF_SL_SHIFT)
/* Sizes below this map linearly, one bin per granule. */
#define TLSF_SMALL_LIMIT ((size_t)TLSF_SL_COUNT << PA_GRANULE_SHIFT)
#define TLSF_FL_SHIFT (TLSF_SL_SHIFT + PA_GRANULE_SHIFT)
/* Thirty-two rows, the first-level bitmap's width: an arena's blocks stay
 * inside a segment and use the first rows only, a region's (region.c) may
 * span hundreds of GiB. Blocks are smaller than TLSF_MAX_BLOCK. */
#define TLSF_FL_COUNT 32u
#define TLSF_MAX_BLOCK ((size_t)1 << (TLSF_FL_COUNT + TLSF_FL_SHIFT - 1))

/* One bit per list (second level) or per row of lists (first level). */
typedef uint32_t tlsf_bitmap_t;
#define TLSF_BITMAP_BITS (8 * sizeof(tlsf_bitmap_t))

_Static_assert(TLSF_FL_COUNT <= TLSF_BITMAP_BITS, "first-level bitmap fits a word");
_Static_assert(TLSF_SL_COUNT <= TLSF_BITMAP_BITS, "second-level bitmaps fit a word");
_Static_assert(PA_SEGMENT_SIZE < TLSF_MAX_BLOCK, "every segment's blocks have a bin");

typedef struct tlsf {
    tlsf_bitmap_t fl_bitmap;
    tlsf_bitmap_t sl_bitmap[TLSF_FL_COUNT];
    block_t *lists[TLSF_FL_COUNT][TLSF_SL_COUNT];
    size_t free_bytes;  /* sum of free block sizes, headers included */
    size_t free_blocks;
    /* Every block is smaller: the most a take may ask, the largest size a
     * hardened check trusts. */
    size_t limit;
} tlsf_t;

typedef struct tlsf_bin {
    unsigned fl, sl;
} tlsf_bin_t;

static inline unsigned bit_highest(size_t x)
{
    pa_assert(x != 0);
    return (unsigned)(63 - __builtin_clzll((unsigned long long)x));
}

static inline unsigned bit_lowest(uint32_t x)
{
    pa_assert(x != 0);
    return (unsigned)__builtin_ctz(x);
}

static inline tlsf_bin_t tlsf_bin_of(size_t size)
{
    tlsf_bin_t bin;
    if (size < TLSF_SMALL_LIMIT) {
        bin.fl = 0;
        bin.sl = (unsigned)(size >> PA_GRANULE_SHIFT);
    } else {
        unsigned high = bit_highest(size);
        bin.sl = (unsigned)(size >> (high - TLSF_SL_SHIFT)) ^ TLSF_SL_COUNT;
        bin.fl = high - TLSF_FL_SHIFT + 1;
    }
    pa_assert(bin.fl < TLSF_FL_COUNT && bin.sl < TLSF_SL_COUNT);
    return bin;
}

/* The block size that serves a request of n bytes, rounded up to the start
 * of a bin so the block, once freed, is found again by the same request.
 * 0 when n is too large for a heap block. */
static inline size_t tlsf_block_size_for(size_t n)
{
    if (n > PA_LARGE_THRESHOLD)
        return 0;
    size_t size = align_up(n, PA_GRANULE) + BLOCK_HEADER_SIZE;
    if (size < BLOCK_MIN_SIZE)
        size = BLOCK_MIN_SIZE;
    if (size >= TLSF_SMALL_LIMIT) {
        size_t step = ((size_t)1 << (bit_highest(size) - TLSF_SL_SHIFT)) - 1;
        size = (size + step) & ~step;
    }
    return size;
}

/* For blocks inside one segment (an arena). */
void pa_tlsf_init(tlsf_t *t);
/* For blocks smaller than limit (at most TLSF_MAX_BLOCK): a region. */
void pa_tlsf_init_limit(tlsf_t *t, size_t limit);
/* Takes a used block of exactly size bytes (from tlsf_block_size_for) out of
 * the free lists, splitting off what is left; NULL when nothing fits. */
block_t *pa_tlsf_take(tlsf_t *t, size_t size);
/* As pa_tlsf_take, for a block whose payload is a multiple of align (a power
 * of two above the granule): the free space in front of it goes back to
 * the free lists. NULL when no free block has room for the worst case. */
block_t *pa_tlsf_take_aligned(tlsf_t *t, size_t size, size_t align);
/* Exact best fit, for a block of exactly size bytes (any multiple of the
 * granule, at least BLOCK_MIN_SIZE): the smallest free block of at least
 * size, found in size's own list or the first non-empty list above it.
 * Time grows with those two lists' lengths. */
block_t *pa_tlsf_take_best(tlsf_t *t, size_t size);
/* pa_tlsf_take_aligned by best fit: the smallest free block with room for
 * the worst-case gap. */
block_t *pa_tlsf_take_aligned_best(tlsf_t *t, size_t size, size_t align);
/* Frees b, merging it with free neighbours; returns the merged free block. */
block_t *pa_tlsf_give(tlsf_t *t, block_t *b);
/* Resizes a used block in place, using its free successor to grow;
 * false when it cannot. */
bool pa_tlsf_resize(tlsf_t *t, block_t *b, size_t size);
/* Lays out a new area as one free block (plus sentinel); returns it. */
block_t *pa_tlsf_add_area(tlsf_t *t, void *start, size_t size);
/* Removes a free block from its list (to hand its area back). */
void pa_tlsf_remove(tlsf_t *t, block_t *b);

/* Checks t's bitmaps, free lists and counts; owns (NULL: skipped) tells
 * whether a listed block lies where t's blocks may. 0, or -1 after
 * pa_verify_fail. */
typedef bool (*tlsf_owns_fn)(const block_t *b, const void *ctx);
int pa_tlsf_verify(const tlsf_t *t, tlsf_owns_fn owns, const void *ctx);
/* Walks the physical chain of the area from first to its sentinel: sizes,
 * flags, merged neighbours and boundary tags; adds the free blocks to
 * tally and calls visit (NULL: none) on every block, whose nonzero return
 * ends the walk with -1. */
typedef struct tlsf_area_tally {
    size_t free_bytes, free_blocks;
} tlsf_area_tally_t;
typedef int (*tlsf_visit_fn)(const block_t *b, void *ctx);
int pa_tlsf_verify_area(const block_t *first, const block_t *sentinel, tlsf_visit_fn visit,
                     void *ctx, tlsf_area_tally_t *tally);

#endif /* PA_TLSF_H */
