/* SPDX-License-Identifier: MIT */
/*
 * introspect.c - allocator_stats, allocator_dump and allocator_verify.
 *
 * Each brings every heap to rest first (the pause handshake in heap.c), so
 * it may run while other threads allocate, and reads each heap as its owner
 * would. Blocks waiting in a hand-over list are taken back into their heap
 * before counting, so the figures say what a user can reuse.
 */
#include <errno.h>

#include "heap.h"
#include "large.h"
#include "introspect.h"
#include "myheap.h"
#include "numa.h"
#include "pallocator.h"
#include "segmap.h"

/* With every heap paused: sends each outbox and gives each cache back (a
 * cached block is free to the program), then takes every handed-over
 * block back. Taking a batch back returns the batch's own block to its
 * maker as a single entry, which the second pass takes back. */
static void settle_all(void)
{
    for (heap_t *h = pa_heap_registry_first(); h; h = h->next_all) {
        pa_heap_outbox_flush(h);
        pa_cache_flush(h);
    }
    for (int pass = 0; pass < 2; pass++)
        for (heap_t *h = pa_heap_registry_first(); h; h = h->next_all)
            pa_heap_drain_handover(h);
}

static size_t tlsf_free_usable(const tlsf_t *t)
{
    return t->free_bytes - t->free_blocks * BLOCK_HEADER_SIZE;
}

/* The peak a heap reports: exact single-threaded, of the bytes held with
 * concurrency. */
static size_t heap_peak(const heap_t *h)
{
    return pa_is_concurrent() ? h->held.peak : h->live.peak;
}

/* ---- figures --------------------------------------------------------- */

/* What one heap holds, read with it settled (then a slab block handed out
 * and not taken back is live). */
typedef struct heap_figures {
    size_t slab_blocks, slab_bytes; /* live slab blocks and their bytes */
    size_t arena_bytes;             /* usable bytes of the used arena blocks */
    /* Bytes the heap can hand out again without asking the OS: the blocks
     * not handed out of its slabs with live blocks, its empty slabs (which
     * go back to the free ones, at the latest when the thread exits), and
     * the usable bytes of its free arena blocks. The end of a slab with
     * live blocks too short for a block of its class is none of them. A
     * tier that keeps free blocks of its own adds them here. */
    size_t freed;
    size_t peak;
} heap_figures_t;

static heap_figures_t heap_figures(const heap_t *h)
{
    heap_figures_t f = {.arena_bytes = heap_arena_used(h), .peak = heap_peak(h)};
    for (const segment_t *s = h->slabs.segments; s; s = s->next)
        for (size_t k = SEGMENT_HEADER_SLABS; k < SEGMENT_SLABS; k++) {
            const slab_t *sl = &s->slabs[k];
            if (sl->state == SLAB_FREE || sl->used == 0) {
                f.freed += SLAB_SIZE;
                continue;
            }
            f.slab_blocks += sl->used;
            f.slab_bytes += (size_t)sl->used * (sl->block_size - PA_CANARY_SIZE);
            f.freed += (size_t)(sl->capacity - sl->used) * (sl->block_size - PA_CANARY_SIZE);
        }
    f.freed += tlsf_free_usable(&h->arena.tlsf);
    return f;
}

/* The figures allocator_stats reports, and the parts allocator_dump shows
 * beside them. The one place they are computed, so the two calls agree. */
typedef struct totals {
    size_t allocated, freed, peak;
    size_t slab_blocks, slab_bytes, arena_bytes; /* summed over the heaps */
    large_stats_t large;
} totals_t;

/* Sums every heap's figures and the large blocks' (large, read under
 * pa_large_lock). Call with every heap paused and settled. */
static totals_t totals_compute(large_stats_t large)
{
    totals_t t = {.large = large};
    size_t heap_peaks = 0;
    for (const heap_t *h = pa_heap_registry_first(); h; h = h->next_all) {
        heap_figures_t f = heap_figures(h);
        t.slab_blocks += f.slab_blocks;
        t.slab_bytes += f.slab_bytes;
        t.arena_bytes += f.arena_bytes;
        t.freed += f.freed;
        heap_peaks += f.peak;
    }
    if (pa_is_concurrent()) {
        /* The fast paths count nothing: what the arenas see as used plus
         * what the slabs hold, and the heaps' peaks of what they held. */
        t.allocated = t.arena_bytes + t.slab_bytes + large.allocated;
        t.peak = heap_peaks + large.peak;
    } else {
        /* The one heap's exact count covers large blocks. */
        t.allocated = pa_single_heap ? pa_single_heap->live.allocated : 0;
        t.peak = heap_peaks;
    }
    return t;
}

