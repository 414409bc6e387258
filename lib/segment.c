/*
 * segment.c - acquiring and retiring segments.
 *
 * A segment's entry in the segment map names its owner (segmap.h), so
 * acquiring and retiring update it. A retired segment keeps its address
 * range and an entry (SEGMAP_POOLED) while its pages go back to the OS: a
 * free racing with the retirement can then still read the header and the
 * (zeroed) live map safely and is refused.
 * Retiring waits until no other thread is claiming a block of the segment
 * (segment_claim_t), so a free claims only from the owner it looked up.
 * Retired segments wait in a pool and are handed to the next heap that grows
 * before any new address space is mapped.
 */
#include "segment.h"

#include <pthread.h>
#include <sched.h>
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

/* Registered claim slots (heaps are never unmapped while others run). */
static segment_claim_t *claims;
static segment_claim_t heapless_claim;
static void (*claim_barrier)(void);
static bool retire_held;

void segment_claim_register(segment_claim_t *c)
{
    segment_claim_t *head = __atomic_load_n(&claims, __ATOMIC_RELAXED);
    do {
        c->next = head;
    } while (!__atomic_compare_exchange_n(&claims, &head, c, true, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
}

void segment_claim_forget_all(void)
{
    claims = NULL;
}

void segment_claim_set_barrier(void (*barrier)(void))
{
    claim_barrier = barrier;
}

segment_claim_t *segment_claim_heapless(void)
{
    segment_pool_lock();
    return &heapless_claim;
}

bool segment_may_retire(void)
{
    return !__atomic_load_n(&retire_held, __ATOMIC_RELAXED);
}

void segment_retire_hold(bool hold)
{
    __atomic_store_n(&retire_held, hold, __ATOMIC_RELAXED);
}

/* A claim in flight takes a few instructions and waits for nothing. */
static void segment_wait_unclaimed(const segment_t *s)
{
    if (claim_barrier)
        claim_barrier();
    for (segment_claim_t *c = __atomic_load_n(&claims, __ATOMIC_ACQUIRE); c; c = c->next)
        while (__atomic_load_n(&c->segment, __ATOMIC_SEQ_CST) == s)
            sched_yield();
    while (__atomic_load_n(&heapless_claim.segment, __ATOMIC_SEQ_CST) == s)
        sched_yield();
}

void segment_retire(segment_t *s)
{
    /* The entry first: a free that finds the owner gone and looks again
     * finds the entry changed too. */
    segmap_update((uintptr_t)s, PA_SEGMENT_SIZE, SEGMAP_POOLED);
    __atomic_store_n(&s->owner, NULL, __ATOMIC_SEQ_CST);
    segment_wait_unclaimed(s);
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

void segment_unmap(segment_t *s)
{
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
