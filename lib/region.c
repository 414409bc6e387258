/* SPDX-License-Identifier: MIT */
/*
 * region.c - regions (region.h): the layout of one contiguous piece of
 * memory and the three fits that carve blocks from it.
 *
 * Layout: [region_t header | live map | block area ... sentinel]. The live
 * map has one bit per granule of the block area, set exactly at the payload
 * of each live block, so a pointer is judged by the header alone before
 * anything at it is read. Every block carries the usual block_t header
 * (block.h), so sizes, resizing and verification read the same way as in
 * an arena, and the area ends in a zero-sized used sentinel.
 *
 * GOOD and BEST keep their free blocks in a TLSF control (tlsf.c) whose
 * first level is widened to TLSF_MAX_BLOCK; GOOD takes the first list that
 * is sure to fit (O(1)), BEST the smallest block that fits (a walk of at
 * most two lists). POW2 blocks are powers of two, never split or merged:
 * a class's free list, else a bump from the untouched top of the area.
 *
 * A region takes no lock and makes no system call: its owner serialises
 * the calls, and gives pages back (the purge callback) if it wants to.
 */
#include "region.h"

#include <string.h>

#include "block.h"
#include "os.h"
#include "tlsf.h"

#define REGION_MAGIC UINT64_C(0x31216e6f69676572) /* "region!1" */
/* A POW2 block of class k is 2^k bytes; the least holds a header and a
 * granule of payload. */
#define POW2_MIN_CLASS 5u
#define POW2_CLASSES 64u
/* Free blocks at least this large have their inner pages purged; smaller
 * frees stay cheap. */
#define REGION_PURGE_MIN ((size_t)64 << 10)
/* The bytes at the start of a free block that stay readable: its header
 * and its free-list links. */
#define FREE_BLOCK_KEEP ((size_t)sizeof(block_t))

/* One live-map word covers 64 granules. */
#define MAP_WORD_BITS 64u
#define MAP_WORD_SPAN ((size_t)MAP_WORD_BITS << PA_GRANULE_SHIFT)

typedef struct region_pow2 {
    block_t *lists[POW2_CLASSES]; /* free blocks by class, linked by next_free */
    char *top;                    /* untouched from here to the sentinel */
    size_t free_bytes;            /* listed blocks, headers included */
    size_t free_blocks;
} region_pow2_t;

struct region {
    uint64_t magic;
    region_fit_t fit;
    region_purge_fn purge;
    size_t page;      /* the unit purge is called with */
    size_t size;      /* bytes spanned, header included */
    char *area;       /* the first block */
    size_t area_size; /* sentinel included */
    block_t *sentinel;
    size_t map_words;
    size_t allocated, peak, blocks;
    union {
        tlsf_t tlsf;
        region_pow2_t pow2;
    } u;
    uint64_t live[]; /* map_words words, then the area */
};

#define REGION_HEAD_SIZE align_up(sizeof(region_t), PA_GRANULE)

/* ---- layout ----------------------------------------------------------- */

typedef struct region_layout {
    size_t map_words;
    size_t area_offset;
    size_t area_size;
} region_layout_t;

/* Splits size bytes into header, map and area; false when no block fits. */
static bool region_layout(size_t size, region_layout_t *l)
{
    size = size & ~(PA_GRANULE - 1);
    if (size < REGION_HEAD_SIZE)
        return false;
    size_t avail = size - REGION_HEAD_SIZE;
    /* Each map word costs 8 bytes and covers MAP_WORD_SPAN; taking
     * ceil(avail / (span + 8)) words leaves an area the map covers. */
    size_t words = avail / (MAP_WORD_SPAN + 8) + 1;
    size_t map = align_up(words * sizeof(uint64_t), PA_GRANULE);
    if (avail < map + BLOCK_MIN_SIZE + BLOCK_HEADER_SIZE)
        return false;
    l->map_words = words;
    l->area_offset = REGION_HEAD_SIZE + map;
    l->area_size = avail - map;
    /* The one free block of a fresh region must have a TLSF bin. */
    return l->area_size - BLOCK_HEADER_SIZE < TLSF_MAX_BLOCK;
}

