/*
 * os.h - the page-mapping layer ("vmalloc"): the only code that talks to
 * mmap/munmap/madvise.
 */
#ifndef PA_OS_H
#define PA_OS_H

#include "internal.h"

/* Maps size bytes (a multiple of the page size) at an address aligned to
 * align (a power of two, at least a page). NULL when the OS refuses. */
void *os_map_aligned(size_t size, size_t align);
void os_unmap(void *addr, size_t size);
/* Hands the pages back while keeping the address range reserved. */
void os_decommit(void *addr, size_t size);
/* Plain page-granular mapping for the library's own bookkeeping. */
void *os_map(size_t size);

#endif /* PA_OS_H */
