/* SPDX-License-Identifier: MIT */
/*
 * tlsf.c - TLSF, the allocator of arenas and regions: bounded-time search
 * over segregated free lists, and an exact best-fit search beside it.
 *
 * A size maps to a first-level bin by its highest set bit and to one of
 * TLSF_SL_COUNT linear second-level bins inside that power of two; sizes
 * below TLSF_SMALL_LIMIT have one bin per granule. Finding a suitable list
 * is two bit scans, so take and give never loop over blocks. Requests are
 * rounded up to the start of a bin and blocks keep that rounded size, so
 * every block in the searched bin fits and a freed block is always found
 * again by a request of its own size.
 */
#include "tlsf.h"

#include <string.h>

void pa_tlsf_init_limit(tlsf_t *t, size_t limit)
{
    pa_assert(limit <= TLSF_MAX_BLOCK);
    memset(t, 0, sizeof(*t));
    t->limit = limit;
}

void pa_tlsf_init(tlsf_t *t)
{
    pa_tlsf_init_limit(t, PA_SEGMENT_SIZE);
}

static void tlsf_insert(tlsf_t *t, block_t *b)
{
    tlsf_bin_t bin = tlsf_bin_of(block_size(b));
    block_t *head = t->lists[bin.fl][bin.sl];
    PA_LINK_STORE(b->next_free, head);
    PA_LINK_STORE(b->prev_free, NULL);
    if (head)
        PA_LINK_STORE(head->prev_free, b);
    t->lists[bin.fl][bin.sl] = b;
    t->fl_bitmap |= 1u << bin.fl;
    t->sl_bitmap[bin.fl] |= 1u << bin.sl;
    t->free_bytes += block_size(b);
    t->free_blocks++;
}

void pa_tlsf_remove(tlsf_t *t, block_t *b)
{
    tlsf_bin_t bin = tlsf_bin_of(block_size(b));
    block_t *next = PA_LINK_LOAD(b->next_free), *prev = PA_LINK_LOAD(b->prev_free);
    if (prev)
        PA_LINK_STORE(prev->next_free, next);
    else
        t->lists[bin.fl][bin.sl] = next;
    if (next)
        PA_LINK_STORE(next->prev_free, prev);
    if (!t->lists[bin.fl][bin.sl]) {
        t->sl_bitmap[bin.fl] &= ~(1u << bin.sl);
        if (!t->sl_bitmap[bin.fl])
            t->fl_bitmap &= ~(1u << bin.fl);
    }
    t->free_bytes -= block_size(b);
    t->free_blocks--;
}

/* The first non-empty list at or above *bin, found with two bit scans;
 * *bin becomes the list's. */
static block_t *tlsf_find(const tlsf_t *t, tlsf_bin_t *bin)
{
    uint32_t sl_map = t->sl_bitmap[bin->fl] & (~0u << bin->sl);
    if (!sl_map) {
        /* A shift by the bitmap's width would be undefined. */
        uint32_t fl_map =
            bin->fl + 1 < TLSF_BITMAP_BITS ? t->fl_bitmap & (~0u << (bin->fl + 1)) : 0;
        if (!fl_map)
            return NULL;
        bin->fl = bit_lowest(fl_map);
        sl_map = t->sl_bitmap[bin->fl];
    }
    bin->sl = bit_lowest(sl_map);
    return t->lists[bin->fl][bin->sl];
}

/* Hardened build: whether free block b's header still says what its list
 * and its successor say (an overflow of the block before it would have
 * overwritten it). The size is bounded before the successor is read. */
static bool tlsf_free_block_sane(const tlsf_t *t, const block_t *b)
{
    size_t size = block_size(b);
    if (!block_is_free(b) || size < BLOCK_MIN_SIZE || size % PA_GRANULE || size >= t->limit)
        return false;
    const block_t *next = block_next(b);
    return next->prev_phys == b && block_prev_is_free(next);
}

/* Hardened build: a list whose first block is damaged is given up, its
 * blocks kept out of use, rather than followed. */
