/* SPDX-License-Identifier: MIT */
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

#include "annotate.h"
#include "heap.h"
#include "large.h"
#include "myheap.h"
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
 * pa_heap_single_leave (a call from a second thread at the same time stops
 * the program). Always false, and gone, in other builds. */
static pa_always_inline bool single_mode_begin(void)
{
#if defined(PA_DEBUG) && PA_DEBUG
    if (__atomic_load_n(&pa_single_heap, __ATOMIC_RELAXED))
        return pa_heap_single_enter();
#endif
    return false;
}

static pa_noinline void *fail(int error)
{
    errno = error;
    return NULL;
}

/* What large blocks are charged to: the single-threaded heap's exact count
 * covers them too; the concurrent mode counts them in large.c only. */
static pa_stats_t *large_charge(void)
{
    heap_t *single = pa_single_heap;
    return single ? &single->live : NULL;
}

/* Large blocks need an initialised allocator but no heap of the caller's. */
static pa_noinline void *alloc_large(size_t size, bool zero)
{
    /* allocator_init's EAGAIN (no thread key left) is ENOMEM here. */
    if (__atomic_load_n(&pa_mode, __ATOMIC_ACQUIRE) == PA_MODE_NONE &&
        allocator_init(1) != 0)
        return fail(ENOMEM);
    return pa_large_alloc(size, zero, large_charge());
}

/* Checked builds with a memory checker: the request (bytes the program
 * asked for) of the myalloc under way in this thread. The block is
 * described to the checker inside the allocation, before it is marked
 * live: from then on a stale free may claim it, and its free must find
 * it described. */
#ifdef PA_ANNOTATED
static __thread size_t ann_request __attribute__((tls_model("initial-exec")));
#define alloc_annotate(p, usable) pa_ann_alloc((p), ann_request, (usable), false)
#else
#define alloc_annotate(p, usable) ((void)0)
#endif

/* The fast paths below keep every call a tail call, so they need no saved
 * registers; anything else continues in these out-of-line functions. */

/* Hands out block b from the arena of the caller's heap h and
 * ends the operation; size (b's size) is counted single-threaded only. */
static pa_always_inline void *alloc_finish(heap_t *h, block_t *b, size_t size, bool concurrent)
{
    void *p = block_payload(b);
    /* Hardened: the canary is in place before the block is marked live,
     * inside the operation, so a verify that pauses the heap sees it. */
    pa_canary_set(p, size - BLOCK_HEADER_SIZE);
    alloc_annotate(p, size - BLOCK_HEADER_SIZE);
    arena_live_set(segment_of(b), p, heap_live_atomic(h, concurrent));
    if (!concurrent)
        stats_add(&h->live, size - BLOCK_HEADER_SIZE - PA_CANARY_SIZE);
    heap_op_end(h, concurrent);
    return p;
}

/* Hands out slab block p (NULL: none) of class cls and ends the operation. */
static pa_always_inline void *alloc_slab_finish(heap_t *h, void *p, unsigned cls,
                                                bool concurrent)
{
    if (pa_likely(p != NULL)) {
        pa_canary_set(p, pa_slab_class_size[cls]); /* as in alloc_finish */
        alloc_annotate(p, pa_slab_class_size[cls]);
        slab_segment_live_set(segment_of(p), p);
        if (!concurrent)
            stats_add(&h->live, pa_slab_class_size[cls] - PA_CANARY_SIZE);
    }
    heap_op_end(h, concurrent);
    return pa_likely(p != NULL) ? p : fail(ENOMEM);
}

/* Hands out block p, just popped from slab sl, and ends the operation:
 * alloc_slab_finish with the mark and the size found through the slab. */
static pa_always_inline void *alloc_slab_pop_finish(heap_t *h, slab_t *sl, void *p,
                                                    bool concurrent)
{
    pa_canary_set(p, sl->block_size); /* as in alloc_finish */
    alloc_annotate(p, sl->block_size);
    slab_live_set(sl, p);
    if (!concurrent)
        stats_add(&h->live, sl->block_size - PA_CANARY_SIZE);
    heap_op_end(h, concurrent);
    return p;
}

