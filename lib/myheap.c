/* SPDX-License-Identifier: MIT */
/*
 * myheap.c - private heaps: the myheap_* calls, the handles and their
 * table, each heap's lock, its chunks (regions over mappings of its own, or
 * one region in a caller's buffer), growth up to a limit, the release
 * policies and the locked (real-time) mode, and the hooks through which
 * myfree, introspection, allocator_cleanup and fork reach every heap.
 *
 * A heap made by myheap_create owns chunks: mappings aligned to the
 * segment size, each registered in the segment map as (chunk |
 * SEGMAP_PRIVATE), so myfree finds a block's chunk, and through the
 * chunk's header its heap, in one lookup. Its descriptor lies in a table
 * the library maps once and never gives back, so a destroyed heap's handle
 * is read safely and refused. A heap made by myheap_create_in keeps its
 * descriptor and one region in the caller's buffer and is unknown to the
 * segment map: only the myheap_* calls take its blocks.
 *
 * Every call but the single-threaded heaps' takes the heap's ticket lock
 * (first come, first served, so a waiter waits for the calls ahead of it
 * and no more). A stray myfree may race with myheap_destroy: it claims the
 * chunk in a claim slot (segment.h) before it reads the chunk, and destroy
 * takes the chunks out of the segment map, then waits until no slot names
 * them before unmapping.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "annotate.h"
#include "heap.h"
#include "myheap.h"
#include "numa.h"
#include "os.h"
#include "pallocator.h"
#include "region.h"
#include "segmap.h"

#define MYHEAP_MAGIC_LIVE 0x7061686561706d79ULL /* a heap a call may use */

/* A chunk: a header, then one region up to the chunk's end. */
typedef struct chunk {
    struct myheap *heap;
    struct chunk *next, *prev; /* the heap's chunks, newest first */
    region_t *region;
    size_t map_size;           /* bytes mapped; 0: a caller's buffer */
    size_t bytes;              /* bytes the chunk spans, header included */
    uint64_t empty_since;      /* MYHEAP_RELEASE_DELAYED: when found empty (ms, plus one); 0: in use */
} chunk_t;

#define CHUNK_HEADER_SIZE align_up(sizeof(chunk_t), PA_CACHE_LINE)

#ifdef PA_ANNOTATED
#define PA_ANNOTATED_BUILD 1
#else
#define PA_ANNOTATED_BUILD 0
#endif

/* Two counters on a line of their own: a waiter draws a ticket from next
 * and spins until serving reaches it. */
typedef struct ticket_lock {
    _Alignas(PA_CACHE_LINE) unsigned next;
    unsigned serving;
} ticket_lock_t;

struct myheap {
    ticket_lock_t lock;
    _Alignas(PA_CACHE_LINE) uint64_t magic;
    unsigned flags;
    unsigned release;          /* MYHEAP_RELEASE_*; NEVER for locked heaps and buffers */
    unsigned delay_ms;
    int node;                  /* with MYHEAP_NUMA_NODE */
    region_fit_t fit;
    bool in_buffer;
    size_t limit;              /* 0: none */
    size_t mapped;             /* bytes of the chunks, headers included */
    chunk_t *chunks;           /* newest first; the first chunk is last and stays */
    chunk_t *first;
    chunk_t *current;          /* the chunk that served last: tried first */
    size_t chunk_count, empty_chunks;
    size_t allocated, peak;    /* usable bytes of live blocks; their highest */
    struct myheap *reg_next, *reg_prev; /* the registry, or the table's free list */
#if defined(PA_DEBUG) && PA_DEBUG
    const void *inside;        /* single-threaded heaps: the thread in a call */
#endif
};

typedef struct myheap heap_desc_t;

/* ---- the registry and the descriptor table --------------------------- */

/* Live descriptors the table can hold: the most heaps myheap_create keeps
 * at once. Its pages are reserved without commit and cost nothing until a
 * descriptor is handed out. */
#define MYHEAP_TABLE_SLOTS 16384
#define MYHEAP_TABLE_BYTES (MYHEAP_TABLE_SLOTS * sizeof(heap_desc_t))

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static heap_desc_t *registry;        /* every live heap, both kinds */
static heap_desc_t *table;           /* mapped once, published with release */
static size_t table_bumped;          /* descriptors ever carved from the table */
static heap_desc_t *free_head, *free_tail; /* freed descriptors, oldest first */

static void registry_add(heap_desc_t *h)
{
    h->reg_prev = NULL;
    h->reg_next = registry;
    if (registry)
        registry->reg_prev = h;
    registry = h;
}

static void registry_remove(heap_desc_t *h)
{
    if (h->reg_prev)
        h->reg_prev->reg_next = h->reg_next;
    else
        registry = h->reg_next;
    if (h->reg_next)
        h->reg_next->reg_prev = h->reg_prev;
}

/* Whether h names a slot of the table (read nothing at h). */
static bool handle_in_table(const heap_desc_t *h)
{
    const heap_desc_t *t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
    uintptr_t off = (uintptr_t)h - (uintptr_t)t;
    return t && off < MYHEAP_TABLE_BYTES && off % sizeof(heap_desc_t) == 0;
}

/* A descriptor for a new heap; the one freed longest ago first, so that a
 * stale handle names a live heap as late as possible. Caller holds
 * registry_lock. */
