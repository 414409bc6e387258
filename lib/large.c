/* SPDX-License-Identifier: MIT */
/*
 * large.c - large blocks, each in a mapping of its own aligned to the
 * segment size. One lock (taken only with concurrency enabled) guards their
 * list and their entries in the segment map; a free or a resize looks the
 * pointer up again under it and unpublishes the block before touching its
 * mapping, so two racing calls on one pointer cannot both act on it.
 *
 * A freed mapping goes to the cache of segment.c and serves a later request
 * of about its size without a system call or page faults; realloc resizes
 * a mapping with mremap, in place when the pages after it are free, else
 * onto a fresh aligned reservation, so the pages move but are not copied.
 */
#include "large.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "numa.h"
#include "os.h"
#include "segmap.h"

static pthread_mutex_t large_mutex = PTHREAD_MUTEX_INITIALIZER;
static large_t *large_list;
static large_stats_t large_totals;

void pa_large_lock(void)
{
    if (pa_is_concurrent())
        pa_mutex_lock(&large_mutex);
}

void pa_large_unlock(void)
{
    if (pa_is_concurrent())
        pa_mutex_unlock(&large_mutex);
}

/* Where the payload starts in l's mapping: LARGE_PAYLOAD_OFFSET, or an
 * aligned block's alignment. The usable bytes run to the mapping's end, so
 * the offset needs no field of its own. */
static size_t large_offset(const large_t *l)
{
    return l->map_size - l->usable;
}

static void *large_payload(large_t *l)
{
    return (char *)l + large_offset(l);
}

/* Bytes to map for a request of size bytes at offset (together at most
 * PA_MAX_REQUEST). */
static size_t large_map_size(size_t offset, size_t size)
{
    return align_up(offset + size, os_page_size());
}

static pa_noinline void *large_fail(int error)
{
    errno = error;
    return NULL;
}

/* Makes l, mapped with l->map_size bytes, a live block whose payload
 * starts offset bytes in: registered, listed and counted. Caller holds
 * pa_large_lock; false when the map cannot take it. */
static bool large_publish(large_t *l, size_t offset, pa_stats_t *charge)
{
    l->usable = l->map_size - offset;
    pa_canary_set(large_payload(l), l->usable); /* before verify can see the block */
    if (!pa_segmap_register((uintptr_t)l, l->map_size, (uintptr_t)l | SEGMAP_LARGE))
        return false;
    l->prev = NULL;
    l->next = large_list;
    if (large_list)
        large_list->prev = l;
    large_list = l;
    large_totals.count++;
    large_totals.allocated += l->usable - PA_CANARY_SIZE;
    large_totals.mapped += l->map_size;
    if (large_totals.allocated > large_totals.peak)
        large_totals.peak = large_totals.allocated;
    if (charge)
        stats_add(charge, l->usable - PA_CANARY_SIZE);
    return true;
}

/* The reverse: from here on no call finds l. Caller holds pa_large_lock. */
static void large_unpublish(large_t *l, pa_stats_t *charge)
{
    pa_segmap_unregister((uintptr_t)l, l->map_size);
    if (l->prev)
        l->prev->next = l->next;
    else
        large_list = l->next;
    if (l->next)
        l->next->prev = l->prev;
    large_totals.count--;
    large_totals.allocated -= l->usable - PA_CANARY_SIZE;
    large_totals.mapped -= l->map_size;
    if (charge)
        stats_sub(charge, l->usable - PA_CANARY_SIZE);
}

static bool large_publish_locked(large_t *l, size_t offset, pa_stats_t *charge)
{
    pa_large_lock();
    bool ok = large_publish(l, offset, charge);
    pa_large_unlock();
    return ok;
}

void *pa_large_alloc(size_t size, bool zero, pa_stats_t *charge)
{
    return pa_large_alloc_aligned(size, PA_GRANULE, zero, charge);
}

/* Cached and fresh mappings are aligned to the segment size; a larger
 * alignment gets a mapping of its own. */
static large_t *large_map(size_t need, size_t align, size_t *mapped, bool *reused)
{
    large_t *l = NULL;
    if (align <= PA_SEGMENT_SIZE)
        l = pa_segment_cache_take(need, mapped);
    *reused = l != NULL;
    if (l)
        return l;
    *mapped = need;
    if (align <= PA_SEGMENT_SIZE)
        return pa_segment_map_large(need);
    return pa_os_map_aligned(need, align);
}

void *pa_large_alloc_aligned(size_t size, size_t align, bool zero, pa_stats_t *charge)
{
    size_t offset = align > LARGE_PAYLOAD_OFFSET ? align : LARGE_PAYLOAD_OFFSET;
    if (offset > PA_MAX_REQUEST || size > PA_MAX_REQUEST - offset)
        return large_fail(ENOMEM);
    size_t need = large_map_size(offset, size), mapped;
    bool reused;
    large_t *l = large_map(need, align, &mapped, &reused);
    if (!l)
        return large_fail(ENOMEM);
    if (reused) {
        /* A reused mapping holds its last block's bytes, closed to the
         * memory checkers since its free. */
        pa_mem_open((char *)l + offset, mapped - offset);
        if (zero)
            memset((char *)l + offset, 0, size);
    } else {
        /* Before its header is written; a reused mapping keeps its pages
         * where they are. */
        pa_os_bind_node(l, mapped, pa_numa_current_node());
    }
    l->map_size = mapped;
    if (!large_publish_locked(l, offset, charge)) {
        pa_os_unmap(l, mapped);
        return large_fail(ENOMEM);
    }
    return large_payload(l);
}

