/* SPDX-License-Identifier: MIT */
/*
 * annotate.h - what memory checkers and the hardened build are told about
 * blocks: the few macros through which the library's own accesses to free
 * memory go, the annotations of the public calls, and the canaries.
 *
 * Built with --enable-valgrind, memcheck's client requests describe every
 * block from myalloc as a malloc'd block of the requested size; built with
 * -fsanitize=address, ASan's manual poisoning does the same. In both, free
 * memory (free slab blocks, carved or not, and the payloads of free TLSF
 * blocks) is off limits to the program, so the library opens the few bytes
 * it reads or writes there (free-list links, a split's new header,
 * hand-over links) around each access. Block headers of the TLSF arena are
 * the allocator's and stay open. With --enable-hardened every heap block
 * and large block ends in a canary of PA_CANARY_SIZE bytes, beyond what
 * myalloc_usable_size reports, checked on free, realloc and verify.
 *
 * In a default build all of it is empty or a plain load and store, so the
 * fast paths compile to the same code.
 */
#ifndef PA_ANNOTATE_H
#define PA_ANNOTATE_H

#include "internal.h"

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#if defined(__SANITIZE_ADDRESS__)
#define PA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PA_ASAN 1
#endif
#endif

#if defined(PA_VALGRIND) && PA_VALGRIND

#include <valgrind/memcheck.h>
#define PA_ANNOTATED 1
/* The allocator's own access to free memory: opened, then closed again. */
#define pa_mem_open(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#define pa_mem_close(p, n) ((void)VALGRIND_MAKE_MEM_NOACCESS((p), (n)))
/* Whether a verifier may read n bytes at p, an address a damaged link may
 * name: asked without memcheck reporting anything (3: not addressable). */
static inline bool pa_mem_readable(const void *p, size_t n)
{
    char vbits[16];
    return n > sizeof vbits || VALGRIND_GET_VBITS(p, vbits, n) != 3;
}
/* Memory the library gives back to the OS (nothing to forget: memcheck
 * follows munmap). */
#define pa_mem_forget(p, n) ((void)0)

/* Block p, of usable bytes in all, handed out for a request of req bytes
 * (zeroed: a fresh mapping). */
static inline void pa_ann_alloc(void *p, size_t req, size_t usable, bool zeroed)
{
    pa_mem_close((char *)p + req, usable - req);
    VALGRIND_MALLOCLIKE_BLOCK(p, req, 0, zeroed);
}

static inline void pa_ann_free(void *p, size_t usable)
{
    VALGRIND_FREELIKE_BLOCK(p, 0);
    pa_mem_close(p, usable);
}

/* Block p keeps its place while its request changes from old to req bytes. */
static inline void pa_ann_resize(void *p, size_t old, size_t req, size_t usable)
{
    if (req == 0) {
        VALGRIND_FREELIKE_BLOCK(p, 0);
        VALGRIND_MALLOCLIKE_BLOCK(p, 0, 0, 0);
    } else {
        VALGRIND_RESIZEINPLACE_BLOCK(p, old, req, 0);
    }
    /* Growing in place may have taken in a neighbour's header. */
    pa_mem_close((char *)p + req, usable - req);
}

/* Live block p goes with its memory (allocator_cleanup): memcheck must not
 * keep it, or a block handed out there later would overlap it. */
#define PA_ANN_TRACKS_BLOCKS 1
static inline void pa_ann_discard(const void *p)
{
    VALGRIND_FREELIKE_BLOCK(p, 0);
}

/* The request block p was handed out for: its addressable prefix, found by
 * asking memcheck about single bytes (which reports nothing). */
