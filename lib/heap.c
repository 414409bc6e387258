/* SPDX-License-Identifier: MIT */
/*
 * heap.c - thread heaps: growing and shrinking a heap's arena by segments,
 * and the registry of heaps: creating them, attaching them to threads,
 * abandoning the heap of an exiting thread and adopting it again. The
 * hand-over of remote frees is in handover.c, the pause handshake and fork
 * in pause.c.
 */
#include "heap.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "numa.h"
#include "os.h"

heap_t *pa_single_heap;
__thread pa_thread_t pa_thread __attribute__((tls_model("initial-exec")));

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static heap_t *registry_all;
static heap_t *registry_abandoned;
static unsigned registry_next_id;
static pthread_key_t thread_exit_key;
static bool thread_exit_key_created;

#define HEAP_MAP_SIZE align_up(sizeof(heap_t), PA_PAGE_SIZE)

/* ---- verification ----------------------------------------------------- */

typedef struct arena_tally {
    const segment_t *segment;
    size_t live_marks;   /* used blocks marked live, in the current segment */
    arena_usage_t usage;
} arena_tally_t;

static int arena_visit_block(const block_t *b, void *ctx)
{
    arena_tally_t *tally = ctx;
    bool live = segment_live_test(tally->segment, block_payload(b));
    if (block_is_free(b))
        return live ? pa_verify_fail("free block %p is marked live", (const void *)b) : 0;
    /* A used block without its live mark: another thread is freeing it
     * right now, between claiming the mark and handing it over. */
    if (live && !pa_canary_ok(block_payload(b), block_usable(b)))
        return pa_verify_fail("block %p: canary overwritten", block_payload(b));
    if (live)
        tally->live_marks++;
    else
        tally->usage.unmarked_used++;
    tally->usage.used_usable += block_counted(b);
    return 0;
}

typedef struct arena_ref {
    const heap_t *owner;
    const arena_t *arena;
} arena_ref_t;

/* Whether a block listed in arena ctx lies in one of its segments (a
 * pooled segment keeps its old arena pointer, so the owner is checked). */
static bool arena_owns_block(const block_t *b, const void *ctx)
{
    const arena_ref_t *ref = ctx;
    const segment_t *s = segment_of(b);
    const block_t *sentinel = (const block_t *)((const char *)s + PA_SEGMENT_SIZE -
                                                BLOCK_HEADER_SIZE);
    return s->arena == ref->arena && __atomic_load_n(&s->owner, __ATOMIC_RELAXED) == ref->owner &&
           b >= segment_first_block(s) && b < sentinel && ((uintptr_t)b & (PA_GRANULE - 1)) == 0;
}

int pa_arena_verify(const heap_t *h, const arena_t *a, arena_usage_t *usage)
{
    arena_tally_t tally = {0};
    tlsf_area_tally_t area = {0};
    size_t count = 0;
    for (const segment_t *s = a->segments; s; s = s->next, count++) {
        if (s->arena != a)
            return pa_verify_fail("segment %p is listed in the wrong arena", (const void *)s);
        tally.segment = s;
        tally.live_marks = 0;
        const block_t *sentinel = (const block_t *)((const char *)s + PA_SEGMENT_SIZE -
                                                    BLOCK_HEADER_SIZE);
        if (pa_tlsf_verify_area(segment_first_block(s), sentinel, arena_visit_block, &tally,
                             &area) ||
            pa_segment_verify(s, h, tally.live_marks))
            return -1;
    }
    if (count != a->segment_count)
        return pa_verify_fail("arena %p lists %zu segments, counts %zu", (const void *)a, count,
                           a->segment_count);
    arena_ref_t ref = {h, a};
    if (pa_tlsf_verify(&a->tlsf, arena_owns_block, &ref))
        return -1;
    if (area.free_bytes != a->tlsf.free_bytes || area.free_blocks != a->tlsf.free_blocks)
        return pa_verify_fail("arena %p: free blocks hold %zu bytes in %zu, statistics say "
                           "%zu in %zu", (const void *)a, area.free_bytes, area.free_blocks,
                           a->tlsf.free_bytes, a->tlsf.free_blocks);
    if (usage)
        *usage = tally.usage;
    return 0;
}

