/* SPDX-License-Identifier: MIT */
/*
 * init.c - the allocator's life cycle: allocator_init, automatic
 * initialisation on first use, allocator_cleanup, and the fork handlers.
 */
#include <errno.h>
#include <pthread.h>

#include "heap.h"
#include "large.h"
#include "myheap.h"
#include "numa.h"
#include "pallocator.h"
#include "segmap.h"

pa_mode_t pa_mode = PA_MODE_NONE;

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
__thread bool pa_fork_holder __attribute__((tls_model("initial-exec")));
/* Whether fork_prepare took the large-block lock, which exists only with
 * concurrency: a fork handler may initialise the allocator meanwhile. */
static bool fork_large_locked;

/* The locks in the order every path takes them: pause and registry
 * (pa_heap_fork_prepare), large blocks, segment pool, the private heaps'
 * registry and locks (a myfree of a private block by a thread without a
 * heap holds the pool lock while it takes a heap's), segment map. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&init_lock);
    pa_heap_fork_prepare();
    fork_large_locked = pa_is_concurrent();
    pa_large_lock();
    pa_segment_pool_lock();
    pa_myheap_lock_all();
    pa_segmap_lock();
    pa_fork_holder = true;
}

static void fork_unlock_pool_and_large(bool child)
{
    pa_fork_holder = false;
    pa_segmap_unlock();
    if (child)
        pa_myheap_fork_child();
    else
        pa_myheap_unlock_all();
    pa_segment_pool_unlock();
    if (fork_large_locked)
        pa_large_unlock();
}

static void fork_parent(void)
{
    fork_unlock_pool_and_large(false);
    pa_heap_fork_parent();
    pthread_mutex_unlock(&init_lock);
}

/* The forking thread lives on in the child and holds the locks: it
 * releases them as in the parent. */
static void fork_child(void)
{
    fork_unlock_pool_and_large(true);
    pa_heap_fork_child();
    pthread_mutex_unlock(&init_lock);
}

static void register_fork_handlers(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Registered at load rather than at first use: prepare handlers run in
 * the reverse order of registration, so the program's handlers registered
 * later run before every heap is paused, and their parent and child halves
 * after the heaps resume. */
__attribute__((constructor)) static void register_fork_handlers_at_load(void)
{
    pthread_once(&atfork_once, register_fork_handlers);
}

static int init_locked(int enable_concurrency)
{
    pa_mode_t wanted = enable_concurrency ? PA_MODE_CONCURRENT : PA_MODE_SINGLE;
    pa_slab_tables_init();
    pa_numa_init();
    if (pa_mode != PA_MODE_NONE) {
        if (pa_mode == wanted)
            return 0;
        errno = EBUSY;
        return -1;
    }
    if (wanted == PA_MODE_SINGLE) {
        heap_t *h = pa_heap_create();
        if (!h) {
            errno = ENOMEM;
            return -1;
        }
        pa_single_heap = h;
    } else {
        if (!pa_heap_exit_hook_setup()) {
            errno = EAGAIN;
            return -1;
        }
        pa_heap_barrier_setup();
    }
    __atomic_store_n(&pa_mode, wanted, __ATOMIC_RELEASE);
    pa_log("initialised, concurrency %s", enable_concurrency ? "on" : "off");
    return 0;
}

PALLOCATOR_API int allocator_init(int enable_concurrency)
{
    pthread_once(&atfork_once, register_fork_handlers);
    pa_mutex_lock(&init_lock);
    int rc = init_locked(enable_concurrency);
    pa_mutex_unlock(&init_lock);
    return rc;
}

/* First use without allocator_init, or a thread's first allocation. */
heap_t *pa_heap_slow(void)
{
    if (__atomic_load_n(&pa_mode, __ATOMIC_ACQUIRE) == PA_MODE_NONE &&
        allocator_init(1) != 0)
        return NULL;
    if (pa_is_concurrent())
        return pa_heap_attach_thread();
    return pa_single_heap;
}

PALLOCATOR_API int allocator_cleanup(void)
{
    pa_mutex_lock(&init_lock);
    if (pa_mode != PA_MODE_NONE) {
        pa_myheap_release_all();
        pa_heap_release_all();
        pa_segment_pool_release_all();
        pa_large_release_all();
        pa_segmap_reset();
        pa_single_heap = NULL;
        __atomic_store_n(&pa_mode, PA_MODE_NONE, __ATOMIC_RELEASE);
        pa_log("cleaned up");
    }
    pa_mutex_unlock(&init_lock);
    return 0;
}
