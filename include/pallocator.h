/*
 * pallocator.h - the public interface of libpallocator.
 *
 * libpallocator is a thread-parallel allocator: each thread allocates from
 * its own TLSF heap over segments the library maps itself, so every call runs
 * in bounded time, and every pointer handed to myfree() is validated exactly.
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

#if defined(__GNUC__)
#define PALLOCATOR_MALLOC_LIKE __attribute__((malloc, warn_unused_result))
#else
#define PALLOCATOR_MALLOC_LIKE
#endif

/* Every pointer returned by the allocation calls is aligned to this. */
#define PALLOCATOR_ALIGNMENT 16

/* Version of the interface described here. */
#define PALLOCATOR_VERSION_MAJOR 1
#define PALLOCATOR_VERSION_MINOR 0
#define PALLOCATOR_VERSION_PATCH 0

/* Allocation: NULL with errno = ENOMEM on failure. */
PALLOCATOR_API void *myalloc(size_t size) PALLOCATOR_MALLOC_LIKE;
PALLOCATOR_API void *mycalloc(size_t count, size_t size) PALLOCATOR_MALLOC_LIKE;
PALLOCATOR_API void *myrealloc(void *ptr, size_t size);

/* 0 on success (and for NULL); -1 with errno = EINVAL for any pointer that
 * is not a live block of this allocator, the heap left untouched. */
PALLOCATOR_API int myfree(void *ptr);

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
