/*
 * segmap.h - the global segment map: answers "which live mapping of ours
 * holds this address?" in O(1) without touching the address itself.
 */
#ifndef PA_SEGMAP_H
#define PA_SEGMAP_H

#include "internal.h"

/* Entries carry the mapping's base; this tag marks a large (own) mapping. */
#define SEGMAP_LARGE ((uintptr_t)1)

/* Records that [base, base + size) is ours; base is segment-aligned.
 * Returns false when the map cannot grow (out of memory). */
bool segmap_register(uintptr_t base, size_t size, uintptr_t tag);
void segmap_unregister(uintptr_t base, size_t size);
/* The entry covering p: its base | tag, or 0 when p is not ours. */
uintptr_t segmap_lookup(const void *p);
/* Forgets every entry and returns the map's own pages to the OS. */
void segmap_reset(void);
/* Number of slots in use; for introspection. */
size_t segmap_count(void);

#endif /* PA_SEGMAP_H */