/* A slab allocation whose current slab had nothing left. */
static pa_noinline void *alloc_slab_slow(heap_t *h, unsigned cls, bool concurrent)
{
    /* The hand-over list is polled when a slab runs dry: the blocks other
     * threads gave back may refill it. */
    if (concurrent) {
        pa_heap_poll_handover(h);
        void *p = slab_pop(h->slabs.current[cls]);
        if (p)
            return alloc_slab_finish(h, p, cls, concurrent);
    }
    return alloc_slab_finish(h, pa_slab_take_slow(&h->slabs, cls), cls, concurrent);
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
            pa_heap_poll_handover(h);
    }
    /* The cache first, as on the fast paths (which a heap without
     * membarrier never takes). */
    if (size <= SLAB_REQUEST_MAX) {
        unsigned cls = slab_class_of(size);
        void *p = size > CACHE_SLAB_MIN_REQUEST ? cache_slab_pop(&h->cache, cls) : NULL;
        return alloc_slab_finish(h, p ? p : slab_take(&h->slabs, cls), cls, concurrent);
    }
    block_t *b = cache_pop(&h->cache, size);
    if (!b)
        b = pa_heap_take(h, size);
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
 * count. A request of more than CACHE_SLAB_MIN_REQUEST bytes takes the
 * block its class's cache holds, if any, before the current slab's. */
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
    /* The callers test the size first, so this test folds away. */
    if (size > CACHE_SLAB_MIN_REQUEST) {
        void *p = cache_slab_pop(&h->cache, cls);
        if (pa_likely(p != NULL))
            return alloc_slab_finish(h, p, cls, concurrent);
    }
    slab_t *sl = h->slabs.current[cls];
    void *p = slab_pop(sl);
    if (pa_unlikely(!p))
        return alloc_slab_slow(h, cls, concurrent);
    return alloc_slab_pop_finish(h, sl, p, concurrent);
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

/* An arena request from h, served from h's cache when it holds a block of
 * the request's class; the hand-over list is left for a request that
 * reaches the arena. */
static pa_always_inline void *alloc_arena_cached(heap_t *h, size_t size, bool concurrent)
{
    if (concurrent) {
        unsigned gate = heap_announce_unfenced(h);
        if (pa_unlikely(gate & (HEAP_GATE_PAUSE | HEAP_GATE_FENCED)))
            return alloc_from_heap(h, size, concurrent);
    }
    block_t *b = cache_pop(&h->cache, size);
    if (pa_unlikely(!b))
        return alloc_from_heap(h, size, concurrent);
    return alloc_finish(h, b, block_size(b), concurrent);
}

/* A request too big for slabs and too small for a mapping of its own: the
 * arena's. */
static pa_noinline void *alloc_arena(size_t size)
{
    heap_t *h = pa_thread.heap;
    if (pa_likely(h != NULL))
        return alloc_arena_cached(h, size, /*concurrent=*/true);
    h = pa_single_heap; /* set in the single-threaded mode only */
    if (h)
        return alloc_arena_cached(h, size, /*concurrent=*/false);
    return alloc_attach(size);
}

/* myalloc, wrapped in the checked builds (the end of this file). */
static pa_always_inline void *alloc_public(size_t size)
{
    /* Two tests where one would do, so the smallest requests, the most
     * frequent, skip the cache's. */
    if (pa_likely(size <= CACHE_SLAB_MIN_REQUEST)) {
        heap_t *h = pa_thread.heap;
        if (pa_likely(h != NULL))
            return alloc_small(h, size, /*concurrent=*/true);
        return alloc_small_unattached(size);
    }
    if (size <= SLAB_REQUEST_MAX) {
        heap_t *h = pa_thread.heap;
        if (pa_likely(h != NULL))
            return alloc_small(h, size, /*concurrent=*/true);
        return alloc_small_unattached(size);
    }
    if (size > PA_LARGE_THRESHOLD)
        return alloc_large(size, /*zero=*/false);
    return alloc_arena(size);
}

#ifndef PA_CHECKED
/* A fresh large mapping is zero already: only a reused one is cleared. */
static void *calloc_large(size_t total)
{
    return alloc_large(total, /*zero=*/true);
}

