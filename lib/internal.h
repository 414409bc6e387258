/* SPDX-License-Identifier: MIT */
/*
 * internal.h - definitions every layer of the library shares: build-mode
 * assertions and logging, branch hints, alignment arithmetic and the fixed
 * geometry (granule, segment, large threshold) the layers agree on.
 */
#ifndef PA_INTERNAL_H
#define PA_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define pa_likely(x) __builtin_expect(!!(x), 1)
#define pa_unlikely(x) __builtin_expect(!!(x), 0)
#define pa_noinline __attribute__((noinline))
#define pa_always_inline inline __attribute__((always_inline))
#define pa_cold __attribute__((cold, noinline))

/* Internal assertions and logging exist only in --enable-debug builds. */
#if defined(PA_DEBUG) && PA_DEBUG
#define pa_assert(cond)                                                    \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "pallocator: %s:%d: assertion '%s' failed\n",  \
                    __FILE__, __LINE__, #cond);                            \
            abort();                                                       \
        }                                                                  \
    } while (0)
#define pa_log(...)                                                        \
    do {                                                                   \
        fprintf(stderr, "pallocator: " __VA_ARGS__);                       \
        fputc('\n', stderr);                                               \
    } while (0)
#else
#define pa_assert(cond) ((void)0)
#define pa_log(...) ((void)0)
#endif

/* Set in the thread that calls fork() while it holds every lock of the
 * library, from the library's prepare handler to its parent or child
 * handler (init.c). Fork handlers the program registered before the
 * library run in between and may allocate: that thread passes the locks it
 * holds, and works on heaps that are paused for every other thread. */
extern __thread bool pa_fork_holder __attribute__((tls_model("initial-exec")));

/* A pause in a spin loop, to the core and a sibling hyperthread. */
static inline void pa_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* The library's locks guard a few dozen instructions each, often taken by
 * two threads at once (the large-block and pool locks in a program that
 * churns large blocks on every thread): a few tries before sleeping spare
 * the futex wait and wake-up, which cost more than the critical section
 * (1-4 MiB blocks on 2 threads: about 0.8x the time). */
#define PA_MUTEX_SPINS 100

static inline void pa_mutex_lock(pthread_mutex_t *m)
{
    if (pa_fork_holder)
        return;
    for (int spin = 0; spin < PA_MUTEX_SPINS; spin++) {
        if (pthread_mutex_trylock(m) == 0)
            return;
        pa_cpu_relax();
    }
    pthread_mutex_lock(m);
}

static inline void pa_mutex_unlock(pthread_mutex_t *m)
{
    if (!pa_fork_holder)
        pthread_mutex_unlock(m);
}

/* Every block starts on a granule; the live map has one byte per granule. */
#define PA_GRANULE_SHIFT 4
#define PA_GRANULE ((size_t)1 << PA_GRANULE_SHIFT)

/* Segments are mapped aligned to their size, so masking finds the segment. */
#define PA_SEGMENT_SHIFT 22
#define PA_SEGMENT_SIZE ((size_t)1 << PA_SEGMENT_SHIFT)
#define PA_SEGMENT_MASK (PA_SEGMENT_SIZE - 1)

/* Requests above this get a mapping of their own instead of heap blocks. */
#define PA_LARGE_THRESHOLD ((size_t)1 << 20)

/* Nothing larger can be represented without overflowing pointer arithmetic. */
#define PA_MAX_REQUEST ((size_t)PTRDIFF_MAX - PA_SEGMENT_SIZE)

/* A layout unit only (where a segment's block area starts, bookkeeping
 * sizes); what the kernel needs page-aligned uses os_page_size() (os.h). */
#define PA_PAGE_SIZE ((size_t)4096)

/* The line size the layout of shared fields is padded to. */
#define PA_CACHE_LINE 64

/* Process-wide mode, set by allocator_init or the first allocation
 * (init.c) and read by every layer that locks only with concurrency. */
typedef enum pa_mode { PA_MODE_NONE, PA_MODE_SINGLE, PA_MODE_CONCURRENT } pa_mode_t;

extern pa_mode_t pa_mode;

/* Whether threads run concurrently, each on its own heap (false also
 * before initialisation). The fast paths do not read it: a thread with a
 * heap in its slot is in the concurrent mode. Read by threads that may
 * race with first-use init. */
static inline bool pa_is_concurrent(void)
{
    return __atomic_load_n(&pa_mode, __ATOMIC_RELAXED) == PA_MODE_CONCURRENT;
}

/* Each layer checks its own structures with a verifier that returns 0, or
 * -1 after reporting what it found broken through this (verify.c). */
__attribute__((cold, format(printf, 1, 2))) int pa_verify_fail(const char *fmt, ...);

static inline size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

static inline uintptr_t align_down_ptr(uintptr_t p, size_t a)
{
    return p & ~(uintptr_t)(a - 1);
}

_Static_assert((PA_GRANULE & (PA_GRANULE - 1)) == 0, "granule is a power of two");
_Static_assert(PA_LARGE_THRESHOLD < PA_SEGMENT_SIZE / 2,
               "a heap segment must hold at least two of the largest heap blocks");

#endif /* PA_INTERNAL_H */
