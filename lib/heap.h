/* SPDX-License-Identifier: MIT */
/*
 * heap.h - heaps: slabs for small requests and an arena (TLSF) for larger
 * ones, the segments they own, the heap's statistics, and the hand-over
 * list through which other threads return its blocks.
 * With concurrency enabled each thread owns one heap; a single-threaded
 * allocator has one heap and no atomic operations on its paths.
 */
#ifndef PA_HEAP_H
#define PA_HEAP_H

#include "cache.h"
#include "segment.h"
#include "slab.h"
#include "stats.h"
#include "tlsf.h"

typedef enum heap_state { HEAP_OWNED, HEAP_ABANDONED } heap_state_t;

/* A heap's arena, the tier between slabs and large blocks: a TLSF control
 * and the segments it holds. Slabs serve every request of up to
 * SLAB_REQUEST_MAX bytes, so the arena holds the larger ones, up to
 * PA_LARGE_THRESHOLD. */
typedef struct arena {
    tlsf_t tlsf;
    segment_t *segments;
    size_t segment_count;
    segment_t *spare;            /* last segment seen wholly free, kept mapped */
} arena_t;

typedef struct heap {
    slab_set_t slabs;            /* requests of up to SLAB_REQUEST_MAX bytes */
    arena_t arena;
    cache_t cache;               /* freed blocks kept for the owner's next requests */
    /* Bytes the heap holds: the usable bytes of the used blocks in its
     * arena (live blocks, cached ones, and blocks waiting in an outbox or
     * hand-over list) and the whole slabs with a size class, which the slab set
     * charges here. Changed only off the fast paths, so they keep no count;
     * its peak is the heap's peak in the concurrent mode. */
    pa_stats_t held;
    /* Single-threaded mode only, where the fast paths keep an exact count:
     * usable bytes of live heap blocks (slab blocks included) and of large
     * blocks (charged by pa_large_alloc), with the exact peak. */
    pa_stats_t live;
    /* Handed-over blocks taken off the shared list but not yet freed: each
     * call frees a bounded number, so no malloc or free waits for a backlog
     * of remote frees. Owner-private. */
    block_t *pending;
    /* Pause handshake: the owner marks in_call around each operation, then
     * reads gate; a thread that must inspect the heap raises
     * HEAP_GATE_PAUSE there and waits for in_call to drop. */
    int in_call;
    unsigned gate;
    heap_state_t state;
    unsigned id;
    int numa_node;               /* where its segments go: the owner's node, or -1 (numa.h) */
    /* The owning thread's slot (NULL: abandoned, or none to clear), which
     * allocator_cleanup empties, and the owner's mark of life (its
     * pa_thread.alive; 0: none). Under registry_lock. */
    struct pa_thread *thread;
    unsigned alive;
    unsigned poll_countdown;     /* allocations and remote frees until the next poll */
    /* Blocks of another heap this heap's thread has freed, gathered in a
     * batch before they go to that heap's hand-over list in one push. */
    block_t *outbox;
    struct heap *outbox_owner;
    struct heap *next_all;       /* every heap, for introspection */
    struct heap *next_abandoned;
    /* Blocks freed by other threads, linked through next_free (push only;
     * the owner takes the whole list at once, so there is no ABA). Alone on
     * its cache line: other threads write it, and the owner must not pay a
     * miss on every call for the fields it writes itself. */
    _Alignas(PA_CACHE_LINE) block_t *handover;
    char handover_pad[PA_CACHE_LINE - sizeof(block_t *)];
    /* Set (for good) by pa_heap_share before the first free of one of this
     * heap's blocks by another thread; until then only the owner clears
     * its segments' live marks, and it does so without atomic operations.
     * Every remote free reads it (the owner's fast paths read its copy in
     * the gate): alone on a line that is written once, it stays cached. */
    _Alignas(PA_CACHE_LINE) int shared;
    /* The segment of another heap whose block this heap's thread is
     * claiming (segment_claim_t), on a line of its own: written twice by
     * every free of another heap's block, read only by retiring threads. */
    segment_claim_t claim;
} heap_t;