PALLOCATOR_API void *myalloc(size_t size)
{
    if (pa_unlikely(single_mode_begin())) {
        void *p = alloc_public(size);
        pa_heap_single_leave();
        return p;
    }
    return alloc_public(size);
}
#endif

/* mycalloc's large block of total bytes, zeroed. */
static void *calloc_large(size_t total);

PALLOCATOR_API void *mycalloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total))
        return fail(ENOMEM);
    if (total > PA_LARGE_THRESHOLD)
        return calloc_large(total);
    void *p = myalloc(total);
    if (p)
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

/* Where a pointer handed in by the caller lives, known before it is read:
 * PTR_PRIVATE is a chunk of a private heap (myheap.c). */
typedef enum { PTR_INVALID, PTR_HEAP, PTR_LARGE, PTR_PRIVATE } ptr_kind_t;

/* What p is, given its segment-map entry. */
static inline ptr_kind_t ptr_classify_entry(const void *p, uintptr_t entry, segment_t **seg,
                                            heap_t **owner)
{
    if (pa_unlikely(((uintptr_t)p & (PA_GRANULE - 1)) != 0))
        return PTR_INVALID;
    /* Private chunks carry both tags: told apart inside the large branch,
     * so no other path pays a test for them. */
    if (pa_unlikely(entry & SEGMAP_LARGE))
        return (entry & SEGMAP_SLABS) ? PTR_PRIVATE : PTR_LARGE;
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

/* ---- what a free checks once it has claimed a block ------------------ */

/* Hardened: a block whose canary (or, for a TLSF block, whose header) is
 * overwritten is kept out of use for good. It is never freed, so neither
 * it nor its neighbours go through a free list or a merge again, and the
 * call fails with EINVAL. */
static pa_cold pa_noinline int canary_broken(const char *call, const void *p)
{
    fprintf(stderr, "pallocator: %s: block %p: canary overwritten; the block is kept "
            "out of use\n", call, p);
    errno = EINVAL;
    return -1;
}

/* The checked builds look at a block only once the free has claimed it
 * (cleared its live mark): from then on no other call frees it or hands
 * it out again, so a stale free racing with the block's reuse never reads
 * or annotates a block another thread owns. Block p of segment s, a heap
 * block this free has claimed: true when intact, and then told to the
 * memory checkers as freed; false when its canary is overwritten. Always
 * true, and gone, in the default build. */
#ifdef PA_CHECKED
/* Whether block p (of kind), of usable bytes by its header, and its
 * canary are intact: a heap block lies within its segment, which a header
 * an overflow wrote over need not say. */
static bool block_intact(const void *p, size_t usable, ptr_kind_t kind)
{
    if (!PA_GUARDED)
        return true;
    if (kind == PTR_HEAP &&
        (usable <= PA_CANARY_SIZE || segment_of(p) != segment_of((const char *)p + usable - 1)))
        return false;
    return pa_canary_ok(p, usable);
}

static bool free_claimed_intact(segment_t *s, void *p)
{
    size_t usable = heap_usable_shared(s, p);
    if (!block_intact(p, usable, PTR_HEAP))
        return false;
    pa_ann_free(p, usable);
    return true;
}
#else
static pa_always_inline bool free_claimed_intact(segment_t *s, void *p)
{
    (void)s, (void)p;
    return true;
}
#endif

/* A claimed block free_claimed_intact found damaged: marked live again
 * (only the claimer writes its mark now), so it stays out of use, and the
 * free fails. The caller ends its operation. */
static pa_noinline int free_damaged(segment_t *s, void *p)
{
    segment_live_set(s, p, /*atomic=*/true);
    return canary_broken("myfree", p);
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
    segment_claim_t *c = pa_segment_claim_heapless();
    heap_t *now = segment_claim_begin(c, s, pa_asymmetric_barrier);
    bool claimed = now == owner && segment_live_clear(s, p, /*atomic=*/true);
    segment_claim_end(c);
    pa_segment_pool_unlock();
    if (!claimed)
        return now == owner ? free_invalid() : free_moved(p, NULL);
    if (pa_unlikely(!free_claimed_intact(s, p)))
        return free_damaged(s, p);
    pa_heap_handover_push(owner, block_from_payload(p));
    return 0;
}

/* free_remote's claim and hand-over, from the caller's heap h: inline, so
 * a remote free pays no call of its own for it. */
static pa_always_inline int free_remote_from(segment_t *s, heap_t *owner, void *p, heap_t *h)
{
    heap_enter(h);
    heap_t *now = segment_claim_begin(&h->claim, s, pa_asymmetric_barrier);
    bool claimed = now == owner && segment_live_clear(s, p, /*atomic=*/true);
    segment_claim_end(&h->claim);
    if (pa_unlikely(!claimed)) {
        heap_leave(h);
        return now == owner ? free_invalid() : free_moved(p, h);
    }
    /* Claimed, the block keeps its segment from retiring: readable. */
    if (pa_unlikely(!free_claimed_intact(s, p))) {
        heap_leave(h);
        return free_damaged(s, p);
    }
    block_t *b = block_from_payload(p);
    /* Gathered in this thread's outbox: one push per batch for the owner. */
    pa_heap_outbox_add(h, owner, b, heap_handed_size(b));
    if (--h->poll_countdown == 0)
        pa_heap_poll_handover(h);
    heap_leave(h);
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
        pa_heap_share(owner);
    if (h)
        return free_remote_from(s, owner, p, h);
    /* A thread that only frees batches too, until its exit hook has run. */
    if (pa_thread.exited || !(h = pa_heap_attach_thread()))
        return free_remote_heapless(s, owner, p);
    /* Attached here: a heap whose exit hook could not be armed is
     * abandoned again once the free is done, as after an allocation. */
    int rc = free_remote_from(s, owner, p, h);
    heap_attach_end(h);
    return rc;
}

/* A slab free that moves its slab between lists. */
static pa_noinline int free_slab_slow(heap_t *h, slab_t *sl, bool concurrent)
{
    pa_slab_give_slow(&h->slabs, sl);
    heap_op_end(h, concurrent);
    return 0;
}

/* Puts slab block p back in slab sl of h and ends the operation. */
static pa_always_inline int free_slab_push(heap_t *h, slab_t *sl, void *p, bool concurrent)
{
    if (slab_push(sl, p))
        return free_slab_slow(h, sl, concurrent);
    heap_op_end(h, concurrent);
    return 0;
}

/* A free of block p of segment s, of a class the cache takes: into the
 * cache, or its slab when the class holds its share. Out of line, so the
 * other classes' frees pay one comparison (and the record's address is
 * found again here, not kept for this call). */
static pa_noinline int free_slab_cached(heap_t *h, segment_t *s, void *p, bool concurrent)
{
    slab_t *sl = slab_of(s, p);
    if (!cache_slab_push(&h->cache, sl, p, cache_slab_limit(h->slabs.assigned)))
        return free_slab_push(h, sl, p, concurrent);
    heap_op_end(h, concurrent);
    return 0;
}

/* Frees slab block p of h (its live mark claimed), into the cache when
 * cached and its class is one the cache takes, and ends the operation. */
static pa_always_inline int free_slab_finish(heap_t *h, segment_t *s, void *p, bool concurrent,
                                             bool cached)
{
    slab_t *sl = slab_of(s, p);
    if (!concurrent)
        stats_sub(&h->live, sl->block_size - PA_CANARY_SIZE);
    if (pa_unlikely(cache_takes_slab(sl)) && cached)
        return free_slab_cached(h, s, p, concurrent);
    return free_slab_push(h, sl, p, concurrent);
}

/* Frees arena block b of h (its live mark claimed) into h's cache (when
 * cached), or the arena when the cache is full, and ends the operation. */
static pa_always_inline int free_arena_block(heap_t *h, block_t *b, bool concurrent, bool cached)
{
    if (!concurrent)
        stats_sub(&h->live, block_counted(b));
    if (!cached || !cache_push(&h->cache, b))
        pa_heap_give(h, b);
    heap_op_end(h, concurrent);
    return 0;
}

static pa_noinline int free_announced_invalid(heap_t *h, bool concurrent)
{
    heap_op_end(h, concurrent);
    return free_invalid();
}

/* free_damaged for a block of the caller's own heap h. */
static pa_noinline int free_own_damaged(heap_t *h, segment_t *s, void *p, bool concurrent)
{
    segment_live_set(s, p, heap_live_atomic(h, concurrent));
    heap_op_end(h, concurrent);
    return canary_broken("myfree", p);
}

/* The slow path of a free into the caller's own heap h: a gate bit was
 * set, or the block is an arena block, which goes to the cache when
 * cached. */
static pa_noinline int free_own_slow(heap_t *h, segment_t *s, void *p, bool concurrent,
                                     bool cached)
{
    if (concurrent)
        heap_enter(h);
    if (pa_unlikely(!segment_live_clear(s, p, heap_live_atomic(h, concurrent)))) {
        heap_op_end(h, concurrent);
        return free_invalid();
    }
    if (pa_unlikely(!free_claimed_intact(s, p)))
        return free_own_damaged(h, s, p, concurrent);
    if (segment_has_slabs(s))
        return free_slab_finish(h, s, p, concurrent, cached);
    return free_arena_block(h, block_from_payload(p), concurrent, cached);
}


/* A free of arena block p of the caller's own heap h: the slab fast path's
 * steps, then the cache (when cached). */
static pa_always_inline int free_arena_own(heap_t *h, void *p, bool concurrent, bool cached)
{
    segment_t *s = segment_of(p);
    if (concurrent && pa_unlikely(heap_announce_unfenced(h) != 0))
        return free_own_slow(h, s, p, concurrent, cached);
    if (pa_unlikely(!arena_live_clear(s, p, /*atomic=*/false)))
        return free_announced_invalid(h, concurrent);
    if (pa_unlikely(!free_claimed_intact(s, p)))
        return free_own_damaged(h, s, p, concurrent);
    return free_arena_block(h, block_from_payload(p), concurrent, cached);
}

static pa_noinline int free_arena_own_concurrent(heap_t *h, void *p)
{
    return free_arena_own(h, p, /*concurrent=*/true, /*cached=*/true);
}

static pa_noinline int free_arena_own_single(heap_t *h, void *p)
{
    return free_arena_own(h, p, /*concurrent=*/false, /*cached=*/true);
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
    case PTR_LARGE: {
        /* Its canary is checked, and the checkers told, under the lock
         * that makes the free the block's own. */
        int rc = pa_large_free(p, concurrent ? NULL : &h->live);
        return pa_unlikely(rc > 0) ? canary_broken("myfree", p) : rc;
    }
    case PTR_PRIVATE:
        return pa_myheap_free_private(p, entry, h ? &h->claim : NULL);
    default:
        return p ? free_invalid() : 0;
    }
    if (owner != h)
        return concurrent ? free_remote(s, owner, p, h) : free_invalid();
    /* An arena block of the caller's: the cache's short path. */
    if (!(entry & SEGMAP_SLABS))
        return concurrent ? free_arena_own_concurrent(h, p) : free_arena_own_single(h, p);
    return free_own_slow(h, s, p, concurrent, /*cached=*/true);
}

