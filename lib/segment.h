/* SPDX-License-Identifier: MIT */
/*
 * segment.h - segments, the unit a heap grows by: PA_SEGMENT_SIZE bytes
 * aligned to their size, a header (owner, list links, live map) followed
 * by the block area. Also the large blocks that get a mapping of their own,
 * and the address space kept for reuse (segment.c).
 *
 * A segment serves either an arena (arena set) or slabs (arena NULL):
 * SLAB_SIZE pieces of one block size each, whose records lie in the header
 * (slab.h); the first pieces hold the header itself (SEGMENT_HEADER_SLABS).
 *
 * The live map holds a mark per granule, set exactly at the payload of
 * each live block. It lies outside every block, so myfree can validate a
 * pointer through it before reading anything at the pointer. A slab
 * segment's marks are bytes: a slab allocation, the most frequent call,
 * marks its block with one plain store, even while other threads clear
 * other blocks' bytes in the same word, and a free by another thread
 * claims its byte with one exchange. An arena segment's marks are bits,
 * an eighth of the map: its blocks are some KiB each, so each byte mark
 * had a cache line of the map to itself, which a free waited for, and
 * every 64 KiB of blocks a page of the map, which stayed resident (sizes
 * 8-32 KiB: 3.1 MiB of a 22.4 MiB peak). Its owner sets and clears a bit
 * with a read and a store while no other thread frees into the heap, and
 * with one atomic operation once some do.
 */
#ifndef PA_SEGMENT_H
#define PA_SEGMENT_H

#include "block.h"
#include "segmap.h"

struct heap;
struct arena;

#define SEGMENT_GRANULES (PA_SEGMENT_SIZE >> PA_GRANULE_SHIFT)

#define SLAB_SHIFT 16
#define SLAB_SIZE ((size_t)1 << SLAB_SHIFT)
#define SEGMENT_SLABS (PA_SEGMENT_SIZE / SLAB_SIZE)

/* A slab's record; its blocks carry no header. */
typedef struct slab {
    void *free;                  /* freed blocks, linked through their first word */
    char *start;
    struct slab *next, *prev;    /* the heap's partial list of the class, or its free slabs */
    uint32_t used;               /* blocks handed out and not yet taken back; 1 while
                                  * full, the count then in full_used (slab_used) */
    uint32_t bump;               /* blocks carved so far, from start on */
    uint32_t capacity;
    uint32_t block_size;
    uint32_t full_used;
    uint8_t cls;
    uint8_t state;
    /* The segment's live map less the segment's granule number: plus a
     * block's granule number (its address >> PA_GRANULE_SHIFT) it is the
     * address of the block's mark, which an allocation from the slab sets
     * without first finding the segment. */
    uintptr_t live_bias;
} __attribute__((aligned(PA_CACHE_LINE))) slab_t; /* one cache line each: a free touches one */

typedef struct segment {
    struct heap *owner;          /* NULL while the segment rests in the pool */
    struct arena *arena;         /* the owner's TLSF arena, or NULL: slabs */
    struct segment *next, *prev; /* the owner's list, or the pool */
    union {
        uint8_t mark[SEGMENT_GRANULES];
        uint64_t word[SEGMENT_GRANULES / 8]; /* 8 marks at a time, for counting */
    } live;
    /* Slab segments only, written by the owner: away from the first line,
     * which every free from another thread reads. */
    size_t slabs_in_use;         /* slabs with a size class */
    slab_t slabs[SEGMENT_SLABS];
} segment_t;

#define SEGMENT_AREA_OFFSET align_up(sizeof(segment_t), PA_PAGE_SIZE)
/* The slabs a slab segment's header takes up; its blocks start after them. */
#define SEGMENT_HEADER_SLABS ((sizeof(segment_t) + SLAB_SIZE - 1) / SLAB_SIZE)
#define SEGMENT_BLOCK_SLABS (SEGMENT_SLABS - SEGMENT_HEADER_SLABS)
#define SEGMENT_AREA_SIZE (PA_SEGMENT_SIZE - SEGMENT_AREA_OFFSET)