/* What a heap's gate tells its owner at the start of each operation; the
 * fast paths leave for the slow ones on any of them (an allocation stays
 * on a shared heap). Only other threads change the gate, always with an
 * atomic read-modify-write. */
#define HEAP_GATE_PAUSE 1u   /* a pause is requested: wait at rest */
#define HEAP_GATE_SHARED 2u  /* other threads free into the heap (heap_t.shared):
                                * the owner's frees clear marks atomically */
#define HEAP_GATE_FENCED 4u  /* no membarrier: the owner's half needs a fence */

extern heap_t *pa_single_heap;

/* The calling thread's heap, NULL until one is attached. allocator_cleanup
 * empties the slot of every thread that has a heap (heap_t.thread), so the
 * fast paths test nothing else. One thread-local object. */
typedef struct pa_thread {
    heap_t *heap;
    /* Past the thread's exit hook, or the hook could not be armed: a heap
     * attached now is not recorded in heap_t.thread, since nothing would
     * forget the slot once the thread is gone, and the call that attached
     * it abandons it again at its end (heap_attach_end), whatever order
     * the thread's destructors run in. */
    bool exited;
    /* The mark of life the thread holds (1 + its index; 0: none yet), for
     * as long as it lives: a robust mutex, which the kernel marks when the
     * thread is gone, whatever order its exit ran in (heap.c). */
    unsigned alive;
} pa_thread_t;

extern __thread pa_thread_t pa_thread __attribute__((tls_model("initial-exec")));

void pa_heap_init(heap_t *h, unsigned id);
/* A block of h's arena for a request of n bytes (up to
 * PA_LARGE_THRESHOLD), growing the heap when needed; NULL when out of
 * memory. The caller is h's owner (or holds it paused). */
block_t *pa_heap_take(heap_t *h, size_t n);
/* Gives h's arena one more segment, for a caller that takes its block
 * itself (myalloc_aligned); false when none can be had. */
bool pa_heap_arena_grow(heap_t *h);

/* Checks h's arena a: each segment's block chain (pa_tlsf_verify_area) and
 * live marks (pa_segment_verify), the segment list and the TLSF lists and
 * counts. usage (NULL: not wanted) gets the usable bytes of its used
 * blocks and how many of them are not marked live (being freed by another
 * thread). 0, or -1 after pa_verify_fail. */
typedef struct arena_usage {
    size_t used_usable, unmarked_used;
} arena_usage_t;
int pa_arena_verify(const heap_t *h, const arena_t *a, arena_usage_t *usage);

/* Frees a used block of h: merges and hands an emptied segment back. */
void pa_heap_give(heap_t *h, block_t *b);
/* Usable bytes of the used blocks in h's arena. */
static inline size_t heap_arena_used(const heap_t *h)
{
    return h->held.allocated - h->slabs.assigned * SLAB_SIZE;
}

/* Keeps h->held as a block of h's arena changes between free and used, and
 * the cache's limit, which follows the arena's used bytes. */
static inline void heap_used_grow(heap_t *h, size_t usable)
{
    stats_add(&h->held, usable);
    h->cache.limit = cache_limit(heap_arena_used(h));
}

static inline void heap_used_shrink(heap_t *h, size_t usable)
{
    stats_sub(&h->held, usable);
    h->cache.limit = cache_limit(heap_arena_used(h));
}
/* Takes back every block other threads have handed over. */
void pa_heap_drain_handover(heap_t *h);
/* Takes back at most HEAP_TAKE_BACK_LIMIT of them (the fast paths' share). */
void pa_heap_drain_handover_some(heap_t *h);
#define HEAP_TAKE_BACK_LIMIT 64
/* A heap is polled (its outbox sent, its hand-over list looked at) after
 * every this many allocations and frees for other heaps, and when an
 * allocation finds its slab empty or goes to the arena; not on every
 * call, because the list's line belongs to the freeing threads most of the
 * time. */
