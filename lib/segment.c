/* SPDX-License-Identifier: MIT */
/*
 * segment.c - acquiring, retiring and checking segments, and the address
 * space kept for reuse: the pool of retired segments and the cache of freed
 * large mappings. When the OS refuses a mapping, both are given back and
 * the mapping is tried once more.
 *
 * A segment's entry in the segment map names its owner (segmap.h), so
 * acquiring and retiring update it. A retired segment keeps its address
 * range and an entry (SEGMAP_POOLED) while its pages go back to the OS: a
 * free racing with the retirement can then still read the header and the
 * (zeroed) live map safely and is refused.
 * Retiring waits until no other thread is claiming a block of the segment
 * (segment_claim_t), so a free claims only from the owner it looked up.
 * Retired segments wait in a pool and are handed to the next heap that grows
 * before any new address space is mapped. The pool is bounded: beyond
 * SEGMENT_POOL_MAX the segment retired longest ago is unmapped (the oldest,
 * so that a stale free still in flight is least likely to meet it).
 *
 * A cached large mapping keeps its pages (reusing them is what makes it
 * cheaper than a fresh mapping) and has no entry in the segment map, so a
 * stale pointer into it is refused. The cache is bounded in count and bytes,
 * and a mapping unused for MAPPING_CACHE_DECAY_MS is unmapped by the next
 * large operation that looks at the clock.
 */
#include "segment.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "numa.h"
#include "os.h"
#include "segmap.h"

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static segment_t *pool_head, *pool_tail;
static size_t pool_size;

/* The cache of large mappings, guarded by pool_lock too (fork handlers
 * already take it); its count and bytes are also read without it. */
typedef struct cached_mapping {
    void *base;
    size_t size;
    uint64_t stamp; /* when it was cached, milliseconds */
} cached_mapping_t;

static cached_mapping_t cache[MAPPING_CACHE_SLOTS];
static size_t pa_cache_count, cache_bytes;

void pa_segment_pool_lock(void)
{
    pa_mutex_lock(&pool_lock);
}

void pa_segment_pool_unlock(void)
{
    pa_mutex_unlock(&pool_lock);
}

/* The pool is a list from the latest retired (head) to the oldest (tail). */
static void pool_unlink(segment_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        pool_head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        pool_tail = s->prev;
    pool_size--;
}

static segment_t *segment_pool_pop(void)
{
    pa_segment_pool_lock();
    segment_t *s = pool_head;
    if (s)
        pool_unlink(s);
    pa_segment_pool_unlock();
    return s;
}

/* Maps size bytes aligned to the segment size; when the OS refuses, gives
 * back the pool and the cache and tries once more. */
static void *segment_map_or_reclaim(size_t size, bool reserve_only)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        void *p = reserve_only ? pa_os_reserve_aligned(size, PA_SEGMENT_SIZE)
                               : pa_os_map_aligned(size, PA_SEGMENT_SIZE);
        if (p || !pa_segment_reclaim())
            return p;
    }
    return NULL;
}

void *pa_segment_map_large(size_t size)
{
    return segment_map_or_reclaim(size, false);
}

void *pa_segment_reserve_large(size_t size)
{
    return segment_map_or_reclaim(size, true);
}

static segment_t *segment_map_new(void)
{
    segment_t *s = segment_map_or_reclaim(PA_SEGMENT_SIZE, false);
    if (!s)
        return NULL;
    if (!pa_segmap_register((uintptr_t)s, PA_SEGMENT_SIZE, SEGMAP_POOLED)) {
        pa_os_unmap(s, PA_SEGMENT_SIZE);
        return NULL;
    }
    return s;
}

segment_t *pa_segment_acquire(struct heap *owner, struct arena *arena, int node)
{
    segment_t *s = segment_pool_pop();
    if (!s)
        s = segment_map_new();
    if (!s)
        return NULL;
    pa_os_bind_node(s, PA_SEGMENT_SIZE, node);
    s->next = s->prev = NULL;
    s->arena = arena;
    __atomic_store_n(&s->owner, owner, __ATOMIC_RELEASE);
    pa_segmap_update((uintptr_t)s, PA_SEGMENT_SIZE, (uintptr_t)owner | (arena ? 0 : SEGMAP_SLABS));
    pa_log("segment %p acquired", (void *)s);
    return s;
}

