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

#ifdef __cplusplus
}
#endif

#endif /* PALLOCATOR_H */
