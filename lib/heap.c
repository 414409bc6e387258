/*
 * heap.c - thread heaps: growing and shrinking a heap by segments, the
 * lock-free hand-over of blocks freed by other threads, attaching heaps to
 * threads (adopting those whose threads have exited), the pause handshake
 * that lets introspection and fork() see every heap at rest, and fork.
 */
#include "heap.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifdef HAVE_LINUX_MEMBARRIER_H
#include <linux/membarrier.h>
#endif

#include "os.h"

heap_t *pa_single_heap;
bool pa_asymmetric_barrier;
__thread pa_thread_t pa_thread __attribute__((tls_model("initial-exec")));

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t pause_lock = PTHREAD_MUTEX_INITIALIZER;
static heap_t *registry_all;
static heap_t *registry_abandoned;
static unsigned registry_next_id;
static pthread_key_t thread_exit_key;
static bool thread_exit_key_created;

#define HEAP_MAP_SIZE align_up(sizeof(heap_t), PA_PAGE_SIZE)

/* ---- growing and shrinking ------------------------------------------ */

void heap_init_heap(heap_t *h, unsigned id)
{
    memset(h, 0, sizeof(*h));
    slab_set_init(&h->slabs, h, &h->held);
    tlsf_init(&h->arena.tlsf);
    h->id = id;
    h->state = HEAP_OWNED;
    h->poll_countdown = HEAP_POLL_INTERVAL;
    h->gate = pa_asymmetric_barrier ? 0 : HEAP_GATE_FENCED;
}

static pa_noinline block_t *heap_grow(heap_t *h, arena_t *a, size_t block_size)
{
    segment_t *s = segment_acquire(h, a);
    if (!s)
        return NULL;
    segment_list_push(&a->segments, &a->segment_count, s);
    tlsf_add_area(&a->tlsf, segment_first_block(s), SEGMENT_AREA_SIZE);
    return tlsf_take(&a->tlsf, block_size);
}

block_t *heap_take(heap_t *h, size_t n)
{
    if (heap_has_handover(h))
        heap_drain_handover_some(h);
    size_t block_size = tlsf_block_size_for(n);
    block_t *b = tlsf_take(&h->arena.tlsf, block_size);
    if (pa_unlikely(!b))
        b = heap_grow(h, &h->arena, block_size);
    if (pa_likely(b != NULL))
        heap_used_grow(h, block_usable(b));
    return b;
}

static void arena_retire_segment(arena_t *a, segment_t *s, block_t *whole)
{
    if (a->spare == s)
        a->spare = NULL;
    tlsf_remove(&a->tlsf, whole);
    segment_list_remove(&a->segments, &a->segment_count, s);
    segment_retire(s);
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
    if (a->spare && a->spare != s && segment_is_empty(a->spare))
        arena_retire_segment(a, s, whole);
    else
        a->spare = s;
}

void heap_give(heap_t *h, block_t *b)
{
    segment_t *s = segment_of(b);
    pa_assert(s->owner == h);
    heap_used_shrink(h, block_usable(b));
    arena_t *a = s->arena;
    block_t *merged = tlsf_give(&a->tlsf, b);
    if (pa_unlikely(segment_area_is_whole(s, merged)))
        arena_segment_emptied(a, s, merged);
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
}

/* ---- hand-over of blocks freed by other threads --------------------- */

/* Pushes one entry (a single block, or a batch block tagged) onto h's
 * hand-over list. */