/* The least region size whose area holds area bytes (sentinel included);
 * 0 when none can. */
static size_t region_size_for_area(size_t area)
{
    if (area >= TLSF_MAX_BLOCK)
        return 0;
    area = align_up(area, PA_GRANULE);
    size_t words = (area + MAP_WORD_SPAN - 1) / MAP_WORD_SPAN;
    size_t size = REGION_HEAD_SIZE + align_up(words * sizeof(uint64_t), PA_GRANULE) + area;
    /* Rounding the map may cost a granule either way: a few steps settle
     * it, unless the area is past what a region may hold. */
    region_layout_t l;
    for (unsigned step = 0; step < 4; step++, size += PA_GRANULE)
        if (region_layout(size, &l) && l.area_size >= area)
            return size;
    return 0;
}

size_t pa_region_min_size(void)
{
    return region_size_for_area(BLOCK_MIN_SIZE + BLOCK_HEADER_SIZE);
}

/* ---- live map --------------------------------------------------------- */

static inline size_t live_index(const region_t *r, const void *p)
{
    return (size_t)((const char *)p - r->area) >> PA_GRANULE_SHIFT;
}

static inline bool live_test(const region_t *r, size_t i)
{
    return (r->live[i / MAP_WORD_BITS] >> (i % MAP_WORD_BITS)) & 1;
}

static inline void live_set(region_t *r, size_t i)
{
    r->live[i / MAP_WORD_BITS] |= UINT64_C(1) << (i % MAP_WORD_BITS);
}

static inline void live_clear(region_t *r, size_t i)
{
    r->live[i / MAP_WORD_BITS] &= ~(UINT64_C(1) << (i % MAP_WORD_BITS));
}

/* The bits of word w that lie in [lo, hi). */
static inline uint64_t live_word_in(const region_t *r, size_t w, size_t lo, size_t hi)
{
    uint64_t word = r->live[w];
    if (w == lo / MAP_WORD_BITS)
        word &= ~UINT64_C(0) << (lo % MAP_WORD_BITS);
    if (w == hi / MAP_WORD_BITS)
        word &= (UINT64_C(1) << (hi % MAP_WORD_BITS)) - 1;
    return word;
}

/* Marks in [lo, hi). */
static size_t live_count(const region_t *r, size_t lo, size_t hi)
{
    size_t n = 0;
    for (size_t w = lo / MAP_WORD_BITS; lo < hi && w <= (hi - 1) / MAP_WORD_BITS; w++)
        n += (size_t)__builtin_popcountll(live_word_in(r, w, lo, hi));
    return n;
}

/* The first mark in [lo, hi), or hi. */
static size_t live_first(const region_t *r, size_t lo, size_t hi)
{
    for (size_t w = lo / MAP_WORD_BITS; lo < hi && w <= (hi - 1) / MAP_WORD_BITS; w++) {
        uint64_t word = live_word_in(r, w, lo, hi);
        if (word)
            return w * MAP_WORD_BITS + (size_t)__builtin_ctzll(word);
    }
    return hi;
}

/* ---- purging ---------------------------------------------------------- */

/* Free block m (at least REGION_PURGE_MIN) was just made or grown; the
 * part of it in [lo, hi) is new to it (the rest was purged before). The
 * whole pages of that part behind m's header and links go to purge. */
static void region_purge_fresh(const region_t *r, const block_t *m, const char *lo, const char *hi)
{
    uintptr_t inner = (uintptr_t)m + FREE_BLOCK_KEEP, end = (uintptr_t)block_next(m);
    uintptr_t from = align_down_ptr((uintptr_t)lo, r->page);
    uintptr_t to = align_up((uintptr_t)hi, r->page);
    if (from < align_up(inner, r->page))
        from = align_up(inner, r->page);
    if (to > align_down_ptr(end, r->page))
        to = align_down_ptr(end, r->page);
    if (from < to)
        r->purge((void *)from, to - from);
}

/* Whether b is free and large enough that its pages were purged. */
static inline bool block_purged(const block_t *b)
{
    return block_is_free(b) && block_size(b) >= REGION_PURGE_MIN;
}

