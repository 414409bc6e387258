/* SPDX-License-Identifier: MIT */
/*
 * pallocator.h - the public interface of libpallocator.
 *
 * libpallocator is a thread-parallel allocator: each thread allocates from
 * its own heap over segments the library maps itself, from slabs of one
 * size class for requests of up to 8 KiB and from an arena (a TLSF heap)
 * above that up to 1 MiB; larger requests get a mapping of their own.
 * myalloc and myfree do an amount of work that does not grow with the
 * number of blocks
 * (mycalloc and myrealloc add clearing or copying the block), but may make
 * a system call: mmap when a heap grows or for a request over 1 MiB,
 * madvise when a free empties a segment, munmap for a large block. With
 * threads, a call also waits while allocator_stats, allocator_dump or
 * allocator_verify hold the heaps paused. Every pointer handed to myfree()
 * is validated exactly.
 * See pallocator(7) for the overview and one manual page per call.
 */
#ifndef PALLOCATOR_H
#define PALLOCATOR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; only these calls are exported. */
#if defined(__GNUC__)
#define PALLOCATOR_API __attribute__((visibility("default")))
#else
#define PALLOCATOR_API
#endif

/* Attributes that let the compiler check callers: alloc_size tells it the
 * size of a block (for _FORTIFY_SOURCE and -Warray-bounds), malloc(myfree, 1)
 * lets GCC 11 and later warn when a block reaches free() or another
 * deallocator (-Wmismatched-dealloc) and GCC 12 when it is used after
 * myfree() (-Wuse-after-free), and warn_unused_result catches a lost
 * myrealloc() result. Compilers without them get plain declarations; clang,
 * which defines __GNUC__ too, lacks the malloc form with arguments. A program
 * that misuses the calls on purpose (to see invalid frees rejected) may
 * define PALLOCATOR_NO_CHECK_ATTRIBUTES to 1 before including this header to
 * go without these checks. */
#if defined(__GNUC__)
#define PALLOCATOR_MALLOC_LIKE __attribute__((malloc, warn_unused_result))
#else
#define PALLOCATOR_MALLOC_LIKE
#endif
#if defined(__GNUC__) && !defined(PALLOCATOR_NO_CHECK_ATTRIBUTES)
#define PALLOCATOR_WARN_UNUSED __attribute__((warn_unused_result))
#define PALLOCATOR_ALLOC_SIZE(n) __attribute__((alloc_size(n)))
#define PALLOCATOR_ALLOC_SIZE2(n, m) __attribute__((alloc_size(n, m)))
#else
#define PALLOCATOR_WARN_UNUSED
#define PALLOCATOR_ALLOC_SIZE(n)
#define PALLOCATOR_ALLOC_SIZE2(n, m)
#endif
#if defined(__GNUC__) && __GNUC__ >= 11 && !defined(__clang__) && \
    !defined(PALLOCATOR_NO_CHECK_ATTRIBUTES)
#define PALLOCATOR_DEALLOC_MYFREE __attribute__((malloc(myfree, 1)))
#else
#define PALLOCATOR_DEALLOC_MYFREE
#endif

/* Every pointer returned by the allocation calls is aligned to this. */
#define PALLOCATOR_ALIGNMENT 16

/* Version of the interface described here. */
#define PALLOCATOR_VERSION_MAJOR 1
#define PALLOCATOR_VERSION_MINOR 0
#define PALLOCATOR_VERSION_PATCH 0

/* 0 on success (and for NULL); -1 with errno = EINVAL for any pointer that
 * is not a live block of this allocator, the heap left untouched. Declared
 * first: the allocation calls below name it as their deallocator. */
PALLOCATOR_API int myfree(void *ptr);

/* Allocation: NULL with errno = ENOMEM on failure, also when the first
 * call of the process cannot initialise the allocator (allocator_init(3)
 * reports that cause as EAGAIN). */
PALLOCATOR_API void *myalloc(size_t size) PALLOCATOR_MALLOC_LIKE PALLOCATOR_ALLOC_SIZE(1) PALLOCATOR_DEALLOC_MYFREE;
PALLOCATOR_API void *mycalloc(size_t count, size_t size) PALLOCATOR_MALLOC_LIKE PALLOCATOR_ALLOC_SIZE2(1, 2) PALLOCATOR_DEALLOC_MYFREE;
/* Not malloc-like: it may return ptr itself. */
PALLOCATOR_API void *myrealloc(void *ptr, size_t size) PALLOCATOR_WARN_UNUSED PALLOCATOR_ALLOC_SIZE(2) PALLOCATOR_DEALLOC_MYFREE;

/* A block whose address is a multiple of alignment, a power of two (any up
 * to 1 MiB cheaply; larger ones get a mapping of their own): NULL with
 * errno = EINVAL for any other alignment, else as myalloc. An ordinary
 * block: myfree, myrealloc (which may lose the alignment) and
 * myalloc_usable_size take exactly the pointer returned. */
PALLOCATOR_API void *myalloc_aligned(size_t alignment, size_t size) PALLOCATOR_MALLOC_LIKE PALLOCATOR_ALLOC_SIZE(2) PALLOCATOR_DEALLOC_MYFREE;
/* Copies of a string (at most n bytes of it, plus the terminator), to be
 * freed with myfree; NULL with errno = ENOMEM when out of memory. */
PALLOCATOR_API char *mystrdup(const char *s) PALLOCATOR_MALLOC_LIKE PALLOCATOR_DEALLOC_MYFREE;
PALLOCATOR_API char *mystrndup(const char *s, size_t n) PALLOCATOR_MALLOC_LIKE PALLOCATOR_DEALLOC_MYFREE;

