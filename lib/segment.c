/*
 * segment.c - acquiring and retiring segments.
 *
 * A segment's entry in the segment map names its owner (segmap.h), so
 * acquiring and retiring update it. A retired segment keeps its address
 * range and an entry (SEGMAP_POOLED) while its pages go back to the OS: a
 * free racing with the retirement can then still read the header and the
 * (zeroed) live map safely and is refused.
 * Retired segments wait in a pool and are handed to the next heap that grows
 * before any new address space is mapped.
 */
#include "segment.h"

#include <pthread.h>
#include <string.h>

#include "numa.h"
#include "os.h"
#include "segmap.h"

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static segment_t *pool_head;
static size_t pool_size;

void segment_pool_lock(void)
{
    pa_mutex_lock(&pool_lock);
}

void segment_pool_unlock(void)
{
    pa_mutex_unlock(&pool_lock);
}

static segment_t *segment_pool_pop(void)
{
    segment_pool_lock();
    segment_t *s = pool_head;
    if (s) {
        pool_head = s->next;
        pool_size--;
    }
    segment_pool_unlock();
    return s;
}

static segment_t *segment_map_new(void)
{
    segment_t *s = os_map_aligned(PA_SEGMENT_SIZE, PA_SEGMENT_SIZE);
    if (!s)
        return NULL;
    if (!segmap_register((uintptr_t)s, PA_SEGMENT_SIZE, SEGMAP_POOLED)) {
        os_unmap(s, PA_SEGMENT_SIZE);
        return NULL;
    }
    return s;
}

segment_t *segment_acquire(struct heap *owner, struct arena *arena, int node)
{
    segment_t *s = segment_pool_pop();
    if (!s)
        s = segment_map_new();
    if (!s)
        return NULL;
    os_bind_node(s, PA_SEGMENT_SIZE, node);
    s->next = s->prev = NULL;
    s->arena = arena;
    __atomic_store_n(&s->owner, owner, __ATOMIC_RELEASE);
    segmap_update((uintptr_t)s, PA_SEGMENT_SIZE, (uintptr_t)owner | (arena ? 0 : SEGMAP_SLABS));
    pa_log("segment %p acquired", (void *)s);
    return s;
}

void segment_retire(segment_t *s)
{
    segmap_update((uintptr_t)s, PA_SEGMENT_SIZE, SEGMAP_POOLED);
    __atomic_store_n(&s->owner, NULL, __ATOMIC_RELEASE);
    /* The first page (owner field, start of the live map) stays; the rest
     * of the map reads as zeros once decommitted, so no mark survives. */
    memset(&s->live, 0, PA_PAGE_SIZE - offsetof(segment_t, live));
    os_decommit((char *)s + PA_PAGE_SIZE, PA_SEGMENT_SIZE - PA_PAGE_SIZE);
    segment_pool_lock();
    s->next = pool_head;
    s->prev = NULL;
    pool_head = s;
    pool_size++;
    segment_pool_unlock();
    pa_log("segment %p retired", (void *)s);
}

/* A checker that tracks blocks (memcheck) is told the live blocks of a
 * segment unmapped whole are gone. */
static void segment_discard_live(const segment_t *s)
{
    for (size_t g = 0; g < SEGMENT_GRANULES; g++)
        if (s->live.mark[g])
            pa_ann_discard((const char *)s + (g << PA_GRANULE_SHIFT));
}

void segment_unmap(segment_t *s)
{
    if (PA_ANN_TRACKS_BLOCKS)
        segment_discard_live(s);
    segmap_unregister((uintptr_t)s, PA_SEGMENT_SIZE);
    os_unmap(s, PA_SEGMENT_SIZE);
}

void segment_pool_release_all(void)
{
    while (pool_head) {
        segment_t *s = pool_head;
        pool_head = s->next;
        segment_unmap(s);
    }
    pool_size = 0;
}

size_t segment_pool_count(void)
{
    return pool_size;
}

/* ---- verification ----------------------------------------------------- */

static size_t segment_live_population(const segment_t *s)
{
    size_t n = 0;
    /* A mark is 0 or 1, so a word's population counts its marks. */
    for (size_t i = 0; i < SEGMENT_GRANULES / 8; i++)
        n += (size_t)__builtin_popcountll(__atomic_load_n(&s->live.word[i], __ATOMIC_RELAXED));
    return n;
}

int segment_verify(const segment_t *s, const struct heap *owner, size_t live_blocks)
{
    if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) != owner)
        return verify_fail("segment %p is listed by heap %p but owned by another",
                           (const void *)s, (const void *)owner);
    uintptr_t entry = (uintptr_t)owner | (segment_has_slabs(s) ? SEGMAP_SLABS : 0);
    if (segmap_lookup(s) != entry)
        return verify_fail("segment %p is missing from the segment map", (const void *)s);
    /* Other threads may claim live marks (freeing blocks) while the owner
     * looks, never set them: with concurrency, fewer marks than live blocks
     * is a free in progress, more is an error. */
    size_t marks = segment_live_population(s);
    if (marks > live_blocks || (marks < live_blocks && !pa_is_concurrent()))
        return verify_fail("segment %p: %zu live marks for %zu live blocks", (const void *)s,
                           marks, live_blocks);
    return 0;
}
