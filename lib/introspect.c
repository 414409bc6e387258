/*
 * introspect.c - allocator_stats, allocator_dump and allocator_verify.
 *
 * Each brings every heap to rest first (the pause handshake in heap.c), so
 * it may run while other threads allocate, and reads each heap as its owner
 * would. Blocks waiting in a hand-over list are taken back into their heap
 * before counting, so the figures say what a user can reuse.
 */
#include <errno.h>
#include <stdarg.h>

#include "heap.h"
#include "large.h"
#include "pallocator.h"
#include "segmap.h"

/* With every heap paused: sends each outbox, then takes every handed-over
 * block back. Taking a batch back returns the batch's own block to its
 * maker as a single entry, which the second pass takes back. */
static void settle_all(void)
{
    for (heap_t *h = heap_registry_first(); h; h = h->next_all)
        heap_outbox_flush(h);
    for (int pass = 0; pass < 2; pass++)
        for (heap_t *h = heap_registry_first(); h; h = h->next_all)
            heap_drain_handover(h);
}

static size_t tlsf_free_usable(const tlsf_t *t)
{
    return t->free_bytes - t->free_blocks * BLOCK_HEADER_SIZE;
}

/* Bytes of live blocks in h's slabs, and bytes of its slab segments free
 * for blocks: unused room in slabs with a class, and free slabs. Call with
 * h settled (then a block handed out and not taken back is live). */
static size_t slab_live_bytes(const heap_t *h)
{
    size_t n = 0;
    for (const segment_t *s = h->slabs.segments; s; s = s->next)
        for (size_t k = SEGMENT_HEADER_SLABS; k < SEGMENT_SLABS; k++)
            if (s->slabs[k].state != SLAB_FREE)
                n += (size_t)s->slabs[k].used * s->slabs[k].block_size;
    return n;
}

static size_t slab_free_bytes(const heap_t *h)
{
    return h->slabs.segment_count * SEGMENT_BLOCK_SLABS * SLAB_SIZE - slab_live_bytes(h);
}

static size_t heap_free_usable(const heap_t *h)
{
    return slab_free_bytes(h) + tlsf_free_usable(&h->arena.tlsf);
}

/* The peak a heap reports: exact single-threaded, of the bytes held with
 * concurrency. */
static size_t heap_peak(const heap_t *h)
{
    return pa_is_concurrent() ? h->held.peak : h->live.peak;
}

/* Live bytes in heaps, with concurrency, where the fast paths count nothing:
 * what the TLSF heaps see as used plus what the slabs hold. Call with every
 * heap settled (no batch or handed-over block left). */
static size_t heaps_allocated(void)
{
    size_t used = 0;
    for (heap_t *h = heap_registry_first(); h; h = h->next_all)
        used += heap_arena_used(h) + slab_live_bytes(h);
    return used;
}

PALLOCATOR_API int allocator_stats(size_t *allocated, size_t *freed, size_t *peak)
{
    size_t sum_allocated, sum_freed = 0, sum_peak = 0;
    heap_pause_all();
    settle_all();
    /* Single-threaded, the one heap's exact count covers large blocks. */
    bool concurrent = pa_is_concurrent();
    sum_allocated = concurrent ? heaps_allocated()
                               : pa_single_heap ? pa_single_heap->live.allocated : 0;
    for (heap_t *h = heap_registry_first(); h; h = h->next_all) {
        sum_freed += heap_free_usable(h);
        sum_peak += heap_peak(h);
    }
    large_lock();
    large_stats_t large = large_stats();
    large_unlock();
    heap_resume_all();
    if (allocated)
        *allocated = concurrent ? sum_allocated + large.allocated : sum_allocated;
    if (freed)
        *freed = sum_freed;
    if (peak)
        *peak = concurrent ? sum_peak + large.peak : sum_peak;
    return 0;
}

/* ---- dump ------------------------------------------------------------ */