static heap_desc_t *descriptor_take_locked(void)
{
    if (free_head) {
        heap_desc_t *h = free_head;
        free_head = h->reg_next;
        if (!free_head)
            free_tail = NULL;
        return h;
    }
    if (!table) {
        heap_desc_t *t = pa_os_map_sparse(MYHEAP_TABLE_BYTES);
        if (!t)
            return NULL;
        __atomic_store_n(&table, t, __ATOMIC_RELEASE);
    }
    return table_bumped < MYHEAP_TABLE_SLOTS ? &table[table_bumped++] : NULL;
}

static void descriptor_give_locked(heap_desc_t *h)
{
    h->reg_next = NULL;
    if (free_tail)
        free_tail->reg_next = h;
    else
        free_head = h;
    free_tail = h;
}

/* ---- the lock ----------------------------------------------------------- */

/* Spins before a waiter of a heap that may make system calls yields. */
#define MYHEAP_SPINS_BEFORE_YIELD 256

static inline bool heap_is_single(const heap_desc_t *h)
{
    return (h->flags & MYHEAP_SINGLE_THREAD) != 0;
}

#if defined(PA_DEBUG) && PA_DEBUG
/* Debug builds: a single-threaded heap entered by two threads at once
 * stops the program, as the single-threaded mode does. */
static void single_enter(heap_desc_t *h)
{
    const void *other = __atomic_exchange_n(&h->inside, &pa_thread, __ATOMIC_ACQ_REL);
    if (other && other != &pa_thread) {
        fputs("pallocator: a MYHEAP_SINGLE_THREAD heap used by two threads at once\n", stderr);
        abort();
    }
}

static void single_leave(heap_desc_t *h)
{
    __atomic_store_n(&h->inside, NULL, __ATOMIC_RELEASE);
}
#else
static inline void single_enter(heap_desc_t *h)
{
    (void)h;
}

static inline void single_leave(heap_desc_t *h)
{
    (void)h;
}
#endif

/* The thread that forks holds every heap's lock from the prepare handler to
 * the parent's or child's (fork handlers registered before the library's
 * run in between and may use the heaps). */
static void heap_lock(heap_desc_t *h)
{
    if (heap_is_single(h)) {
        single_enter(h);
        return;
    }
    if (pa_fork_holder)
        return;
    unsigned ticket = __atomic_fetch_add(&h->lock.next, 1, __ATOMIC_RELAXED);
    unsigned spins = 0;
    while (__atomic_load_n(&h->lock.serving, __ATOMIC_ACQUIRE) != ticket) {
        pa_cpu_relax();
        /* A locked heap, or one in a caller's buffer, makes no system
         * call: it spins. */
        if (++spins == MYHEAP_SPINS_BEFORE_YIELD && !(h->flags & MYHEAP_LOCKED) &&
            !h->in_buffer) {
            sched_yield();
            spins = 0;
        }
    }
}

static void heap_unlock(heap_desc_t *h)
{
    if (heap_is_single(h)) {
        single_leave(h);
        return;
    }
    if (pa_fork_holder)
        return;
    /* Only the holder writes serving. */
    unsigned serving = __atomic_load_n(&h->lock.serving, __ATOMIC_RELAXED);
    __atomic_store_n(&h->lock.serving, serving + 1, __ATOMIC_RELEASE);
}

static bool heap_is_live(const heap_desc_t *h)
{
    return __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == MYHEAP_MAGIC_LIVE;
}

/* The heap a handle names, or NULL: NULL, a misaligned or foreign
 * address of the table, a destroyed heap or garbage. A handle outside the
 * table is a buffer's, read where the caller says it is. */
static heap_desc_t *heap_from_handle(myheap_t *handle)
{
    heap_desc_t *h = handle;
    if (!h || ((uintptr_t)h & (_Alignof(heap_desc_t) - 1)) != 0)
        return NULL;
    const heap_desc_t *t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
    bool near_table = t && (uintptr_t)h - (uintptr_t)t < MYHEAP_TABLE_BYTES;
    if (near_table && !handle_in_table(h))
        return NULL;
    return heap_is_live(h) ? h : NULL;
}

/* Begins a call on handle: the heap locked and live, or NULL with errno
 * = EINVAL (a heap destroyed while the call waited is refused too). */
static heap_desc_t *call_enter(myheap_t *handle)
{
    heap_desc_t *h = heap_from_handle(handle);
    if (h) {
        heap_lock(h);
        if (pa_likely(heap_is_live(h)))
            return h;
        heap_unlock(h);
    }
    errno = EINVAL;
    return NULL;
}

/* ---- chunks -------------------------------------------------------------- */

/* Chunks a heap maps as it grows: at least a segment, and as much as the
 * heap holds already up to this, so that the number of chunks (which
 * reset and destroy walk) grows with the logarithm of the heap's size. */
#define MYHEAP_CHUNK_GROWTH_MAX ((size_t)64 << 20)
/* Free blocks smaller than this keep their pages under
 * MYHEAP_RELEASE_IMMEDIATE: a small free stays cheap. */
#define MYHEAP_PURGE_MIN ((size_t)64 << 10)
#define MYHEAP_DEFAULT_DELAY_MS 1000

static void purge_pages(void *start, size_t size)
{
    if (size < MYHEAP_PURGE_MIN)
        return;
    size_t page = os_page_size();
    uintptr_t lo = align_up((uintptr_t)start, page);
    uintptr_t hi = align_down_ptr((uintptr_t)start + size, page);
    if (hi > lo)
        pa_os_decommit((void *)lo, hi - lo);
}

