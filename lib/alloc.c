/*
 * alloc.c - the public allocation calls: myalloc, mycalloc, myrealloc,
 * myfree and myalloc_usable_size.
 *
 * The fast paths find the calling thread's heap through a thread-local
 * pointer and run one bounded slab or arena (TLSF) operation on it. Every pointer
 * handed in is validated through the segment map and the segment's live
 * map before anything at the pointer is read; the map's entry also names
 * the owning heap, so a free of the caller's own slab block is told apart
 * from every other case by one comparison.
 */
#include <errno.h>
#include <string.h>

#include "heap.h"
#include "large.h"
#include "pallocator.h"
#include "segmap.h"

/* The fast paths are written once with the mode as a constant argument and
 * instantiated for each, so the single-threaded path carries no atomic
 * operation. Only a thread of the concurrent mode has a heap in its slot,
 * so the concurrent paths start from that one test and read nothing else
 * to learn the mode; the single-threaded ones come after it. */

/* The caller's heap, or NULL when it has none yet (or the allocator is not
 * initialised): then the slow path attaches one. For the paths off the
 * fast ones, which do not know the mode beforehand. */
static heap_t *heap_of_caller(void)
{
    return pa_is_concurrent() ? pa_thread.heap : pa_single_heap;
}

static pa_always_inline void heap_op_end(heap_t *h, bool concurrent)
{
    if (concurrent)
        heap_leave(h);
}

/* Debug builds: whether the caller is the outermost call of the
 * single-threaded mode, which then marks the heap in use until
 * heap_single_leave (a call from a second thread at the same time stops
 * the program). Always false, and gone, in other builds. */
static pa_always_inline bool single_mode_begin(void)
{
#if defined(PA_DEBUG) && PA_DEBUG
    if (__atomic_load_n(&pa_single_heap, __ATOMIC_RELAXED))
        return heap_single_enter();
#endif
    return false;
}

static pa_noinline void *fail(int error)
{
    errno = error;
    return NULL;
}

/* Large blocks need an initialised allocator but no heap of the caller's. */
static pa_noinline void *alloc_large(size_t size)
{
    /* allocator_init's EAGAIN (no thread key left) is ENOMEM here. */
    if (__atomic_load_n(&pa_mode, __ATOMIC_ACQUIRE) == PA_MODE_NONE &&
        allocator_init(1) != 0)
        return fail(ENOMEM);
    /* The single-threaded heap's exact count covers large blocks too. */
    heap_t *single = pa_single_heap;
    return large_alloc(size, single ? &single->live : NULL);
}

/* The fast paths below keep every call a tail call, so they need no saved
 * registers; anything else continues in these out-of-line functions. */

/* Hands out block b from the arena of the caller's heap h and
 * ends the operation; size (b's size) is counted single-threaded only. */
static pa_always_inline void *alloc_finish(heap_t *h, block_t *b, size_t size, bool concurrent)
{
    void *p = block_payload(b);
    segment_live_set(segment_of(b), p);
    if (!concurrent)
        stats_add(&h->live, size - BLOCK_HEADER_SIZE);
    heap_op_end(h, concurrent);
    return p;
}

/* Hands out slab block p (NULL: none) of class cls and ends the operation. */
static pa_always_inline void *alloc_slab_finish(heap_t *h, void *p, unsigned cls,
                                                bool concurrent)
{
    if (pa_likely(p != NULL)) {
        segment_live_set(segment_of(p), p);
        if (!concurrent)
            stats_add(&h->live, slab_class_size[cls]);
    }
    heap_op_end(h, concurrent);
    return pa_likely(p != NULL) ? p : fail(ENOMEM);
}

/* A slab allocation whose current slab had nothing left. */
static pa_noinline void *alloc_slab_slow(heap_t *h, unsigned cls, bool concurrent)
{
    /* The hand-over list is polled when a slab runs dry: the blocks other
     * threads gave back may refill it. */
    if (concurrent) {
        heap_poll_handover(h);
        void *p = slab_pop(h->slabs.current[cls]);
        if (p)
            return alloc_slab_finish(h, p, cls, concurrent);
    }
    return alloc_slab_finish(h, slab_take_slow(&h->slabs, cls), cls, concurrent);
}