static const char *mode_name(void)
{
    switch (pa_mode) {
    case PA_MODE_SINGLE:
        return "single-threaded";
    case PA_MODE_CONCURRENT:
        return "concurrent (a heap per thread)";
    default:
        return "not initialised";
    }
}

static const block_t *entry_block(const block_t *entry)
{
    return (const block_t *)((uintptr_t)entry & ~HEAP_HANDOVER_TAGS);
}

static bool entry_is_return(const block_t *entry)
{
    return ((uintptr_t)entry & HEAP_HANDOVER_RETURN_TAG) != 0;
}

static bool entry_is_batch(const block_t *entry)
{
    return ((uintptr_t)entry & HEAP_HANDOVER_BATCH_TAG) != 0;
}

/* Blocks in a hand-over list, counting those inside batches. */
static size_t list_length(const block_t *entry)
{
    size_t n = 0;
    for (; entry; entry = entry_block(entry)->next_free)
        n += entry_is_batch(entry)
                 ? ((const handover_batch_t *)block_payload(entry_block(entry)))->count
                 : !entry_is_return(entry);
    return n;
}

static size_t handover_length(const heap_t *h)
{
    return list_length(h->pending) + list_length(__atomic_load_n(&h->handover, __ATOMIC_ACQUIRE));
}

static void dump_segment(const segment_t *s)
{
    fprintf(stderr, "    segment %p (area %p, %zu bytes)\n", (const void *)s,
            (const void *)segment_first_block(s), (size_t)SEGMENT_AREA_SIZE);
    for (const block_t *b = segment_first_block(s); !block_is_sentinel(b);
         b = block_next(b)) {
        const char *state = block_is_free(b) ? "free"
                            : segment_live_test(s, block_payload(b)) ? "used"
                                                                     : "waiting";
        fprintf(stderr, "      block %p size %8zu %s\n", (const void *)b,
                block_size(b), state);
    }
}

static void dump_free_lists(const tlsf_t *t)
{
    fprintf(stderr, "    first-level bitmap %08x\n", t->fl_bitmap);
    for (unsigned fl = 0; fl < TLSF_FL_COUNT; fl++) {
        if (!t->sl_bitmap[fl])
            continue;
        fprintf(stderr, "    fl %2u second-level bitmap %08x\n", fl, t->sl_bitmap[fl]);
        for (unsigned sl = 0; sl < TLSF_SL_COUNT; sl++) {
            size_t n = 0;
            for (const block_t *b = t->lists[fl][sl]; b; b = b->next_free)
                n++;
            if (n)
                fprintf(stderr, "      bin %2u/%2u: %zu free block%s\n", fl, sl, n,
                        n == 1 ? "" : "s");
        }
    }
}

/* Each carved block of a slab: live, or free (in the slab's free list, or
 * on its way back from another thread). */
static void dump_slab(const segment_t *s, const slab_t *sl)
{
    static const char *const states[] = {"free", "current", "partial", "full"};
    fprintf(stderr, "    slab %p: %u-byte blocks, %s, %u used, %u carved of %u\n",
            (const void *)sl->start, sl->block_size, states[sl->state], sl->used, sl->bump,
            sl->capacity);
    for (uint32_t i = 0; i < sl->bump; i++) {
        const char *p = sl->start + (size_t)i * sl->block_size;
        fprintf(stderr, "      block %p size %8u %s\n", (const void *)p, sl->block_size,
                segment_live_test(s, p) ? "used" : "free");
    }
}

static void dump_slabs(const heap_t *h)
{
    fprintf(stderr, "   slabs: %zu segment%s, %zu of %zu slabs with a size class\n",
            h->slabs.segment_count, h->slabs.segment_count == 1 ? "" : "s", h->slabs.assigned,
            h->slabs.segment_count * SEGMENT_BLOCK_SLABS);
    for (const segment_t *s = h->slabs.segments; s; s = s->next)
        for (size_t k = SEGMENT_HEADER_SLABS; k < SEGMENT_SLABS; k++)
            if (s->slabs[k].state != SLAB_FREE)
                dump_slab(s, &s->slabs[k]);
}