/* The live large block whose payload is p; caller holds pa_large_lock. */
static large_t *large_find(const void *p)
{
    uintptr_t entry = segmap_lookup(p);
    if ((entry & SEGMAP_TAGS) != SEGMAP_LARGE) /* a private chunk carries both tags */
        return NULL;
    large_t *l = (large_t *)(entry & ~SEGMAP_LARGE);
    return large_payload(l) == p ? l : NULL;
}

/* Finds the live block p and unpublishes it, so that the caller alone
 * owns its mapping; NULL when p is not one. */
static large_t *large_claim(const void *p, pa_stats_t *charge)
{
    pa_large_lock();
    large_t *l = large_find(p);
    if (l)
        large_unpublish(l, charge);
    pa_large_unlock();
    return l;
}

int pa_large_free(void *p, pa_stats_t *charge)
{
    large_t *l = large_claim(p, charge);
    if (!l) {
        errno = EINVAL;
        return -1;
    }
    pa_segment_cache_put(l, l->map_size);
    return 0;
}

size_t pa_large_usable(void *p)
{
    pa_large_lock();
    large_t *l = large_find(p);
    size_t usable = l ? l->usable : 0;
    pa_large_unlock();
    return usable;
}

/* Grows l's mapping to need bytes where it lies, or moves it onto a fresh
 * reservation with room to grow by half again in place. Returns the
 * mapping's new base, or NULL (l untouched) when the OS refuses. */
static large_t *large_grow(large_t *l, size_t need)
{
    size_t old = l->map_size;
    if (pa_segmap_covers((uintptr_t)l, need) && pa_os_resize(l, old, need))
        return l;
    size_t reserve = need + (need / 2 & ~(os_page_size() - 1));
    if (reserve < need || reserve > PA_MAX_REQUEST)
        reserve = need;
    char *dest = pa_segment_reserve_large(reserve);
    if (!dest)
        return NULL;
    if (!pa_segmap_covers((uintptr_t)dest, need) || !pa_os_move(l, old, need, dest)) {
        pa_os_unmap(dest, reserve);
        return NULL;
    }
    /* The rest of the reservation becomes a hole that in-place growth uses. */
    if (reserve > need)
        pa_os_unmap(dest + need, reserve - need);
    return (large_t *)dest;
}

/* Resizes the mapping of l, claimed by the caller, to need bytes; its new
 * base, or NULL (l untouched) when the OS refuses to grow it. */
static large_t *large_remap(large_t *l, size_t need)
{
    if (need > l->map_size) {
        large_t *moved = large_grow(l, need);
        if (moved)
            moved->map_size = need;
        return moved;
    }
    /* A failed shrink keeps the larger mapping, which still fits. */
    if (pa_os_resize(l, l->map_size, need))
        l->map_size = need;
    return l;
}

void *pa_large_resize(void *p, size_t size, pa_stats_t *charge)
{
    pa_large_lock();
    large_t *l = large_find(p);
    if (!l) {
        pa_large_unlock();
        return large_fail(EINVAL);
    }
    /* An aligned block keeps its payload's offset: the pages may move,
     * the bytes stay where they are in them. */
    size_t offset = large_offset(l);
    if (size > PA_MAX_REQUEST - offset) {
        pa_large_unlock();
        return large_fail(ENOMEM);
    }
    size_t need = large_map_size(offset, size);
    if (need == l->map_size) {
        pa_large_unlock(); /* the same pages: nothing to do */
        return p;
    }
    large_unpublish(l, charge);
    pa_large_unlock();
    large_t *moved = large_remap(l, need);
    large_t *live = moved ? moved : l;
    /* The ranges were checked, and the table exists: this cannot fail. */
    bool published = large_publish_locked(live, offset, charge);
    pa_assert(published);
    (void)published;
    return moved ? large_payload(moved) : large_fail(ENOMEM);
}

large_stats_t pa_large_stats(void)
{
    large_stats_t totals = large_totals;
    pa_segment_cache_usage(&totals.cached_count, &totals.cached);
    return totals;
}

const large_t *pa_large_first(void)
{
    return large_list;
}

void pa_large_release_all(void)
{
    while (large_list) {
        large_t *l = large_list;
        large_list = l->next;
        pa_ann_discard((char *)l + large_offset(l));
        pa_segmap_unregister((uintptr_t)l, l->map_size);
        pa_os_unmap(l, l->map_size);
    }
    large_totals = (large_stats_t){0};
}

int pa_large_verify(size_t *slots)
{
    size_t count = 0, usable = 0;
    for (const large_t *l = large_list; l; l = l->next) {
        const char *payload = (const char *)l + large_offset(l);
        if (segmap_lookup(payload) != ((uintptr_t)l | SEGMAP_LARGE))
            return pa_verify_fail("large block %p is missing from the segment map",
                               (const void *)payload);
        if (!pa_canary_ok(payload, l->usable))
            return pa_verify_fail("large block %p: canary overwritten", (const void *)payload);
        count++;
        usable += l->usable - PA_CANARY_SIZE;
        *slots += (l->map_size + PA_SEGMENT_SIZE - 1) / PA_SEGMENT_SIZE;
    }
    if (count != large_totals.count || usable != large_totals.allocated)
        return pa_verify_fail("large blocks: %zu holding %zu bytes, statistics say %zu holding %zu",
                           count, usable, large_totals.count, large_totals.allocated);
    size_t cached_count, cached;
    pa_segment_cache_usage(&cached_count, &cached);
    if (cached_count > MAPPING_CACHE_SLOTS || cached > MAPPING_CACHE_BYTES)
        return pa_verify_fail("mapping cache: %zu mappings of %zu bytes, above its bounds",
                           cached_count, cached);
    return 0;
}
