/* SPDX-License-Identifier: MIT */
/*
 * cache.c - the rare steps of a heap's cache of freed blocks (cache.h):
 * emptying it into the arena and the slabs, counting it, and checking it
 * for allocator_verify.
 */
#include "cache.h"

#include "heap.h"
#include "segmap.h"

void pa_cache_flush(heap_t *h)
{
    cache_t *c = &h->cache;
    for (unsigned k = 0; k < CACHE_BINS; k++) {
        block_t *b = c->bins[k];
        c->bins[k] = NULL;
        while (b) {
            block_t *next = PA_LINK_LOAD(b->next_free);
            pa_heap_give(h, b);
            b = next;
        }
    }
    c->bytes = 0;
    for (unsigned k = 0; k < CACHE_SLAB_CLASSES; k++) {
        void *p = c->slab_bins[k];
        c->slab_bins[k] = NULL;
        c->slab_bytes[k] = 0;
        while (p) {
            void *next = PA_LINK_LOAD(*(void **)p);
            slab_give(&h->slabs, slab_of(segment_of(p), p), p);
            p = next;
        }
    }
}

size_t pa_cache_count(const cache_t *c)
{
    size_t n = 0;
    for (unsigned k = 0; k < CACHE_BINS; k++)
        for (const block_t *b = c->bins[k]; b; b = PA_LINK_LOAD(b->next_free))
            n++;
    for (unsigned k = 0; k < CACHE_SLAB_CLASSES; k++)
        n += c->slab_bytes[k] / pa_slab_class_size[CACHE_SLAB_FIRST + k];
    return n;
}

/* One cached arena block: a used block of h's arena of class k, not
 * marked live. */
static bool cache_block_ok(const heap_t *h, const block_t *b, unsigned k)
{
    /* The map first: b may be any address if the cache is corrupt. */
    if (segmap_lookup(b) != (uintptr_t)h)
        return false;
    const segment_t *s = segment_of(b);
    const char *lo = (const char *)segment_first_block(s);
    const char *hi = (const char *)s + PA_SEGMENT_SIZE - BLOCK_HEADER_SIZE;
    if ((const char *)b < lo || (const char *)b >= hi || ((uintptr_t)b & (PA_GRANULE - 1)) ||
        s->arena != &h->arena || !pa_mem_readable(&b->size_flags, sizeof b->size_flags) ||
        block_size(b) < BLOCK_MIN_SIZE)
        return false;
    return !block_is_free(b) && cache_takes_class(k) && cache_class_of_block(block_size(b)) == k &&
           (const char *)block_next(b) <= hi && !segment_live_test(s, block_payload(b));
}

static int cache_verify_arena_blocks(const heap_t *h)
{
    const cache_t *c = &h->cache;
    size_t bytes = 0;
    for (unsigned k = 0; k < CACHE_BINS; k++) {
        for (const block_t *b = c->bins[k]; b; b = PA_LINK_LOAD(b->next_free)) {
            if (!cache_block_ok(h, b, k))
                return pa_verify_fail("cache holds %p, not a freed arena block of class %u",
                                   (const void *)b, k);
            bytes += block_size(b);
            if (bytes > c->bytes) /* also ends a loop in a list */
                return pa_verify_fail("cache holds more than its %zu bytes", c->bytes);
        }
    }
    if (bytes != c->bytes || bytes > CACHE_MAX_BYTES)
        return pa_verify_fail("cache holds %zu bytes of arena blocks, counts %zu", bytes, c->bytes);
    return 0;
}

/* One cached slab block: a block handed out by a slab of h's of class cls,
 * not marked live. */
static bool cache_slab_block_ok(const heap_t *h, const void *p, unsigned cls)
{
    if (segmap_lookup(p) != ((uintptr_t)h | SEGMAP_SLABS) || ((uintptr_t)p & (PA_GRANULE - 1)))
        return false;
    const segment_t *s = segment_of(p);
    if ((const char *)p < (const char *)s + SEGMENT_HEADER_SLABS * SLAB_SIZE)
        return false;
    const slab_t *sl = slab_of(s, p);
    return slab_holds_block(sl, p) && sl->cls == cls && !segment_live_test(s, p);
}

static int cache_verify_slab_blocks(const heap_t *h)
{
    const cache_t *c = &h->cache;
    for (unsigned k = 0; k < CACHE_SLAB_CLASSES; k++) {
        unsigned cls = CACHE_SLAB_FIRST + k;
        size_t bytes = 0;
        for (const void *p = c->slab_bins[k]; p; p = PA_LINK_LOAD(*(void *const *)p)) {
            if (!cache_slab_block_ok(h, p, cls))
                return pa_verify_fail("cache holds %p, not a freed slab block of class %u", p, cls);
            bytes += pa_slab_class_size[cls];
            if (bytes > c->slab_bytes[k]) /* also ends a loop in a list */
                return pa_verify_fail("cache holds more than its %zu bytes of class %u",
                                   c->slab_bytes[k], cls);
        }
        if (bytes != c->slab_bytes[k])
            return pa_verify_fail("cache holds %zu bytes of class %u, counts %zu", bytes, cls,
                               c->slab_bytes[k]);
    }
    return 0;
}

int pa_cache_verify(const heap_t *h)
{
    return cache_verify_arena_blocks(h) || cache_verify_slab_blocks(h) ? -1 : 0;
}