/* Lays chunk c over [c, c + size): header and region. */
static chunk_t *chunk_lay(heap_desc_t *h, void *base, size_t size, size_t map_size)
{
    chunk_t *c = base;
    region_purge_fn purge = h->release == MYHEAP_RELEASE_IMMEDIATE ? purge_pages : NULL;
    region_t *r = pa_region_init((char *)base + CHUNK_HEADER_SIZE, size - CHUNK_HEADER_SIZE,
                                 h->fit, purge);
    if (!r)
        return NULL;
    *c = (chunk_t){.heap = h, .region = r, .map_size = map_size, .bytes = size};
    return c;
}

/* Caller holds h's lock (or h is not published yet). */
static void chunk_link(heap_desc_t *h, chunk_t *c)
{
    c->prev = NULL;
    c->next = h->chunks;
    if (h->chunks)
        h->chunks->prev = c;
    h->chunks = c;
    if (!h->first)
        h->first = c;
    h->current = c;
    h->chunk_count++;
    h->mapped += c->map_size;
}

static void chunk_unlink(heap_desc_t *h, chunk_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        h->chunks = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (h->current == c)
        h->current = h->first;
    if (c->empty_since)
        h->empty_chunks--;
    h->chunk_count--;
    h->mapped -= c->map_size;
}

/* MYHEAP_LOCKED: every page of a fresh mapping written (so each is the
 * heap's own, not the shared zero page), then locked; 0 or mlock's errno. */
static int pages_lock(void *base, size_t size)
{
    size_t page = os_page_size();
    for (size_t off = 0; off < size; off += page)
        ((volatile char *)base)[off] = 0;
    return pa_os_lock(base, size);
}

/* Enters chunk c in the segment map; false when the map cannot grow. A
 * chunk enters it with the lock of a published heap held, or the
 * registry's: allocator_verify, holding both, sees the map and the chunk
 * lists agree. */
static bool chunk_register(chunk_t *c)
{
    return pa_segmap_register((uintptr_t)c, c->map_size, (uintptr_t)c | SEGMAP_PRIVATE);
}

/* Maps a chunk of map_size bytes for h (not yet registered or linked),
 * its pages locked for a MYHEAP_LOCKED heap; NULL with *error set when the
 * OS refuses. */
static chunk_t *chunk_map(heap_desc_t *h, size_t map_size, int *error)
{
    *error = ENOMEM;
    void *base = pa_os_map_aligned(map_size, PA_SEGMENT_SIZE);
    if (!base)
        return NULL;
    if (h->flags & MYHEAP_NUMA_NODE)
        pa_os_bind_node_strict(base, map_size, h->node);
    if ((h->flags & MYHEAP_LOCKED) && (*error = pages_lock(base, map_size)) != 0) {
        pa_os_unmap(base, map_size);
        return NULL;
    }
    *error = ENOMEM;
    chunk_t *c = chunk_lay(h, base, map_size, map_size);
    if (!c)
        pa_os_unmap(base, map_size);
    return c;
}

/* Takes chunk c out of h and the segment map; it goes to *victims, to be
 * unmapped once the caller has left the heap and its own claim. */
static void chunk_detach(heap_desc_t *h, chunk_t *c, chunk_t **victims)
{
    chunk_unlink(h, c);
    pa_segmap_unregister((uintptr_t)c, c->map_size);
    c->next = *victims;
    *victims = c;
}

/* Unmaps detached chunks: first waits until no myfree that found one in
 * the segment map still reads it. The caller holds no lock and no claim. */
static void victims_unmap(chunk_t *victims)
{
    while (victims) {
        chunk_t *next = victims->next;
        size_t size = victims->map_size;
        pa_segment_wait_unclaimed(victims);
        pa_os_unmap(victims, size);
        victims = next;
    }
}

/* Memory checkers: the closed payloads of c's freed blocks open again, for
 * the region's new layout after a reset, or for the buffer's owner after
 * a destroy. Nothing in other builds. */
static void chunk_open(chunk_t *c)
{
    (void)c;
    pa_mem_open((char *)c + CHUNK_HEADER_SIZE, c->bytes - CHUNK_HEADER_SIZE);
}

/* The chunk of h whose area holds p, or NULL. */
static chunk_t *chunk_holding(const heap_desc_t *h, const void *p)
{
    if (h->current && pa_region_contains(h->current->region, p))
        return h->current;
    for (chunk_t *c = h->chunks; c; c = c->next)
        if (pa_region_contains(c->region, p))
            return c;
    return NULL;
}

/* ---- allocation and free, under the lock ------------------------------ */

static void heap_charge(heap_desc_t *h, size_t usable)
{
    h->allocated += usable;
    if (h->allocated > h->peak)
        h->peak = h->allocated;
}

static void *chunk_alloc(chunk_t *c, size_t align, size_t size)
{
    return align <= PA_GRANULE ? pa_region_alloc(c->region, size)
                               : pa_region_alloc_aligned(c->region, align, size);
}

/* Block p was handed out by chunk c. Memory checkers see all of its
 * usable bytes open (a private heap keeps no request sizes) and its free
 * payload closed again (heap_free_locked). */
static void *heap_handed_out(heap_desc_t *h, chunk_t *c, void *p)
{
    if (c->empty_since) {
        c->empty_since = 0;
        h->empty_chunks--;
    }
    h->current = c;
    size_t usable = pa_region_usable(c->region, p);
    pa_mem_open(p, usable);
    heap_charge(h, usable);
    return p;
}

/* The size of a mapping whose fresh region serves size bytes aligned to
 * align; 0 when there is none. */
