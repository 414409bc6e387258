/* SPDX-License-Identifier: MIT */
/*
 * cache.h - a heap's cache of the blocks its own thread freed, kept for
 * that thread's next requests of the same size class: medium blocks (the
 * arena's, serving requests of more than SLAB_REQUEST_MAX bytes) in front
 * of the arena, and blocks of the largest slab classes in front of their
 * slabs (below).
 *
 * Medium requests are rounded up to CACHE_SL_COUNT classes per power of
 * two (each class's block on a TLSF bin; below), so freed blocks come back
 * in few sizes and a request finds one of its own size often. A cached block
 * stays used to TLSF (no merge, no boundary tag, no doubly linked list)
 * and its live mark is cleared like any freed block's, so a second free of
 * it, a realloc or a usable-size query is refused exactly as for a block
 * back in TLSF. Each class is a LIFO linked through the block's next_free
 * word (the first word of its payload, which the program has just used):
 * the block freed last is handed out first, at an address whose lines and
 * pages the program has touched already.
 *
 * A pop is one load and a push two stores: O(1) both. The cache holds at
 * most cache_limit bytes (CACHE_MIN_BYTES plus a quarter of what the
 * arena's used blocks hold, and never more than CACHE_MAX_BYTES); a free
 * that finds it full goes to TLSF. A block served from the cache lands on
 * pages the program touched before, where TLSF would often carve one from
 * pages it never had: the sizes benchmark from 8 KiB to 1 MiB took 0.78 to
 * 0.91 times the time, with 6 to 15 % less peak RSS, at a quarter (64 MiB
 * at most) than at an eighth (32 MiB). The price is paid by programs whose
 * medium blocks are few and varied, which rarely ask again for a class
 * the cache holds: churn and larson (1 % of requests medium) peak 6 %
 * higher. Only the owner touches it, inside an
 * operation; a pauser checks it (allocator_verify) and empties it into
 * the arena (verify, statistics), as the heap does when its thread exits.
 */
#ifndef PA_CACHE_H
#define PA_CACHE_H

#include "slab.h"
#include "tlsf.h"

#define PA_LOG2_SLAB_REQUEST_MAX 13
#define PA_LOG2_LARGE_THRESHOLD 20
_Static_assert(SLAB_REQUEST_MAX == (size_t)1 << PA_LOG2_SLAB_REQUEST_MAX, "row of the smallest");
_Static_assert(PA_LARGE_THRESHOLD == (size_t)1 << PA_LOG2_LARGE_THRESHOLD, "row of the largest");

/* Classes are laid out by payload, CACHE_SL_COUNT per power of two, and a
 * class's block is its payload start plus one TLSF bin (the header's room,
 * rounded up to a bin start): a request of a power of two, or of one and
 * some eighths of it (16, 40, 48 KiB), wastes one TLSF bin (a sixteenth),
 * where classes laid out by block size sent it, header and all, a whole
 * class up (a quarter, with four classes). Eight classes per power of two
 * keep the waste of any request under a fifth, and a freed block still
 * finds a request of its class far more often than with TLSF's sixteen
 * bins (the sizes benchmark's hit rate). */
#define CACHE_SL_SHIFT 3
#define CACHE_SL_COUNT (1u << CACHE_SL_SHIFT)
/* A row per power of two from SLAB_REQUEST_MAX to PA_LARGE_THRESHOLD: the
 * largest request's payload starts the last row. */
#define CACHE_ROWS (PA_LOG2_LARGE_THRESHOLD - PA_LOG2_SLAB_REQUEST_MAX + 1)
#define CACHE_BINS (CACHE_ROWS * CACHE_SL_COUNT)
_Static_assert(CACHE_SL_SHIFT < TLSF_SL_SHIFT, "a class's block is a TLSF bin above its payload");
/* TLSF bins per class. */
#define CACHE_BIN_SHIFT (TLSF_SL_SHIFT - CACHE_SL_SHIFT)

/* The bound on the medium blocks cached (cache_limit). */
#define CACHE_MIN_BYTES ((size_t)256 << 10)
#define CACHE_MAX_BYTES ((size_t)64 << 20)
#define CACHE_LIMIT_SHIFT 2      /* a quarter of the arena's used bytes */

/* The largest slab classes are cached too (blocks of more than
 * CACHE_SLAB_MIN_REQUEST bytes): a slab holds few of them, so the current
 * slab runs dry and the slab lists change often, and the block freed last
 * is warmer than the current slab's next one. Each class holds up to
 * CACHE_SLAB_CLASS_BYTES, or a 64th of the bytes of the heap's slabs with
 * a class if that is more, linked through the blocks' first words; they
 * stay used to their slab. */
#define CACHE_SLAB_MIN_REQUEST ((size_t)2048)
#define CACHE_SLAB_FIRST 24      /* the class after CACHE_SLAB_MIN_REQUEST's */
#define CACHE_SLAB_CLASSES (SLAB_CLASSES - CACHE_SLAB_FIRST)
#define CACHE_SLAB_CLASS_BYTES ((size_t)32768)

typedef struct cache {
    block_t *bins[CACHE_BINS];
    size_t bytes;                /* block sizes, headers included */
    size_t limit;                /* cache_limit of the arena's used bytes */
    void *slab_bins[CACHE_SLAB_CLASSES];
    size_t slab_bytes[CACHE_SLAB_CLASSES]; /* block sizes per class */
} cache_t;

/* A medium request's payload, less one (so a size already on a class
 * start stays in its class). */
static inline size_t cache_request_last(size_t n)
{
    return align_up(n, PA_GRANULE) - 1;
}

/* The class a medium request of n bytes (more than SLAB_REQUEST_MAX, at
 * most PA_LARGE_THRESHOLD) rounds up to. */