/* Whether p, whose segment-map entry is entry, is an aligned address in an
 * arena segment of heap h (not NULL): its entry is h untagged. */
static pa_always_inline bool entry_is_own_arena(const heap_t *h, const void *p, uintptr_t entry)
{
    return entry == (uintptr_t)h && ((uintptr_t)p & (PA_GRANULE - 1)) == 0;
}

/* The fast path of every free: frees p, whose segment-map entry is entry,
 * for the caller, whose heap is h (NULL: none). */
static pa_always_inline int free_fast(heap_t *h, void *p, uintptr_t entry, bool concurrent)
{
    /* Is p an aligned address in a slab segment of the caller's heap?
     * (Without a heap, h | SEGMAP_SLABS matches no entry.) Two tests that
     * compare and test in place take fewer instructions than one merging
     * the differences first. */
    if (pa_unlikely(entry != ((uintptr_t)h | SEGMAP_SLABS)) ||
        pa_unlikely(((uintptr_t)p & (PA_GRANULE - 1)) != 0)) {
        /* An arena block of the caller's (h is never NULL here) goes
         * straight to its short path. */
        if (entry_is_own_arena(h, p, entry))
            return concurrent ? free_arena_own_concurrent(h, p) : free_arena_own_single(h, p);
        return free_other(p, entry, h, concurrent);
    }
    segment_t *s = segment_of(p);
    /* Any bit in the gate leaves the fast path: a pause, no membarrier,
     * or a shared heap, whose live marks a free claims atomically. */
    if (concurrent && pa_unlikely(heap_announce_unfenced(h) != 0))
        return free_own_slow(h, s, p, concurrent, /*cached=*/true);
    if (pa_unlikely(!slab_segment_live_clear(s, p, /*atomic=*/false)))
        return free_announced_invalid(h, concurrent);
    if (pa_unlikely(!free_claimed_intact(s, p)))
        return free_own_damaged(h, s, p, concurrent);
    return free_slab_finish(h, s, p, concurrent, /*cached=*/true);
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

/* myfree. */
static pa_always_inline int free_public(void *p)
{
    heap_t *h = pa_thread.heap;
    if (pa_unlikely(h == NULL))
        return free_unattached(p);
    return free_fast(h, p, segmap_lookup(p), /*concurrent=*/true);
}

/* The same in every build: the checked builds check and annotate a block
 * once its free has claimed it (free_claimed_intact, pa_large_free). */
PALLOCATOR_API int myfree(void *p)
{
    if (pa_unlikely(single_mode_begin())) {
        int rc = free_public(p);
        pa_heap_single_leave();
        return rc;
    }
    return free_public(p);
}

/* The usable bytes of live block p in all (a canary included); 0 when p is
 * not a live block. *kind says where p lives. */
static size_t usable_of_kind(void *p, ptr_kind_t *kind)
{
    segment_t *s;
    heap_t *owner;
    size_t usable = 0;
    *kind = p ? ptr_classify(p, &s, &owner) : PTR_INVALID;
    switch (*kind) {
    case PTR_HEAP:
        if (segment_live_test(s, p))
            usable = heap_usable_shared(s, p);
        break;
    case PTR_LARGE:
        usable = pa_large_usable(p);
        break;
    default: /* a private block is its heap's to measure (usable_private) */
        break;
    }
    return usable;
}

/* The caller's claim slot for a call on a private block: its heap's, or
 * NULL (a thread without a heap; the shared slot). */
static segment_claim_t *caller_claim_slot(void)
{
    heap_t *h = heap_of_caller();
    return h ? &h->claim : NULL;
}

/* p's entry when p is a block of a private heap, else 0. */
static uintptr_t private_entry(const void *p)
{
    uintptr_t entry = segmap_lookup(p);
    bool aligned = ((uintptr_t)p & (PA_GRANULE - 1)) == 0;
    return aligned && segmap_entry_is_private(entry) ? entry : 0;
}

static size_t usable_of(void *p)
{
    ptr_kind_t kind;
    return usable_of_kind(p, &kind);
}

PALLOCATOR_API size_t myalloc_usable_size(void *p)
{
    if (!p)
        return 0;
    /* A private heap's blocks carry no canary and no checker's marks. */
    uintptr_t entry = private_entry(p);
    if (pa_unlikely(entry != 0))
        return pa_myheap_usable_private(p, entry, caller_claim_slot());
    size_t usable = usable_of(p);
    if (!usable) {
        errno = EINVAL;
        return 0;
    }
    pa_ann_widen(p, usable - PA_CANARY_SIZE, usable);
    return usable - PA_CANARY_SIZE;
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
        size_t before = block_counted(b);
        done = pa_tlsf_resize(&s->arena->tlsf, b, size_needed);
        if (done) {
            pa_canary_set(p, block_usable(b)); /* at the new end, inside the operation */
            heap_used_shrink(h, before);
            heap_used_grow(h, block_counted(b));
            if (!concurrent) {
                stats_sub(&h->live, before);
                stats_add(&h->live, block_counted(b));
            }
        }
    }
    heap_op_end(h, concurrent);
    return done;
}

