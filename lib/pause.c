/* SPDX-License-Identifier: MIT */
/*
 * pause.c - the pause handshake that lets introspection, fork() and
 * pa_heap_share see heaps at rest: the owner's slow half, the pauser's
 * membarrier (or fences), pausing and resuming every heap, and the heap
 * side of the fork handlers.
 */
#include "heap.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifdef HAVE_LINUX_MEMBARRIER_H
#include <linux/membarrier.h>
#endif

bool pa_asymmetric_barrier;

static pthread_mutex_t pause_lock = PTHREAD_MUTEX_INITIALIZER;

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

static void heap_barrier_heavy(void);

void pa_heap_barrier_setup(void)
{
    pa_asymmetric_barrier = false;
#if defined(HAVE_LINUX_MEMBARRIER_H) && !defined(PA_UNDER_TSAN)
    if (membarrier_call(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0)
        pa_asymmetric_barrier = true;
#endif
    pa_segment_claim_set_barrier(heap_barrier_heavy);
}

/* The pauser's half of the handshake: with membarrier, forces a full
 * barrier on every running thread, whose own side was only a compiler
 * barrier. Without it, both sides use sequentially consistent accesses.
 * Retiring a segment uses it too, against claims (segment_claim_begin). */
static void heap_barrier_heavy(void)
{
#if defined(HAVE_LINUX_MEMBARRIER_H) && !defined(PA_UNDER_TSAN)
    if (pa_asymmetric_barrier && membarrier_call(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
        __atomic_thread_fence(__ATOMIC_SEQ_CST); /* registered, so never expected */
#endif
}

void pa_heap_enter_slow(heap_t *h)
{
    if (pa_fork_holder)
        return; /* every other thread waits for the fork */
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
 * until pa_heap_resume_all. Single-threaded mode needs neither. */
void pa_heap_pause_all(void)
{
    if (pa_fork_holder)
        return; /* paused for fork() already: introspection in a fork handler */
    pa_mutex_lock(&pause_lock);
    pa_heap_registry_lock();
    if (!pa_is_concurrent())
        return;
    /* A heap whose thread is gone is seen abandoned. */
    pa_heap_registry_reap();
    /* The pauser takes blocks back into heaps it does not own. */
    pa_segment_retire_hold(true);
    for (heap_t *h = pa_heap_registry_first(); h; h = h->next_all)
        __atomic_fetch_or(&h->gate, HEAP_GATE_PAUSE, __ATOMIC_SEQ_CST);
    heap_barrier_heavy();
    for (heap_t *h = pa_heap_registry_first(); h; h = h->next_all)
        heap_wait_at_rest(h);
}

void pa_heap_share(heap_t *h)
{
    pa_mutex_lock(&pause_lock);
    if (!__atomic_load_n(&h->shared, __ATOMIC_ACQUIRE)) {
        /* Already paused only for fork(), by this thread: it stays so. */
        unsigned before = __atomic_fetch_or(&h->gate, HEAP_GATE_PAUSE, __ATOMIC_SEQ_CST);
        heap_barrier_heavy();
        heap_wait_at_rest(h);
        __atomic_store_n(&h->shared, 1, __ATOMIC_RELEASE);
        __atomic_fetch_or(&h->gate, HEAP_GATE_SHARED, __ATOMIC_SEQ_CST);
        if (!(before & HEAP_GATE_PAUSE))
            __atomic_fetch_and(&h->gate, ~HEAP_GATE_PAUSE, __ATOMIC_RELEASE);
    }
    pa_mutex_unlock(&pause_lock);
}

void pa_heap_resume_all(void)
{
    if (pa_fork_holder)
        return;
    if (pa_is_concurrent()) {
        for (heap_t *h = pa_heap_registry_first(); h; h = h->next_all)
            __atomic_fetch_and(&h->gate, ~HEAP_GATE_PAUSE, __ATOMIC_RELEASE);
        pa_segment_retire_hold(false);
    }
    pa_heap_registry_unlock();
    pa_mutex_unlock(&pause_lock);
}

/* ---- fork ------------------------------------------------------------ */

void pa_heap_fork_prepare(void)
{
    pa_heap_pause_all();
}

void pa_heap_fork_parent(void)
{
    pa_heap_resume_all();
}

/* Only the forking thread lives on in the child: every other heap loses
 * its owner and waits for adoption (pa_heap_registry_fork_child). That thread
 * holds the locks, and releases them as in the parent (which also tells
 * ThreadSanitizer they are free). */
void pa_heap_fork_child(void)
{
    for (heap_t *h = pa_heap_registry_first(); h; h = h->next_all)
        pa_heap_outbox_flush(h);
    for (heap_t *h = pa_heap_registry_first(); h; h = h->next_all) {
        h->gate &= ~HEAP_GATE_PAUSE;
        h->in_call = 0;
    }
    pa_heap_registry_fork_child();
    if (pa_is_concurrent()) {
        pa_heap_barrier_setup();
        /* The child's barrier may differ from the parent's. */
        for (heap_t *h = pa_heap_registry_first(); h; h = h->next_all)
            h->gate = (h->gate & ~HEAP_GATE_FENCED) |
                      (pa_asymmetric_barrier ? 0 : HEAP_GATE_FENCED);
    }
    pa_heap_resume_all();
}
