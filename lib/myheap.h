/* SPDX-License-Identifier: MIT */
/*
 * myheap.h - private heaps (myheap_create(3)) as the rest of the library
 * sees them: the routing of myfree, myalloc_usable_size and myrealloc for a
 * block whose segment-map entry is tagged SEGMAP_PRIVATE, and the hooks of
 * introspection, allocator_cleanup and fork. The public calls themselves
 * are in myheap.c.
 */
#ifndef PA_MYHEAP_H
#define PA_MYHEAP_H

#include "segment.h"

/* Whether a segment-map entry names a chunk of a private heap. */
static inline bool segmap_entry_is_private(uintptr_t entry)
{
    return (entry & SEGMAP_TAGS) == SEGMAP_PRIVATE;
}

/* Block p (granule-aligned), whose entry is private, handed to myfree,
 * myalloc_usable_size or myrealloc. The call claims p's chunk in slot (the
 * caller's heap's; NULL: the slot of threads without a heap) so that a
 * concurrent myheap_destroy waits before unmapping it, then acts under the
 * heap's lock. As the public calls: -1, 0 or NULL with errno = EINVAL when
 * p is not a live block (ENOMEM for a move that finds no room). */
int pa_myheap_free_private(void *p, uintptr_t entry, segment_claim_t *slot);
size_t pa_myheap_usable_private(void *p, uintptr_t entry, segment_claim_t *slot);
void *pa_myheap_realloc_private(void *p, uintptr_t entry, size_t size, segment_claim_t *slot);

/* What allocator_stats adds for the private heaps: their live usable bytes,
 * the bytes their free blocks can hand out, and the sum of their peaks. */
typedef struct myheap_totals {
    size_t allocated, freed, peak;
    size_t heaps, chunks, mapped;
} myheap_totals_t;
void pa_myheap_totals(myheap_totals_t *t);
/* One line per heap, for allocator_dump. */
void pa_myheap_dump(void);
/* The registry's lock and every heap's lock (but the single-threaded
 * heaps', which have none), taken after the segment pool's lock and before
 * the segment map's: allocator_verify and fork (init.c) take them all. */
void pa_myheap_lock_all(void);
void pa_myheap_unlock_all(void);
/* Checks every heap and adds the segment-map slots of their chunks to
 * *slots, with pa_myheap_lock_all held. 0, or -1 after pa_verify_fail. */
int pa_myheap_verify_all(size_t *slots);
/* allocator_cleanup: unmaps every mapped heap and forgets the heaps in
 * caller buffers (their handles are refused from then on); only while
 * nothing else runs. */
void pa_myheap_release_all(void);
/* fork's child, which holds pa_myheap_lock_all: the tickets and claims of
 * the threads that are gone are voided, and the locks released. */
void pa_myheap_fork_child(void);

#endif /* PA_MYHEAP_H */
