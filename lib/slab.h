/* SPDX-License-Identifier: MIT */
/*
 * slab.h - slabs: SLAB_SIZE pieces of a heap's slab segments, each cut into
 * blocks of one size class with no header, for requests of up to
 * SLAB_REQUEST_MAX bytes (8 KiB). Beside the arena (TLSF) of the same heap.
 *
 * A heap allocates from one current slab per class, always from the slab's
 * free list; when that runs dry, the next few blocks of the slab's untouched
 * end are carved into it (SLAB_CARVE_BYTES, or SLAB_CARVE_MIN_BLOCKS blocks
 * of the larger classes), so a fresh slab costs
 * little to set up and the fast path has one predictable branch. Frees
 * push onto the block's own slab. A slab whose blocks are all handed out
 * is full and sits in no list; its first free puts it at the back of its
 * class's partial queue, whose front slab (the one that has gathered frees
 * longest) becomes the next current slab. A partial slab
 * that empties goes back to the heap's free slabs, and a segment whose
 * slabs are all free goes back to the pool (one is kept as a spare). Every
 * step is O(1). Blocks are validated by the segment's live map like any
 * other; the records are in the segment header, out of reach of a stray
 * write through a block.
 */
#ifndef PA_SLAB_H
#define PA_SLAB_H

#include "segment.h"
#include "stats.h"

struct heap;

#define SLAB_CLASSES 36
#define SLAB_REQUEST_MAX ((size_t)8192)
#define SLAB_CARVE_BYTES ((size_t)4096)
#define SLAB_CARVE_MIN_BLOCKS 4

enum slab_state { SLAB_FREE, SLAB_CURRENT, SLAB_PARTIAL, SLAB_FULL, SLAB_STATES };

typedef struct slab_set {
    slab_t *current[SLAB_CLASSES];
    slab_t *partial[SLAB_CLASSES];      /* oldest first */
    slab_t *partial_last[SLAB_CLASSES];
    slab_t *free;                /* slabs without a class, in any of the segments */
    segment_t *segments;
    segment_t *spare;            /* a wholly free segment kept mapped */
    size_t segment_count;
    size_t assigned;             /* slabs with a class */
    struct heap *owner;          /* for pa_segment_acquire only: the segments' owner */
    pa_stats_t *held;            /* charged SLAB_SIZE per slab with a class */
    int *numa_node;              /* the owner's node, refreshed as it grows (numa.h) */
} slab_set_t;

/* The class of a request by its granule count, and each class's block size. */
extern uint8_t pa_slab_request_class[(SLAB_REQUEST_MAX >> PA_GRANULE_SHIFT) + 1];
extern const uint16_t pa_slab_class_size[SLAB_CLASSES];
/* Stands for "no current slab" in every class: it has nothing to give. */
extern slab_t pa_slab_none;

/* How far past its slab's start a class's first block lies. A class that
 * is not a power of two and leaves SLAB_COLOUR bytes of the slab over
 * starts its blocks that far in, so that its larger blocks never begin on
 * a page: a program that reads a file page into a block just past a small
 * header of its own (sqlite puts 8 bytes before each allocation) would
 * otherwise have the kernel's copy store 8 bytes ahead of its loads
 * modulo 4 KiB, which x86 cores take for a dependency (4K aliasing):
 * pread of 4 KiB took 3 times as long into such a buffer. Power-of-two
 * classes start at the slab's start, so that their blocks stay aligned to
 * their size (aligned.c); every class keeps its block count. */
#define SLAB_COLOUR ((size_t)64)

static inline size_t slab_class_offset(unsigned c)
{
    size_t size = pa_slab_class_size[c];
    return (size & (size - 1)) != 0 && SLAB_SIZE % size >= SLAB_COLOUR ? SLAB_COLOUR : 0;
}

/* Fills pa_slab_request_class (once, at initialisation). */
void pa_slab_tables_init(void);
/* An empty set whose segments name owner and whose slabs are charged to
 * held. */
void pa_slab_set_init(slab_set_t *set, struct heap *owner, pa_stats_t *held);
/* The rare halves of slab_take and slab_give (slab.c): carving, a new
 * current slab, and moving a slab between lists. */
void *pa_slab_take_slow(slab_set_t *set, unsigned c);
void pa_slab_give_slow(slab_set_t *set, slab_t *sl);
/* Hardened build: block p's link is broken; reports it and gives up the
 * rest of sl's free list (those blocks stay out of use). Returns NULL. */