/* ---- block sizes ------------------------------------------------------ */

/* The block that serves n bytes by exact fit: header plus whole granules;
 * 0 when n is beyond any region. */
static size_t best_block_size(size_t n)
{
    if (n >= TLSF_MAX_BLOCK)
        return 0;
    size_t size = align_up(n ? n : 1, PA_GRANULE) + BLOCK_HEADER_SIZE;
    return size < BLOCK_MIN_SIZE ? BLOCK_MIN_SIZE : size;
}

/* size rounded up to the start of its TLSF bin. */
static size_t good_round(size_t size)
{
    if (size >= TLSF_SMALL_LIMIT) {
        size_t step = ((size_t)1 << (bit_highest(size) - TLSF_SL_SHIFT)) - 1;
        size = (size + step) & ~step;
    }
    return size;
}

/* size rounded down to the start of its TLSF bin. */
static size_t good_round_down(size_t size)
{
    if (size >= TLSF_SMALL_LIMIT)
        size &= ~(((size_t)1 << (bit_highest(size) - TLSF_SL_SHIFT)) - 1);
    return size;
}

/* As for arenas: a block rounded to the start of a bin, so the search of
 * that bin finds it in O(1) and a freed block is found again by a request
 * of its own size. */
static size_t good_block_size(size_t n)
{
    size_t size = best_block_size(n);
    return size ? good_round(size) : 0;
}

/* The POW2 class of a block of need bytes (header included). */
static inline unsigned pow2_class(size_t need)
{
    return need <= ((size_t)1 << POW2_MIN_CLASS) ? POW2_MIN_CLASS : bit_highest(need - 1) + 1;
}

/* The bytes a POW2 block needs for n bytes aligned to align (at least a
 * granule): the payload may start up to align - PA_GRANULE bytes behind
 * the header. */
static inline size_t pow2_need(size_t n, size_t align)
{
    return align_up(n < PA_GRANULE ? PA_GRANULE : n, PA_GRANULE) + align;
}

/* ---- init and reset --------------------------------------------------- */

static void region_lay_out(region_t *r)
{
    memset(r->live, 0, r->map_words * sizeof(uint64_t));
    r->allocated = r->peak = r->blocks = 0;
    if (r->fit == REGION_FIT_POW2) {
        memset(&r->u.pow2, 0, sizeof r->u.pow2);
        r->u.pow2.top = r->area;
        r->sentinel->prev_phys = NULL;
        r->sentinel->size_flags = 0;
    } else {
        /* Every block is smaller than the area: a hardened build trusts no
         * larger size it reads. */
        pa_tlsf_init_limit(&r->u.tlsf, r->area_size);
        pa_tlsf_add_area(&r->u.tlsf, r->area, r->area_size);
    }
}

region_t *pa_region_init(void *base, size_t size, region_fit_t fit, region_purge_fn purge)
{
    region_layout_t l;
    if (!base || ((uintptr_t)base & (PA_GRANULE - 1)) || !region_layout(size, &l) ||
        (fit != REGION_FIT_GOOD && fit != REGION_FIT_BEST && fit != REGION_FIT_POW2))
        return NULL;
    region_t *r = base;
    memset(r, 0, sizeof *r);
    r->magic = REGION_MAGIC;
    r->fit = fit;
    r->purge = purge;
    /* Only an owner that passes purge gives pages to the OS. */
    r->page = purge ? os_page_size() : PA_PAGE_SIZE;
    r->size = size & ~(PA_GRANULE - 1);
    r->area = (char *)base + l.area_offset;
    r->area_size = l.area_size;
    r->sentinel = (block_t *)(r->area + l.area_size - BLOCK_HEADER_SIZE);
    r->map_words = l.map_words;
    region_lay_out(r);
    return r;
}

void pa_region_reset(region_t *r)
{
    region_lay_out(r);
    if (r->purge && r->area_size >= REGION_PURGE_MIN) {
        /* The whole area is one free block (POW2: untouched): its pages
         * are purged as a merge would purge them. */
        const block_t *whole = (const block_t *)r->area;
        uintptr_t from = align_up((uintptr_t)whole + FREE_BLOCK_KEEP, r->page);
        uintptr_t to = align_down_ptr((uintptr_t)r->sentinel, r->page);
        if (from < to)
            r->purge((void *)from, to - from);
    }
}