typedef struct large {
    size_t map_size;             /* bytes mapped, header included */
    size_t usable;
    struct large *next, *prev;
} large_t;

#define LARGE_PAYLOAD_OFFSET align_up(sizeof(large_t), PA_GRANULE)

static inline segment_t *segment_of(const void *p)
{
    return (segment_t *)align_down_ptr((uintptr_t)p, PA_SEGMENT_SIZE);
}

/* A heap's list of segments of one kind, with its length. */
static inline void segment_list_push(segment_t **head, size_t *count, segment_t *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    *head = s;
    (*count)++;
}

static inline void segment_list_remove(segment_t **head, size_t *count, segment_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    (*count)--;
}

static inline bool segment_has_slabs(const segment_t *s)
{
    return s->arena == NULL;
}

static inline block_t *segment_first_block(const segment_t *s)
{
    return (block_t *)((char *)s + SEGMENT_AREA_OFFSET);
}

static inline bool segment_area_is_whole(const segment_t *s, const block_t *b)
{
    return b == segment_first_block(s) && block_is_sentinel(block_next(b));
}

static inline size_t segment_granule(const void *p)
{
    return ((uintptr_t)p & PA_SEGMENT_MASK) >> PA_GRANULE_SHIFT;
}

/* The byte of an arena segment's map that holds granule g's bit. */
static inline uint8_t *live_bit_byte(const segment_t *s, size_t g)
{
    return (uint8_t *)&s->live.mark[g >> 3];
}

static inline uint8_t live_bit(size_t g)
{
    return (uint8_t)(1u << (g & 7));
}

/* Relaxed atomic accesses throughout: other threads free blocks of the
 * segment and ask for their sizes while the owner allocates. */
static inline bool segment_live_test(const segment_t *s, const void *p)
{
    size_t g = segment_granule(p);
    if (segment_has_slabs(s))
        return __atomic_load_n(&s->live.mark[g], __ATOMIC_RELAXED) != 0;
    return (__atomic_load_n(live_bit_byte(s, g), __ATOMIC_RELAXED) & live_bit(g)) != 0;
}

/* Only the owner marks a block live, and only a free block, whose byte no
 * other thread writes: a store without a read, also in a shared heap. It
 * releases the block's header, so that another thread's free, which claims
 * the byte with an acquiring exchange, reads the header as the owner wrote
 * it, even a stale free that learnt the address before the block was
 * handed out (a plain move on x86-64, like a relaxed store). */
static inline void slab_segment_live_set(segment_t *s, const void *p)
{
    __atomic_store_n(&s->live.mark[segment_granule(p)], 1, __ATOMIC_RELEASE);
}

/* An arena block's bit shares its byte with other blocks' bits, which
 * other threads clear once the heap is shared: then (atomic) the set is
 * an atomic or, releasing the header as above. */
static inline void arena_live_set(segment_t *s, const void *p, bool atomic)
{
    size_t g = segment_granule(p);
    uint8_t *byte = live_bit_byte(s, g);
    if (atomic) {
        __atomic_fetch_or(byte, live_bit(g), __ATOMIC_RELEASE);
        return;
    }
    uint8_t old = __atomic_load_n(byte, __ATOMIC_RELAXED);
    __atomic_store_n(byte, (uint8_t)(old | live_bit(g)), __ATOMIC_RELEASE);
}

/* Marks p live in a segment of either kind; atomic as for
 * segment_live_clear (slab segments ignore it). */
static inline void segment_live_set(segment_t *s, const void *p, bool atomic)
{
    if (segment_has_slabs(s))
        slab_segment_live_set(s, p);
    else
        arena_live_set(s, p, atomic);
}