static size_t chunk_size_for(region_fit_t fit, size_t align, size_t size)
{
    size_t region = pa_region_size_for(fit, size, align);
    if (!region || region > PA_MAX_REQUEST)
        return 0;
    return align_up(CHUNK_HEADER_SIZE + region, PA_PAGE_SIZE);
}

/* The size of h's next chunk, for a request that chunk_size_for says
 * needs need bytes; 0 when the limit forbids it. */
static size_t chunk_size_next(const heap_desc_t *h, size_t need)
{
    size_t grow = h->mapped < MYHEAP_CHUNK_GROWTH_MAX ? h->mapped : MYHEAP_CHUNK_GROWTH_MAX;
    size_t size = align_up(grow > PA_SEGMENT_SIZE ? grow : PA_SEGMENT_SIZE, PA_SEGMENT_SIZE);
    if (need > size)
        size = align_up(need, PA_PAGE_SIZE);
    if (h->limit) {
        size_t room = h->limit > h->mapped ? h->limit - h->mapped : 0;
        room = room & ~(PA_PAGE_SIZE - 1);
        if (need > room)
            return 0;
        if (size > room)
            size = room;
    }
    return size;
}

/* A new chunk for a request that no chunk of h could serve. */
static void *heap_grow_alloc(heap_desc_t *h, size_t align, size_t size)
{
    if (h->in_buffer || (h->flags & MYHEAP_LOCKED))
        return NULL;
    size_t need = chunk_size_for(h->fit, align, size);
    size_t map_size = need ? chunk_size_next(h, need) : 0;
    int error;
    chunk_t *c = map_size ? chunk_map(h, map_size, &error) : NULL;
    if (!c)
        return NULL;
    if (!chunk_register(c)) {
        pa_os_unmap(c, map_size);
        return NULL;
    }
    chunk_link(h, c);
    void *p = chunk_alloc(c, align, size);
    return p ? heap_handed_out(h, c, p) : NULL;
}

/* A block of h, or NULL (ENOMEM for the caller to report). */
static void *heap_alloc_locked(heap_desc_t *h, size_t align, size_t size)
{
    if (size > PA_MAX_REQUEST)
        return NULL;
    chunk_t *cur = h->current;
    void *p = cur ? chunk_alloc(cur, align, size) : NULL;
    if (pa_likely(p != NULL))
        return heap_handed_out(h, cur, p);
    /* Chunks in use first: an empty one waiting for its delay is taken
     * only before mapping another. */
    for (int pass = 0; pass < 2; pass++)
        for (chunk_t *c = h->chunks; c; c = c->next) {
            if (c == cur || (pass == 0) != (c->empty_since == 0))
                continue;
            p = chunk_alloc(c, align, size);
            if (p)
                return heap_handed_out(h, c, p);
        }
    return heap_grow_alloc(h, align, size);
}

/* Chunk c of h has just lost its last block. */
static void chunk_emptied(heap_desc_t *h, chunk_t *c, chunk_t **victims)
{
    if (c == h->first)
        return;
    if (h->current == c)
        h->current = h->first;
    if (h->release == MYHEAP_RELEASE_IMMEDIATE) {
        chunk_detach(h, c, victims);
    } else if (h->release == MYHEAP_RELEASE_DELAYED && !c->empty_since) {
        c->empty_since = pa_segment_clock_ms() + 1; /* never 0 */
        h->empty_chunks++;
    }
}

/* MYHEAP_RELEASE_DELAYED: the chunks empty for the heap's delay go. The
 * clock is read only while some chunk waits (a vDSO call, no system
 * call). */
static void heap_expire(heap_desc_t *h, chunk_t **victims)
{
    if (pa_likely(h->empty_chunks == 0))
        return;
    /* One ahead, as empty_since is, so that a chunk found empty in this
     * very millisecond has waited 0 ms, never a negative time that the
     * unsigned difference would make huge. */
    uint64_t now = pa_segment_clock_ms() + 1;
    chunk_t *c = h->chunks;
    while (c) {
        chunk_t *next = c->next;
        if (c->empty_since && now - c->empty_since >= h->delay_ms)
            chunk_detach(h, c, victims);
        c = next;
    }
}

/* Frees p of h; false when p is not a live block of h. */
static bool heap_free_locked(heap_desc_t *h, void *p, chunk_t **victims)
{
    chunk_t *c = chunk_holding(h, p);
    size_t usable = c ? pa_region_usable(c->region, p) : 0;
    if (!usable)
        return false;
    /* Closed first: the region opens what it writes there. */
    pa_mem_close(p, usable);
    h->allocated -= pa_region_free(c->region, p);
    if (pa_unlikely(pa_region_is_empty(c->region)))
        chunk_emptied(h, c, victims);
    return true;
}

/* Usable bytes of live block p of h, or 0. */
static size_t heap_usable_locked(const heap_desc_t *h, const void *p)
{
    chunk_t *c = chunk_holding(h, p);
    return c ? pa_region_usable(c->region, p) : 0;
}

/* myheap_realloc's and myrealloc's work: p in place if it can, else moved
 * within h. *error gets EINVAL or ENOMEM for a NULL result. */
static void *heap_realloc_locked(heap_desc_t *h, void *p, size_t size, chunk_t **victims,
                                 int *error)
{
    chunk_t *c = chunk_holding(h, p);
    size_t usable = c ? pa_region_usable(c->region, p) : 0;
    if (!usable) {
        *error = EINVAL;
        return NULL;
    }
    if (size <= PA_MAX_REQUEST && pa_region_resize(c->region, p, size ? size : 1)) {
        size_t now = pa_region_usable(c->region, p);
        pa_mem_open(p, now); /* grown into a free neighbour's closed bytes */
        h->allocated -= usable;
        heap_charge(h, now);
        return p;
    }
    void *q = heap_alloc_locked(h, PA_GRANULE, size);
    if (!q) {
        *error = ENOMEM;
        return NULL;
    }
    memcpy(q, p, usable < size ? usable : size);
    heap_free_locked(h, p, victims);
    return q;
}