/* ---- the fits' requirements ------------------------------------------- */

/* The free block a fresh region needs to serve n bytes aligned to align
 * (a power of two) under fit; 0 when none can. */
static size_t region_block_needed(region_fit_t fit, size_t n, size_t align)
{
    if (n >= TLSF_MAX_BLOCK || align >= TLSF_MAX_BLOCK)
        return 0;
    if (align < PA_GRANULE)
        align = PA_GRANULE;
    switch (fit) {
    case REGION_FIT_GOOD: {
        size_t size = good_block_size(n);
        /* pa_tlsf_take_aligned searches for room for the widest gap. */
        return align > PA_GRANULE ? good_round(size + align + PA_GRANULE) : size;
    }
    case REGION_FIT_BEST: {
        size_t size = best_block_size(n);
        return align > PA_GRANULE ? size + align + PA_GRANULE : size;
    }
    default:
        return (size_t)1 << pow2_class(pow2_need(n, align));
    }
}

size_t pa_region_size_for(region_fit_t fit, size_t size, size_t align)
{
    size_t block = region_block_needed(fit, size, align);
    return block ? region_size_for_area(block + BLOCK_HEADER_SIZE) : 0;
}

size_t pa_region_max_request_fit(region_fit_t fit, size_t size)
{
    region_layout_t l;
    if (!region_layout(size, &l))
        return 0;
    size_t whole = l.area_size - BLOCK_HEADER_SIZE; /* the one free block */
    switch (fit) {
    case REGION_FIT_GOOD:
        return good_round_down(whole) - BLOCK_HEADER_SIZE;
    case REGION_FIT_BEST:
        return whole - BLOCK_HEADER_SIZE;
    default:
        return ((size_t)1 << bit_highest(whole)) - BLOCK_HEADER_SIZE;
    }
}

size_t pa_region_max_request(size_t size)
{
    /* POW2's is the least of the three. */
    return pa_region_max_request_fit(REGION_FIT_POW2, size);
}

/* ---- allocation ------------------------------------------------------- */

static void *region_hand_out(region_t *r, block_t *b)
{
    void *p = block_payload(b);
    live_set(r, live_index(r, p));
    r->allocated += block_usable(b);
    if (r->allocated > r->peak)
        r->peak = r->allocated;
    r->blocks++;
    return p;
}

/* A POW2 block of the class for n bytes aligned to align. Its own header
 * stays at its start with prev_phys naming itself; an aligned payload
 * further in gets a second header just in front of it whose prev_phys
 * names the block and whose size runs to the block's end, so the live
 * bit, usable size and free all read the header before the payload. */
static void *region_pow2_alloc(region_t *r, size_t n, size_t align)
{
    if (n >= TLSF_MAX_BLOCK || align >= TLSF_MAX_BLOCK)
        return NULL;
    region_pow2_t *c = &r->u.pow2;
    unsigned k = pow2_class(pow2_need(n, align));
    size_t bytes = (size_t)1 << k;
    block_t *b = c->lists[k];
    if (b) {
        c->lists[k] = PA_LINK_LOAD(b->next_free);
        c->free_bytes -= bytes;
        c->free_blocks--;
    } else {
        if ((size_t)((char *)r->sentinel - c->top) < bytes)
            return NULL;
        b = (block_t *)c->top;
        c->top += bytes;
        pa_mem_open(b, BLOCK_HEADER_SIZE); /* a purged reset may have closed it */
    }
    b->prev_phys = b;
    block_store(b, bytes);
    pa_mem_open(block_payload(b), bytes - BLOCK_HEADER_SIZE);
    char *p = (char *)align_up((uintptr_t)block_payload(b), align);
    block_t *h = block_from_payload(p);
    if (h != b) {
        h->prev_phys = b;
        block_store(h, (size_t)((char *)b + bytes - (char *)h));
    }
    return region_hand_out(r, h);
}