/* An allocation from the caller's heap h outside the fast path. It polls
 * the hand-over list for a request the arena serves, and for a small
 * one when the countdown runs out (a heap without membarrier comes here on
 * every allocation). */
static pa_noinline void *alloc_from_heap(heap_t *h, size_t size, bool concurrent)
{
    if (concurrent) {
        heap_enter(h);
        if (size > SLAB_REQUEST_MAX || h->poll_countdown == 0 || --h->poll_countdown == 0)
            heap_poll_handover(h);
    }
    if (size <= SLAB_REQUEST_MAX) {
        unsigned cls = slab_class_of(size);
        return alloc_slab_finish(h, slab_take(&h->slabs, cls), cls, concurrent);
    }
    block_t *b = heap_take(h, size);
    if (pa_unlikely(!b)) {
        heap_op_end(h, concurrent);
        return fail(ENOMEM);
    }
    return alloc_finish(h, b, block_size(b), concurrent);
}

/* First allocation of a thread, or of the process. */
static pa_noinline void *alloc_attach(size_t size)
{
    heap_t *h = pa_heap_slow();
    if (!h)
        return fail(ENOMEM);
    void *p = alloc_from_heap(h, size, pa_is_concurrent());
    heap_attach_end(h);
    return p;
}

/* A request of up to SLAB_REQUEST_MAX bytes from h, the caller's heap. In
 * the concurrent mode an allocation also counts down to the next poll of
 * the hand-over list: a producer whose blocks come back from a consumer
 * then reuses them while they are still in cache (polling only when a slab
 * runs dry made the producer/consumer benchmark slower). Frees do not
 * count. */
static pa_always_inline void *alloc_small(heap_t *h, size_t size, bool concurrent)
{
    if (concurrent) {
        /* A shared heap's allocations need nothing different (the live
         * byte is set with a plain store), so its gate bit is ignored. */
        unsigned gate = heap_announce_unfenced(h);
        if (pa_unlikely(gate & (HEAP_GATE_PAUSE | HEAP_GATE_FENCED)) ||
            pa_unlikely(--h->poll_countdown == 0))
            return alloc_from_heap(h, size, concurrent);
    }
    unsigned cls = slab_class_of(size);
    void *p = slab_pop(h->slabs.current[cls]);
    if (pa_unlikely(!p))
        return alloc_slab_slow(h, cls, concurrent);
    return alloc_slab_finish(h, p, cls, concurrent);
}

/* A small request of a thread without a heap: the single-threaded mode, or
 * a thread's (or the process's) first allocation. */
static pa_noinline void *alloc_small_unattached(size_t size)
{
    heap_t *single = pa_single_heap; /* set in the single-threaded mode only */
    if (single)
        return alloc_small(single, size, /*concurrent=*/false);
    return alloc_attach(size);
}

/* A request too big for slabs and too small for a mapping of its own: the
 * arena's. */
static pa_noinline void *alloc_arena(size_t size)
{
    heap_t *h = heap_of_caller();
    if (!h)
        return alloc_attach(size);
    return alloc_from_heap(h, size, pa_is_concurrent());
}

static pa_always_inline void *alloc_any(size_t size)
{
    if (pa_likely(size <= SLAB_REQUEST_MAX)) {
        heap_t *h = pa_thread.heap;
        if (pa_likely(h != NULL))
            return alloc_small(h, size, /*concurrent=*/true);
        return alloc_small_unattached(size);
    }
    if (size > PA_LARGE_THRESHOLD)
        return alloc_large(size);
    return alloc_arena(size);
}

PALLOCATOR_API void *myalloc(size_t size)
{
    if (pa_unlikely(single_mode_begin())) {
        void *p = alloc_any(size);
        heap_single_leave();
        return p;
    }
    return alloc_any(size);
}