static void dump_heap(const heap_t *h)
{
    size_t outbox = h->outbox ? ((const handover_batch_t *)block_payload(h->outbox))->count : 0;
    fprintf(stderr, "  heap %u (%s): used %zu, peak %zu, free %zu, hand-over list %zu, "
            "outbox %zu\n", h->id, h->state == HEAP_OWNED ? "owned" : "abandoned",
            heap_arena_used(h), heap_peak(h), heap_free_usable(h), handover_length(h), outbox);
    if (!pa_is_concurrent())
        fprintf(stderr, "   allocated %zu (large blocks included)\n", h->live.allocated);
    dump_slabs(h);
    const arena_t *a = &h->arena;
    fprintf(stderr, "   TLSF arena: %zu segment%s, %zu free bytes in %zu block%s\n",
            a->segment_count, a->segment_count == 1 ? "" : "s", tlsf_free_usable(&a->tlsf),
            a->tlsf.free_blocks, a->tlsf.free_blocks == 1 ? "" : "s");
    for (const segment_t *s = a->segments; s; s = s->next)
        dump_segment(s);
    dump_free_lists(&a->tlsf);
}

PALLOCATOR_API void allocator_dump(void)
{
    heap_pause_all();
    fprintf(stderr, "pallocator: %s, segment size %zu, large threshold %zu\n",
            mode_name(), (size_t)PA_SEGMENT_SIZE, (size_t)PA_LARGE_THRESHOLD);
    for (const heap_t *h = heap_registry_first(); h; h = h->next_all)
        dump_heap(h);
    large_lock();
    large_stats_t large = large_stats();
    fprintf(stderr, "  large blocks: %zu, %zu bytes usable, %zu mapped, peak %zu\n",
            large.count, large.allocated, large.mapped, large.peak);
    for (const large_t *l = large_first(); l; l = l->next)
        fprintf(stderr, "    large %p usable %zu mapped %zu\n",
                (const void *)((const char *)l + LARGE_PAYLOAD_OFFSET), l->usable,
                l->map_size);
    large_unlock();
    segment_pool_lock();
    fprintf(stderr, "  pooled segments (pages returned to the OS): %zu\n",
            segment_pool_count());
    segment_pool_unlock();
    fprintf(stderr, "  segment map slots in use: %zu\n", segmap_count());
    heap_resume_all();
}

/* ---- verify ---------------------------------------------------------- */

static pa_cold __attribute__((format(printf, 1, 2))) int verify_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pallocator: verify: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}

typedef struct verify_tally {
    size_t used_usable, free_bytes, free_blocks, live_marks, unmarked_used;
} verify_tally_t;

static size_t live_population(const segment_t *s)
{
    size_t n = 0;
    /* A mark is 0 or 1, so a word's population counts its marks. */
    for (size_t i = 0; i < SEGMENT_GRANULES / 8; i++)
        n += (size_t)__builtin_popcountll(__atomic_load_n(&s->live.word[i], __ATOMIC_RELAXED));
    return n;
}

static bool block_in_area(const segment_t *s, const block_t *b)
{
    const char *lo = (const char *)segment_first_block(s);
    const char *hi = (const char *)s + PA_SEGMENT_SIZE - BLOCK_HEADER_SIZE;
    return (const char *)b >= lo && (const char *)b <= hi &&
           ((uintptr_t)b & (PA_GRANULE - 1)) == 0;
}