static void heap_handover_push_entry(heap_t *h, block_t *b, uintptr_t tag)
{
    block_t *head = __atomic_load_n(&h->handover, __ATOMIC_RELAXED);
    do {
        b->next_free = head;
    } while (!__atomic_compare_exchange_n(&h->handover, &head,
                                          (block_t *)((uintptr_t)b | tag), true,
                                          __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

void heap_handover_push(heap_t *h, block_t *b)
{
    heap_handover_push_entry(h, b, 0);
}

static handover_batch_t *batch_of(block_t *b)
{
    return block_payload(b);
}

void heap_outbox_flush(heap_t *h)
{
    block_t *b = h->outbox;
    if (b) {
        h->outbox = NULL;
        heap_handover_push_entry(h->outbox_owner, b, HEAP_HANDOVER_BATCH_TAG);
    }
}

void heap_outbox_add(heap_t *h, heap_t *owner, block_t *b, size_t size)
{
    if (h->outbox && h->outbox_owner != owner)
        heap_outbox_flush(h);
    if (!h->outbox) {
        /* A slab block (its handle, like a single handed-over slab
         * block's), never marked live. */
        void *p = slab_take(&h->slabs, slab_class_of(sizeof(handover_batch_t)));
        if (!p) {
            heap_handover_push(owner, b);
            return;
        }
        block_t *nb = block_from_payload(p);
        batch_of(nb)->count = 0;
        h->outbox = nb;
        h->outbox_owner = owner;
    }
    handover_batch_t *batch = batch_of(h->outbox);
    batch->sizes[batch->count] = (uint32_t)size;
    batch->blocks[batch->count++] = b;
    if (batch->count == HEAP_OUTBOX_SLOTS)
        heap_outbox_flush(h);
}

/* Frees a handed-over block of known size (0: a slab block) into h. */
static void heap_take_back_block(heap_t *h, block_t *b, size_t size)
{
    if (size == 0) {
        void *p = block_payload(b);
        slab_give(&h->slabs, slab_of(segment_of(p), p), p);
    } else {
        heap_give(h, b);
    }
}

/* Frees every block of a batch into h, then sends the batch's own block
 * home to the heap that made it (never in a new batch). Returns the number
 * of blocks freed. */
static size_t heap_take_back_batch(heap_t *h, block_t *batch_block)
{
    handover_batch_t *batch = batch_of(batch_block);
    uint32_t n = batch->count;
    for (uint32_t i = 0; i < n; i++) {
        /* Independent addresses: let several misses run at once. */
        if (i + 4 < n)
            __builtin_prefetch(batch->blocks[i + 4], 1);
        heap_take_back_block(h, batch->blocks[i], batch->sizes[i]);
    }
    heap_t *maker = __atomic_load_n(&segment_of(batch_block)->owner, __ATOMIC_ACQUIRE);
    heap_handover_push_entry(maker, batch_block, HEAP_HANDOVER_RETURN_TAG);
    return n;
}

/* Frees up to about limit blocks of the owner-private pending list,
 * refilling it from the shared hand-over list when it runs dry. */
static void heap_take_back(heap_t *h, size_t limit)
{
    for (size_t n = 0; n < limit;) {
        if (!h->pending) {
            h->pending = __atomic_exchange_n(&h->handover, NULL, __ATOMIC_ACQUIRE);
            if (!h->pending)
                return;
        }
        uintptr_t entry = (uintptr_t)h->pending;
        block_t *b = (block_t *)(entry & ~HEAP_HANDOVER_TAGS);
        h->pending = b->next_free;
        if (entry & HEAP_HANDOVER_BATCH_TAG) {
            n += heap_take_back_batch(h, b);
        } else {
            heap_take_back_block(h, b, heap_handed_size(b));
            n++;
        }
    }
}

void heap_drain_handover_some(heap_t *h)
{
    heap_take_back(h, HEAP_TAKE_BACK_LIMIT);
}

void heap_poll_handover(heap_t *h)
{
    h->poll_countdown = HEAP_POLL_INTERVAL;
    heap_outbox_flush(h);
    if (heap_has_handover(h))
        heap_drain_handover_some(h);
}

void heap_drain_handover(heap_t *h)
{
    heap_take_back(h, SIZE_MAX);
}

/* ---- the registry of heaps, thread attachment and exit -------------- */

void heap_registry_lock(void)
{
    pthread_mutex_lock(&registry_lock);
}

void heap_registry_unlock(void)
{
    pthread_mutex_unlock(&registry_lock);
}

heap_t *heap_registry_first(void)
{
    return registry_all;
}

/* Caller holds registry_lock. */
static heap_t *heap_create_locked(void)
{
    heap_t *h = os_map(HEAP_MAP_SIZE);
    if (!h)
        return NULL;
    heap_init_heap(h, registry_next_id++);
    h->next_all = registry_all;
    registry_all = h;
    return h;
}

heap_t *heap_create(void)
{
    heap_registry_lock();
    heap_t *h = heap_create_locked();
    heap_registry_unlock();
    return h;
}

static void heap_abandon(heap_t *h)
{
    heap_enter(h);
    heap_outbox_flush(h);
    heap_drain_handover(h);
    heap_shrink_fully(h);
    slab_shrink(&h->slabs);
    heap_leave(h);
    heap_registry_lock();
    h->state = HEAP_ABANDONED;
    h->thread = NULL;
    h->next_abandoned = registry_abandoned;
    registry_abandoned = h;
    heap_registry_unlock();
    pa_log("heap %u abandoned", h->id);
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
bool heap_exit_hook_setup(void)
{
    if (!thread_exit_key_created)
        thread_exit_key_created = pthread_key_create(&thread_exit_key, heap_thread_exit) == 0;
    return thread_exit_key_created;
}

heap_t *heap_attach_thread(void)
{
    heap_registry_lock();
    heap_t *h = registry_abandoned;
    if (h) {
        registry_abandoned = h->next_abandoned;
        h->next_abandoned = NULL;
        h->state = HEAP_OWNED;
    } else {
        h = heap_create_locked();
    }
    if (h)
        h->thread = pa_thread.exited ? NULL : &pa_thread;
    heap_registry_unlock();
    if (!h)
        return NULL;
    pa_thread.heap = h;
    pthread_setspecific(thread_exit_key, h);
    return h;
}

/* Unmaps every heap and its segments; only while nothing else runs. */
void heap_release_all(void)
{
    heap_t *h = registry_all;
    while (h) {
        heap_t *next = h->next_all;
        if (h->thread)
            h->thread->heap = NULL; /* its thread attaches a new heap when it next allocates */
        slab_release_all(&h->slabs);
        segment_t *s = h->arena.segments;
        while (s) {
            segment_t *snext = s->next;
            segment_unmap(s);
            s = snext;
        }
        os_unmap(h, HEAP_MAP_SIZE);
        h = next;
    }
    registry_all = NULL;
    registry_abandoned = NULL;
    registry_next_id = 0;
    pa_thread.heap = NULL;
}

/* ---- pause handshake ------------------------------------------------- */

#if defined(__SANITIZE_THREAD__)
#define PA_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PA_UNDER_TSAN 1
#endif
#endif

static __attribute__((unused)) long membarrier_call(int cmd)
{
#if defined(HAVE_LINUX_MEMBARRIER_H) && defined(__NR_membarrier)
    return syscall(__NR_membarrier, cmd, 0, 0);
#else
    (void)cmd;
    errno = ENOSYS;
    return -1;
#endif
}

void heap_barrier_setup(void)
{
    pa_asymmetric_barrier = false;
#if defined(HAVE_LINUX_MEMBARRIER_H) && !defined(PA_UNDER_TSAN)
    if (membarrier_call(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0)
        pa_asymmetric_barrier = true;
#endif
}

/* The pauser's half of the handshake: with membarrier, forces a full
 * barrier on every running thread, whose own side was only a compiler
 * barrier. Without it, both sides use sequentially consistent accesses. */
static void heap_barrier_heavy(void)
{
#if defined(HAVE_LINUX_MEMBARRIER_H) && !defined(PA_UNDER_TSAN)
    if (pa_asymmetric_barrier && membarrier_call(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
        __atomic_thread_fence(__ATOMIC_SEQ_CST); /* registered, so never expected */
#endif
}

void heap_enter_slow(heap_t *h)
{
    for (;;) {
        __atomic_store_n(&h->in_call, 0, __ATOMIC_RELEASE);
        while (__atomic_load_n(&h->gate, __ATOMIC_ACQUIRE) & HEAP_GATE_PAUSE)
            sched_yield();
        __atomic_store_n(&h->in_call, 1, __ATOMIC_SEQ_CST);
        if (!(__atomic_load_n(&h->gate, __ATOMIC_SEQ_CST) & HEAP_GATE_PAUSE))
            return;
    }
}

/* The pauser's wait, once the pause is requested and the barrier issued:
 * the owner is out of its call, and stays out until the request drops. */
static void heap_wait_at_rest(heap_t *h)
{
    while (__atomic_load_n(&h->in_call, __ATOMIC_SEQ_CST))
        sched_yield();
}

/* Brings every heap to rest and keeps it there, with the registry locked,
 * until heap_resume_all. Single-threaded mode needs neither. */
void heap_pause_all(void)
{
    pthread_mutex_lock(&pause_lock);
    heap_registry_lock();
    if (!pa_is_concurrent())
        return;
    for (heap_t *h = registry_all; h; h = h->next_all)
        __atomic_fetch_or(&h->gate, HEAP_GATE_PAUSE, __ATOMIC_SEQ_CST);
    heap_barrier_heavy();
    for (heap_t *h = registry_all; h; h = h->next_all)
        heap_wait_at_rest(h);
}

void heap_share(heap_t *h)
{
    pthread_mutex_lock(&pause_lock);
    if (!__atomic_load_n(&h->shared, __ATOMIC_ACQUIRE)) {
        __atomic_fetch_or(&h->gate, HEAP_GATE_PAUSE, __ATOMIC_SEQ_CST);
        heap_barrier_heavy();
        heap_wait_at_rest(h);
        __atomic_store_n(&h->shared, 1, __ATOMIC_RELEASE);
        __atomic_fetch_or(&h->gate, HEAP_GATE_SHARED, __ATOMIC_SEQ_CST);
        __atomic_fetch_and(&h->gate, ~HEAP_GATE_PAUSE, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&pause_lock);
}

void heap_resume_all(void)
{
    if (pa_is_concurrent())
        for (heap_t *h = registry_all; h; h = h->next_all)
            __atomic_fetch_and(&h->gate, ~HEAP_GATE_PAUSE, __ATOMIC_RELEASE);
    heap_registry_unlock();
    pthread_mutex_unlock(&pause_lock);
}

/* ---- fork ------------------------------------------------------------ */

void heap_fork_prepare(void)
{
    heap_pause_all();
    segment_pool_lock();
}

void heap_fork_parent(void)
{
    segment_pool_unlock();
    heap_resume_all();
}

/* Only the forking thread lives on in the child: every other heap loses its
 * owner and waits for adoption, its live blocks still valid. */
void heap_fork_child(void)
{
    segment_pool_reinit_lock();
    pthread_mutex_init(&registry_lock, NULL);
    pthread_mutex_init(&pause_lock, NULL);
    registry_abandoned = NULL;
    for (heap_t *h = registry_all; h; h = h->next_all)
        heap_outbox_flush(h);
    for (heap_t *h = registry_all; h; h = h->next_all) {
        h->gate &= ~HEAP_GATE_PAUSE;
        h->in_call = 0;
        if (h == pa_thread.heap)
            continue;
        h->state = HEAP_ABANDONED;
        h->thread = NULL;
        h->next_abandoned = registry_abandoned;
        registry_abandoned = h;
    }
    if (pa_is_concurrent()) {
        heap_barrier_setup();
        /* The child's barrier may differ from the parent's. */
        for (heap_t *h = registry_all; h; h = h->next_all)
            h->gate = (h->gate & ~HEAP_GATE_FENCED) |
                      (pa_asymmetric_barrier ? 0 : HEAP_GATE_FENCED);
    }
}