/* Ends a call on h: the delayed releases due, the lock, then the chunks
 * that left the heap. */
static void call_leave(heap_desc_t *h, chunk_t *victims)
{
    heap_expire(h, &victims);
    heap_unlock(h);
    victims_unmap(victims);
}

/* ---- creation ------------------------------------------------------------ */

static const unsigned myheap_known_flags =
    MYHEAP_SINGLE_THREAD | MYHEAP_LOCKED | MYHEAP_BEST_FIT | MYHEAP_POW2_FIT | MYHEAP_NUMA_NODE;

/* The fit flags name, or -1 for both fits at once (or an unknown flag). */
static int fit_of_flags(unsigned flags)
{
    if (flags & ~myheap_known_flags)
        return -1;
    if ((flags & MYHEAP_BEST_FIT) && (flags & MYHEAP_POW2_FIT))
        return -1;
    if (flags & MYHEAP_BEST_FIT)
        return REGION_FIT_BEST;
    if (flags & MYHEAP_POW2_FIT)
        return REGION_FIT_POW2;
    return REGION_FIT_GOOD;
}

static const char *fit_name(region_fit_t fit)
{
    static const char *const names[] = {"good", "best", "pow2"};
    return names[fit];
}

static void *create_fail(int error)
{
    errno = error;
    return NULL;
}

/* A heap's settings, checked; false for options it cannot take. */
static bool options_read(const struct myheap_options *opts, struct myheap_options *o)
{
    *o = (struct myheap_options){0};
    if (opts) {
        if (opts->size != 0 && opts->size != sizeof *opts)
            return false;
        *o = *opts;
    }
    if (fit_of_flags(o->flags) < 0 || o->release > MYHEAP_RELEASE_NEVER)
        return false;
    if ((o->flags & MYHEAP_LOCKED) && o->limit == 0)
        return false;
    if ((o->flags & MYHEAP_NUMA_NODE) && !pa_numa_node_exists(o->numa_node))
        return false;
    /* The first chunk must fit the limit. */
    size_t least = align_up(CHUNK_HEADER_SIZE + pa_region_min_size(), PA_PAGE_SIZE);
    return o->limit == 0 || o->limit >= least;
}

static void heap_init(heap_desc_t *h, const struct myheap_options *o, bool in_buffer)
{
    memset(h, 0, sizeof *h);
    h->flags = o->flags;
    h->fit = (region_fit_t)fit_of_flags(o->flags);
    h->in_buffer = in_buffer;
    h->limit = o->limit;
    h->node = o->numa_node;
    h->release = in_buffer || (o->flags & MYHEAP_LOCKED) ? MYHEAP_RELEASE_NEVER : o->release;
    h->delay_ms = o->release_delay_ms ? o->release_delay_ms : MYHEAP_DEFAULT_DELAY_MS;
}

/* The first chunk's size: a segment, or less under a limit. */
static size_t first_chunk_size(const heap_desc_t *h)
{
    if (h->flags & MYHEAP_LOCKED)
        return h->limit & ~(PA_PAGE_SIZE - 1);
    if (h->limit && h->limit < PA_SEGMENT_SIZE)
        return h->limit & ~(PA_PAGE_SIZE - 1);
    return PA_SEGMENT_SIZE;
}

/* Maps the first chunk of h (locked as MYHEAP_LOCKED asks), to be
 * registered by the caller; 0 or an errno. */
static int heap_first_chunk(heap_desc_t *h)
{
    int error;
    chunk_t *c = chunk_map(h, first_chunk_size(h), &error);
    if (!c)
        return error;
    chunk_link(h, c);
    return 0;
}

PALLOCATOR_API myheap_t *myheap_create(const struct myheap_options *opts)
{
    struct myheap_options o;
    if (!options_read(opts, &o))
        return create_fail(EINVAL);
    /* The heap's chunks are in the segment map, which allocator_cleanup
     * resets: the allocator is initialised as a first myalloc would. */
    if (__atomic_load_n(&pa_mode, __ATOMIC_ACQUIRE) == PA_MODE_NONE && allocator_init(1) != 0)
        return create_fail(ENOMEM);
    pa_mutex_lock(&registry_lock);
    heap_desc_t *h = descriptor_take_locked();
    pa_mutex_unlock(&registry_lock);
    if (!h)
        return create_fail(ENOMEM);
    heap_init(h, &o, false);
    int error = heap_first_chunk(h);
    chunk_t *first = h->first;
    pa_mutex_lock(&registry_lock);
    if (!error && !chunk_register(first))
        error = ENOMEM;
    if (error) {
        descriptor_give_locked(h);
    } else {
        registry_add(h);
        __atomic_store_n(&h->magic, MYHEAP_MAGIC_LIVE, __ATOMIC_RELEASE);
    }
    pa_mutex_unlock(&registry_lock);
    if (error && first)
        pa_os_unmap(first, first->map_size);
    return error ? create_fail(error) : h;
}

/* Where a buffer's descriptor, chunk header and region go. */
static size_t buffer_descriptor_size(void)
{
    return align_up(sizeof(heap_desc_t), PA_CACHE_LINE);
}