/* ---- growing and shrinking ------------------------------------------ */

void pa_heap_init(heap_t *h, unsigned id)
{
    memset(h, 0, sizeof(*h));
    pa_slab_set_init(&h->slabs, h, &h->held);
    pa_tlsf_init(&h->arena.tlsf);
    h->id = id;
    h->numa_node = -1;
    h->slabs.numa_node = &h->numa_node;
    h->state = HEAP_OWNED;
    h->poll_countdown = HEAP_POLL_INTERVAL;
    h->gate = pa_asymmetric_barrier ? 0 : HEAP_GATE_FENCED;
}

bool pa_heap_arena_grow(heap_t *h)
{
    arena_t *a = &h->arena;
    segment_t *s = pa_segment_acquire(h, a, numa_node_refresh(&h->numa_node));
    if (!s)
        return false;
    segment_list_push(&a->segments, &a->segment_count, s);
    /* The pages may have served slabs, whose free blocks were closed to
     * memory checkers: open the area to lay it out, then close the free
     * payload. */
    block_t *first = segment_first_block(s);
    pa_mem_open(first, SEGMENT_AREA_SIZE);
    pa_tlsf_add_area(&a->tlsf, first, SEGMENT_AREA_SIZE);
    pa_mem_close(block_payload(first), block_usable(first));
    pa_assert(pa_arena_verify(h, a, NULL) == 0);
    return true;
}

static pa_noinline block_t *heap_grow(heap_t *h, arena_t *a, size_t block_size)
{
    if (!pa_heap_arena_grow(h))
        return NULL;
    return pa_tlsf_take(&a->tlsf, block_size);
}

block_t *pa_heap_take(heap_t *h, size_t n)
{
    if (heap_has_handover(h))
        pa_heap_drain_handover_some(h);
    /* A medium request gets its cache class's size, so the block serves
     * that class again once freed. */
    size_t block_size = n > SLAB_REQUEST_MAX ? cache_block_size_for(n) : tlsf_block_size_for(n);
    block_t *b = pa_tlsf_take(&h->arena.tlsf, block_size);
    if (pa_unlikely(!b))
        b = heap_grow(h, &h->arena, block_size);
    if (pa_likely(b != NULL))
        heap_used_grow(h, block_counted(b));
    return b;
}

static void arena_retire_segment(arena_t *a, segment_t *s, block_t *whole)
{
    if (a->spare == s)
        a->spare = NULL;
    pa_tlsf_remove(&a->tlsf, whole);
    segment_list_remove(&a->segments, &a->segment_count, s);
    pa_segment_retire(s);
}

static bool segment_is_empty(const segment_t *s)
{
    const block_t *first = segment_first_block(s);
    return block_is_free(first) && segment_area_is_whole(s, first);
}

/* An arena keeps one wholly free segment as a spare, so a heap whose use
 * swings around a segment boundary does not map and unmap on every swing;
 * a second empty segment goes back to the OS. */
static pa_noinline void arena_segment_emptied(arena_t *a, segment_t *s, block_t *whole)
{
    if (!a->spare || a->spare == s || !segment_is_empty(a->spare))
        a->spare = s;
    else if (pa_segment_may_retire())
        arena_retire_segment(a, s, whole);
}

void pa_heap_give(heap_t *h, block_t *b)
{
    segment_t *s = segment_of(b);
    pa_assert(s->owner == h);
    heap_used_shrink(h, block_counted(b));
    arena_t *a = s->arena;
    block_t *merged = pa_tlsf_give(&a->tlsf, b);
    if (pa_unlikely(segment_area_is_whole(s, merged))) {
        arena_segment_emptied(a, s, merged);
        pa_assert(pa_arena_verify(h, a, NULL) == 0);
    }
}