static inline unsigned cache_class_of_request(size_t n)
{
    size_t last = cache_request_last(n);
    unsigned high = bit_highest(last);
    unsigned sl = (unsigned)(last >> (high - CACHE_SL_SHIFT)) & (CACHE_SL_COUNT - 1);
    return (high - PA_LOG2_SLAB_REQUEST_MAX) * CACHE_SL_COUNT + sl + 1;
}

/* The block size that serves a medium request of n bytes: its class's
 * payload start, plus a TLSF bin for the header. */
static inline size_t cache_block_size_for(size_t n)
{
    size_t last = cache_request_last(n);
    size_t step = ((size_t)1 << (bit_highest(last) - CACHE_SL_SHIFT)) - 1;
    size_t payload = (last | step) + 1;
    return payload + ((size_t)1 << (bit_highest(payload) - TLSF_SL_SHIFT));
}

/* The class of a block of size bytes (the last class whose block it
 * reaches). A class's block lies one TLSF bin past a class start, so the
 * first bin of a row still belongs to the row before. The cache takes only
 * classes 1 to CACHE_BINS - 1: others are blocks shrunk in place below the
 * first class a request rounds up to (row 0's class 0, or a row below: the
 * unsigned arithmetic wraps to a huge value). */
static inline unsigned cache_class_of_block(size_t size)
{
    unsigned high = bit_highest(size);
    unsigned row = high - PA_LOG2_SLAB_REQUEST_MAX;
    unsigned bin = (unsigned)(size >> (high - TLSF_SL_SHIFT)) ^ TLSF_SL_COUNT;
    return row * CACHE_SL_COUNT + ((bin + (1u << CACHE_BIN_SHIFT) - 1) >> CACHE_BIN_SHIFT) - 1;
}

static inline bool cache_takes_class(unsigned k)
{
    return k - 1 < CACHE_BINS - 1;
}

/* The most bytes the cache may hold, given the usable bytes of the arena's
 * used blocks (cached ones included). Kept in cache_t.limit whenever those
 * change (never on a cache hit), so a push only compares. */
static inline size_t cache_limit(size_t used)
{
    size_t limit = CACHE_MIN_BYTES + (used >> CACHE_LIMIT_SHIFT);
    return limit < CACHE_MAX_BYTES ? limit : CACHE_MAX_BYTES;
}

/* Takes a cached block for a medium request of n bytes; NULL when its
 * class is empty. */
static inline block_t *cache_pop(cache_t *c, size_t n)
{
    unsigned k = cache_class_of_request(n);
    block_t *b = c->bins[k];
    if (pa_likely(b != NULL)) {
        /* The next block of the class is the next request's: have its
         * line (and page) at hand by then. */
        block_t *next = PA_LINK_LOAD(b->next_free);
        __builtin_prefetch(next, 1);
        c->bins[k] = next;
        c->bytes -= block_size(b);
    }
    return b;
}

/* Keeps used block b (its live mark cleared); false when the cache is full
 * or does not take b's size, and b must go back to TLSF. */
static inline bool cache_push(cache_t *c, block_t *b)
{
    size_t size = block_size(b);
    unsigned k = cache_class_of_block(size);
    if (pa_unlikely(!cache_takes_class(k) || c->bytes + size > c->limit))
        return false;
    PA_LINK_STORE(b->next_free, c->bins[k]);
    c->bins[k] = b;
    c->bytes += size;
    return true;
}

/* Takes a cached slab block of class cls (at least CACHE_SLAB_FIRST);
 * NULL when there is none. */
static inline void *cache_slab_pop(cache_t *c, unsigned cls)
{
    unsigned k = cls - CACHE_SLAB_FIRST;
    void *p = c->slab_bins[k];
    if (pa_likely(p != NULL)) {
        c->slab_bins[k] = PA_LINK_LOAD(*(void **)p);
        c->slab_bytes[k] -= pa_slab_class_size[cls];
    }
    return p;
}

/* Whether blocks of slab sl's class are cached: one comparison with the
 * record the free reads anyway. */
static inline bool cache_takes_slab(const slab_t *sl)
{
    return sl->cls >= CACHE_SLAB_FIRST;
}

/* The most bytes one cached slab class may hold when assigned slabs have
 * a size class. */
static inline size_t cache_slab_limit(size_t assigned)
{
    size_t limit = assigned * (SLAB_SIZE / 64);
    return limit > CACHE_SLAB_CLASS_BYTES ? limit : CACHE_SLAB_CLASS_BYTES;
}

/* Keeps block p of slab sl, whose class the cache takes (its live byte
 * cleared), given the limit of cache_slab_limit; false when the class
 * holds its share, and p goes back to sl. */
static inline bool cache_slab_push(cache_t *c, const slab_t *sl, void *p, size_t limit)
{
    unsigned k = sl->cls - CACHE_SLAB_FIRST;
    uint32_t size = sl->block_size;
    if (c->slab_bytes[k] + size > limit)
        return false;
    PA_LINK_STORE(*(void **)p, c->slab_bins[k]);
    c->slab_bins[k] = p;
    c->slab_bytes[k] += size;
    return true;
}

struct heap;
/* The number of cached blocks (walks the lists: for tests). */
size_t pa_cache_count(const cache_t *c);
/* Gives every cached block back to the arena of h (its owner, or a pauser). */
void pa_cache_flush(struct heap *h);
/* Checks every cached block of h (a used block of h's, of its class, not
 * marked live) and the byte counts. Called by h's owner, or with h paused.
 * 0, or -1 after pa_verify_fail. */
int pa_cache_verify(const struct heap *h);

#endif /* PA_CACHE_H */