/* Usable bytes of a live block, or 0 with errno = EINVAL. */
PALLOCATOR_API size_t myalloc_usable_size(void *ptr);

/* Life cycle. */
PALLOCATOR_API int allocator_init(int enable_concurrency);
PALLOCATOR_API int allocator_cleanup(void);

/* Introspection. */
PALLOCATOR_API int allocator_stats(size_t *allocated, size_t *freed, size_t *peak);
PALLOCATOR_API void allocator_dump(void);
PALLOCATOR_API int allocator_verify(void);

/* Private heaps (myheap_create(3)): heaps of their own, apart from the
 * threads' heaps, each with its own policies, any of whose blocks are freed
 * all at once by myheap_reset or myheap_destroy. Any thread may use any
 * heap; each call takes the heap's lock unless the heap was created with
 * MYHEAP_SINGLE_THREAD. */
typedef struct myheap myheap_t;

/* Flags (or-ed) for myheap_create and myheap_create_in. */
#define MYHEAP_SINGLE_THREAD 0x1u /* one thread at a time uses it: no lock, no atomics */
#define MYHEAP_LOCKED 0x2u        /* real time: all of limit mapped, touched and locked
                                     at creation; no system call or page fault after */
#define MYHEAP_BEST_FIT 0x4u      /* exact best fit: least fragmentation, not O(1) */
#define MYHEAP_POW2_FIT 0x8u      /* power-of-two classes: O(1) and the size
                                     myheap_size_for gives cannot fail */
#define MYHEAP_NUMA_NODE 0x10u    /* its memory on numa_node (myheap_create only) */

/* When a heap gives free memory back to the OS (myheap_create only). */
#define MYHEAP_RELEASE_DELAYED 0u   /* after release_delay_ms (default) */
#define MYHEAP_RELEASE_IMMEDIATE 1u /* as soon as a free leaves whole pages free */
#define MYHEAP_RELEASE_NEVER 2u     /* only on myheap_destroy */

/* All zero: the defaults. size lets the structure grow: set it to
 * sizeof(struct myheap_options), or leave it 0 for this first version. */
struct myheap_options {
    size_t size;
    size_t limit;              /* most bytes the heap may map; 0: no limit */
    unsigned flags;            /* MYHEAP_* flags */
    unsigned release;          /* MYHEAP_RELEASE_* */
    unsigned release_delay_ms; /* 0: 1000 */
    int numa_node;             /* with MYHEAP_NUMA_NODE */
};

/* The smallest buffer myheap_create_in accepts. */
#define MYHEAP_MIN_BUFFER 16384

/* NULL with errno = EINVAL (bad options), ENOMEM, or for MYHEAP_LOCKED
 * what mlock(2) reported (EPERM, ENOMEM, EAGAIN). */
PALLOCATOR_API myheap_t *myheap_create(const struct myheap_options *opts) PALLOCATOR_WARN_UNUSED;
/* A heap inside buf, which the caller owns and which holds the heap's
 * metadata too; no system call, ever, and no need of allocator_init. NULL
 * with errno = EINVAL for a NULL buf, size below MYHEAP_MIN_BUFFER or a
 * flag it cannot take (MYHEAP_LOCKED, MYHEAP_NUMA_NODE). */
PALLOCATOR_API myheap_t *myheap_create_in(void *buf, size_t size, unsigned flags) PALLOCATOR_WARN_UNUSED;
/* The buffer size in which a MYHEAP_POW2_FIT heap never fails a request for
 * fragmentation while its live blocks never request more than peak bytes
 * together and none more than largest; 0 when that size overflows. */
PALLOCATOR_API size_t myheap_size_for(size_t peak, size_t largest);

PALLOCATOR_API void *myheap_alloc(myheap_t *heap, size_t size) PALLOCATOR_WARN_UNUSED PALLOCATOR_ALLOC_SIZE(2);
PALLOCATOR_API void *myheap_calloc(myheap_t *heap, size_t count, size_t size) PALLOCATOR_WARN_UNUSED PALLOCATOR_ALLOC_SIZE2(2, 3);
PALLOCATOR_API void *myheap_realloc(myheap_t *heap, void *ptr, size_t size) PALLOCATOR_WARN_UNUSED PALLOCATOR_ALLOC_SIZE(3);
PALLOCATOR_API void *myheap_alloc_aligned(myheap_t *heap, size_t alignment, size_t size) PALLOCATOR_WARN_UNUSED PALLOCATOR_ALLOC_SIZE(3);
/* 0 (also for NULL); -1 with errno = EINVAL for anything that is not a
 * live block of heap, or a heap that is not one. */
PALLOCATOR_API int myheap_free(myheap_t *heap, void *ptr);
/* Usable bytes of a live block of heap, or 0 with errno = EINVAL. */
PALLOCATOR_API size_t myheap_usable_size(myheap_t *heap, void *ptr);
/* Every block freed at once, in time that depends on the heap's memory, not
 * on its blocks; reset keeps the memory, destroy gives it back (a heap in a
 * caller's buffer leaves the buffer to the caller). 0, or -1 with errno =
 * EINVAL. */
PALLOCATOR_API int myheap_reset(myheap_t *heap);
PALLOCATOR_API int myheap_destroy(myheap_t *heap);
/* As allocator_stats and allocator_verify, for one heap. */
PALLOCATOR_API int myheap_stats(myheap_t *heap, size_t *allocated, size_t *freed, size_t *peak);
PALLOCATOR_API int myheap_verify(myheap_t *heap);

#ifdef __cplusplus
}
#endif

#endif /* PALLOCATOR_H */