/* Clears p's mark; true when p was live. Atomic (once other threads free
 * into the owner's heap, heap_t.shared), it makes exactly one of several
 * concurrent frees of one pointer the winner; before that, and in
 * single-threaded mode, only the owner writes the marks. */
static inline bool slab_segment_live_clear(segment_t *s, const void *p, bool atomic)
{
    uint8_t *live = &s->live.mark[segment_granule(p)];
    if (atomic)
        return __atomic_exchange_n(live, 0, __ATOMIC_ACQ_REL) != 0;
    uint8_t old = __atomic_load_n(live, __ATOMIC_RELAXED);
    __atomic_store_n(live, 0, __ATOMIC_RELAXED);
    return old != 0;
}

static inline bool arena_live_clear(segment_t *s, const void *p, bool atomic)
{
    size_t g = segment_granule(p);
    uint8_t *byte = live_bit_byte(s, g), bit = live_bit(g);
    if (atomic)
        return (__atomic_fetch_and(byte, (uint8_t)~bit, __ATOMIC_ACQ_REL) & bit) != 0;
    uint8_t old = __atomic_load_n(byte, __ATOMIC_RELAXED);
    __atomic_store_n(byte, (uint8_t)(old & ~bit), __ATOMIC_RELAXED);
    return (old & bit) != 0;
}

static inline bool segment_live_clear(segment_t *s, const void *p, bool atomic)
{
    if (segment_has_slabs(s))
        return slab_segment_live_clear(s, p, atomic);
    return arena_live_clear(s, p, atomic);
}

/* A claim slot: the segment of another heap whose block a thread is
 * freeing, from just before it reads the segment's owner again until it
 * has claimed the block's live byte (NULL: none). pa_segment_retire takes the
 * owner away, then waits until no slot names the segment, so a free claims
 * only while the owner it read still holds the segment. One per heap, on a
 * line of its own; one for threads without a heap. */
typedef struct segment_claim {
    _Alignas(PA_CACHE_LINE) segment_t *segment;
    struct segment_claim *next;  /* every registered slot */
} segment_claim_t;

/* Publishes s in slot c and returns s's owner: a Dekker handshake with
 * pa_segment_retire. With asymmetric set, the retiring side issues a
 * process-wide barrier (pa_segment_claim_set_barrier) and this side needs a
 * compiler barrier only; otherwise both use sequentially consistent
 * accesses. */
static pa_always_inline void segment_claim_publish(segment_claim_t *c, segment_t *s,
                                                  bool asymmetric)
{
    if (asymmetric) {
        __atomic_store_n(&c->segment, s, __ATOMIC_RELAXED);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    } else {
        /* A read-modify-write: a full barrier, which ThreadSanitizer
         * understands, unlike a fence. */
        (void)__atomic_exchange_n(&c->segment, s, __ATOMIC_SEQ_CST);
    }
}

static pa_always_inline struct heap *segment_claim_begin(segment_claim_t *c, segment_t *s,
                                                         bool asymmetric)
{
    segment_claim_publish(c, s, asymmetric);
    /* The owner as the segment map names it, not s->owner: pa_segment_retire
     * changes the entry first, and a retired segment's header may be
     * unmapped by now (the pool is bounded), its entry never is. */
    uintptr_t entry = segmap_lookup(s);
    if (entry == 0 || (entry & (SEGMAP_LARGE | SEGMAP_POOLED)))
        return NULL;
    return (struct heap *)(entry & ~SEGMAP_TAGS);
}

static pa_always_inline void segment_claim_end(segment_claim_t *c)
{
    __atomic_store_n(&c->segment, NULL, __ATOMIC_RELEASE);
}

/* Adds c to the slots pa_segment_retire waits on, for good (until
 * pa_segment_claim_forget_all). */
void pa_segment_claim_register(segment_claim_t *c);
/* Forgets every registered slot; only while nothing else runs. */
void pa_segment_claim_forget_all(void);
/* Empties every slot: in a forked child, where the threads that held them
 * are gone. */