static int verify_block(const heap_t *h, const segment_t *s, const block_t *b,
                        const block_t *prev, verify_tally_t *tally)
{
    size_t size = block_size(b);
    if (size < BLOCK_MIN_SIZE || size % PA_GRANULE)
        return verify_fail("heap %u block %p has bad size %zu", h->id, (const void *)b, size);
    const block_t *next = block_next(b);
    if (!block_in_area(s, next))
        return verify_fail("heap %u block %p runs past its segment", h->id, (const void *)b);
    if (block_prev_is_free(b) != (prev && block_is_free(prev)))
        return verify_fail("heap %u block %p: predecessor flag disagrees", h->id, (const void *)b);
    if (block_is_free(b)) {
        if (prev && block_is_free(prev))
            return verify_fail("heap %u blocks %p and %p: two free neighbours not merged",
                               h->id, (const void *)prev, (const void *)b);
        if (next->prev_phys != b)
            return verify_fail("heap %u block %p: boundary tag of successor is wrong",
                               h->id, (const void *)b);
        if (segment_live_test(s, block_payload(b)))
            return verify_fail("heap %u free block %p is marked live", h->id, (const void *)b);
        tally->free_bytes += size;
        tally->free_blocks++;
        return 0;
    }
    /* A used block without its live mark: another thread is freeing it
     * right now, between claiming the bit and handing it over. */
    if (segment_live_test(s, block_payload(b)))
        tally->live_marks++;
    else
        tally->unmarked_used++;
    tally->used_usable += block_usable(b);
    return 0;
}

static int verify_segment(const heap_t *h, const segment_t *s, verify_tally_t *tally)
{
    if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) != h)
        return verify_fail("segment %p is listed by heap %u but owned by another",
                           (const void *)s, h->id);
    if (segmap_lookup(s) != (uintptr_t)h)
        return verify_fail("segment %p is missing from the segment map", (const void *)s);
    size_t live_before = tally->live_marks;
    const block_t *prev = NULL;
    const block_t *b = segment_first_block(s);
    while (!block_is_sentinel(b)) {
        if (verify_block(h, s, b, prev, tally))
            return -1;
        prev = b;
        b = block_next(b);
    }
    if ((const char *)b != (const char *)s + PA_SEGMENT_SIZE - BLOCK_HEADER_SIZE)
        return verify_fail("segment %p: block chain ends at %p, not at its sentinel",
                           (const void *)s, (const void *)b);
    if (block_prev_is_free(b) != (prev && block_is_free(prev)))
        return verify_fail("segment %p: sentinel predecessor flag disagrees", (const void *)s);
    /* Other threads may claim live marks (freeing blocks) while the heap is
     * paused, never set them: with concurrency, fewer marks than counted
     * live blocks is a free in progress, more is an error. */
    size_t marks = live_population(s), counted = tally->live_marks - live_before;
    if (marks > counted || (marks < counted && !pa_is_concurrent()))
        return verify_fail("segment %p: %zu live marks for %zu live blocks", (const void *)s,
                           marks, counted);
    return 0;
}

static int verify_free_lists(const heap_t *h, const arena_t *a)
{
    const tlsf_t *t = &a->tlsf;
    size_t listed = 0;
    for (unsigned fl = 0; fl < TLSF_FL_COUNT; fl++) {
        if (((t->fl_bitmap >> fl) & 1) != (t->sl_bitmap[fl] != 0))
            return verify_fail("heap %u first-level bit %u disagrees with its row", h->id, fl);
        for (unsigned sl = 0; sl < TLSF_SL_COUNT; sl++) {
            const block_t *b = t->lists[fl][sl];
            if (((t->sl_bitmap[fl] >> sl) & 1) != (b != NULL))
                return verify_fail("heap %u bitmap bit %u/%u disagrees with its list", h->id, fl, sl);
            for (const block_t *prev = NULL; b; prev = b, b = b->next_free) {
                if (++listed > t->free_blocks)
                    return verify_fail("heap %u free lists hold more blocks than counted", h->id);
                const segment_t *s = segment_of(b);
                if (!block_in_area(s, b) || __atomic_load_n(&s->owner, __ATOMIC_RELAXED) != h ||
                    s->arena != a)
                    return verify_fail("heap %u list %u/%u holds foreign block %p", h->id, fl, sl, (const void *)b);
                if (!block_is_free(b))
                    return verify_fail("heap %u list %u/%u holds used block %p", h->id, fl, sl, (const void *)b);
                tlsf_bin_t bin = tlsf_bin_of(block_size(b));
                if (bin.fl != fl || bin.sl != sl)
                    return verify_fail("heap %u block %p of size %zu is in list %u/%u, belongs in %u/%u",
                                       h->id, (const void *)b, block_size(b), fl, sl, bin.fl, bin.sl);
                if (b->prev_free != prev)
                    return verify_fail("heap %u list %u/%u: back link of %p is wrong", h->id, fl, sl, (const void *)b);
            }
        }
    }
    if (listed != t->free_blocks)
        return verify_fail("heap %u: %zu blocks listed, %zu counted free", h->id, listed, t->free_blocks);
    return 0;
}

