/* SPDX-License-Identifier: MIT */
/*
 * large.h - blocks too large for a heap segment: each gets a mapping of its
 * own, registered in the segment map so myfree validates it the same way.
 * A freed mapping is kept for reuse a while (segment.c's cache), and a
 * resized one is remapped rather than copied.
 */
#ifndef PA_LARGE_H
#define PA_LARGE_H

#include "segment.h"
#include "stats.h"

/* A live large block of at least size bytes, zeroed when zero is set; its
 * usable bytes are also charged to charge (NULL: none), under the large
 * lock. NULL with errno = ENOMEM when the OS refuses. */
void *pa_large_alloc(size_t size, bool zero, pa_stats_t *charge);
/* As pa_large_alloc, for a payload that is a multiple of align, a power of
 * two: it starts align bytes into a mapping aligned to the larger of align
 * and the segment size. */
void *pa_large_alloc_aligned(size_t size, size_t align, bool zero, pa_stats_t *charge);
/* 0, or -1 with errno = EINVAL when p is not a live large block; a block
 * freed is uncharged from charge (NULL: none), and told to the memory
 * checkers as freed. 1 (hardened) when its canary is overwritten: the
 * block stays live, out of use. */
int pa_large_free(void *p, pa_stats_t *charge);
/* Usable size of the live large block p; 0 when p is not one. */
size_t pa_large_usable(void *p);
/* Resizes the live large block p to hold size bytes (more than
 * PA_LARGE_THRESHOLD) without copying: in place where it can, else by moving
 * its pages; the change of its usable bytes is charged to charge (NULL:
 * none). The block's new address, or NULL with errno = EINVAL (p is not a
 * live large block) or ENOMEM (p untouched). */
void *pa_large_resize(void *p, size_t size, pa_stats_t *charge);
void pa_large_release_all(void);
void pa_large_lock(void);
void pa_large_unlock(void);

/* Accounting, read under pa_large_lock (or at rest). */
typedef struct pa_large_stats {
    size_t count, allocated, peak, mapped;
    size_t cached_count, cached; /* freed mappings kept for reuse, bytes */
} large_stats_t;
large_stats_t pa_large_stats(void);
/* Walks every large block for dump and verify; caller holds pa_large_lock. */
const large_t *pa_large_first(void);
/* Checks the list of large blocks against the segment map and the totals,
 * and the cache against its bounds, adding the segment-map slots the
 * blocks take to *slots; caller holds pa_large_lock. 0, or -1 after
 * pa_verify_fail. */
int pa_large_verify(size_t *slots);

#endif /* PA_LARGE_H */
