/*
 * large.c - large blocks, each in a mapping of its own aligned to the
 * segment size. They are rare and each costs a system call anyway, so one
 * lock (taken only with concurrency enabled) guards their list; a free looks
 * the pointer up again under it, so two racing frees cannot both unmap.
 */
#include "large.h"

#include <errno.h>
#include <pthread.h>

#include "numa.h"
#include "os.h"
#include "segmap.h"

static pthread_mutex_t large_mutex = PTHREAD_MUTEX_INITIALIZER;
static large_t *large_list;
static large_stats_t large_totals;

void large_lock(void)
{
    if (pa_is_concurrent())
        pa_mutex_lock(&large_mutex);
}

void large_unlock(void)
{
    if (pa_is_concurrent())
        pa_mutex_unlock(&large_mutex);
}

static void *large_payload(large_t *l)
{
    return (char *)l + LARGE_PAYLOAD_OFFSET;
}

void *large_alloc(size_t size, pa_stats_t *charge)
{
    if (size > PA_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    size_t map_size = align_up(LARGE_PAYLOAD_OFFSET + size, PA_PAGE_SIZE);
    large_t *l = os_map_aligned(map_size, PA_SEGMENT_SIZE);
    if (!l) {
        errno = ENOMEM;
        return NULL;
    }
    os_bind_node(l, map_size, numa_current_node()); /* before its header is written */
    l->map_size = map_size;
    l->usable = map_size - LARGE_PAYLOAD_OFFSET;
    pa_canary_set(large_payload(l), l->usable); /* before verify can see the block */
    large_lock();
    if (!segmap_register((uintptr_t)l, map_size, (uintptr_t)l | SEGMAP_LARGE)) {
        large_unlock();
        os_unmap(l, map_size);
        errno = ENOMEM;
        return NULL;
    }
    l->prev = NULL;
    l->next = large_list;
    if (large_list)
        large_list->prev = l;
    large_list = l;
    large_totals.count++;
    large_totals.allocated += l->usable - PA_CANARY_SIZE;
    large_totals.mapped += map_size;
    if (large_totals.allocated > large_totals.peak)
        large_totals.peak = large_totals.allocated;
    if (charge)
        stats_add(charge, l->usable - PA_CANARY_SIZE);
    large_unlock();
    return large_payload(l);
}

/* The live large block whose payload is p; caller holds large_lock. */
static large_t *large_find(const void *p)
{
    uintptr_t entry = segmap_lookup(p);
    if (!(entry & SEGMAP_LARGE))
        return NULL;
    large_t *l = (large_t *)(entry & ~SEGMAP_LARGE);
    return large_payload(l) == p ? l : NULL;
}

int large_free(void *p, pa_stats_t *charge)
{
    large_lock();
    large_t *l = large_find(p);
    if (!l) {
        large_unlock();
        errno = EINVAL;
        return -1;
    }
    segmap_unregister((uintptr_t)l, l->map_size);
    if (l->prev)
        l->prev->next = l->next;
    else
        large_list = l->next;
    if (l->next)
        l->next->prev = l->prev;
    large_totals.count--;
    large_totals.allocated -= l->usable - PA_CANARY_SIZE;
    if (charge)
        stats_sub(charge, l->usable - PA_CANARY_SIZE);
    large_totals.mapped -= l->map_size;
    large_unlock();
    os_unmap(l, l->map_size);
    return 0;
}

size_t large_usable(void *p)
{
    large_lock();
    large_t *l = large_find(p);
    size_t usable = l ? l->usable : 0;
    large_unlock();
    return usable;
}

large_stats_t large_stats(void)
{
    return large_totals;
}

const large_t *large_first(void)
{
    return large_list;
}

void large_release_all(void)
{
    while (large_list) {
        large_t *l = large_list;
        large_list = l->next;
        pa_ann_discard((char *)l + LARGE_PAYLOAD_OFFSET);
        segmap_unregister((uintptr_t)l, l->map_size);
        os_unmap(l, l->map_size);
    }
    large_totals = (large_stats_t){0};
}

int large_verify(size_t *slots)
{
    size_t count = 0, usable = 0;
    for (const large_t *l = large_list; l; l = l->next) {
        const char *payload = (const char *)l + LARGE_PAYLOAD_OFFSET;
        if (segmap_lookup(payload) != ((uintptr_t)l | SEGMAP_LARGE))
            return verify_fail("large block %p is missing from the segment map",
                               (const void *)payload);
        if (!pa_canary_ok(payload, l->usable))
            return verify_fail("large block %p: canary overwritten", (const void *)payload);
        count++;
        usable += l->usable - PA_CANARY_SIZE;
        *slots += (l->map_size + PA_SEGMENT_SIZE - 1) / PA_SEGMENT_SIZE;
    }
    if (count != large_totals.count || usable != large_totals.allocated)
        return verify_fail("large blocks: %zu holding %zu bytes, statistics say %zu holding %zu",
                           count, usable, large_totals.count, large_totals.allocated);
    return 0;
}