void *pa_region_alloc(region_t *r, size_t size)
{
    block_t *b;
    if (r->fit == REGION_FIT_GOOD) {
        size_t want = good_block_size(size);
        b = want ? pa_tlsf_take(&r->u.tlsf, want) : NULL;
    } else if (r->fit == REGION_FIT_BEST) {
        size_t want = best_block_size(size);
        b = want ? pa_tlsf_take_best(&r->u.tlsf, want) : NULL;
    } else {
        return region_pow2_alloc(r, size, PA_GRANULE);
    }
    return b ? region_hand_out(r, b) : NULL;
}

void *pa_region_alloc_aligned(region_t *r, size_t align, size_t size)
{
    if (align == 0 || (align & (align - 1)))
        return NULL;
    if (align <= PA_GRANULE)
        return pa_region_alloc(r, size);
    block_t *b;
    if (r->fit == REGION_FIT_GOOD) {
        size_t want = good_block_size(size);
        b = want ? pa_tlsf_take_aligned(&r->u.tlsf, want, align) : NULL;
    } else if (r->fit == REGION_FIT_BEST) {
        size_t want = best_block_size(size);
        b = want ? pa_tlsf_take_aligned_best(&r->u.tlsf, want, align) : NULL;
    } else {
        return region_pow2_alloc(r, size, align);
    }
    return b ? region_hand_out(r, b) : NULL;
}

/* ---- validation ------------------------------------------------------- */

bool pa_region_contains(const region_t *r, const void *p)
{
    return (const char *)p >= r->area && (const char *)p < r->area + r->area_size;
}

size_t pa_region_usable(const region_t *r, const void *p)
{
    const char *c = p;
    /* The first payload lies one header into the area; the sentinel's
     * granule never holds one. */
    if (c < r->area + BLOCK_HEADER_SIZE || c >= (const char *)r->sentinel ||
        ((uintptr_t)c & (PA_GRANULE - 1)) || !live_test(r, live_index(r, c)))
        return 0;
    return block_usable(block_from_payload(p));
}

/* ---- free and resize -------------------------------------------------- */

static size_t region_pow2_free(region_t *r, block_t *h)
{
    region_pow2_t *c = &r->u.pow2;
    block_t *b = h->prev_phys;
    size_t bytes = block_size(b);
    unsigned k = bit_highest(bytes);
    block_store(b, bytes | BLOCK_FREE);
    PA_LINK_STORE(b->next_free, c->lists[k]);
    c->lists[k] = b;
    c->free_bytes += bytes;
    c->free_blocks++;
    /* Never merged: a large block's pages are all new to the free state. */
    if (r->purge && bytes >= REGION_PURGE_MIN)
        region_purge_fresh(r, b, (char *)b, (char *)b + bytes);
    return block_usable(h);
}

static size_t region_tlsf_free(region_t *r, block_t *b)
{
    size_t usable = block_usable(b);
    char *start = (char *)b, *end = (char *)block_next(b);
    /* A large free neighbour's pages were purged when it was freed; only
     * b's own pages and the neighbour's header are new. */
    bool prev_purged = block_prev_is_free(b) && block_purged(b->prev_phys);
    bool next_purged = block_purged(block_next(b));
    block_t *m = pa_tlsf_give(&r->u.tlsf, b);
    if (r->purge && block_size(m) >= REGION_PURGE_MIN)
        region_purge_fresh(r, m, prev_purged ? start : (char *)m,
                           next_purged ? end + FREE_BLOCK_KEEP : (char *)block_next(m));
    return usable;
}

size_t pa_region_free(region_t *r, void *p)
{
    pa_assert(pa_region_usable(r, p) != 0);
    block_t *b = block_from_payload(p);
    live_clear(r, live_index(r, p));
    r->allocated -= block_usable(b);
    r->blocks--;
    return r->fit == REGION_FIT_POW2 ? region_pow2_free(r, b) : region_tlsf_free(r, b);
}