/* Frees block p, which a realloc has just moved out of. A block of the
 * caller's own heap skips the cache: its class is one the program has just
 * outgrown, and a buffer that grows step by step would otherwise leave a
 * cached block of every class it passed through, none of them ever asked
 * for again. An arena block goes back to the arena, where it merges with
 * its free neighbours; a slab block goes back to its slab, which a cached
 * block would keep from emptying (the realloc benchmark's peak RSS: 49.2
 * MiB with both cached, 42.0 with slab blocks cached, 34.7 with neither:
 * a cached block of each class pinned a slab of 64 KiB). */
static void realloc_free_old(void *p)
{
    heap_t *h = heap_of_caller();
    uintptr_t entry = segmap_lookup(p);
    bool concurrent = pa_is_concurrent();
    if (h && entry_is_own_arena(h, p, entry))
        free_arena_own(h, p, concurrent, /*cached=*/false);
    else if (h && entry == ((uintptr_t)h | SEGMAP_SLABS) && ((uintptr_t)p & (PA_GRANULE - 1)) == 0)
        free_own_slow(h, segment_of(p), p, concurrent, /*cached=*/false);
    else
        myfree(p);
}

/* The request a move of a block of old_usable bytes to size bytes makes.
 * A medium block that outgrows itself by less than a quarter is likely a
 * buffer grown step by step: it gets an eighth more, a class up, and grows
 * there in place (arena_block_fits) rather than moving again at the next
 * class. The realloc benchmark's peak RSS: 35.2 MiB without, 32.0 with an
 * eighth, 36.6 with a quarter (its holes outgrow what they can serve). */