static pa_cold void tlsf_quarantine_list(tlsf_t *t, tlsf_bin_t bin)
{
    fprintf(stderr, "pallocator: free block %p has a broken header; its free list "
            "%u/%u stays out of use\n", (void *)t->lists[bin.fl][bin.sl], bin.fl, bin.sl);
    t->lists[bin.fl][bin.sl] = NULL;
    t->sl_bitmap[bin.fl] &= ~(1u << bin.sl);
    if (!t->sl_bitmap[bin.fl])
        t->fl_bitmap &= ~(1u << bin.fl);
}

/* Gives back the tail of b beyond size, when the tail can be a block. */
static void tlsf_trim(tlsf_t *t, block_t *b, size_t size)
{
    if (block_size(b) >= size + BLOCK_MIN_SIZE) {
        block_t *rest = block_split(b, size);
        pa_tlsf_give(t, rest);
    }
}

block_t *pa_tlsf_take(tlsf_t *t, size_t size)
{
    if (size >= t->limit)
        return NULL;
    tlsf_bin_t bin = tlsf_bin_of(size);
    block_t *b = tlsf_find(t, &bin);
    while (PA_GUARDED && b && pa_unlikely(!tlsf_free_block_sane(t, b))) {
        tlsf_quarantine_list(t, bin);
        bin = tlsf_bin_of(size);
        b = tlsf_find(t, &bin);
    }
    if (!b)
        return NULL;
    pa_assert(block_size(b) >= size);
    pa_tlsf_remove(t, b);
    block_mark_used(b);
    tlsf_trim(t, b, size);
    /* Its payload held free-list links and headers, closed to checkers. */
    pa_mem_open(block_payload(b), block_usable(b));
    return b;
}

block_t *pa_tlsf_give(tlsf_t *t, block_t *b)
{
    pa_assert(!block_is_free(b));
    /* Hardened: a damaged neighbour is left alone, never merged. */
    if (block_prev_is_free(b) && (!PA_GUARDED || tlsf_free_block_sane(t, b->prev_phys))) {
        block_t *prev = b->prev_phys;
        pa_tlsf_remove(t, prev);
        b = block_absorb(prev, b);
    }
    block_t *next = block_next(b);
    if (block_is_free(next) && (!PA_GUARDED || tlsf_free_block_sane(t, next))) {
        pa_tlsf_remove(t, next);
        b = block_absorb(b, next);
    }
    block_mark_free(b);
    tlsf_insert(t, b);
    return b;
}

bool pa_tlsf_resize(tlsf_t *t, block_t *b, size_t size)
{
    size_t have = block_size(b);
    if (size > have) {
        block_t *next = block_next(b);
        if (!block_is_free(next) || (PA_GUARDED && !tlsf_free_block_sane(t, next)) ||
            have + block_size(next) < size)
            return false;
        pa_tlsf_remove(t, next);
        block_absorb(b, next);
        block_mark_used(b);
    }
    tlsf_trim(t, b, size);
    return true;
}

block_t *pa_tlsf_add_area(tlsf_t *t, void *start, size_t size)
{
    block_t *b = block_make_area(start, size);
    return pa_tlsf_give(t, b);
}

/* ---- verification ----------------------------------------------------- */

int pa_tlsf_verify(const tlsf_t *t, tlsf_owns_fn owns, const void *ctx)
{
    size_t listed = 0;
    for (unsigned fl = 0; fl < TLSF_FL_COUNT; fl++) {
        if (((t->fl_bitmap >> fl) & 1) != (t->sl_bitmap[fl] != 0))
            return pa_verify_fail("TLSF %p: first-level bit %u disagrees with its row",
                               (const void *)t, fl);
        for (unsigned sl = 0; sl < TLSF_SL_COUNT; sl++) {
            const block_t *b = t->lists[fl][sl];
            if (((t->sl_bitmap[fl] >> sl) & 1) != (b != NULL))
                return pa_verify_fail("TLSF %p: bitmap bit %u/%u disagrees with its list",
                                   (const void *)t, fl, sl);
            for (const block_t *prev = NULL; b; prev = b, b = PA_LINK_LOAD(b->next_free)) {
                if (++listed > t->free_blocks)
                    return pa_verify_fail("TLSF %p: free lists hold more blocks than counted",
                                       (const void *)t);
                if (owns && !owns(b, ctx))
                    return pa_verify_fail("TLSF %p: list %u/%u holds foreign block %p",
                                       (const void *)t, fl, sl, (const void *)b);
                if (!block_is_free(b))
                    return pa_verify_fail("TLSF %p: list %u/%u holds used block %p",
                                       (const void *)t, fl, sl, (const void *)b);
                tlsf_bin_t bin = tlsf_bin_of(block_size(b));
                if (bin.fl != fl || bin.sl != sl)
                    return pa_verify_fail("TLSF %p: block %p of size %zu is in list %u/%u, "
                                       "belongs in %u/%u", (const void *)t, (const void *)b,
                                       block_size(b), fl, sl, bin.fl, bin.sl);
                if (PA_LINK_LOAD(b->prev_free) != prev)
                    return pa_verify_fail("TLSF %p: list %u/%u: back link of %p is wrong",
                                       (const void *)t, fl, sl, (const void *)b);
            }
        }
    }
    if (listed != t->free_blocks)
        return pa_verify_fail("TLSF %p: %zu blocks listed, %zu counted free", (const void *)t,
                           listed, t->free_blocks);
    return 0;
}