#define HEAP_POLL_INTERVAL 32
void pa_heap_poll_handover(heap_t *h);
/* Pushes b (its live mark already cleared) onto its owner's hand-over list. */
void pa_heap_handover_push(heap_t *h, block_t *b);
/* Hands b (its live mark already cleared, owned by owner, of the size
 * heap_handed_size gives) over through the outbox of the caller's heap h,
 * inside an operation on h. */
void pa_heap_outbox_add(heap_t *h, heap_t *owner, block_t *b, size_t size);
/* The size a free hands over with block b: its TLSF size, or 0 for a slab
 * block (which has no header: b is only its payload's handle). The freeing
 * thread records it in its batch, where the block is at hand; the owner
 * reads it for a block pushed on its own. */
static inline size_t heap_handed_size(const block_t *b)
{
    return segment_has_slabs(segment_of(b)) ? 0 : block_size_shared(b);
}
/* Sends the outbox's batch, if any (its owner, or a pauser). */
void pa_heap_outbox_flush(heap_t *h);

/* A batch of blocks one thread freed for one other heap: a slab block of
 * the freeing thread's heap, never marked live (no pointer to it is ever
 * given out, so no free can reach it), handled like a handed-over slab
 * block through the block_t just below its payload. Its link in a hand-over list
 * is the block's next_free, like a single block's; tags in the link tell a
 * batch to take back from a used batch coming home. */
/* A batch fills one slab block of the 384-byte class, six cache lines:
 * the link and the count, then a size and a pointer per slot. */
#define HEAP_OUTBOX_BATCH_BYTES 384
#define HEAP_OUTBOX_SLOTS                                                  \
    ((HEAP_OUTBOX_BATCH_BYTES - 2 * sizeof(void *)) / (sizeof(uint32_t) + sizeof(block_t *)))
#define HEAP_HANDOVER_BATCH_TAG ((uintptr_t)1)  /* a batch for this heap */
#define HEAP_HANDOVER_RETURN_TAG ((uintptr_t)2) /* this heap's batch, used */
#define HEAP_HANDOVER_TAGS (HEAP_HANDOVER_BATCH_TAG | HEAP_HANDOVER_RETURN_TAG)
typedef struct handover_batch {
    block_t *link;               /* overlays the batch block's next_free */
    uint32_t count;
    uint32_t sizes[HEAP_OUTBOX_SLOTS];
    block_t *blocks[HEAP_OUTBOX_SLOTS];
} handover_batch_t;

/* A hand-over list's link decoded: the block it names and the tag it
 * carries (0: a single block). The one place the tags are read. */
typedef struct handover_entry {
    block_t *block;
    uintptr_t tag;
} handover_entry_t;

static inline handover_entry_t handover_decode(const block_t *link)
{
    return (handover_entry_t){(block_t *)((uintptr_t)link & ~HEAP_HANDOVER_TAGS),
                              (uintptr_t)link & HEAP_HANDOVER_TAGS};
}

_Static_assert(sizeof(handover_batch_t) <= HEAP_OUTBOX_BATCH_BYTES &&
                   sizeof(handover_batch_t) > HEAP_OUTBOX_BATCH_BYTES - PA_CACHE_LINE,
               "a batch fills its slab block");
_Static_assert(HEAP_OUTBOX_BATCH_BYTES <= SLAB_REQUEST_MAX &&
                   HEAP_OUTBOX_BATCH_BYTES % PA_GRANULE == 0,
               "a batch is a slab block");
_Static_assert(offsetof(handover_batch_t, link) == 0 &&
               offsetof(block_t, next_free) == BLOCK_HEADER_SIZE,
               "a batch's link is its block's next_free");

/* The caller's heap when the fast path has none: initialises the allocator
 * on first use and attaches a heap to the thread (init.c). */
heap_t *pa_heap_slow(void);
/* The calling thread's heap in concurrent mode, attached on first use. */
heap_t *pa_heap_attach_thread(void);
void pa_heap_release_late(heap_t *h);
/* Ends a call that attached h (the caller's heap, the call's operation on
 * it over). */
