/* SPDX-License-Identifier: MIT */
/*
 * aligned.c - myalloc_aligned: blocks whose address is a multiple of a
 * power of two larger than PALLOCATOR_ALIGNMENT.
 *
 * Each is an ordinary live block of one of the three kinds, so myfree,
 * myrealloc and myalloc_usable_size need nothing new; the kind is chosen
 * so that the alignment costs little:
 *  - a slab block, when a class of at least size bytes and the offset of
 *    its first block (slab_class_offset) are multiples of the alignment:
 *    slabs start on SLAB_SIZE boundaries and cut blocks of one size, so
 *    every block of such a class is aligned (a page-aligned 4 KiB request
 *    costs 4 KiB);
 *  - a TLSF block of the caller's heap up to PA_LARGE_THRESHOLD bytes and
 *    alignment, taken so that the space in front of it stays free;
 *  - a large block otherwise, its payload placed at the alignment inside
 *    its own mapping.
 */
#include <errno.h>

#include "annotate.h"
#include "heap.h"
#include "large.h"
#include "pallocator.h"

static pa_noinline void *aligned_fail(int error)
{
    errno = error;
    return NULL;
}

/* The smallest slab class of at least size bytes whose blocks all lie on
 * multiples of align; SLAB_CLASSES when there is none. */
static unsigned aligned_slab_class(size_t size, size_t align)
{
    for (unsigned c = 0; c < SLAB_CLASSES; c++)
        if (pa_slab_class_size[c] >= size &&
            ((pa_slab_class_size[c] | slab_class_offset(c)) & (align - 1)) == 0)
            return c;
    return SLAB_CLASSES;
}

/* A TLSF block of the caller's heap h; the same steps as a myalloc served
 * by the TLSF heap, with an aligned take. */
static void *aligned_from_arena(heap_t *h, size_t size, size_t align, bool concurrent)
{
    /* Hardened: the block's canary follows the request. */
    size_t want = size + PA_CANARY_SIZE;
    if (concurrent) {
        heap_enter(h);
        pa_heap_poll_handover(h);
    }
    if (heap_has_handover(h))
        pa_heap_drain_handover_some(h);
    size_t block_size = tlsf_block_size_for(want);
    block_t *b = pa_tlsf_take_aligned(&h->arena.tlsf, block_size, align);
    if (!b && pa_heap_arena_grow(h))
        b = pa_tlsf_take_aligned(&h->arena.tlsf, block_size, align);
    void *p = NULL;
    if (b) {
        size_t usable = block_usable(b);
        heap_used_grow(h, block_counted(b));
        p = block_payload(b);
        pa_canary_set(p, usable); /* before the live mark, as myalloc's */
        pa_ann_alloc(p, size, usable, false);
        arena_live_set(segment_of(b), p, heap_live_atomic(h, concurrent));
        if (!concurrent)
            stats_add(&h->live, usable - PA_CANARY_SIZE);
    }
    if (concurrent)
        heap_leave(h);
    if (!p)
        return aligned_fail(ENOMEM);
    return p;
}

static void *aligned_medium(size_t size, size_t align)
{
    heap_t *h = pa_is_concurrent() ? pa_thread.heap : pa_single_heap;
    if (!h)
        h = pa_heap_slow();
    if (!h)
        return aligned_fail(ENOMEM);
    return aligned_from_arena(h, size, align, pa_is_concurrent());
}

static void *aligned_large(size_t size, size_t align)
{
    /* allocator_init's EAGAIN (no thread key left) is ENOMEM here. */
    if (__atomic_load_n(&pa_mode, __ATOMIC_ACQUIRE) == PA_MODE_NONE &&
        allocator_init(1) != 0)
        return aligned_fail(ENOMEM);
    /* The single-threaded heap's exact count covers large blocks too. */
    heap_t *single = pa_single_heap;
    return pa_large_alloc_aligned(size + PA_CANARY_SIZE, align, false,
                                  single ? &single->live : NULL);
}

PALLOCATOR_API void *myalloc_aligned(size_t alignment, size_t size)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        return aligned_fail(EINVAL);
    if (alignment <= PALLOCATOR_ALIGNMENT)
        return myalloc(size);
    if (size > PA_MAX_REQUEST)
        return aligned_fail(ENOMEM);
    /* As with myalloc(0), a block: a large one needs a byte to point at. */
    if (size == 0)
        size = 1;
    if (size <= SLAB_REQUEST_MAX && alignment <= SLAB_REQUEST_MAX) {
        /* myalloc adds the canary of a hardened build: asked for the class
         * less the canary, it takes exactly class c. */
        unsigned c = aligned_slab_class(size + PA_CANARY_SIZE, alignment);
        if (c < SLAB_CLASSES)
            return myalloc(pa_slab_class_size[c] - PA_CANARY_SIZE);
    }
    if (size + PA_CANARY_SIZE <= PA_LARGE_THRESHOLD && alignment <= PA_LARGE_THRESHOLD)
        return aligned_medium(size, alignment);
    return aligned_large(size, alignment);
}