static size_t realloc_move_size(size_t old_usable, size_t size)
{
    bool stepping = size > old_usable && size - old_usable < old_usable / 4;
    bool medium = size > SLAB_REQUEST_MAX && size < PA_LARGE_THRESHOLD - size / 8;
    return stepping && medium ? size + size / 8 : size;
}

/* Moves p's first old_usable bytes to a new block of size bytes. */
static void *realloc_move(void *p, size_t old_usable, size_t size)
{
    void *q = myalloc(realloc_move_size(old_usable, size));
    if (!q)
        return NULL;
    memcpy(q, p, old_usable < size ? old_usable : size);
    realloc_free_old(p);
    return q;
}

/* Whether an arena block of usable bytes serves a request of size as it
 * is: the request fits, and leaves less than a quarter of it unused (more
 * than a medium class rounds up by). A buffer growing step by step then
 * touches its heap only when it outgrows its block, and keeps room to grow
 * where it is, instead of giving its tail back at every step (the realloc
 * benchmark: 0.91 times the time, peak RSS 34.6 -> 32.4 MiB). */
static bool arena_block_fits(size_t usable, size_t size)
{
    return size <= usable && size >= usable - usable / 4;
}

/* Whether live block p can take size bytes where it is, resized in place
 * if need be (*kept); returns its usable size before, 0 when p is not a
 * live block. */