/* Registered claim slots (heaps are never unmapped while others run). */
static segment_claim_t *claims;
static segment_claim_t heapless_claim;
static void (*claim_barrier)(void);
static bool retire_held;

void pa_segment_claim_register(segment_claim_t *c)
{
    segment_claim_t *head = __atomic_load_n(&claims, __ATOMIC_RELAXED);
    do {
        c->next = head;
    } while (!__atomic_compare_exchange_n(&claims, &head, c, true, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
}

void pa_segment_claim_forget_all(void)
{
    claims = NULL;
}

void pa_segment_claim_set_barrier(void (*barrier)(void))
{
    claim_barrier = barrier;
}

segment_claim_t *pa_segment_claim_heapless(void)
{
    pa_segment_pool_lock();
    return &heapless_claim;
}

bool pa_segment_may_retire(void)
{
    return !__atomic_load_n(&retire_held, __ATOMIC_RELAXED);
}

void pa_segment_retire_hold(bool hold)
{
    __atomic_store_n(&retire_held, hold, __ATOMIC_RELAXED);
}

void pa_segment_claim_clear_all(void)
{
    for (segment_claim_t *c = __atomic_load_n(&claims, __ATOMIC_ACQUIRE); c; c = c->next)
        __atomic_store_n(&c->segment, NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&heapless_claim.segment, NULL, __ATOMIC_RELAXED);
}

/* A claim of a segment takes a few instructions and waits for nothing; one
 * of a private chunk lasts one operation under its heap's lock. */
void pa_segment_wait_unclaimed(const void *base)
{
    if (claim_barrier)
        claim_barrier();
    for (segment_claim_t *c = __atomic_load_n(&claims, __ATOMIC_ACQUIRE); c; c = c->next)
        while ((const void *)__atomic_load_n(&c->segment, __ATOMIC_SEQ_CST) == base)
            sched_yield();
    while ((const void *)__atomic_load_n(&heapless_claim.segment, __ATOMIC_SEQ_CST) == base)
        sched_yield();
}

void pa_segment_retire(segment_t *s)
{
    /* The entry first: a free that finds the owner gone and looks again
     * finds the entry changed too. */
    pa_segmap_update((uintptr_t)s, PA_SEGMENT_SIZE, SEGMAP_POOLED);
    __atomic_store_n(&s->owner, NULL, __ATOMIC_SEQ_CST);
    pa_segment_wait_unclaimed(s);
    /* The first page (owner field, start of the live map) stays; the rest
     * of the map reads as zeros once decommitted, so no mark survives. The
     * kernel's page, not PA_PAGE_SIZE: madvise needs an aligned start, and
     * a 64 KiB page still ends inside the 256 KiB live map. */
    size_t keep = os_page_size();
    pa_assert(keep - offsetof(segment_t, live) <= sizeof s->live);
    memset(&s->live, 0, keep - offsetof(segment_t, live));
    pa_os_decommit((char *)s + keep, PA_SEGMENT_SIZE - keep);
    segment_t *oldest = NULL;
    pa_segment_pool_lock();
    s->next = pool_head;
    s->prev = NULL;
    if (pool_head)
        pool_head->prev = s;
    else
        pool_tail = s;
    pool_head = s;
    if (++pool_size > SEGMENT_POOL_MAX) {
        oldest = pool_tail;
        pool_unlink(oldest);
    }
    pa_segment_pool_unlock();
    if (oldest)
        pa_segment_unmap(oldest);
    pa_log("segment %p retired", (void *)s);
}

/* A checker that tracks blocks (memcheck) is told the live blocks of a
 * segment unmapped whole are gone. */
static void segment_discard_live(const segment_t *s)
{
    for (size_t g = 0; g < SEGMENT_GRANULES; g++) {
        const char *p = (const char *)s + (g << PA_GRANULE_SHIFT);
        if (segment_live_test(s, p))
            pa_ann_discard(p);
    }
}

void pa_segment_unmap(segment_t *s)
{
    if (PA_ANN_TRACKS_BLOCKS)
        segment_discard_live(s);
    pa_segmap_unregister((uintptr_t)s, PA_SEGMENT_SIZE);
    pa_os_unmap(s, PA_SEGMENT_SIZE);
}

size_t pa_segment_pool_count(void)
{
    return pool_size;
}

/* ---- the cache of large mappings ---- */

uint64_t pa_segment_clock_ms(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* vDSO, no system call */
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Removes entry i, handing it to victims; caller holds pool_lock. */
static void cache_remove(size_t i, cached_mapping_t *victims, size_t *nvictims)
{
    if (victims)
        victims[(*nvictims)++] = cache[i];
    __atomic_store_n(&cache_bytes, cache_bytes - cache[i].size, __ATOMIC_RELAXED);
    __atomic_store_n(&pa_cache_count, pa_cache_count - 1, __ATOMIC_RELAXED);
    cache[i] = cache[pa_cache_count];
}

/* Moves the entries cached before cutoff to victims; caller holds pool_lock. */
static void cache_expire_locked(uint64_t cutoff, cached_mapping_t *victims, size_t *nvictims)
{
    for (size_t i = pa_cache_count; i-- > 0;)
        if (cache[i].stamp < cutoff)
            cache_remove(i, victims, nvictims);
}

static void cache_unmap(const cached_mapping_t *victims, size_t nvictims)
{
    for (size_t i = 0; i < nvictims; i++)
        pa_os_unmap(victims[i].base, victims[i].size);
}

static uint64_t cache_cutoff(uint64_t now)
{
    return now > MAPPING_CACHE_DECAY_MS ? now - MAPPING_CACHE_DECAY_MS : 0;
}

void pa_segment_cache_expire(uint64_t now)
{
    cached_mapping_t victims[MAPPING_CACHE_SLOTS];
    size_t nvictims = 0;
    pa_segment_pool_lock();
    cache_expire_locked(cache_cutoff(now), victims, &nvictims);
    pa_segment_pool_unlock();
    cache_unmap(victims, nvictims);
}

/* A cached mapping of size bytes about to serve a request of need bytes,
 * more than twice that: its surplus pages go back to the OS. The address
 * space stays, up to MAPPING_KEEP_FACTOR times need, so that the mapping,
 * freed again, still serves a request of its old size without an mremap;
 * the pages go with madvise, which unlike munmap leaves the other
 * threads' page faults running. Returns the size it keeps. */
static size_t cache_trim(void *base, size_t size, size_t need)
{
    size_t keep = need <= size / MAPPING_KEEP_FACTOR ? need * MAPPING_KEEP_FACTOR : size;
    if (keep < size)
        pa_os_unmap((char *)base + keep, size - keep);
    pa_os_decommit((char *)base + need, keep - need);
    return keep;
}

void *pa_segment_cache_take(size_t size, size_t *mapped)
{
    cached_mapping_t victims[MAPPING_CACHE_SLOTS], found = {0};
    size_t nvictims = 0;
    uint64_t now = pa_segment_clock_ms();
    pa_segment_pool_lock();
    cache_expire_locked(cache_cutoff(now), victims, &nvictims);
    size_t best = pa_cache_count, oldest = pa_cache_count;
    for (size_t i = 0; i < pa_cache_count; i++) {
        if (cache[i].size >= size && (best == pa_cache_count || cache[i].size < cache[best].size))
            best = i;
        if (oldest == pa_cache_count || cache[i].stamp < cache[oldest].stamp)
            oldest = i;
    }
    /* Only a cache at least half full grows a mapping: below that, a
     * fresh mapping is one more to reuse once its block is freed (a cache
     * that only grew would keep as few as the program left it). */
    bool full = pa_cache_count >= MAPPING_CACHE_SLOTS / 2 || cache_bytes >= MAPPING_CACHE_BYTES / 2;
    bool grow = best == pa_cache_count && oldest < pa_cache_count && full;
    if (grow)
        best = oldest;
    if (best < pa_cache_count) {
        found = cache[best];
        cache_remove(best, NULL, NULL);
    }
    pa_segment_pool_unlock();
    cache_unmap(victims, nvictims);
    /* None fits: the oldest, which a fresh mapping would push out once its
     * block is freed, grows in place instead, where the address space
     * after it is free (up to the next segment boundary it is, unless
     * another mapping took it). One mremap that unmaps nothing, where the
     * fresh mapping takes three calls and the eviction an munmap of pages
     * in use, which with several threads interrupts every CPU the process
     * runs on to flush their TLBs. */
    if (grow) {
        if (!pa_os_resize(found.base, found.size, size)) {
            pa_segment_cache_put(found.base, found.size);
            return NULL;
        }
        found.size = size;
    }
    /* A surplus of up to the request stays as it is, pages and all: the
     * madvise would cost more than the rest of a reuse. */
    if (found.base && found.size - size > size)
        found.size = cache_trim(found.base, found.size, size);
    *mapped = found.size;
    return found.base;
}

void pa_segment_cache_put(void *base, size_t size)
{
    if (size > MAPPING_CACHE_BYTES) {
        pa_os_unmap(base, size);
        return;
    }
    cached_mapping_t victims[MAPPING_CACHE_SLOTS];
    size_t nvictims = 0;
    uint64_t now = pa_segment_clock_ms();
    pa_segment_pool_lock();
    cache_expire_locked(cache_cutoff(now), victims, &nvictims);
    while (pa_cache_count == MAPPING_CACHE_SLOTS || cache_bytes + size > MAPPING_CACHE_BYTES) {
        size_t oldest = 0;
        for (size_t i = 1; i < pa_cache_count; i++)
            if (cache[i].stamp < cache[oldest].stamp)
                oldest = i;
        cache_remove(oldest, victims, &nvictims);
    }
    cache[pa_cache_count] = (cached_mapping_t){base, size, now};
    __atomic_store_n(&pa_cache_count, pa_cache_count + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&cache_bytes, cache_bytes + size, __ATOMIC_RELAXED);
    pa_segment_pool_unlock();
    cache_unmap(victims, nvictims);
}

/* Without the lock: statistics read it under pa_large_lock, which fork
 * handlers take after pool_lock. */
void pa_segment_cache_usage(size_t *count, size_t *bytes)
{
    *count = __atomic_load_n(&pa_cache_count, __ATOMIC_RELAXED);
    *bytes = __atomic_load_n(&cache_bytes, __ATOMIC_RELAXED);
}

/* Unmaps the pooled segments and cached mappings detached from the shared
 * state by the caller. */
static void release_detached(segment_t *pooled, cached_mapping_t *mappings, size_t nmappings)
{
    while (pooled) {
        segment_t *s = pooled;
        pooled = s->next;
        pa_segment_unmap(s);
    }
    cache_unmap(mappings, nmappings);
}

bool pa_segment_reclaim(void)
{
    cached_mapping_t victims[MAPPING_CACHE_SLOTS];
    size_t nvictims = 0;
    pa_segment_pool_lock();
    segment_t *pooled = pool_head;
    pool_head = pool_tail = NULL;
    pool_size = 0;
    while (pa_cache_count)
        cache_remove(pa_cache_count - 1, victims, &nvictims);
    pa_segment_pool_unlock();
    release_detached(pooled, victims, nvictims);
    return pooled || nvictims;
}

void pa_segment_pool_release_all(void)
{
    pa_segment_reclaim();
}

/* ---- verification ----------------------------------------------------- */

static size_t segment_live_population(const segment_t *s)
{
    size_t n = 0;
    /* A byte mark is 0 or 1 and a bit mark one bit, so either way a word's
     * population counts its marks. */
    for (size_t i = 0; i < SEGMENT_GRANULES / 8; i++)
        n += (size_t)__builtin_popcountll(__atomic_load_n(&s->live.word[i], __ATOMIC_RELAXED));
    return n;
}

int pa_segment_verify(const segment_t *s, const struct heap *owner, size_t live_blocks)
{
    if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) != owner)
        return pa_verify_fail("segment %p is listed by heap %p but owned by another",
                           (const void *)s, (const void *)owner);
    uintptr_t entry = (uintptr_t)owner | (segment_has_slabs(s) ? SEGMAP_SLABS : 0);
    if (segmap_lookup(s) != entry)
        return pa_verify_fail("segment %p is missing from the segment map", (const void *)s);
    /* Other threads may claim live marks (freeing blocks) while the owner
     * looks, never set them: with concurrency, fewer marks than live blocks
     * is a free in progress, more is an error. */
    size_t marks = segment_live_population(s);
    if (marks > live_blocks || (marks < live_blocks && !pa_is_concurrent()))
        return pa_verify_fail("segment %p: %zu live marks for %zu live blocks", (const void *)s,
                           marks, live_blocks);
    return 0;
}