/* Bytes of a buffer that are not its region's, at most: the descriptor's
 * alignment, the descriptor, the chunk header and the end's alignment. */
static size_t buffer_overhead(void)
{
    return (_Alignof(heap_desc_t) - 1) + buffer_descriptor_size() + CHUNK_HEADER_SIZE +
           (PA_GRANULE - 1);
}

PALLOCATOR_API myheap_t *myheap_create_in(void *buf, size_t size, unsigned flags)
{
    int fit = fit_of_flags(flags);
    if (!buf || size < MYHEAP_MIN_BUFFER || fit < 0 ||
        (flags & (MYHEAP_LOCKED | MYHEAP_NUMA_NODE)))
        return create_fail(EINVAL);
    uintptr_t start = align_up((uintptr_t)buf, _Alignof(heap_desc_t));
    uintptr_t end = align_down_ptr((uintptr_t)buf + size, PA_GRANULE);
    uintptr_t base = start + buffer_descriptor_size();
    if (end < base + CHUNK_HEADER_SIZE + pa_region_min_size())
        return create_fail(EINVAL);
    heap_desc_t *h = (heap_desc_t *)start;
    struct myheap_options o = {.flags = flags};
    heap_init(h, &o, true);
    chunk_t *c = chunk_lay(h, (void *)base, end - base, 0);
    if (!c)
        return create_fail(EINVAL);
    chunk_link(h, c);
    pa_mutex_lock(&registry_lock);
    registry_add(h);
    __atomic_store_n(&h->magic, MYHEAP_MAGIC_LIVE, __ATOMIC_RELEASE);
    pa_mutex_unlock(&registry_lock);
    return h;
}

PALLOCATOR_API size_t myheap_size_for(size_t peak, size_t largest)
{
    size_t bound = pa_region_pow2_bound(peak, largest);
    size_t total;
    /* Whole pages, so that the size also serves as a locked heap's limit,
     * which keeps whole pages only. */
    if (!bound || __builtin_add_overflow(bound, buffer_overhead() + PA_PAGE_SIZE - 1, &total))
        return 0;
    total &= ~(PA_PAGE_SIZE - 1);
    return total < MYHEAP_MIN_BUFFER ? MYHEAP_MIN_BUFFER : total;
}

/* ---- the calls on a heap ------------------------------------------------- */

static void *alloc_call(myheap_t *handle, size_t align, size_t size)
{
    heap_desc_t *h = call_enter(handle);
    if (!h)
        return NULL;
    void *p = heap_alloc_locked(h, align, size);
    call_leave(h, NULL);
    if (!p)
        errno = ENOMEM;
    return p;
}

PALLOCATOR_API void *myheap_alloc(myheap_t *heap, size_t size)
{
    return alloc_call(heap, PA_GRANULE, size);
}

PALLOCATOR_API void *myheap_alloc_aligned(myheap_t *heap, size_t alignment, size_t size)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        return create_fail(EINVAL);
    return alloc_call(heap, alignment, size);
}

PALLOCATOR_API void *myheap_calloc(myheap_t *heap, size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        /* The handle is still checked: a bad one is EINVAL whatever else. */
        if (!heap_from_handle(heap))
            return create_fail(EINVAL);
        return create_fail(ENOMEM);
    }
    void *p = alloc_call(heap, PA_GRANULE, total);
    if (p)
        memset(p, 0, total);
    return p;
}

