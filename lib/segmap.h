/*
 * segmap.h - the global segment map: answers "which live mapping of ours
 * holds this address, and which heap owns it?" in O(1) without touching the
 * address itself.
 */
#ifndef PA_SEGMAP_H
#define PA_SEGMAP_H

#include "internal.h"

/* What an entry holds. A large (own) mapping: its base | SEGMAP_LARGE. A
 * segment: the heap that owns it, | SEGMAP_SLABS for a slab segment, so
 * that one load tells myfree whether a pointer is a slab block of the
 * caller's own heap; or SEGMAP_POOLED while no heap holds it. 0: not ours.
 * A segment's base is the address with its low bits cleared. */
#define SEGMAP_LARGE ((uintptr_t)1)
#define SEGMAP_SLABS ((uintptr_t)2)
#define SEGMAP_POOLED ((uintptr_t)4)
#define SEGMAP_TAGS (SEGMAP_LARGE | SEGMAP_SLABS)

/* Records that [base, base + size) is ours, with the given entry; base is
 * segment-aligned. Returns false when the map cannot grow (out of memory). */
bool segmap_register(uintptr_t base, size_t size, uintptr_t entry);
/* Changes the entry of a registered range. */
void segmap_update(uintptr_t base, size_t size, uintptr_t entry);
void segmap_unregister(uintptr_t base, size_t size);
#define SEGMAP_VA_BITS 48
#define SEGMAP_INDEX_BITS (SEGMAP_VA_BITS - PA_SEGMENT_SHIFT)
#define SEGMAP_LEAF_BITS 13
#define SEGMAP_ROOT_BITS (SEGMAP_INDEX_BITS - SEGMAP_LEAF_BITS)
#define SEGMAP_LEAF_ENTRIES ((size_t)1 << SEGMAP_LEAF_BITS)
#define SEGMAP_ROOT_ENTRIES ((size_t)1 << SEGMAP_ROOT_BITS)

extern uintptr_t *segmap_root[SEGMAP_ROOT_ENTRIES];

static inline size_t segmap_index(uintptr_t p)
{
    return (size_t)(p >> PA_SEGMENT_SHIFT);
}

/* The entry covering p, or 0 when p is not ours. */
static inline uintptr_t segmap_lookup(const void *p)
{
    size_t index = segmap_index((uintptr_t)p);
    if (pa_unlikely(index >= SEGMAP_ROOT_ENTRIES * SEGMAP_LEAF_ENTRIES))
        return 0;
    const uintptr_t *leaf =
        __atomic_load_n(&segmap_root[index >> SEGMAP_LEAF_BITS], __ATOMIC_ACQUIRE);
    if (pa_unlikely(!leaf))
        return 0;
    return __atomic_load_n(&leaf[index & (SEGMAP_LEAF_ENTRIES - 1)], __ATOMIC_ACQUIRE);
}
/* Forgets every entry and returns the map's own pages to the OS. */
void segmap_reset(void);
/* Number of slots in use; for introspection. */
size_t segmap_count(void);

#endif /* PA_SEGMAP_H */