static inline void heap_attach_end(heap_t *h)
{
    if (pa_unlikely(pa_thread.exited) && h == pa_thread.heap)
        pa_heap_release_late(h);
}
heap_t *pa_heap_create(void);
void pa_heap_release_all(void);
/* Abandons the heaps of threads that are gone without their exit hook
 * having run; caller holds the registry lock (pa_heap_pause_all). */
void pa_heap_registry_reap(void);

/* Creates the key whose destructor abandons an exiting thread's heap, once
 * per process; false when none can be created. */
bool pa_heap_exit_hook_setup(void);

/* Debug builds: the single-threaded mode's heap is marked in use from the
 * start to the end of each call. pa_heap_single_enter marks it for the
 * calling thread and returns true, returns false when the caller's own
 * call is under way (a call made inside another), and stops the program
 * when another thread's call is. */
#if defined(PA_DEBUG) && PA_DEBUG
bool pa_heap_single_enter(void);
void pa_heap_single_leave(void);
#else
static inline void pa_heap_single_leave(void)
{
}
#endif

/* Pause handshake (concurrent mode only). */
void pa_heap_barrier_setup(void);
void pa_heap_enter_slow(heap_t *h);
void pa_heap_pause_all(void);
void pa_heap_resume_all(void);

/* Registry iteration, for introspection: registry_lock held around it. */
heap_t *pa_heap_registry_first(void);
void pa_heap_registry_lock(void);
void pa_heap_registry_unlock(void);
void pa_heap_fork_prepare(void);
void pa_heap_fork_parent(void);
void pa_heap_fork_child(void);
/* The registry's part of pa_heap_fork_child (heap.c). */
void pa_heap_registry_fork_child(void);

extern bool pa_asymmetric_barrier;

/* The owner's half of the pause handshake as the fast paths take it: marks
 * the heap in use and returns its gate. Dekker handshake with
 * pa_heap_pause_all: when the pauser issues a process-wide barrier
 * (membarrier), a compiler barrier suffices here; otherwise the gate holds
 * HEAP_GATE_FENCED and heap_announce completes the handshake. */
static pa_always_inline unsigned heap_announce_unfenced(heap_t *h)
{
    __atomic_store_n(&h->in_call, 1, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    return __atomic_load_n(&h->gate, __ATOMIC_SEQ_CST);
}

/* The owner's whole half of the handshake: true when no pause is
 * requested. Without membarrier a sequentially consistent store orders
 * the two sides. */
static inline bool heap_announce(heap_t *h)
{
    unsigned gate = heap_announce_unfenced(h);
    if (gate & HEAP_GATE_FENCED) {
        __atomic_store_n(&h->in_call, 1, __ATOMIC_SEQ_CST);
        gate = __atomic_load_n(&h->gate, __ATOMIC_SEQ_CST);
    }
    return !(gate & HEAP_GATE_PAUSE);
}

/* Begins an operation on the caller's heap h outside the fast paths (again,
 * if a fast path began it): the whole handshake, waiting out a pause. */
static inline void heap_enter(heap_t *h)
{
    if (pa_unlikely(!heap_announce(h)))
        pa_heap_enter_slow(h);
}

/* Whether the owner of h, in an announced operation, must clear live marks
 * atomically (setting one is a plain store either way). */
static pa_always_inline bool heap_live_atomic(const heap_t *h, bool concurrent)
{
    return concurrent && __atomic_load_n(&h->shared, __ATOMIC_RELAXED);
}

/* Called by a thread about to free a block of h, which it does not own:
 * marks h shared, with h paused so no owner update without an atomic
 * operation is under way. */
void pa_heap_share(heap_t *h);

static inline void heap_leave(heap_t *h)
{
    __atomic_store_n(&h->in_call, 0, __ATOMIC_RELEASE);
}

static inline bool heap_has_handover(const heap_t *h)
{
    return h->pending != NULL || __atomic_load_n(&h->handover, __ATOMIC_RELAXED) != NULL;
}

#endif /* PA_HEAP_H */