PALLOCATOR_API int allocator_stats(size_t *allocated, size_t *freed, size_t *peak)
{
    pa_heap_pause_all();
    settle_all();
    /* Large blocks come and go without pausing any heap. */
    pa_large_lock();
    large_stats_t large = pa_large_stats();
    pa_large_unlock();
    totals_t t = totals_compute(large);
    /* The private heaps' peaks are summed with the threads': an upper
     * bound on the process's peak, reached only if they all peaked at
     * once. */
    myheap_totals_t mine;
    pa_myheap_totals(&mine);
    t.allocated += mine.allocated;
    t.freed += mine.freed;
    t.peak += mine.peak;
    pa_heap_resume_all();
    if (allocated)
        *allocated = t.allocated;
    if (freed)
        *freed = t.freed;
    if (peak)
        *peak = t.peak;
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

static const char *plural(size_t n)
{
    return n == 1 ? "" : "s";
}

/* Blocks in a hand-over list, counting those inside batches; a used batch
 * on its way home counts none. */
static size_t list_length(const block_t *link)
{
    size_t n = 0;
    for (handover_entry_t e; link; link = PA_LINK_LOAD(e.block->next_free)) {
        e = handover_decode(link);
        if (e.tag & HEAP_HANDOVER_BATCH_TAG)
            n += ((const handover_batch_t *)block_payload(e.block))->count;
        else
            n += !(e.tag & HEAP_HANDOVER_RETURN_TAG);
    }
    return n;
}

static size_t handover_length(const heap_t *h)
{
    return list_length(h->pending) + list_length(__atomic_load_n(&h->handover, __ATOMIC_ACQUIRE));
}

static const char *arena_block_state(const segment_t *s, const block_t *b)
{
    if (block_is_free(b))
        return "free";
    return segment_live_test(s, block_payload(b)) ? "used" : "waiting";
}

/* Used blocks in the arena segments of h: the count the summary shows
 * beside the bytes the heap's statistics give. */
static size_t arena_used_blocks(const heap_t *h)
{
    size_t n = 0;
    for (const segment_t *s = h->arena.segments; s; s = s->next)
        for (const block_t *b = segment_first_block(s); !block_is_sentinel(b); b = block_next(b))
            n += !block_is_free(b);
    return n;
}

/* A run of neighbouring arena blocks in one state. */
typedef struct block_run {
    const block_t *first;
    const char *state;
    size_t blocks, bytes;
} block_run_t;

static void dump_run(const block_run_t *r)
{
    fprintf(stderr, "        %p: %zu %s block%s, %zu bytes (%zu usable)\n",
            (const void *)r->first, r->blocks, r->state, plural(r->blocks), r->bytes,
            r->bytes - r->blocks * BLOCK_HEADER_SIZE);
}

/* The segment's block chain as runs: one line per run, not per block. */
static void dump_arena_segment(const segment_t *s)
{
    fprintf(stderr, "      segment %p (area %p, %zu bytes)\n", (const void *)s,
            (const void *)segment_first_block(s), (size_t)SEGMENT_AREA_SIZE);
    block_run_t run = {0};
    for (const block_t *b = segment_first_block(s); !block_is_sentinel(b); b = block_next(b)) {
        const char *state = arena_block_state(s, b);
        if (run.blocks && run.state != state) {
            dump_run(&run);
            run.blocks = 0;
        }
        if (!run.blocks)
            run = (block_run_t){b, state, 0, 0};
        run.blocks++;
        run.bytes += block_size(b);
    }
    if (run.blocks)
        dump_run(&run);
}

static void dump_free_lists(const tlsf_t *t)
{
    fprintf(stderr, "      first-level bitmap %08x\n", t->fl_bitmap);
    for (unsigned fl = 0; fl < TLSF_FL_COUNT; fl++) {
        if (!t->sl_bitmap[fl])
            continue;
        fprintf(stderr, "      fl %2u second-level bitmap %08x\n", fl, t->sl_bitmap[fl]);
        for (unsigned sl = 0; sl < TLSF_SL_COUNT; sl++) {
            size_t n = 0;
            for (const block_t *b = t->lists[fl][sl]; b; b = PA_LINK_LOAD(b->next_free))
                n++;
            if (n)
                fprintf(stderr, "        bin %2u/%2u: %zu free block%s\n", fl, sl, n,
                        plural(n));
        }
    }
}

static void dump_slab(const slab_t *sl)
{
    static const char *const states[] = {"free", "current", "partial", "full"};
    _Static_assert(sizeof states / sizeof states[0] == SLAB_STATES, "a name per slab state");
    fprintf(stderr, "      slab %p: %u-byte blocks, %s, %u used, %u carved of %u\n",
            (const void *)sl->start, sl->block_size, states[sl->state], sl->used, sl->bump,
            sl->capacity);
}

static void dump_slabs(const heap_t *h)
{
    size_t count = h->slabs.segment_count;
    fprintf(stderr, "    slabs: %zu segment%s, %zu of %zu slabs with a size class\n", count,
            plural(count), h->slabs.assigned, count * SEGMENT_BLOCK_SLABS);
    for (const segment_t *s = h->slabs.segments; s; s = s->next)
        for (size_t k = SEGMENT_HEADER_SLABS; k < SEGMENT_SLABS; k++)
            if (s->slabs[k].state != SLAB_FREE)
                dump_slab(&s->slabs[k]);
}

static void dump_arena(const arena_t *a)
{
    fprintf(stderr, "    arena (TLSF): %zu segment%s, %zu free bytes in %zu block%s\n",
            a->segment_count, plural(a->segment_count), tlsf_free_usable(&a->tlsf),
            a->tlsf.free_blocks, plural(a->tlsf.free_blocks));
    for (const segment_t *s = a->segments; s; s = s->next)
        dump_arena_segment(s);
    dump_free_lists(&a->tlsf);
}

static void dump_heap(const heap_t *h)
{
    heap_figures_t f = heap_figures(h);
    size_t outbox = h->outbox ? ((const handover_batch_t *)block_payload(h->outbox))->count : 0;
    fprintf(stderr, "  heap %u (%s): allocated %zu (arena %zu, slab %zu), free %zu, peak %zu, "
            "hand-over list %zu, outbox %zu, node %d\n", h->id,
            h->state == HEAP_OWNED ? "owned" : "waiting for adoption",
            f.arena_bytes + f.slab_bytes, f.arena_bytes, f.slab_bytes, f.freed, f.peak,
            handover_length(h), outbox, h->numa_node);
    dump_slabs(h);
    dump_arena(&h->arena);
}

/* The summary: allocator_stats' figures, then what they are made of. */
static void dump_summary(const totals_t *t)
{
    size_t owned = 0, abandoned = 0, slab_segments = 0, arena_segments = 0, arena_blocks = 0;
    for (const heap_t *h = pa_heap_registry_first(); h; h = h->next_all) {
        owned += h->state == HEAP_OWNED;
        abandoned += h->state != HEAP_OWNED;
        slab_segments += h->slabs.segment_count;
        arena_segments += h->arena.segment_count;
        arena_blocks += arena_used_blocks(h);
    }
    pa_segment_pool_lock();
    size_t pooled = pa_segment_pool_count();
    pa_segment_pool_unlock();
    fprintf(stderr, "  allocated %zu, freed %zu, peak %zu\n", t->allocated, t->freed, t->peak);
    fprintf(stderr, "  heaps: %zu owned, %zu waiting for adoption\n", owned, abandoned);
    fprintf(stderr, "  segments: %zu slab, %zu arena (TLSF), %zu pooled; %zu segment map "
            "slots in use\n", slab_segments, arena_segments, pooled, pa_segmap_count());
    fprintf(stderr, "  live blocks: %zu slab (%zu bytes), %zu arena (%zu bytes), %zu large "
            "(%zu bytes)\n", t->slab_blocks, t->slab_bytes, arena_blocks, t->arena_bytes,
            t->large.count, t->large.allocated);
}

static void dump_large(const large_stats_t *large)
{
    fprintf(stderr, "  large blocks: %zu, %zu bytes usable, %zu mapped, peak %zu\n",
            large->count, large->allocated, large->mapped, large->peak);
    for (const large_t *l = pa_large_first(); l; l = l->next)
        fprintf(stderr, "    large %p usable %zu mapped %zu\n",
                (const void *)((const char *)l + l->map_size - l->usable), l->usable,
                l->map_size);
}

/* Where the resident pages of every segment and large block are, by
 * asking the kernel about each page (pages[n]: node n's); only with a NUMA
 * mode on. The caller holds every heap paused and the large-block lock. */
void pa_pages_by_node(size_t pages[NUMA_MAX_NODES])
{
    for (const heap_t *h = pa_heap_registry_first(); h; h = h->next_all) {
        for (const segment_t *s = h->slabs.segments; s; s = s->next)
            pa_numa_count_pages(s, PA_SEGMENT_SIZE, pages);
        for (const segment_t *s = h->arena.segments; s; s = s->next)
            pa_numa_count_pages(s, PA_SEGMENT_SIZE, pages);
    }
    for (const large_t *l = pa_large_first(); l; l = l->next)
        pa_numa_count_pages(l, l->map_size, pages);
}

static void dump_numa(void)
{
    numa_mode_t mode = pa_numa_mode();
    if (mode == NUMA_OFF) {
        fprintf(stderr, "  numa: off\n");
        return;
    }
    fprintf(stderr, "  numa: %s, %d node%s\n", pa_numa_mode_name(mode), pa_numa_node_count(),
            plural((size_t)pa_numa_node_count()));
    size_t pages[NUMA_MAX_NODES] = {0};
    pa_pages_by_node(pages);
    for (int n = 0; n < NUMA_MAX_NODES; n++)
        if (pages[n])
            fprintf(stderr, "    node %d: %zu resident page%s\n", n, pages[n], plural(pages[n]));
}

static void dump_private_heaps(void)
{
    myheap_totals_t mine;
    pa_myheap_totals(&mine);
    fprintf(stderr, "  private heaps: %zu, %zu chunk%s, %zu bytes mapped, allocated %zu, "
            "free %zu, peak %zu\n", mine.heaps, mine.chunks, plural(mine.chunks), mine.mapped,
            mine.allocated, mine.freed, mine.peak);
    pa_myheap_dump();
}

PALLOCATOR_API void allocator_dump(void)
{
    pa_heap_pause_all();
    settle_all();
    /* Held to the end, so the large blocks listed are those summed. */
    pa_large_lock();
    totals_t t = totals_compute(pa_large_stats());
    fprintf(stderr, "pallocator: %s, segment size %zu, large threshold %zu\n",
            mode_name(), (size_t)PA_SEGMENT_SIZE, (size_t)PA_LARGE_THRESHOLD);
    dump_summary(&t);
    dump_numa();
    for (const heap_t *h = pa_heap_registry_first(); h; h = h->next_all)
        dump_heap(h);
    dump_large(&t.large);
    pa_large_unlock();
    dump_private_heaps();
    pa_heap_resume_all();
}

/* ---- verify ---------------------------------------------------------- */

/* A block handed over to h: in h's segments, used, its live mark claimed. */
static int verify_handed_block(const heap_t *h, const block_t *b)
{
    const segment_t *s = segment_of(b);
    const char *area = (const char *)segment_first_block(s);
    bool in_area = (const char *)b >= area && (const char *)b < (const char *)s + PA_SEGMENT_SIZE &&
                   ((uintptr_t)b & (PA_GRANULE - 1)) == 0;
    if (!in_area || __atomic_load_n(&s->owner, __ATOMIC_RELAXED) != h)
        return pa_verify_fail("heap %u hand-over list holds foreign block %p", h->id, (const void *)b);
    bool in_use = segment_has_slabs(s) ? slab_holds_block(slab_of(s, block_payload(b)),
                                                          block_payload(b))
                                       : !block_is_free(b);
    if (!in_use || segment_live_test(s, block_payload(b)))
        return pa_verify_fail("heap %u hand-over list holds block %p that is not being freed",
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
        return pa_verify_fail("heap %u hand-over list holds a broken batch %p", h->id,
                           (const void *)batch_block);
    for (uint32_t i = 0; i < batch->count; i++) {
        if (heap_handed_size(batch->blocks[i]) != batch->sizes[i])
            return pa_verify_fail("heap %u batch %p records a wrong size", h->id,
                               (const void *)batch_block);
        if (verify_handed_block(h, batch->blocks[i]))
            return -1;
    }
    return 0;
}

static int verify_handover_list(const heap_t *h, const block_t *link)
{
    for (handover_entry_t e; link; link = PA_LINK_LOAD(e.block->next_free)) {
        e = handover_decode(link);
        if ((e.tag & HEAP_HANDOVER_BATCH_TAG) ? verify_batch(h, e.block)
                                              : verify_handed_block(h, e.block))
            return -1;
    }
    return 0;
}

/* One heap, settled: its hand-over lists before taking them back, then
 * each layer's own verifier, then the heap's statistics against what the
 * layers hold. */
static int verify_heap_layers(heap_t *h, size_t *segments)
{
    if (verify_handover_list(h, h->pending) ||
        verify_handover_list(h, __atomic_load_n(&h->handover, __ATOMIC_ACQUIRE)))
        return -1;
    pa_heap_drain_handover(h);
    /* The cache checked, its blocks go back: the layers below then see
     * every free block as such. */
    if (pa_cache_verify(h))
        return -1;
    pa_cache_flush(h);
    arena_usage_t usage;
    size_t slab_bytes = 0;
    if (pa_arena_verify(h, &h->arena, &usage) || pa_slab_set_verify(&h->slabs, &slab_bytes))
        return -1;
    *segments += h->arena.segment_count + h->slabs.segment_count;
    if (usage.unmarked_used != 0 && !pa_is_concurrent())
        return pa_verify_fail("%zu used blocks are not marked live", usage.unmarked_used);
    if (usage.used_usable != heap_arena_used(h))
        return pa_verify_fail("used blocks hold %zu bytes, statistics say %zu", usage.used_usable,
                           heap_arena_used(h));
    if (h->held.peak < h->held.allocated)
        return pa_verify_fail("peak %zu below %zu held", h->held.peak, h->held.allocated);
    if (pa_is_concurrent())
        return 0;
    /* At rest in the single-threaded mode: no large block comes or goes. */
    size_t large = pa_large_stats().allocated;
    if (h->live.allocated != heap_arena_used(h) + slab_bytes + large)
        return pa_verify_fail("%zu bytes allocated, %zu used in blocks, %zu in slabs and %zu in "
                           "large blocks", h->live.allocated, heap_arena_used(h), slab_bytes,
                           large);
    if (h->live.peak < h->live.allocated)
        return pa_verify_fail("peak %zu below allocated %zu", h->live.peak, h->live.allocated);
    return 0;
}

static int verify_heap(heap_t *h, size_t *segments)
{
    return verify_heap_layers(h, segments) ? pa_verify_fail("in heap %u", h->id) : 0;
}

PALLOCATOR_API int allocator_verify(void)
{
    int rc = 0;
    size_t slots = 0;
    pa_heap_pause_all();
    for (heap_t *h = pa_heap_registry_first(); h; h = h->next_all)
        pa_heap_outbox_flush(h);
    for (heap_t *h = pa_heap_registry_first(); h && rc == 0; h = h->next_all)
        rc = verify_heap(h, &slots);
    /* Large blocks come and go without pausing any heap: count the map
     * while holding their lock. */
    pa_large_lock();
    if (rc == 0)
        rc = pa_large_verify(&slots);
    pa_segment_pool_lock();
    /* Private heaps come and go without pausing any heap: all held, in
     * fork's order (after the pool). */
    pa_myheap_lock_all();
    if (rc == 0)
        rc = pa_myheap_verify_all(&slots);
    slots += pa_segment_pool_count();
    size_t mapped = pa_segmap_count();
    pa_myheap_unlock_all();
    pa_segment_pool_unlock();
    pa_large_unlock();
    if (rc == 0 && slots != mapped)
        rc = pa_verify_fail("segment map holds %zu slots, heaps, pool and large blocks %zu",
                         mapped, slots);
    pa_heap_resume_all();
    return rc;
}