/* A block handed over to h: in h's segments, used, its live mark claimed. */
static int verify_handed_block(const heap_t *h, const block_t *b)
{
    const segment_t *s = segment_of(b);
    if (!block_in_area(s, b) || __atomic_load_n(&s->owner, __ATOMIC_RELAXED) != h)
        return verify_fail("heap %u hand-over list holds foreign block %p", h->id, (const void *)b);
    bool in_use = segment_has_slabs(s) ? slab_holds_block(slab_of(s, block_payload(b)),
                                                          block_payload(b))
                                       : !block_is_free(b);
    if (!in_use || segment_live_test(s, block_payload(b)))
        return verify_fail("heap %u hand-over list holds block %p that is not being freed",
                           h->id, (const void *)b);
    return 0;
}

/* A batch: a live block of another heap listing blocks handed to h. */
static int verify_batch(const heap_t *h, const block_t *batch_block)
{
    const segment_t *s = segment_of(batch_block);
    const handover_batch_t *batch = block_payload(batch_block);
    const heap_t *maker = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
    if (!maker || !segment_has_slabs(s) || !slab_holds_block(slab_of(s, batch), batch) ||
        segment_live_test(s, batch) || batch->count > HEAP_OUTBOX_SLOTS)
        return verify_fail("heap %u hand-over list holds a broken batch %p", h->id,
                           (const void *)batch_block);
    for (uint32_t i = 0; i < batch->count; i++) {
        if (heap_handed_size(batch->blocks[i]) != batch->sizes[i])
            return verify_fail("heap %u batch %p records a wrong size", h->id,
                               (const void *)batch_block);
        if (verify_handed_block(h, batch->blocks[i]))
            return -1;
    }
    return 0;
}

static int verify_handover_list(const heap_t *h, const block_t *entry)
{
    for (; entry; entry = entry_block(entry)->next_free)
        if (entry_is_batch(entry) ? verify_batch(h, entry_block(entry))
                                  : verify_handed_block(h, entry_block(entry)))
            return -1;
    return 0;
}

typedef struct slab_tally {
    size_t free, partial, assigned, live_bytes;
} slab_tally_t;

/* A slab with a class: its counts, its free list and its state. */
static int verify_slab(const heap_t *h, const segment_t *s, const slab_t *sl, slab_tally_t *tally)
{
    unsigned c = sl->cls;
    if (c >= SLAB_CLASSES || sl->block_size != slab_class_size[c] ||
        sl->capacity != SLAB_SIZE / sl->block_size || sl->bump > sl->capacity ||
        sl->used > sl->bump || sl->start != (const char *)s + (size_t)(sl - s->slabs) * SLAB_SIZE)
        return verify_fail("heap %u slab %p has a broken record", h->id, (const void *)sl->start);
    size_t listed = 0;
    for (const void *p = sl->free; p; p = *(void *const *)p)
        if (++listed > sl->bump || !slab_holds_block(sl, p) || segment_live_test(s, p))
            return verify_fail("heap %u slab %p: bad free list at %p", h->id,
                               (const void *)sl->start, p);
    if (sl->used + listed != sl->bump)
        return verify_fail("heap %u slab %p: %u used and %zu free of %u carved", h->id,
                           (const void *)sl->start, sl->used, listed, sl->bump);
    bool current = h->slabs.current[c] == sl;
    if (current != (sl->state == SLAB_CURRENT) ||
        (sl->state == SLAB_FULL && (listed || sl->bump != sl->capacity)) ||
        (sl->state == SLAB_PARTIAL && (!listed || !sl->used)))
        return verify_fail("heap %u slab %p is in the wrong state", h->id, (const void *)sl->start);
    tally->partial += sl->state == SLAB_PARTIAL;
    tally->assigned++;
    tally->live_bytes += (size_t)sl->used * sl->block_size;
    return 0;
}