/* Hands every wholly free segment back, the last one included. */
static void heap_shrink_fully(heap_t *h)
{
    arena_t *a = &h->arena;
    segment_t *s = a->segments;
    while (s) {
        segment_t *next = s->next;
        if (segment_is_empty(s))
            arena_retire_segment(a, s, segment_first_block(s));
        s = next;
    }
    pa_assert(pa_arena_verify(h, a, NULL) == 0);
}

/* ---- marks of life ---------------------------------------------------- */

/* The exit hook cannot see every thread out: a thread whose first heap
 * comes in the last round of key destructors, from a key created after
 * the hook's, arms the hook when glibc runs no round after it. So every
 * thread that owns a heap also holds one of these robust mutexes for the
 * rest of its life, and the kernel marks it as its owner's when the thread
 * is gone, whatever order its exit ran in. A heap whose owner's mark says so is
 * abandoned by the next attach or pause (registry_reap_gone), and
 * allocator_cleanup leaves the thread's slot alone. They are never
 * destroyed: a live thread's robust list links the one it holds. A thread
 * that finds none free does without, its heap left to the exit hook. */
#define HEAP_ALIVE_MARKS 1024
static pthread_mutex_t alive_marks[HEAP_ALIVE_MARKS];
static pthread_once_t alive_once = PTHREAD_ONCE_INIT;
static bool alive_ready;
static unsigned alive_next; /* where the search for a free mark starts */

static bool alive_mark_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    if (pthread_mutexattr_init(&attr) != 0)
        return false;
    bool ok = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0 &&
              pthread_mutex_init(m, &attr) == 0;
    pthread_mutexattr_destroy(&attr);
    return ok;
}

static void alive_marks_init(void)
{
    for (size_t i = 0; i < HEAP_ALIVE_MARKS; i++)
        if (!alive_mark_init(&alive_marks[i]))
            return;
    alive_ready = true;
}

/* Takes mark i when it is free or its owner is gone (EOWNERDEAD): 0, or
 * EBUSY while its owner lives (the caller included). */
static int alive_mark_try(unsigned i)
{
    int rc = pthread_mutex_trylock(&alive_marks[i]);
    if (rc == EOWNERDEAD)
        rc = pthread_mutex_consistent(&alive_marks[i]);
    return rc;
}

/* Whether the thread that holds mark (1 + index) is gone; a mark found so
 * is free again. */
static bool alive_mark_gone(unsigned mark)
{
    if (alive_mark_try(mark - 1) != 0)
        return false;
    pthread_mutex_unlock(&alive_marks[mark - 1]);
    return true;
}

/* ---- the registry of heaps, thread attachment and exit -------------- */

void pa_heap_registry_lock(void)
{
    pa_mutex_lock(&registry_lock);
}

void pa_heap_registry_unlock(void)
{
    pa_mutex_unlock(&registry_lock);
}

heap_t *pa_heap_registry_first(void)
{
    return registry_all;
}

/* Caller holds registry_lock. */
static heap_t *heap_create_locked(void)
{
    heap_t *h = pa_os_map(HEAP_MAP_SIZE);
    if (!h)
        return NULL;
    pa_heap_init(h, registry_next_id++);
    h->next_all = registry_all;
    registry_all = h;
    pa_segment_claim_register(&h->claim);
    return h;
}

heap_t *pa_heap_create(void)
{
    pa_heap_registry_lock();
    heap_t *h = heap_create_locked();
    pa_heap_registry_unlock();
    return h;
}

/* Puts h, whose owner has let it go, on the list for adoption. Caller
 * holds registry_lock. */
static void heap_abandon_locked(heap_t *h)
{
    h->state = HEAP_ABANDONED;
    h->thread = NULL;
    h->alive = 0;
    h->next_abandoned = registry_abandoned;
    registry_abandoned = h;
}

