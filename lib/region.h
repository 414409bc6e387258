/* SPDX-License-Identifier: MIT */
/*
 * region.h - a region: one contiguous piece of memory that holds its own
 * metadata (header, live map, free lists) and the blocks carved from the
 * rest, under one of three fits. The memory of a private heap (myheap.c):
 * a chunk the library mapped or a caller's buffer. A region makes no system
 * call, takes no lock and knows no other region; its owner serialises calls.
 *
 * Validation is exact and out of band, as in segments: the live map has a
 * mark per granule, set exactly at the payload of each live block, and lies
 * in the header, so a pointer is checked before anything at it is read.
 */
#ifndef PA_REGION_H
#define PA_REGION_H

#include "internal.h"

typedef struct region region_t;

typedef enum region_fit {
    REGION_FIT_GOOD, /* TLSF good fit: O(1); blocks rounded up to their bin's
                      * start, at most 1/16 more than asked */
    REGION_FIT_BEST, /* smallest free block that fits: O(free blocks) in the
                      * request's bin and the next non-empty one; not real-time */
    REGION_FIT_POW2  /* power-of-two classes, never split or merged: O(1),
                      * bounded by pa_region_pow2_bound */
} region_fit_t;

/* Called with whole pages (os_page_size()) inside a free block that nobody
 * will read before they are handed out again (the owner may give them back
 * to the OS): after a free (or a shrink) leaves a free block of at least
 * 64 KiB, with the pages that block did not have purged already; the
 * block's header and free-list links (its first 32 bytes) are never in
 * them. Also by pa_region_reset, for the whole area. */
typedef void (*region_purge_fn)(void *start, size_t size);

/* Lays a region over [base, base + size) (base aligned to PA_GRANULE; size
 * is rounded down to a multiple of it): its header first (about 4.4 KiB),
 * then the live map (size / 128 bytes), then one free area. NULL when size
 * is below pa_region_min_size() or its area would reach TLSF_MAX_BLOCK
 * (512 GiB), base is misaligned or fit unknown. purge NULL: pages are kept. */
region_t *pa_region_init(void *base, size_t size, region_fit_t fit, region_purge_fn purge);
size_t pa_region_min_size(void);
/* The largest request a fresh region of size bytes can serve, whatever
 * its fit (POW2's, the least of the three); 0 below the least size. */
size_t pa_region_max_request(size_t size);
/* The same for one fit. */
size_t pa_region_max_request_fit(region_fit_t fit, size_t size);
/* The least region size whose fresh region serves size bytes aligned to
 * align (a power of two; 0 or 1: the granule) under fit; 0 when none can. */
size_t pa_region_size_for(region_fit_t fit, size_t size, size_t align);

/* A block of at least size usable bytes (0 served as 1), aligned to
 * PA_GRANULE, or to align (a power of two) for the aligned form; NULL when
 * the region has no room (or size is beyond any region, or align is not a
 * power of two). GOOD and BEST take a free block with room for the payload
 * behind the worst-case gap (size + align + a granule) and give the gap
 * back. POW2 takes the class of max(size, 16) + align bytes and puts the
 * payload at the first aligned address in it, behind a second header that
 * names the class block: the live map and usable size work as for any
 * block, and the whole class block is freed. */
void *pa_region_alloc(region_t *r, size_t size);
void *pa_region_alloc_aligned(region_t *r, size_t align, size_t size);

/* Whether p lies in r's block area (any address, read nothing at p). */
bool pa_region_contains(const region_t *r, const void *p);
/* Usable bytes of p when p is a live block of r, else 0. */
size_t pa_region_usable(const region_t *r, const void *p);
/* Frees p, which pa_region_usable accepted; returns the usable bytes freed. */
size_t pa_region_free(region_t *r, void *p);
/* Grows or shrinks live block p in place to at least size usable bytes;
 * false (p untouched) when it cannot. POW2: true exactly when size fits
 * the block as it is (a class is a block's for life). */
bool pa_region_resize(region_t *r, void *p, size_t size);

/* Every block freed: the area is one free block again (POW2: untouched),
 * usage counts (peak included) zero. Time proportional to the region's size
 * (a memset of its live map, 1/128 of it), not to its blocks. */
void pa_region_reset(region_t *r);
bool pa_region_is_empty(const region_t *r);
/* Calls visit with the payload and usable size of every live block, in
 * address order, in time proportional to the live map plus the blocks
 * (for an owner whose memory checker must forget them before a reset). */
typedef void (*region_visit_fn)(void *p, size_t usable, void *ctx);
void pa_region_each_live(const region_t *r, region_visit_fn visit, void *ctx);

typedef struct region_usage {
    size_t allocated; /* usable bytes of live blocks */
    size_t peak;      /* highest allocated since init or reset */
    size_t freed;     /* usable bytes that free blocks can hand out (POW2: the
                       * untouched top counts as one block) */
    size_t blocks;    /* live blocks */
    size_t size;      /* bytes the region spans, header included */
} region_usage_t;
void pa_region_usage(const region_t *r, region_usage_t *u);

/* Checks header, live map, block chain, free lists and counts; 0, or -1
 * after pa_verify_fail naming what is wrong. */
int pa_region_verify(const region_t *r);

/* The region size in which a REGION_FIT_POW2 region never fails a request
 * for fragmentation while live requests total at most peak bytes and none
 * exceeds largest, each request counted as at least 16 bytes and an
 * aligned one as max(size, 16) + align - 16: the header and live map for
 * an area of 4 * max(peak, 16) * (K - 4) bytes plus the 16-byte sentinel,
 * K = ceil(log2(max(largest, 16) + 16)); 0 on overflow or beyond a
 * region's limit. The proof is in region.c. */
size_t pa_region_pow2_bound(size_t peak, size_t largest);

#endif /* PA_REGION_H */