PALLOCATOR_API void *mycalloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total))
        return fail(ENOMEM);
    void *p = myalloc(total);
    /* Large blocks are fresh mappings and already zero. */
    if (p && total <= PA_LARGE_THRESHOLD)
        memset(p, 0, total);
    return p;
}

/* Usable size of live block p of segment s, which another thread may own. */
static size_t heap_usable_shared(const segment_t *s, const void *p)
{
    if (segment_has_slabs(s))
        return slab_of(s, p)->block_size;
    return block_size_shared(block_from_payload(p)) - BLOCK_HEADER_SIZE;
}

/* Where a pointer handed in by the caller lives, known before it is read. */
typedef enum { PTR_INVALID, PTR_HEAP, PTR_LARGE } ptr_kind_t;

/* What p is, given its segment-map entry. */
static inline ptr_kind_t ptr_classify_entry(const void *p, uintptr_t entry, segment_t **seg,
                                            heap_t **owner)
{
    if (pa_unlikely(((uintptr_t)p & (PA_GRANULE - 1)) != 0))
        return PTR_INVALID;
    if (pa_unlikely(entry & SEGMAP_LARGE))
        return PTR_LARGE;
    if (pa_unlikely(entry == 0 || entry == SEGMAP_POOLED))
        return PTR_INVALID;
    *seg = segment_of(p);
    *owner = (heap_t *)(entry & ~SEGMAP_TAGS);
    return PTR_HEAP;
}

static inline ptr_kind_t ptr_classify(const void *p, segment_t **seg, heap_t **owner)
{
    return ptr_classify_entry(p, segmap_lookup(p), seg, owner);
}

static pa_noinline int free_invalid(void)
{
    errno = EINVAL;
    return -1;
}

static int free_other(void *p, uintptr_t entry, heap_t *h, bool concurrent);

/* p's segment changed hands between the read of its entry and the claim:
 * the free starts over with the entry it has now. */
static pa_noinline int free_moved(void *p, heap_t *h)
{
    return free_other(p, segmap_lookup(p), h, true);
}

/* A free by a thread that has no heap and cannot get one: the claim slot
 * of such threads, under the pool lock. */
static pa_noinline int free_remote_heapless(segment_t *s, heap_t *owner, void *p)
{
    segment_claim_t *c = segment_claim_heapless();
    heap_t *now = segment_claim_begin(c, s, pa_asymmetric_barrier);
    bool claimed = now == owner && segment_live_clear(s, p, /*atomic=*/true);
    segment_claim_end(c);
    segment_pool_unlock();
    if (!claimed)
        return now == owner ? free_invalid() : free_moved(p, NULL);
    heap_handover_push(owner, block_from_payload(p));
    return 0;
}

/* A free of a block some other heap owns: claim the live mark, then hand the
 * block to its owner, whose arena and slabs only the owner touches. It is
 * not kept for the caller's own requests: its cache lines may hold the
 * owner's objects (passive false sharing). The owner is shared first, so
 * that its own frees claim atomically too. The claim counts only while the
 * segment still has the owner the segment map named (a stale free may
 * race with the segment's reuse by another heap); it is made inside an
 * operation on the caller's heap and waits for nothing, since a retiring
 * owner waits for it. */
static pa_noinline int free_remote(segment_t *s, heap_t *owner, void *p, heap_t *h)
{
    if (pa_unlikely(!__atomic_load_n(&owner->shared, __ATOMIC_ACQUIRE)))
        heap_share(owner);
    /* A thread that only frees batches too, until its exit hook has run. */
    if (!h && !pa_thread.exited)
        h = heap_attach_thread();
    if (!h)
        return free_remote_heapless(s, owner, p);
    heap_enter(h);
    heap_t *now = segment_claim_begin(&h->claim, s, pa_asymmetric_barrier);
    bool claimed = now == owner && segment_live_clear(s, p, /*atomic=*/true);
    segment_claim_end(&h->claim);
    if (pa_unlikely(!claimed)) {
        heap_leave(h);
        return now == owner ? free_invalid() : free_moved(p, h);
    }
    block_t *b = block_from_payload(p);
    /* Gathered in this thread's outbox: one push per batch for the owner. */
    heap_outbox_add(h, owner, b, heap_handed_size(b));
    if (--h->poll_countdown == 0)
        heap_poll_handover(h);
    heap_leave(h);
    return 0;
}