bool pa_region_resize(region_t *r, void *p, size_t size)
{
    pa_assert(pa_region_usable(r, p) != 0);
    block_t *b = block_from_payload(p);
    if (r->fit == REGION_FIT_POW2)
        /* The class is the block's for life: in place is within it. */
        return size <= block_usable(b);
    size_t want = r->fit == REGION_FIT_GOOD ? good_block_size(size) : best_block_size(size);
    if (!want)
        return false;
    /* Rounding may ask for more than a block that already fits has (an
     * aligned block's odd size): it stays as it is. */
    if (want > block_size(b) && size <= block_usable(b))
        want = block_size(b);
    size_t old_usable = block_usable(b);
    char *old_end = (char *)block_next(b);
    bool next_purged = block_purged(block_next(b));
    if (!pa_tlsf_resize(&r->u.tlsf, b, want))
        return false;
    /* Growing took in a free neighbour's closed header and links; the
     * payload is opened as a take opens it. */
    pa_mem_open(p, block_usable(b));
    r->allocated = r->allocated - old_usable + block_usable(b);
    if (r->allocated > r->peak)
        r->peak = r->allocated;
    block_t *next = block_next(b);
    if (r->purge && (char *)next < old_end && block_purged(next))
        region_purge_fresh(r, next, (char *)next,
                           next_purged ? old_end + FREE_BLOCK_KEEP : (char *)block_next(next));
    return true;
}

/* ---- statistics ------------------------------------------------------- */

bool pa_region_is_empty(const region_t *r)
{
    return r->blocks == 0;
}

void pa_region_each_live(const region_t *r, region_visit_fn visit, void *ctx)
{
    for (size_t w = 0; w < r->map_words; w++)
        for (uint64_t word = r->live[w]; word; word &= word - 1) {
            size_t i = w * MAP_WORD_BITS + (size_t)__builtin_ctzll(word);
            char *p = r->area + (i << PA_GRANULE_SHIFT);
            visit(p, block_usable(block_from_payload(p)), ctx);
        }
}

/* POW2: the untouched top counts as one free block. */
static size_t region_free_usable(const region_t *r)
{
    if (r->fit != REGION_FIT_POW2)
        return r->u.tlsf.free_bytes - r->u.tlsf.free_blocks * BLOCK_HEADER_SIZE;
    const region_pow2_t *c = &r->u.pow2;
    size_t top = (size_t)((char *)r->sentinel - c->top);
    return c->free_bytes - c->free_blocks * BLOCK_HEADER_SIZE +
           (top >= BLOCK_MIN_SIZE ? top - BLOCK_HEADER_SIZE : 0);
}

void pa_region_usage(const region_t *r, region_usage_t *u)
{
    u->allocated = r->allocated;
    u->peak = r->peak;
    u->freed = region_free_usable(r);
    u->blocks = r->blocks;
    u->size = r->size;
}

/* ---- POW2 bound ------------------------------------------------------- */

/*
 * Why pa_region_pow2_bound's size never fails a request for fragmentation.
 *
 * Count each live request r as w(r) = max(r, 16) bytes (an aligned one as
 * max(r, 16) + align - 16), and let P bound the sum of w over the live
 * requests at every moment, L bound every w. A request of weight w takes a
 * block of class k, the least with 2^k >= w + 16, so K = the class of
 * L + 16 is the highest class used, and 5..K are K - 4 classes.
 *
 * 1. Blocks of a class are made (bumped from the top) only when its free
 *    list is empty, i.e. when every block of the class is live, and are
 *    never split, merged or given to another class. So N_k, the blocks
 *    class k has ever made, equals the most blocks of class k that were
 *    ever live at once, counting the one being made.
 * 2. A live block of class k > 5 holds a request with w + 16 > 2^(k-1),
 *    and w >= 16, so 2^k < 2 (w + 16) <= 4 w; for k = 5, 2^5 = 32 <= 2 w.
 *    At the moment class k had N_k live blocks, then, N_k 2^k < 4 x (the
 *    weight live in class k) <= 4 P.
 * 3. The area is the classes' blocks laid end to end from its bottom plus
 *    the untouched top, so the bumps of all classes together never pass
 *    sum over k = 5..K of N_k 2^k <= 4 P (K - 4) bytes. When a request
 *    finds its list empty and would need a bump, the state after the bump
 *    satisfies 1 and 2 too, so the bump fits in an area of 4 P (K - 4)
 *    bytes (plus the sentinel): it never fails.
 *
 * The factor is not loose by much: filling P with requests of 17 bytes
 * (64-byte blocks: 3.76 P), freeing them, then P of 16-byte requests
 * (2 P), then for each class k >= 7 requests of 2^(k-1) - 15 bytes (just
 * over 2 P each) strands more than 2 P (K - 4) bytes, so an area of half
 * the bound fails (tests/check_region.c plays that sequence).
 */