static size_t realloc_try_in_place(void *p, size_t size, bool *kept)
{
    segment_t *s;
    heap_t *owner;
    *kept = false;
    switch (ptr_classify(p, &s, &owner)) {
    case PTR_HEAP: {
        if (!segment_live_test(s, p))
            return 0;
        size_t usable = heap_usable_shared(s, p);
        /* A slab block keeps its place while the request fits it. */
        *kept = segment_has_slabs(s) ? size <= usable && size > 0
                                     : arena_block_fits(usable, size) ||
                                           (owner == heap_of_caller() &&
                                            realloc_in_place(owner, s, p, size));
        return usable;
    }
    case PTR_LARGE: {
        size_t usable = pa_large_usable(p);
        /* Keep the mapping while the block stays large and fits. */
        *kept = usable && size <= usable && size > PA_LARGE_THRESHOLD;
        return usable;
    }
    default: /* private blocks never come here (realloc_private) */
        return 0;
    }
}

/* A block of a private heap stays in its heap, moved or not. */
static pa_noinline void *realloc_private(void *p, uintptr_t entry, size_t size)
{
    return pa_myheap_realloc_private(p, entry, size, caller_claim_slot());
}

#ifndef PA_CHECKED
static void *realloc_public(void *p, size_t size)
{
    if (!p)
        return myalloc(size);
    uintptr_t entry = segmap_lookup(p);
    if (pa_unlikely(segmap_entry_is_private(entry)) && ((uintptr_t)p & (PA_GRANULE - 1)) == 0)
        return realloc_private(p, entry, size);
    /* While a large block stays large, its mapping is resized: no copy
     * (the checked builds copy, so the checkers see every byte move). */
    if (size > PA_LARGE_THRESHOLD && (entry & SEGMAP_TAGS) == SEGMAP_LARGE)
        return pa_large_resize(p, size, large_charge());
    bool kept;
    size_t usable = realloc_try_in_place(p, size, &kept);
    if (!usable)
        return fail(EINVAL);
    return kept ? p : realloc_move(p, usable, size);
}