static inline size_t pa_ann_requested(const void *p, size_t usable)
{
    if (!RUNNING_ON_VALGRIND)
        return usable;
    size_t lo = 0, hi = usable; /* the first closed byte is in [lo, hi] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        char vbits;
        if (VALGRIND_GET_VBITS((const char *)p + mid, &vbits, 1) == 1)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

#elif defined(PA_ASAN)

#include <sanitizer/asan_interface.h>
#define PA_ANNOTATED 1
#define pa_mem_open(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define pa_mem_readable(p, n) (__asan_region_is_poisoned((void *)(uintptr_t)(p), (n)) == NULL)
#define pa_mem_close(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
/* Unmapped memory must not stay poisoned: the range may be mapped again by
 * anyone. */
#define pa_mem_forget(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))

/* Opens the request, then closes the rest: a partial last granule keeps
 * exactly the requested bytes. */
static inline void pa_ann_alloc(void *p, size_t req, size_t usable, bool zeroed)
{
    (void)zeroed;
    pa_mem_open(p, req);
    pa_mem_close((char *)p + req, usable - req);
}

static inline void pa_ann_free(void *p, size_t usable)
{
    pa_mem_close(p, usable);
}

static inline void pa_ann_resize(void *p, size_t old, size_t req, size_t usable)
{
    (void)old;
    pa_ann_alloc(p, req, usable, false);
}

static inline size_t pa_ann_requested(const void *p, size_t usable)
{
    const char *closed = __asan_region_is_poisoned((void *)(uintptr_t)p, usable);
    return closed ? (size_t)(closed - (const char *)p) : usable;
}

#else

#define pa_mem_open(p, n) ((void)0)
#define pa_mem_readable(p, n) true
#define pa_mem_close(p, n) ((void)0)
#define pa_mem_forget(p, n) ((void)0)

static inline void pa_ann_alloc(void *p, size_t req, size_t usable, bool zeroed)
{
    (void)p, (void)req, (void)usable, (void)zeroed;
}

static inline void pa_ann_free(void *p, size_t usable)
{
    (void)p, (void)usable;
}

static inline void pa_ann_resize(void *p, size_t old, size_t req, size_t usable)
{
    (void)p, (void)old, (void)req, (void)usable;
}

static inline size_t pa_ann_requested(const void *p, size_t usable)
{
    (void)p;
    return usable;
}

#endif

#ifndef PA_ANN_TRACKS_BLOCKS
#define PA_ANN_TRACKS_BLOCKS 0
static inline void pa_ann_discard(const void *p)
{
    (void)p;
}
#endif

/* The program asked for block p's usable size, visible bytes of usable in
 * all: it may now use them all, as a malloc'd block's usable size. */
static inline void pa_ann_widen(void *p, size_t visible, size_t usable)
{
    size_t req = pa_ann_requested(p, visible);
    if (req < visible)
        pa_ann_resize(p, req, visible, usable);
}

/* A pointer-sized link the allocator keeps in free memory (a slab block's
 * first word, a TLSF block's free-list links, a hand-over link). */
#ifdef PA_ANNOTATED
static inline void *pa_link_load(void *const *at)
{
    pa_mem_open(at, sizeof(void *));
    void *v = *at;
    pa_mem_close(at, sizeof(void *));
    return v;
}

static inline void pa_link_store(void **at, void *v)
{
    pa_mem_open(at, sizeof(void *));
    *at = v;
    pa_mem_close(at, sizeof(void *));
}
#define PA_LINK_LOAD(lv) pa_link_load((void *const *)&(lv))
#define PA_LINK_STORE(lv, v) pa_link_store((void **)&(lv), (void *)(v))
#else
#define PA_LINK_LOAD(lv) (lv)
#define PA_LINK_STORE(lv, v) ((void)((lv) = (v)))
#endif

/* ---- canaries (--enable-hardened) ------------------------------------ */

#if defined(PA_HARDENED) && PA_HARDENED
#define PA_GUARDED 1
#define PA_CANARY_SIZE ((size_t)8)

/* Tied to the block's address, so a canary copied from another block does
 * not pass. */
static inline uint64_t pa_canary_value(const void *p)
{
    return UINT64_C(0x5d1c4a7be3f0962d) ^ ((uint64_t)(uintptr_t)p * UINT64_C(0x9e3779b97f4a7c15));
}

/* The canary of block p with usable bytes in all (the last 8 its canary). */
static inline uint64_t *pa_canary_at(const void *p, size_t usable)
{
    return (uint64_t *)((uintptr_t)p + usable - PA_CANARY_SIZE);
}

static inline void pa_canary_set(void *p, size_t usable)
{
    uint64_t *at = pa_canary_at(p, usable);
    pa_mem_open(at, PA_CANARY_SIZE);
    *at = pa_canary_value(p);
    pa_mem_close(at, PA_CANARY_SIZE);
}

static inline bool pa_canary_ok(const void *p, size_t usable)
{
    const uint64_t *at = pa_canary_at(p, usable);
    pa_mem_open(at, PA_CANARY_SIZE);
    bool ok = *at == pa_canary_value(p);
    pa_mem_close(at, PA_CANARY_SIZE);
    return ok;
}
#else
#define PA_GUARDED 0
#define PA_CANARY_SIZE ((size_t)0)
/* A macro, so the default build does not even see its arguments. */
#define pa_canary_set(p, usable) ((void)0)

static inline bool pa_canary_ok(const void *p, size_t usable)
{
    (void)p;
    (void)usable;
    return true;
}
#endif

/* Whether the public calls go through the checked wrappers (alloc.c). */
#if defined(PA_ANNOTATED) || PA_GUARDED
#define PA_CHECKED 1
#endif

#endif /* PA_ANNOTATE_H */