static int verify_slab_segment(const heap_t *h, const segment_t *s, slab_tally_t *tally)
{
    if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) != h || !segment_has_slabs(s))
        return verify_fail("slab segment %p is listed by heap %u but not its own", (const void *)s,
                           h->id);
    if (segmap_lookup(s) != ((uintptr_t)h | SEGMAP_SLABS))
        return verify_fail("segment %p is missing from the segment map", (const void *)s);
    size_t in_use = 0, used = 0;
    for (size_t k = SEGMENT_HEADER_SLABS; k < SEGMENT_SLABS; k++) {
        const slab_t *sl = &s->slabs[k];
        if (sl->state == SLAB_FREE) {
            tally->free++;
            continue;
        }
        if (verify_slab(h, s, sl, tally))
            return -1;
        in_use++;
        used += sl->used;
    }
    if (in_use != s->slabs_in_use)
        return verify_fail("slab segment %p: %zu slabs in use, counts %zu", (const void *)s,
                           in_use, s->slabs_in_use);
    /* Blocks being freed by other threads are counted used but not live. */
    size_t marks = live_population(s);
    if (marks > used || (marks < used && !pa_is_concurrent()))
        return verify_fail("slab segment %p: %zu live marks for %zu blocks in use", (const void *)s,
                           marks, used);
    return 0;
}

static size_t slab_list_length(const slab_t *sl, unsigned state, unsigned cls)
{
    size_t n = 0;
    for (; sl; sl = sl->next, n++)
        if (sl->state != state || (state != SLAB_FREE && sl->cls != cls))
            return SIZE_MAX;
    return n;
}

static int verify_slabs(const heap_t *h, size_t *segments, size_t *live_bytes)
{
    const slab_set_t *set = &h->slabs;
    slab_tally_t tally = {0};
    size_t count = 0;
    for (const segment_t *s = set->segments; s; s = s->next, count++)
        if (verify_slab_segment(h, s, &tally))
            return -1;
    if (count != set->segment_count)
        return verify_fail("heap %u lists %zu slab segments, counts %zu", h->id, count,
                           set->segment_count);
    size_t partial = 0;
    for (unsigned c = 0; c < SLAB_CLASSES; c++) {
        size_t n = slab_list_length(set->partial[c], SLAB_PARTIAL, c);
        const slab_t *cur = set->current[c];
        if (n == SIZE_MAX || (cur != &slab_none && cur->cls != c))
            return verify_fail("heap %u: slab lists of class %u are broken", h->id, c);
        partial += n;
    }
    if (partial != tally.partial || tally.assigned != set->assigned ||
        slab_list_length(set->free, SLAB_FREE, 0) != tally.free)
        return verify_fail("heap %u: slab lists disagree with the slabs", h->id);
    *segments += count;
    *live_bytes = tally.live_bytes;
    return 0;
}