static void heap_abandon(heap_t *h)
{
    heap_enter(h);
    pa_heap_outbox_flush(h);
    pa_heap_drain_handover(h);
    pa_cache_flush(h);
    heap_shrink_fully(h);
    pa_slab_shrink(&h->slabs);
    heap_leave(h);
    pa_heap_registry_lock();
    heap_abandon_locked(h);
    pa_heap_registry_unlock();
    pa_log("heap %u abandoned", h->id);
}

/* Abandons h, whose owner is gone without its exit hook: as the owner
 * left it (the next owner takes its blocks back and trims it), but for
 * its outbox, whose blocks other heaps wait for. Its TLS slot is dead:
 * forgotten. Caller holds registry_lock. */
static void heap_reap(heap_t *h)
{
    __atomic_store_n(&h->in_call, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&h->claim.segment, NULL, __ATOMIC_RELEASE);
    pa_heap_outbox_flush(h);
    heap_abandon_locked(h);
    pa_log("heap %u abandoned: its thread is gone", h->id);
}

/* Abandons every owned heap whose owner is gone (or only the one that
 * held mark, when mark is not 0). Caller holds registry_lock. */
static void registry_reap_gone(unsigned mark)
{
    for (heap_t *h = registry_all; h; h = h->next_all)
        if (h->state == HEAP_OWNED && h->alive && (mark ? h->alive == mark
                                                        : alive_mark_gone(h->alive)))
            heap_reap(h);
}

void pa_heap_registry_reap(void)
{
    registry_reap_gone(0);
}

/* A mark of life for the calling thread: 1 + its index, or 0 when none is
 * free. A mark whose owner is gone may still be named by its heap, which
 * is abandoned first. Caller holds registry_lock. */
static unsigned alive_mark_take(void)
{
    pthread_once(&alive_once, alive_marks_init);
    if (!alive_ready)
        return 0;
    for (unsigned n = 0; n < HEAP_ALIVE_MARKS; n++) {
        unsigned i = (alive_next + n) % HEAP_ALIVE_MARKS;
        if (alive_mark_try(i) == 0) {
            registry_reap_gone(i + 1);
            alive_next = i + 1;
            return i + 1;
        }
    }
    return 0;
}

void pa_heap_release_late(heap_t *h)
{
    int saved = errno;
    heap_abandon(h);
    pa_thread.heap = NULL;
    errno = saved;
}

static void heap_thread_exit(void *value)
{
    heap_t *h = value;
    /* After allocator_cleanup the slot is empty and h long unmapped. */
    if (h && h == pa_thread.heap && pa_is_concurrent())
        heap_abandon(h);
    pa_thread.heap = NULL;
    pa_thread.exited = true;
}

/* Called under the init lock. Without the hook a thread's exit would leave
 * its heap unadopted and its slot recorded, so initialisation fails. */
bool pa_heap_exit_hook_setup(void)
{
    if (!thread_exit_key_created)
        thread_exit_key_created = pthread_key_create(&thread_exit_key, heap_thread_exit) == 0;
    return thread_exit_key_created;
}

/* How many abandoned heaps adoption looks at for one of the caller's node
 * before it takes the most recent: the lock is held while it looks. */
#define HEAP_ADOPT_SCAN 4

/* Takes an abandoned heap off the list, one of node if one of the first
 * few is (node -1: the most recent). Caller holds registry_lock. */
static heap_t *heap_adopt_locked(int node)
{
    heap_t **link = &registry_abandoned;
    heap_t **scan = &registry_abandoned;
    for (unsigned i = 0; node >= 0 && *scan && i < HEAP_ADOPT_SCAN; i++) {
        if ((*scan)->numa_node == node) {
            link = scan;
            break;
        }
        scan = &(*scan)->next_abandoned;
    }
    heap_t *h = *link;
    if (h) {
        *link = h->next_abandoned;
        h->next_abandoned = NULL;
        h->state = HEAP_OWNED;
    }
    return h;
}

