/* SPDX-License-Identifier: MIT */
/*
 * os.h - the page-mapping layer ("vmalloc"): the only code that talks to
 * mmap/munmap/mremap/madvise/mlock.
 *
 * Two page sizes: PA_PAGE_SIZE (internal.h) is a compile-time layout unit
 * (where a segment's block area starts); os_page_size() is the kernel's
 * page, read once at run time, and every length or address handed to the
 * kernel where it requires page alignment (munmap trims, madvise, mremap)
 * is rounded to it.
 */
#ifndef PA_OS_H
#define PA_OS_H

#include "internal.h"

extern size_t pa_os_page_size_cached;
size_t pa_os_page_size_init(void);

/* The kernel's page size (4 KiB on x86-64, 16 or 64 KiB on some arm64 and
 * ppc64le kernels). */
static inline size_t os_page_size(void)
{
    size_t page = __atomic_load_n(&pa_os_page_size_cached, __ATOMIC_RELAXED);
    return pa_likely(page != 0) ? page : pa_os_page_size_init();
}

/* Maps size bytes (a multiple of the page size) at an address aligned to
 * align (a power of two, at least a page), charged to the commit limit so
 * that the kernel can refuse it. NULL when the OS refuses. */
void *pa_os_map_aligned(size_t size, size_t align);
/* Address space only (no access, no commit charge), aligned like
 * pa_os_map_aligned: the target of pa_os_move. */
void *pa_os_reserve_aligned(size_t size, size_t align);
void pa_os_unmap(void *addr, size_t size);
/* Hands the pages back while keeping the address range reserved. */
void pa_os_decommit(void *addr, size_t size);
/* Makes every page of [addr, addr + size) (page aligned) present and
 * locked in memory (mlock), so that touching it never faults. 0, or the
 * errno mlock reported (EPERM, ENOMEM, EAGAIN). The pages stay locked
 * until they are unmapped. */
int pa_os_lock(void *addr, size_t size);
/* Plain page-granular mapping for the library's own bookkeeping. */
void *pa_os_map(size_t size);
/* A sparse table: reserved without commit charge (MAP_NORESERVE), its
 * untouched pages read as zeros and cost nothing. */
void *pa_os_map_sparse(size_t size);
/* Grows or shrinks the mapping [addr, addr + old_size) without moving it;
 * false when the pages after it are taken (or the OS refuses). */
bool pa_os_resize(void *addr, size_t old_size, size_t new_size);
/* Moves the mapping [addr, addr + old_size) to dest, resized to new_size,
 * replacing whatever dest held; the pages move, nothing is copied. */
bool pa_os_move(void *addr, size_t old_size, size_t new_size, void *dest);

#endif /* PA_OS_H */