static int verify_heap(heap_t *h, size_t *segments)
{
    if (verify_handover_list(h, h->pending) ||
        verify_handover_list(h, __atomic_load_n(&h->handover, __ATOMIC_ACQUIRE)))
        return -1;
    heap_drain_handover(h);
    verify_tally_t tally = {0};
    const arena_t *a = &h->arena;
    size_t count = 0;
    for (const segment_t *s = a->segments; s; s = s->next, count++) {
        if (s->arena != a)
            return verify_fail("heap %u segment %p is listed in the wrong arena", h->id,
                               (const void *)s);
        if (verify_segment(h, s, &tally))
            return -1;
    }
    if (count != a->segment_count)
        return verify_fail("heap %u arena lists %zu segments, counts %zu", h->id, count,
                           a->segment_count);
    *segments += count;
    if (verify_free_lists(h, a))
        return -1;
    if (tally.free_bytes != a->tlsf.free_bytes || tally.free_blocks != a->tlsf.free_blocks)
        return verify_fail("heap %u arena: free blocks hold %zu bytes in %zu, statistics say "
                           "%zu in %zu", h->id, tally.free_bytes, tally.free_blocks,
                           a->tlsf.free_bytes, a->tlsf.free_blocks);
    if (tally.unmarked_used != 0 && !pa_is_concurrent())
        return verify_fail("heap %u: %zu used blocks are not marked live", h->id,
                           tally.unmarked_used);
    if (tally.used_usable != heap_arena_used(h))
        return verify_fail("heap %u: used blocks hold %zu bytes, statistics say %zu", h->id,
                           tally.used_usable, heap_arena_used(h));
    size_t slab_bytes = 0;
    if (verify_slabs(h, segments, &slab_bytes))
        return -1;
    if (h->held.peak < h->held.allocated)
        return verify_fail("heap %u: peak %zu below %zu held", h->id, h->held.peak,
                           h->held.allocated);
    if (pa_is_concurrent())
        return 0;
    /* At rest in the single-threaded mode: no large block comes or goes. */
    size_t large = large_stats().allocated;
    if (h->live.allocated != heap_arena_used(h) + slab_bytes + large)
        return verify_fail("heap %u: %zu bytes allocated, %zu used in blocks, %zu in slabs and "
                           "%zu in large blocks", h->id, h->live.allocated, heap_arena_used(h),
                           slab_bytes, large);
    if (h->live.peak < h->live.allocated)
        return verify_fail("heap %u: peak %zu below allocated %zu", h->id, h->live.peak,
                           h->live.allocated);
    return 0;
}

static int verify_large(size_t *slots)
{
    large_stats_t totals = large_stats();
    size_t count = 0, usable = 0;
    for (const large_t *l = large_first(); l; l = l->next) {
        const char *payload = (const char *)l + LARGE_PAYLOAD_OFFSET;
        if (segmap_lookup(payload) != ((uintptr_t)l | SEGMAP_LARGE))
            return verify_fail("large block %p is missing from the segment map", (const void *)payload);
        count++;
        usable += l->usable;
        *slots += (l->map_size + PA_SEGMENT_SIZE - 1) / PA_SEGMENT_SIZE;
    }
    if (count != totals.count || usable != totals.allocated)
        return verify_fail("large blocks: %zu holding %zu bytes, statistics say %zu holding %zu",
                           count, usable, totals.count, totals.allocated);
    return 0;
}

PALLOCATOR_API int allocator_verify(void)
{
    int rc = 0;
    size_t slots = 0;
    heap_pause_all();
    for (heap_t *h = heap_registry_first(); h; h = h->next_all)
        heap_outbox_flush(h);
    for (heap_t *h = heap_registry_first(); h && rc == 0; h = h->next_all)
        rc = verify_heap(h, &slots);
    /* Large blocks come and go without pausing any heap: count the map
     * while holding their lock. */
    large_lock();
    if (rc == 0)
        rc = verify_large(&slots);
    segment_pool_lock();
    slots += segment_pool_count();
    size_t mapped = segmap_count();
    segment_pool_unlock();
    large_unlock();
    if (rc == 0 && slots != mapped)
        rc = verify_fail("segment map holds %zu slots, heaps, pool and large blocks %zu",
                         mapped, slots);
    heap_resume_all();
    return rc;
}
