/*
 * large.h - blocks too large for a heap segment: each gets a mapping of its
 * own, registered in the segment map so myfree validates it the same way.
 */
#ifndef PA_LARGE_H
#define PA_LARGE_H

#include "segment.h"
#include "stats.h"

/* A large block of size bytes; its usable bytes are also charged to charge
 * (NULL: none), under the large lock. */
void *large_alloc(size_t size, pa_stats_t *charge);
/* 0, or -1 with errno = EINVAL when p is not a live large block; a block
 * freed is uncharged from charge (NULL: none). */
int large_free(void *p, pa_stats_t *charge);
/* Usable size of the live large block p; 0 when p is not one. */
size_t large_usable(void *p);
void large_release_all(void);
void large_lock(void);
void large_unlock(void);

/* Accounting, read under large_lock (or at rest). */
typedef struct large_stats {
    size_t count, allocated, peak, mapped;
} large_stats_t;
large_stats_t large_stats(void);
/* Walks every large block for dump and verify; caller holds large_lock. */
const large_t *large_first(void);
/* Checks the list of large blocks against the segment map and the totals,
 * adding the segment-map slots they take to *slots; caller holds
 * large_lock. 0, or -1 after verify_fail. */
int large_verify(size_t *slots);

#endif /* PA_LARGE_H */