PALLOCATOR_API void *myrealloc(void *p, size_t size)
{
    if (pa_unlikely(single_mode_begin())) {
        void *q = realloc_public(p, size);
        pa_heap_single_leave();
        return q;
    }
    return realloc_public(p, size);
}
#endif

/* ---- the checked builds: memory checkers and canaries ---------------- */

#ifdef PA_CHECKED
/* The request with the hardened build's canary after it. */
static size_t want_of(size_t size)
{
    /* Hardened: every block keeps a granule of its own beside its canary. */
    return (PA_GUARDED && size < PA_GRANULE ? PA_GRANULE : size) + PA_CANARY_SIZE;
}

/* A block's bytes past the request are closed to the memory checkers
 * inside the allocation (alloc_annotate; pa_large_alloc_aligned for a
 * large block, whose request is want less the canary). */
static void *alloc_checked(size_t size)
{
    if (size > PA_MAX_REQUEST)
        return alloc_public(size); /* fails, and says why */
#ifdef PA_ANNOTATED
    ann_request = size;
#endif
    return alloc_public(want_of(size));
}

/* A large block of mycalloc's, with its canary like myalloc's. */
static void *calloc_large(size_t total)
{
    if (total > PA_MAX_REQUEST)
        return alloc_large(total, /*zero=*/true); /* fails, and says why */
    return alloc_large(want_of(total), /*zero=*/true);
}

static void *realloc_checked(void *p, size_t size)
{
    if (!p)
        return myalloc(size);
    uintptr_t entry = private_entry(p);
    if (pa_unlikely(entry != 0))
        return realloc_private(p, entry, size);
    ptr_kind_t kind;
    size_t usable = usable_of_kind(p, &kind);
    if (!usable)
        return fail(EINVAL);
    if (!block_intact(p, usable, kind)) {
        canary_broken("myrealloc", p);
        return NULL;
    }
    if (size > PA_MAX_REQUEST)
        return fail(ENOMEM);
    size_t old = pa_ann_requested(p, usable - PA_CANARY_SIZE);
    /* Shrinking in place may turn the block's tail into free memory,
     * which must be closed before the allocator writes it. */
    if (size < old)
        pa_ann_resize(p, old, size, usable);
    bool kept = false;
    if (size > 0 && !(usable = realloc_try_in_place(p, size + PA_CANARY_SIZE, &kept)))
        return fail(EINVAL);
    if (kept) {
        usable = usable_of(p); /* as resized, its canary moved with it */
        pa_ann_resize(p, size < old ? size : old, size, usable);
        return p;
    }
    void *q = realloc_move(p, old, size);
    if (!q && size < old)
        pa_ann_resize(p, size, old, usable);
    return q;
}

/* The public calls of the checked builds, with the debug builds' check
 * of the single-threaded mode as in the others. */
PALLOCATOR_API void *myalloc(size_t size)
{
    if (pa_unlikely(single_mode_begin())) {
        void *p = alloc_checked(size);
        pa_heap_single_leave();
        return p;
    }
    return alloc_checked(size);
}

PALLOCATOR_API void *myrealloc(void *p, size_t size)
{
    if (pa_unlikely(single_mode_begin())) {
        void *q = realloc_checked(p, size);
        pa_heap_single_leave();
        return q;
    }
    return realloc_checked(p, size);
}
#endif /* PA_CHECKED */