void pa_segment_claim_clear_all(void);
/* The retiring side of the handshake, for any segment-aligned range whose
 * segment-map entries the caller has just changed (a retired segment, a
 * private heap's chunk): returns once no slot names base. */
void pa_segment_wait_unclaimed(const void *base);
/* The retiring side's barrier (see segment_claim_begin). */
void pa_segment_claim_set_barrier(void (*barrier)(void));
/* The slot of threads without a heap, returned with the pool lock held:
 * one such claim at a time (pa_segment_pool_unlock ends it). */
segment_claim_t *pa_segment_claim_heapless(void);

/* Whether an emptied segment may be retired now: not while a thread that
 * is not its owner may be taking blocks back into its heap (every heap
 * paused, pa_segment_retire_hold), since the owner may be about to free a
 * block of the segment through a segment-map entry read before the pause.
 * Such a segment stays with its heap. */
bool pa_segment_may_retire(void);
void pa_segment_retire_hold(bool hold);

/* A segment for a heap: from the pool or freshly mapped and registered,
 * its untouched pages bound to node (numa.h; -1: left to first touch). */
segment_t *pa_segment_acquire(struct heap *owner, struct arena *arena, int node);
/* Returns the segment's pages to the OS and parks its address range, once
 * no claim slot names it. */
void pa_segment_retire(segment_t *s);
/* Pooled segments cost a page each (their header) and their address range:
 * beyond this many, the oldest is unmapped. */
#define SEGMENT_POOL_MAX 8
/* Unmaps every pooled segment and cached mapping; only while nothing else
 * runs. */
void pa_segment_pool_release_all(void);
size_t pa_segment_pool_count(void);
void pa_segment_pool_lock(void);
void pa_segment_pool_unlock(void);
/* Unmaps one segment outright; only while nothing else runs. */
void pa_segment_unmap(segment_t *s);

/* Checks that s is owner's, in the segment map as such, and holds as many
 * live marks as live_blocks (fewer with concurrency: frees in progress).
 * 0, or -1 after pa_verify_fail. */
int pa_segment_verify(const segment_t *s, const struct heap *owner, size_t live_blocks);

/* Gives the pooled segments and the cached mappings back to the OS (after
 * it refused a mapping); false when there was nothing to give. */
bool pa_segment_reclaim(void);
/* size bytes mapped (pa_segment_map_large) or only reserved, aligned to the
 * segment size; on refusal, once more after pa_segment_reclaim. */
void *pa_segment_map_large(size_t size);
void *pa_segment_reserve_large(size_t size);

/* The cache of freed large mappings: at most MAPPING_CACHE_SLOTS of them,
 * MAPPING_CACHE_BYTES together, each kept MAPPING_CACHE_DECAY_MS. */
#define MAPPING_CACHE_SLOTS 24
#define MAPPING_CACHE_BYTES ((size_t)64 << 20)
#define MAPPING_CACHE_DECAY_MS 1000
/* A reused mapping keeps at most this many times the bytes its block
 * asked for mapped (the surplus without pages: segment.c). */
#define MAPPING_KEEP_FACTOR 4
/* The smallest cached mapping of at least size bytes (its tail's pages
 * given back when it is more than twice that: cache_trim), with its size
 * in *mapped; when none is that large and the cache is at least half
 * full, the oldest grown in place to size bytes; NULL when neither. */
void *pa_segment_cache_take(size_t size, size_t *mapped);
/* Keeps an unregistered mapping for reuse, or unmaps it (or older ones)
 * to stay within the bounds. */
void pa_segment_cache_put(void *base, size_t size);
/* Unmaps what was cached more than MAPPING_CACHE_DECAY_MS before now. */
void pa_segment_cache_expire(uint64_t now);
void pa_segment_cache_usage(size_t *count, size_t *bytes);
/* Coarse monotonic milliseconds, the cache's clock. */
uint64_t pa_segment_clock_ms(void);

#endif /* PA_SEGMENT_H */