/* A slab free that moves its slab between lists. */
static pa_noinline int free_slab_slow(heap_t *h, slab_t *sl, bool concurrent)
{
    slab_give_slow(&h->slabs, sl);
    heap_op_end(h, concurrent);
    return 0;
}

/* Frees slab block p of h (its live mark claimed) and ends the operation. */
static pa_always_inline int free_slab_finish(heap_t *h, segment_t *s, void *p, bool concurrent)
{
    slab_t *sl = slab_of(s, p);
    if (!concurrent)
        stats_sub(&h->live, sl->block_size);
    if (slab_push(sl, p))
        return free_slab_slow(h, sl, concurrent);
    heap_op_end(h, concurrent);
    return 0;
}

/* Frees arena block b of h (its live mark claimed) and ends the operation. */
static pa_noinline int free_arena_block(heap_t *h, block_t *b, bool concurrent)
{
    if (!concurrent)
        stats_sub(&h->live, block_usable(b));
    heap_give(h, b);
    heap_op_end(h, concurrent);
    return 0;
}

/* The slow path of a free into the caller's own heap h: a gate bit was
 * set, or the block is an arena block. */
static pa_noinline int free_own_slow(heap_t *h, segment_t *s, void *p, bool concurrent)
{
    if (concurrent)
        heap_enter(h);
    if (pa_unlikely(!segment_live_clear(s, p, heap_live_atomic(h, concurrent)))) {
        heap_op_end(h, concurrent);
        return free_invalid();
    }
    if (segment_has_slabs(s))
        return free_slab_finish(h, s, p, concurrent);
    return free_arena_block(h, block_from_payload(p), concurrent);
}

static pa_noinline int free_announced_invalid(heap_t *h, bool concurrent)
{
    heap_op_end(h, concurrent);
    return free_invalid();
}

/* Every free but that of a slab block of the caller's own heap: NULL, a
 * pointer that is not ours or misaligned, a large block, a block of another
 * heap, and an arena block of the caller's. entry is p's in the segment map,
 * h the caller's heap (NULL: none). */
static pa_noinline int free_other(void *p, uintptr_t entry, heap_t *h, bool concurrent)
{
    segment_t *s;
    heap_t *owner;
    switch (ptr_classify_entry(p, entry, &s, &owner)) {
    case PTR_HEAP:
        break;
    case PTR_LARGE:
        return large_free(p, concurrent ? NULL : &h->live);
    default:
        return p ? free_invalid() : 0;
    }
    if (owner != h)
        return concurrent ? free_remote(s, owner, p, h) : free_invalid();
    return free_own_slow(h, s, p, concurrent);
}

/* The fast path of every free: frees p, whose segment-map entry is entry,
 * for the caller, whose heap is h (NULL: none). */
static pa_always_inline int free_fast(heap_t *h, void *p, uintptr_t entry, bool concurrent)
{
    /* One test: is p an aligned address in a slab segment of the caller's
     * heap? (Without a heap, h | SEGMAP_SLABS matches no entry.) */
    uintptr_t mismatch = (entry ^ ((uintptr_t)h | SEGMAP_SLABS)) | ((uintptr_t)p & (PA_GRANULE - 1));
    if (pa_unlikely(mismatch != 0))
        return free_other(p, entry, h, concurrent);
    segment_t *s = segment_of(p);
    /* Any bit in the gate leaves the fast path: a pause, no membarrier,
     * or a shared heap, whose live marks a free claims atomically. */
    if (concurrent && pa_unlikely(heap_announce_unfenced(h) != 0))
        return free_own_slow(h, s, p, concurrent);
    if (pa_unlikely(!segment_live_clear(s, p, /*atomic=*/false)))
        return free_announced_invalid(h, concurrent);
    return free_slab_finish(h, s, p, concurrent);
}