PALLOCATOR_API int myheap_free(myheap_t *heap, void *ptr)
{
    heap_desc_t *h = call_enter(heap);
    if (!h)
        return -1;
    chunk_t *victims = NULL;
    bool freed = !ptr || heap_free_locked(h, ptr, &victims);
    call_leave(h, victims);
    if (!freed) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

PALLOCATOR_API size_t myheap_usable_size(myheap_t *heap, void *ptr)
{
    heap_desc_t *h = call_enter(heap);
    if (!h)
        return 0;
    size_t usable = ptr ? heap_usable_locked(h, ptr) : 0;
    call_leave(h, NULL);
    if (!usable && ptr)
        errno = EINVAL;
    return usable;
}

PALLOCATOR_API void *myheap_realloc(myheap_t *heap, void *ptr, size_t size)
{
    if (!ptr)
        return myheap_alloc(heap, size);
    heap_desc_t *h = call_enter(heap);
    if (!h)
        return NULL;
    chunk_t *victims = NULL;
    int error = 0;
    void *q = heap_realloc_locked(h, ptr, size, &victims, &error);
    call_leave(h, victims);
    if (!q)
        errno = error;
    return q;
}

PALLOCATOR_API int myheap_reset(myheap_t *heap)
{
    heap_desc_t *h = call_enter(heap);
    if (!h)
        return -1;
    for (chunk_t *c = h->chunks; c; c = c->next) {
        if (PA_ANNOTATED_BUILD)
            chunk_open(c);
        pa_region_reset(c->region);
        c->empty_since = 0;
    }
    h->empty_chunks = 0;
    h->allocated = 0;
    h->current = h->first;
    call_leave(h, NULL);
    return 0;
}

PALLOCATOR_API int myheap_destroy(myheap_t *heap)
{
    heap_desc_t *h = call_enter(heap);
    if (!h)
        return -1;
    /* Dead first: a call waiting for the lock is refused when it gets it. */
    __atomic_store_n(&h->magic, 0, __ATOMIC_RELEASE);
    chunk_t *victims = NULL;
    if (!h->in_buffer)
        while (h->chunks)
            chunk_detach(h, h->chunks, &victims);
    else if (PA_ANNOTATED_BUILD)
        chunk_open(h->first);
    heap_unlock(h);
    pa_mutex_lock(&registry_lock);
    registry_remove(h);
    pa_mutex_unlock(&registry_lock);
    victims_unmap(victims);
    /* Only now may the descriptor serve another heap: no myfree that read
     * it through a chunk is left. */
    if (!h->in_buffer) {
        pa_mutex_lock(&registry_lock);
        descriptor_give_locked(h);
        pa_mutex_unlock(&registry_lock);
    }
    return 0;
}

/* Free bytes of h's chunks. Caller holds h's lock. */
static size_t heap_free_bytes(const heap_desc_t *h)
{
    size_t freed = 0;
    for (const chunk_t *c = h->chunks; c; c = c->next) {
        region_usage_t u;
        pa_region_usage(c->region, &u);
        freed += u.freed;
    }
    return freed;
}

PALLOCATOR_API int myheap_stats(myheap_t *heap, size_t *allocated, size_t *freed, size_t *peak)
{
    heap_desc_t *h = call_enter(heap);
    if (!h)
        return -1;
    size_t a = h->allocated, f = heap_free_bytes(h), p = h->peak;
    call_leave(h, NULL);
    if (allocated)
        *allocated = a;
    if (freed)
        *freed = f;
    if (peak)
        *peak = p;
    return 0;
}

/* Checks h: each chunk's region, its entries in the segment map, and the
 * heap's counts against them. Caller holds h's lock. 0, or -1 after
 * pa_verify_fail. */
static int heap_verify_locked(const heap_desc_t *h)
{
    size_t count = 0, mapped = 0, allocated = 0;
    bool first_seen = false;
    for (const chunk_t *c = h->chunks; c; c = c->next, count++) {
        if (c->heap != h)
            return pa_verify_fail("chunk %p lists heap %p", (const void *)c,
                                  (const void *)c->heap);
        if (c->map_size) {
            uintptr_t last = (uintptr_t)c + c->map_size - 1;
            uintptr_t want = (uintptr_t)c | SEGMAP_PRIVATE;
            if (segmap_lookup(c) != want || segmap_lookup((const void *)last) != want)
                return pa_verify_fail("chunk %p is missing from the segment map",
                                      (const void *)c);
        }
        if (pa_region_verify(c->region))
            return pa_verify_fail("in chunk %p", (const void *)c);
        region_usage_t u;
        pa_region_usage(c->region, &u);
        allocated += u.allocated;
        mapped += c->map_size;
        first_seen |= c == h->first;
    }
    if (count != h->chunk_count || !first_seen || mapped != h->mapped)
        return pa_verify_fail("%zu chunks (%zu bytes) listed, %zu (%zu bytes) counted", count,
                              mapped, h->chunk_count, h->mapped);
    if (h->limit && h->mapped > h->limit)
        return pa_verify_fail("%zu bytes mapped over a limit of %zu", h->mapped, h->limit);
    if (allocated != h->allocated || h->peak < h->allocated)
        return pa_verify_fail("regions hold %zu bytes, the heap counts %zu (peak %zu)", allocated,
                              h->allocated, h->peak);
    return 0;
}

static int heap_verify(const heap_desc_t *h)
{
    return heap_verify_locked(h) ? pa_verify_fail("in private heap %p", (const void *)h) : 0;
}

PALLOCATOR_API int myheap_verify(myheap_t *heap)
{
    heap_desc_t *h = call_enter(heap);
    if (!h)
        return -1;
    int rc = heap_verify(h);
    call_leave(h, NULL);
    return rc;
}

/* ---- myfree, myalloc_usable_size and myrealloc of a private block ---- */

/* Claims the chunk that entry names for a call on p, in *slot (NULL: the
 * slot of threads without a heap, taken with the pool lock). Returns the
 * chunk's heap, locked and live, with p's chunk still in the segment map;
 * NULL (nothing held) when p's chunk is gone or its heap destroyed. */
static heap_desc_t *private_enter(void *p, uintptr_t entry, segment_claim_t **slot)
{
    chunk_t *c = (chunk_t *)(entry & ~SEGMAP_TAGS);
    if (!*slot)
        *slot = pa_segment_claim_heapless();
    segment_claim_publish(*slot, (segment_t *)c, pa_asymmetric_barrier);
    /* Read after the claim: a destroy that changes it waits for the claim
     * to end before it unmaps, so the chunk's header stays readable. */
    if (segmap_lookup(p) == entry) {
        heap_desc_t *h = c->heap;
        heap_lock(h);
        /* Chunks leave the map under the lock: a look now settles it. */
        if (heap_is_live(h) && segmap_lookup(p) == entry)
            return h;
        heap_unlock(h);
    }
    return NULL;
}

static void private_claim_end(segment_claim_t *slot, bool heapless)
{
    segment_claim_end(slot);
    if (heapless)
        pa_segment_pool_unlock();
}

/* Ends a private call: the heap's lock, then the claim, then the chunks
 * the call detached (whose unmapping waits for claims, the caller's
 * included). */
static void private_leave(heap_desc_t *h, chunk_t *victims, segment_claim_t *slot,
                          bool heapless)
{
    heap_expire(h, &victims);
    heap_unlock(h);
    private_claim_end(slot, heapless);
    victims_unmap(victims);
}

int pa_myheap_free_private(void *p, uintptr_t entry, segment_claim_t *slot)
{
    bool heapless = slot == NULL;
    heap_desc_t *h = private_enter(p, entry, &slot);
    if (!h) {
        private_claim_end(slot, heapless);
        errno = EINVAL;
        return -1;
    }
    chunk_t *victims = NULL;
    bool freed = heap_free_locked(h, p, &victims);
    private_leave(h, victims, slot, heapless);
    if (!freed) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

size_t pa_myheap_usable_private(void *p, uintptr_t entry, segment_claim_t *slot)
{
    bool heapless = slot == NULL;
    heap_desc_t *h = private_enter(p, entry, &slot);
    size_t usable = 0;
    if (h) {
        usable = heap_usable_locked(h, p);
        private_leave(h, NULL, slot, heapless);
    } else {
        private_claim_end(slot, heapless);
    }
    if (!usable)
        errno = EINVAL;
    return usable;
}

void *pa_myheap_realloc_private(void *p, uintptr_t entry, size_t size, segment_claim_t *slot)
{
    bool heapless = slot == NULL;
    heap_desc_t *h = private_enter(p, entry, &slot);
    if (!h) {
        private_claim_end(slot, heapless);
        return create_fail(EINVAL);
    }
    chunk_t *victims = NULL;
    int error = 0;
    void *q = heap_realloc_locked(h, p, size, &victims, &error);
    private_leave(h, victims, slot, heapless);
    if (!q)
        errno = error;
    return q;
}

/* ---- introspection, cleanup and fork ------------------------------------ */

void pa_myheap_totals(myheap_totals_t *t)
{
    *t = (myheap_totals_t){0};
    pa_mutex_lock(&registry_lock);
    for (heap_desc_t *h = registry; h; h = h->reg_next) {
        heap_lock(h);
        t->allocated += h->allocated;
        t->freed += heap_free_bytes(h);
        t->peak += h->peak;
        t->heaps++;
        t->chunks += h->chunk_count;
        t->mapped += h->mapped;
        heap_unlock(h);
    }
    pa_mutex_unlock(&registry_lock);
}

static void dump_flags(const heap_desc_t *h, char *buf, size_t size)
{
    static const char *const release_names[] = {"delayed", "immediate", "never"};
    snprintf(buf, size, "%s%s%srelease %s", (h->flags & MYHEAP_SINGLE_THREAD) ? "single-thread " : "",
             (h->flags & MYHEAP_LOCKED) ? "locked " : "",
             (h->flags & MYHEAP_NUMA_NODE) ? "numa-node " : "", release_names[h->release]);
}

void pa_myheap_dump(void)
{
    pa_mutex_lock(&registry_lock);
    for (heap_desc_t *h = registry; h; h = h->reg_next) {
        heap_lock(h);
        char flags[96];
        dump_flags(h, flags, sizeof flags);
        fprintf(stderr, "  private heap %p (%s): %s, fit %s, %zu chunk%s, %zu bytes mapped "
                "(limit %zu), allocated %zu, free %zu, peak %zu\n", (void *)h,
                h->in_buffer ? "in a buffer" : "mapped", flags, fit_name(h->fit), h->chunk_count,
                h->chunk_count == 1 ? "" : "s", h->mapped, h->limit, h->allocated,
                heap_free_bytes(h), h->peak);
        heap_unlock(h);
    }
    pa_mutex_unlock(&registry_lock);
}

/* Segment-map slots a chunk takes. */
static size_t chunk_slots(const chunk_t *c)
{
    return c->map_size ? (c->map_size + PA_SEGMENT_SIZE - 1) / PA_SEGMENT_SIZE : 0;
}

int pa_myheap_verify_all(size_t *slots)
{
    int rc = 0;
    for (heap_desc_t *h = registry; h && rc == 0; h = h->reg_next) {
        rc = heap_verify(h);
        for (const chunk_t *c = h->chunks; c; c = c->next)
            *slots += chunk_slots(c);
    }
    return rc;
}

void pa_myheap_release_all(void)
{
    pa_mutex_lock(&registry_lock);
    heap_desc_t *h = registry;
    while (h) {
        heap_desc_t *next = h->reg_next;
        __atomic_store_n(&h->magic, 0, __ATOMIC_RELEASE);
        if (h->in_buffer && PA_ANNOTATED_BUILD)
            chunk_open(h->first);
        chunk_t *c = h->in_buffer ? NULL : h->chunks;
        while (c) {
            chunk_t *cnext = c->next;
            pa_segmap_unregister((uintptr_t)c, c->map_size);
            pa_os_unmap(c, c->map_size);
            c = cnext;
        }
        if (!h->in_buffer)
            descriptor_give_locked(h);
        h = next;
    }
    registry = NULL;
    pa_mutex_unlock(&registry_lock);
}

void pa_myheap_lock_all(void)
{
    pa_mutex_lock(&registry_lock);
    for (heap_desc_t *h = registry; h; h = h->reg_next)
        if (!heap_is_single(h))
            heap_lock(h);
}

void pa_myheap_unlock_all(void)
{
    for (heap_desc_t *h = registry; h; h = h->reg_next)
        if (!heap_is_single(h))
            heap_unlock(h);
    pa_mutex_unlock(&registry_lock);
}

/* Only the forking thread lives on: tickets that other threads drew are
 * void, and so are the claims they held. */
void pa_myheap_fork_child(void)
{
    for (heap_desc_t *h = registry; h; h = h->reg_next) {
        h->lock.next = h->lock.serving = 0;
#if defined(PA_DEBUG) && PA_DEBUG
        h->inside = NULL;
#endif
    }
    pa_segment_claim_clear_all();
    pa_mutex_unlock(&registry_lock);
}