void *pa_slab_free_list_broken(slab_t *sl, const void *p);
/* Gives back every slab without live blocks and every wholly free segment
 * (a heap whose thread exits). */
void pa_slab_shrink(slab_set_t *set);
/* Unmaps every segment of the set; only while nothing else runs. */
void pa_slab_release_all(slab_set_t *set);
/* Checks every slab's record, free list and state, the set's lists and
 * counts, and each segment (pa_segment_verify); the bytes of live blocks go
 * to *live_bytes (NULL: not wanted). Called by the set's owner, or with
 * it paused. 0, or -1 after pa_verify_fail. */
int pa_slab_set_verify(const slab_set_t *set, size_t *live_bytes);

static inline unsigned slab_class_of(size_t n)
{
    return pa_slab_request_class[(n + PA_GRANULE - 1) >> PA_GRANULE_SHIFT];
}

/* A slab's record is one cache line, so the offset of p's record among
 * the records is p's offset in the segment shifted once and masked. */
#define SLAB_RECORD_SHIFT 6
_Static_assert(sizeof(slab_t) == (size_t)1 << SLAB_RECORD_SHIFT, "a record's size is a power of two");

static inline slab_t *slab_of(const segment_t *s, const void *p)
{
    uintptr_t offset = ((uintptr_t)p >> (SLAB_SHIFT - SLAB_RECORD_SHIFT)) &
                       ((SEGMENT_SLABS - 1) << SLAB_RECORD_SHIFT);
    return (slab_t *)((const char *)s->slabs + offset);
}

/* Marks block p of sl live: slab_segment_live_set without finding the
 * segment. */
static inline void slab_live_set(const slab_t *sl, const void *p)
{
    __atomic_store_n((uint8_t *)(sl->live_bias + ((uintptr_t)p >> PA_GRANULE_SHIFT)), 1,
                     __ATOMIC_RELEASE);
}

/* Blocks of sl handed out and not yet taken back. A full slab keeps the
 * count in full_used and 1 in used, so that the one test of a free for a
 * count dropping to zero also finds the first free into a full slab. */
static inline uint32_t slab_used(const slab_t *sl)
{
    return sl->state == SLAB_FULL ? sl->full_used : sl->used;
}

static inline bool slab_holds_block(const slab_t *sl, const void *p)
{
    uintptr_t offset = (uintptr_t)p - (uintptr_t)sl->start;
    return sl->state != SLAB_FREE && offset < (uintptr_t)sl->bump * sl->block_size &&
           offset % sl->block_size == 0;
}

static inline void *slab_pop(slab_t *sl)
{
    void *p = sl->free;
    if (pa_likely(p != NULL)) {
        void *next = PA_LINK_LOAD(*(void **)p);
        /* Hardened: a link an overflow has overwritten is never followed. */
        if (PA_GUARDED && pa_unlikely(next != NULL && (!slab_holds_block(sl, next) ||
                                                      segment_live_test(segment_of(p), next))))
            next = pa_slab_free_list_broken(sl, p);
        sl->free = next;
        sl->used++;
        pa_mem_open(p, sl->block_size); /* free memory until now */
    }
    return p;
}

/* A block of class c (the caller owns the set); NULL when out of memory. */
static inline void *slab_take(slab_set_t *set, unsigned c)
{
    void *p = slab_pop(set->current[c]);
    return pa_likely(p != NULL) ? p : pa_slab_take_slow(set, c);
}

/* Puts block p (its live mark claimed) back in slab sl; true when the slab
 * must change lists, which pa_slab_give_slow then does. Split from slab_give
 * so a fast path can leave the rare step to a tail call. */
static inline bool slab_push(slab_t *sl, void *p)
{
    void *next = sl->free;
    pa_mem_close(p, sl->block_size); /* free memory from now on */
    PA_LINK_STORE(*(void **)p, next);
    sl->free = p;
    /* The slab empties, or was full (slab_used). */
    return pa_unlikely(--sl->used == 0);
}

/* Frees block p of slab sl, whose live mark the caller has claimed. */
static inline void slab_give(slab_set_t *set, slab_t *sl, void *p)
{
    if (slab_push(sl, p))
        pa_slab_give_slow(set, sl);
}

#endif /* PA_SLAB_H */