/* A free by a thread without a heap: the single-threaded mode, or a thread
 * that has not allocated yet. */
static pa_noinline int free_unattached(void *p)
{
    uintptr_t entry = segmap_lookup(p);
    heap_t *single = pa_single_heap; /* set in the single-threaded mode only */
    if (single)
        return free_fast(single, p, entry, /*concurrent=*/false);
    return free_other(p, entry, NULL, /*concurrent=*/true);
}

static pa_always_inline int free_any(void *p)
{
    heap_t *h = pa_thread.heap;
    if (pa_unlikely(h == NULL))
        return free_unattached(p);
    return free_fast(h, p, segmap_lookup(p), /*concurrent=*/true);
}

PALLOCATOR_API int myfree(void *p)
{
    if (pa_unlikely(single_mode_begin())) {
        int rc = free_any(p);
        heap_single_leave();
        return rc;
    }
    return free_any(p);
}

PALLOCATOR_API size_t myalloc_usable_size(void *p)
{
    if (!p)
        return 0;
    segment_t *s;
    heap_t *owner;
    size_t usable = 0;
    switch (ptr_classify(p, &s, &owner)) {
    case PTR_HEAP:
        if (segment_live_test(s, p))
            usable = heap_usable_shared(s, p);
        break;
    case PTR_LARGE:
        usable = large_usable(p);
        break;
    default:
        break;
    }
    if (!usable)
        errno = EINVAL;
    return usable;
}

/* Grows or shrinks a block of the caller's own heap without moving it. */
static bool realloc_in_place(heap_t *h, segment_t *s, void *p, size_t size)
{
    size_t size_needed = tlsf_block_size_for(size);
    if (!size_needed)
        return false;
    bool concurrent = pa_is_concurrent();
    if (concurrent)
        heap_enter(h);
    bool done = false;
    if (segment_live_test(s, p)) {
        block_t *b = block_from_payload(p);
        size_t before = block_usable(b);
        done = tlsf_resize(&s->arena->tlsf, b, size_needed);
        if (done) {
            heap_used_shrink(h, before);
            heap_used_grow(h, block_usable(b));
            if (!concurrent) {
                stats_sub(&h->live, before);
                stats_add(&h->live, block_usable(b));
            }
        }
    }
    heap_op_end(h, concurrent);
    return done;
}

static void *realloc_move(void *p, size_t old_usable, size_t size)
{
    void *q = myalloc(size);
    if (!q)
        return NULL;
    memcpy(q, p, old_usable < size ? old_usable : size);
    myfree(p);
    return q;
}

static void *realloc_any(void *p, size_t size)
{
    if (!p)
        return myalloc(size);
    segment_t *s;
    heap_t *owner;
    switch (ptr_classify(p, &s, &owner)) {
    case PTR_HEAP: {
        if (!segment_live_test(s, p))
            return fail(EINVAL);
        size_t usable = heap_usable_shared(s, p);
        /* A slab block keeps its place while the request fits it. */
        if (segment_has_slabs(s) ? size <= usable && size > 0
                                 : owner == heap_of_caller() && realloc_in_place(owner, s, p, size))
            return p;
        return realloc_move(p, usable, size);
    }
    case PTR_LARGE: {
        size_t usable = large_usable(p);
        if (!usable)
            return fail(EINVAL);
        /* Keep the mapping while the block stays large and fits. */
        if (size <= usable && size > PA_LARGE_THRESHOLD)
            return p;
        return realloc_move(p, usable, size);
    }
    default:
        return fail(EINVAL);
    }
}

PALLOCATOR_API void *myrealloc(void *p, size_t size)
{
    if (pa_unlikely(single_mode_begin())) {
        void *q = realloc_any(p, size);
        heap_single_leave();
        return q;
    }
    return realloc_any(p, size);
}
