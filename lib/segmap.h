/* SPDX-License-Identifier: MIT */
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
/* A chunk of a private heap (myheap.c): the chunk's base | SEGMAP_PRIVATE.
 * Both tags, a pair no heap or large block uses: myfree's fast path, which
 * compares the entry with the caller's heap | SEGMAP_SLABS, never matches
 * it, and any code that tests SEGMAP_LARGE alone must rule it out first. */
#define SEGMAP_PRIVATE (SEGMAP_LARGE | SEGMAP_SLABS)

/* Records that [base, base + size) is ours, with the given entry; base is
 * segment-aligned. Returns false when the map cannot grow (out of memory). */
bool pa_segmap_register(uintptr_t base, size_t size, uintptr_t entry);
/* Makes the table cover [base, base + size), so that registering the range
 * cannot fail; false when the range is beyond the address space or the
 * table cannot grow. */
bool pa_segmap_covers(uintptr_t base, size_t size);
/* Changes the entry of a registered range. */
void pa_segmap_update(uintptr_t base, size_t size, uintptr_t entry);
void pa_segmap_unregister(uintptr_t base, size_t size);

/* A flat table with an entry for every segment-sized piece of the address
 * space in use, filled in as segments come and go: its untouched pages
 * cost no memory and read as zeros. A flat table saves myfree the second
 * level's load and test.
 *
 * The table first covers a window of SEGMAP_WINDOW_ENTRIES pieces (2 TiB,
 * a 4 MiB reservation) around the first mapping registered, since the
 * kernel places mappings next to each other; a mapping outside it moves
 * the map to a table for the whole user address space (256 MiB reserved on
 * x86-64). A program under a small RLIMIT_AS thus still allocates. */
#if defined(__x86_64__)
#define SEGMAP_VA_BITS 47
#else
#define SEGMAP_VA_BITS 48
#endif
#define SEGMAP_ENTRIES ((size_t)1 << (SEGMAP_VA_BITS - PA_SEGMENT_SHIFT))
#define SEGMAP_WINDOW_ENTRIES ((size_t)1 << 19)

/* The table covers the segment numbers [base, base + limit); limit is 0
 * until it exists, so one unsigned comparison rejects a lookup before the
 * first segment, below the table and above it. entries is biased by base
 * (entries + index is the entry of segment number index), so a lookup that
 * reads base and limit of one table and entries of the larger table that
 * replaced it still reads the right entry. Side by side, so a lookup reads
 * one line besides its entry. */
typedef struct pa_segmap {
    uintptr_t entries;
    size_t base;
    size_t limit;
} segmap_t;

extern segmap_t pa_segmap;

static inline size_t segmap_index(uintptr_t p)
{
    return (size_t)(p >> PA_SEGMENT_SHIFT);
}

/* The entry covering p, or 0 when p is not ours. A table is replaced by
 * storing entries, then base, then limit (each a release): reading them in
 * the opposite order (acquire) sees entries at least as new as the bounds. */
static inline uintptr_t segmap_lookup(const void *p)
{
    size_t index = segmap_index((uintptr_t)p);
    size_t limit = __atomic_load_n(&pa_segmap.limit, __ATOMIC_ACQUIRE);
    size_t base = __atomic_load_n(&pa_segmap.base, __ATOMIC_ACQUIRE);
    if (pa_unlikely(index - base >= limit))
        return 0;
    const uintptr_t *entries = (const uintptr_t *)__atomic_load_n(&pa_segmap.entries, __ATOMIC_RELAXED);
    return __atomic_load_n(&entries[index], __ATOMIC_ACQUIRE);
}
/* The current table's first entry (NULL: none); for tests. */
uintptr_t *pa_segmap_table(void);
/* The writers' lock, innermost of the library's; for the fork handlers. */
void pa_segmap_lock(void);
void pa_segmap_unlock(void);
/* Forgets every entry and unmaps the table; only while nothing else runs. */
void pa_segmap_reset(void);
/* Number of entries in use; for introspection. */
size_t pa_segmap_count(void);

#endif /* PA_SEGMAP_H */