heap_t *pa_heap_attach_thread(void)
{
    int node = pa_numa_current_node();
    pa_heap_registry_lock();
    if (!pa_thread.exited && !pa_thread.alive)
        pa_thread.alive = alive_mark_take();
    /* The heaps of threads gone without their hook are adopted too. */
    registry_reap_gone(0);
    heap_t *h = heap_adopt_locked(node);
    if (!h)
        h = heap_create_locked();
    if (h) {
        h->thread = pa_thread.exited ? NULL : &pa_thread;
        h->alive = pa_thread.exited ? 0 : pa_thread.alive;
    }
    pa_heap_registry_unlock();
    if (!h)
        return NULL;
    if (node >= 0)
        h->numa_node = node;
    pa_thread.heap = h;
    /* Not armed past the hook: the next round of destructors, if glibc
     * runs one (PTHREAD_DESTRUCTOR_ITERATIONS at most), would abandon the
     * heap a second time; heap_attach_end abandons it instead. A thread
     * whose first heap comes in a destructor arms it for the next round. */
    if (!pa_thread.exited && pthread_setspecific(thread_exit_key, h) != 0) {
        pa_heap_registry_lock();
        h->thread = NULL;
        h->alive = 0;
        pa_heap_registry_unlock();
        pa_thread.exited = true; /* no hook: pa_heap_release_late abandons h */
    }
    return h;
}

/* Unmaps every heap and its segments; only while nothing else runs. */
void pa_heap_release_all(void)
{
    heap_t *h = registry_all;
    while (h) {
        heap_t *next = h->next_all;
        /* Its thread attaches a new heap when it next allocates; the slot
         * of a thread that is gone is no longer its. */
        if (h->thread && !(h->alive && alive_mark_gone(h->alive)))
            h->thread->heap = NULL;
        pa_slab_release_all(&h->slabs);
        segment_t *s = h->arena.segments;
        while (s) {
            segment_t *snext = s->next;
            pa_segment_unmap(s);
            s = snext;
        }
        pa_os_unmap(h, HEAP_MAP_SIZE);
        h = next;
    }
    registry_all = NULL;
    pa_segment_claim_forget_all();
    registry_abandoned = NULL;
    registry_next_id = 0;
    pa_thread.heap = NULL;
}

#if defined(PA_DEBUG) && PA_DEBUG
/* The thread inside a call of the single-threaded mode (its pa_thread's
 * address), or NULL. */
static const void *single_caller;

bool pa_heap_single_enter(void)
{
    const void *other = __atomic_exchange_n(&single_caller, &pa_thread, __ATOMIC_ACQ_REL);
    if (other == &pa_thread)
        return false;
    if (other) {
        fputs("pallocator: single-threaded mode called from two threads at once "
              "(allocator_init(0) allows one thread at a time)\n", stderr);
        abort();
    }
    return true;
}

void pa_heap_single_leave(void)
{
    __atomic_store_n(&single_caller, NULL, __ATOMIC_RELEASE);
}
#endif

/* The registry's half of fork in the child: only the forking thread lives
 * on, so every other heap loses its owner and waits for adoption, its live
 * blocks still valid. */
void pa_heap_registry_fork_child(void)
{
    registry_abandoned = NULL;
    for (heap_t *h = registry_all; h; h = h->next_all)
        if (h != pa_thread.heap)
            heap_abandon_locked(h);
    /* The marks of the parent's other threads, which the child does not
     * have, are free again (no thread of the child holds them, so none is
     * on a robust list); the forking thread keeps its own. */
    if (!alive_ready)
        return;
    for (unsigned i = 0; i < HEAP_ALIVE_MARKS; i++) {
        if (i + 1 == pa_thread.alive)
            continue;
        if (alive_mark_try(i) == 0)
            pthread_mutex_unlock(&alive_marks[i]);
        else
            alive_mark_init(&alive_marks[i]);
    }
}