size_t pa_region_pow2_bound(size_t peak, size_t largest)
{
    if (largest >= TLSF_MAX_BLOCK || peak >= TLSF_MAX_BLOCK)
        return 0;
    size_t p = peak < PA_GRANULE ? PA_GRANULE : peak;
    unsigned top_class = pow2_class(pow2_need(largest, PA_GRANULE));
    size_t classes = top_class - POW2_MIN_CLASS + 1;
    if (p > (TLSF_MAX_BLOCK / 4) / classes)
        return 0;
    size_t area = 4 * p * classes;
    if (area < (size_t)1 << top_class)
        area = (size_t)1 << top_class;
    return region_size_for_area(align_up(area, PA_GRANULE) + BLOCK_HEADER_SIZE);
}

/* ---- verification ----------------------------------------------------- */

typedef struct region_tally {
    const region_t *r;
    size_t allocated, blocks;
} region_tally_t;

/* Granule indexes of the payloads b's bytes could hold: [lo, hi). */
static void block_granules(const region_t *r, const block_t *b, size_t *lo, size_t *hi)
{
    *lo = live_index(r, block_payload(b));
    *hi = live_index(r, block_next(b)) + 1;
}

/* GOOD/BEST: a used block's payload is marked and nothing else in it; a
 * free block holds no mark. */
static int region_visit_block(const block_t *b, void *ctx)
{
    region_tally_t *t = ctx;
    size_t lo, hi;
    block_granules(t->r, b, &lo, &hi);
    size_t marks = live_count(t->r, lo, hi);
    if (block_is_free(b)) {
        if (marks)
            return pa_verify_fail("region %p: free block %p has a live mark", (const void *)t->r,
                                  (const void *)b);
        return 0;
    }
    if (marks != 1 || !live_test(t->r, lo))
        return pa_verify_fail("region %p: used block %p has %zu live marks, not one at its payload",
                              (const void *)t->r, (const void *)b, marks);
    t->allocated += block_usable(b);
    t->blocks++;
    return 0;
}

static bool region_owns_block(const block_t *b, const void *ctx)
{
    const region_t *r = ctx;
    return (const char *)b >= r->area && b < r->sentinel && ((uintptr_t)b & (PA_GRANULE - 1)) == 0;
}

static int region_verify_tlsf(const region_t *r, region_tally_t *t)
{
    tlsf_area_tally_t area = {0, 0};
    if (pa_tlsf_verify(&r->u.tlsf, region_owns_block, r) ||
        pa_tlsf_verify_area((const block_t *)r->area, r->sentinel, region_visit_block, t, &area))
        return -1;
    if (area.free_bytes != r->u.tlsf.free_bytes || area.free_blocks != r->u.tlsf.free_blocks)
        return pa_verify_fail("region %p: %zu free bytes in %zu blocks, lists count %zu in %zu",
                              (const void *)r, area.free_bytes, area.free_blocks,
                              r->u.tlsf.free_bytes, r->u.tlsf.free_blocks);
    return 0;
}

/* A used POW2 block b of bytes bytes: one mark, with a header in front of
 * it that names b and runs to b's end. */