static bool tlsf_block_in(const block_t *b, const block_t *first, const block_t *sentinel)
{
    return b >= first && b <= sentinel && ((uintptr_t)b & (PA_GRANULE - 1)) == 0;
}

int pa_tlsf_verify_area(const block_t *first, const block_t *sentinel, tlsf_visit_fn visit,
                     void *ctx, tlsf_area_tally_t *tally)
{
    const block_t *prev = NULL;
    const block_t *b = first;
    while (!block_is_sentinel(b)) {
        size_t size = block_size(b);
        if (size < BLOCK_MIN_SIZE || size % PA_GRANULE)
            return pa_verify_fail("block %p has bad size %zu", (const void *)b, size);
        const block_t *next = block_next(b);
        if (!tlsf_block_in(next, first, sentinel))
            return pa_verify_fail("block %p runs past its area", (const void *)b);
        if (block_prev_is_free(b) != (prev && block_is_free(prev)))
            return pa_verify_fail("block %p: predecessor flag disagrees", (const void *)b);
        if (block_is_free(b)) {
            if (prev && block_is_free(prev))
                return pa_verify_fail("blocks %p and %p: two free neighbours not merged",
                                   (const void *)prev, (const void *)b);
            if (next->prev_phys != b)
                return pa_verify_fail("block %p: boundary tag of successor is wrong",
                                   (const void *)b);
            tally->free_bytes += size;
            tally->free_blocks++;
        }
        if (visit && visit(b, ctx))
            return -1;
        prev = b;
        b = next;
    }
    if (b != sentinel)
        return pa_verify_fail("area %p: block chain ends at %p, not at its sentinel",
                           (const void *)first, (const void *)b);
    if (block_prev_is_free(b) != (prev && block_is_free(prev)))
        return pa_verify_fail("area %p: sentinel predecessor flag disagrees", (const void *)first);
    return 0;
}

/* ---- aligned blocks --------------------------------------------------- */

/* size rounded up to the start of its bin, so every block that bin's
 * search finds is at least size bytes (tlsf_block_size_for without the
 * heap-block limit). */
static size_t tlsf_round_to_bin(size_t size)
{
    if (size >= TLSF_SMALL_LIMIT) {
        size_t step = ((size_t)1 << (bit_highest(size) - TLSF_SL_SHIFT)) - 1;
        size = (size + step) & ~step;
    }
    return size;
}

/* The bytes in front of b's first aligned payload: 0, or enough for a
 * free block of their own (a gap of one granule moves on by align). */
static size_t tlsf_aligned_gap(const block_t *b, size_t align)
{
    uintptr_t payload = (uintptr_t)block_payload(b);
    size_t gap = align_up(payload, align) - payload;
    if (gap != 0 && gap < BLOCK_MIN_SIZE)
        gap += align;
    return gap;
}

/* Takes free block b, which has room for size bytes behind its widest
 * gap: the gap goes back to the free lists, and so does the tail. */