static int region_verify_pow2_used(const region_t *r, const block_t *b, size_t bytes,
                                   region_tally_t *t)
{
    size_t lo, hi;
    block_granules(r, b, &lo, &hi);
    size_t at = live_first(r, lo, hi);
    if (at == hi || live_count(r, at + 1, hi) != 0)
        return pa_verify_fail("region %p: used block %p has %zu live marks, not one",
                              (const void *)r, (const void *)b, live_count(r, lo, hi));
    const block_t *h = block_from_payload(r->area + (at << PA_GRANULE_SHIFT));
    if (b->prev_phys != b || h->prev_phys != b || block_is_free(h) ||
        (const char *)h + block_size(h) != (const char *)b + bytes)
        return pa_verify_fail("region %p: block %p: header %p of its payload is wrong",
                              (const void *)r, (const void *)b, (const void *)h);
    t->allocated += block_usable(h);
    t->blocks++;
    return 0;
}

static int region_verify_pow2(const region_t *r, region_tally_t *t)
{
    const region_pow2_t *c = &r->u.pow2;
    if (c->top < r->area || c->top > (char *)r->sentinel || (uintptr_t)c->top % PA_GRANULE)
        return pa_verify_fail("region %p: top %p outside the area", (const void *)r,
                              (const void *)c->top);
    size_t free_bytes = 0, free_blocks = 0;
    for (const char *at = r->area; at < c->top;) {
        const block_t *b = (const block_t *)at;
        size_t bytes = block_size(b);
        if (bytes < BLOCK_MIN_SIZE || (bytes & (bytes - 1)) || bytes > (size_t)(c->top - at))
            return pa_verify_fail("region %p: block %p has bad size %zu", (const void *)r,
                                  (const void *)b, bytes);
        if (block_is_free(b)) {
            size_t lo, hi;
            block_granules(r, b, &lo, &hi);
            if (live_count(r, lo, hi))
                return pa_verify_fail("region %p: free block %p has a live mark",
                                      (const void *)r, (const void *)b);
            free_bytes += bytes;
            free_blocks++;
        } else if (region_verify_pow2_used(r, b, bytes, t)) {
            return -1;
        }
        at += bytes;
    }
    size_t listed = 0;
    for (unsigned k = 0; k < POW2_CLASSES; k++)
        for (const block_t *b = c->lists[k]; b; b = PA_LINK_LOAD(b->next_free)) {
            if (++listed > free_blocks || !region_owns_block(b, r) || (const char *)b >= c->top ||
                !block_is_free(b) || block_size(b) != (size_t)1 << k)
                return pa_verify_fail("region %p: class %u lists bad block %p", (const void *)r,
                                      k, (const void *)b);
        }
    if (listed != free_blocks || free_bytes != c->free_bytes || free_blocks != c->free_blocks)
        return pa_verify_fail("region %p: %zu free blocks (%zu bytes), %zu listed, %zu counted",
                              (const void *)r, free_blocks, free_bytes, listed, c->free_blocks);
    if (block_size(r->sentinel) != 0 || block_is_free(r->sentinel))
        return pa_verify_fail("region %p: sentinel %p is damaged", (const void *)r,
                              (const void *)r->sentinel);
    return 0;
}

int pa_region_verify(const region_t *r)
{
    if (!r || r->magic != REGION_MAGIC)
        return pa_verify_fail("region %p: bad magic", (const void *)r);
    region_layout_t l;
    if (!region_layout(r->size, &l) || r->area != (const char *)r + l.area_offset ||
        r->area_size != l.area_size || r->map_words != l.map_words ||
        (const char *)r->sentinel != r->area + r->area_size - BLOCK_HEADER_SIZE)
        return pa_verify_fail("region %p: header disagrees with its size %zu", (const void *)r,
                              r->size);
    region_tally_t t = {r, 0, 0};
    if (r->fit == REGION_FIT_POW2 ? region_verify_pow2(r, &t) : region_verify_tlsf(r, &t))
        return -1;
    size_t marks = live_count(r, 0, r->map_words * MAP_WORD_BITS);
    if (t.blocks != r->blocks || marks != r->blocks || t.allocated != r->allocated ||
        r->peak < r->allocated)
        return pa_verify_fail("region %p: %zu blocks (%zu bytes) and %zu marks found, %zu blocks "
                              "(%zu bytes, peak %zu) counted", (const void *)r, t.blocks,
                              t.allocated, marks, r->blocks, r->allocated, r->peak);
    return 0;
}