static block_t *tlsf_carve_aligned(tlsf_t *t, block_t *b, size_t size, size_t align)
{
    pa_tlsf_remove(t, b);
    block_mark_used(b);
    size_t gap = tlsf_aligned_gap(b, align);
    if (gap) {
        block_t *front = b;
        b = block_split(front, gap);
        pa_tlsf_give(t, front);
    }
    tlsf_trim(t, b, size);
    /* As in pa_tlsf_take: the payload is opened to memory checkers. */
    pa_mem_open(block_payload(b), block_usable(b));
    return b;
}

block_t *pa_tlsf_take_aligned(tlsf_t *t, size_t size, size_t align)
{
    pa_assert(align > PA_GRANULE && (align & (align - 1)) == 0);
    /* The widest gap is align plus a granule; searching for room for it
     * keeps the take to one search, whatever block comes up. */
    if (size >= t->limit || align >= t->limit)
        return NULL;
    size_t search = tlsf_round_to_bin(size + align + PA_GRANULE);
    if (search >= t->limit)
        return NULL;
    tlsf_bin_t bin = tlsf_bin_of(search);
    block_t *b = tlsf_find(t, &bin);
    while (PA_GUARDED && b && pa_unlikely(!tlsf_free_block_sane(t, b))) {
        tlsf_quarantine_list(t, bin);
        bin = tlsf_bin_of(search);
        b = tlsf_find(t, &bin);
    }
    if (!b)
        return NULL;
    pa_assert(block_size(b) >= search);
    return tlsf_carve_aligned(t, b, size, align);
}

/* ---- best fit --------------------------------------------------------- */

/* The smallest block of at least size in one list; NULL when none is. */
static block_t *tlsf_list_best(const tlsf_t *t, tlsf_bin_t bin, size_t size)
{
    block_t *best = NULL;
    for (block_t *b = t->lists[bin.fl][bin.sl]; b; b = PA_LINK_LOAD(b->next_free)) {
        size_t have = block_size(b);
        if (have >= size && (!best || have < block_size(best))) {
            best = b;
            if (have == size)
                break;
        }
    }
    return best;
}

/* Size's own list may hold blocks on both sides of size; every block of a
 * higher list is larger than all of them, so the smallest fitting block is
 * in the own list or else in the first non-empty list above it. */
static block_t *tlsf_find_best(const tlsf_t *t, size_t size, tlsf_bin_t *bin)
{
    *bin = tlsf_bin_of(size);
    block_t *b = tlsf_list_best(t, *bin, size);
    if (b)
        return b;
    if (++bin->sl == TLSF_SL_COUNT) {
        bin->sl = 0;
        if (++bin->fl == TLSF_FL_COUNT)
            return NULL;
    }
    return tlsf_find(t, bin) ? tlsf_list_best(t, *bin, size) : NULL;
}

/* tlsf_find_best, giving up (hardened build) lists whose found block is damaged. */
static block_t *tlsf_find_best_sane(tlsf_t *t, size_t size)
{
    tlsf_bin_t bin;
    block_t *b = tlsf_find_best(t, size, &bin);
    while (PA_GUARDED && b && pa_unlikely(!tlsf_free_block_sane(t, b))) {
        tlsf_quarantine_list(t, bin);
        b = tlsf_find_best(t, size, &bin);
    }
    return b;
}

block_t *pa_tlsf_take_best(tlsf_t *t, size_t size)
{
    pa_assert(size >= BLOCK_MIN_SIZE && size % PA_GRANULE == 0);
    if (size >= t->limit)
        return NULL;
    block_t *b = tlsf_find_best_sane(t, size);
    if (!b)
        return NULL;
    pa_tlsf_remove(t, b);
    block_mark_used(b);
    tlsf_trim(t, b, size);
    pa_mem_open(block_payload(b), block_usable(b));
    return b;
}

block_t *pa_tlsf_take_aligned_best(tlsf_t *t, size_t size, size_t align)
{
    pa_assert(align > PA_GRANULE && (align & (align - 1)) == 0);
    if (size >= t->limit || align >= t->limit || size + align + PA_GRANULE >= t->limit)
        return NULL;
    block_t *b = tlsf_find_best_sane(t, size + align + PA_GRANULE);
    return b ? tlsf_carve_aligned(t, b, size, align) : NULL;
}
