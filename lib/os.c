/* SPDX-License-Identifier: MIT */
/*
 * os.c - page mapping ("vmalloc" layer): reserves and releases address space
 * with mmap and munmap, including mappings aligned to a power of two larger
 * than a page, which the segment layer relies on to find a segment by masking,
 * and resizes or moves mappings with mremap.
 *
 * Memory handed to users is mapped without MAP_NORESERVE: the kernel then
 * refuses a request it cannot back (ENOMEM) instead of killing the process
 * when the pages are touched. Only the segment map's sparse table keeps it.
 */
/* mremap and its flags are GNU extensions. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"

#include "annotate.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

size_t pa_os_page_size_cached;

size_t pa_os_page_size_init(void)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t size = page > 0 ? (size_t)page : PA_PAGE_SIZE;
    __atomic_store_n(&pa_os_page_size_cached, size, __ATOMIC_RELAXED);
    return size;
}

static void *os_mmap(size_t size, int prot, int flags)
{
    void *p = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *pa_os_map(size_t size)
{
    return os_mmap(size, PROT_READ | PROT_WRITE, 0);
}

void *pa_os_map_sparse(size_t size)
{
    return os_mmap(size, PROT_READ | PROT_WRITE, MAP_NORESERVE);
}

void pa_os_unmap(void *addr, size_t size)
{
    if (addr)
        pa_mem_forget(addr, size);
    if (addr && munmap(addr, size) != 0)
        pa_log("munmap(%p, %zu) failed: errno %d", addr, size, errno);
}

/* Over-map by the alignment, then trim both ends: mmap alone gives only page
 * alignment, and the trimmed remainders go straight back to the OS. */
static void *os_mmap_aligned(size_t size, size_t align, int prot, int flags)
{
    if (align <= os_page_size())
        return os_mmap(size, prot, flags);
    if (size > SIZE_MAX - align)
        return NULL;
    char *raw = os_mmap(size + align, prot, flags);
    if (!raw)
        return NULL;
    uintptr_t start = align_down_ptr((uintptr_t)raw + align - 1, align);
    size_t head = start - (uintptr_t)raw;
    size_t tail = align - head;
    if (head)
        pa_os_unmap(raw, head);
    if (tail)
        pa_os_unmap((char *)start + size, tail);
    return (void *)start;
}

void *pa_os_map_aligned(size_t size, size_t align)
{
    return os_mmap_aligned(size, align, PROT_READ | PROT_WRITE, 0);
}

void *pa_os_reserve_aligned(size_t size, size_t align)
{
    return os_mmap_aligned(size, align, PROT_NONE, MAP_NORESERVE);
}

void pa_os_decommit(void *addr, size_t size)
{
    if (size && madvise(addr, size, MADV_DONTNEED) != 0)
        pa_log("madvise(%p, %zu) failed", addr, size);
}

int pa_os_lock(void *addr, size_t size)
{
    return mlock(addr, size) == 0 ? 0 : errno;
}

bool pa_os_resize(void *addr, size_t old_size, size_t new_size)
{
    return mremap(addr, old_size, new_size, 0) == addr;
}

bool pa_os_move(void *addr, size_t old_size, size_t new_size, void *dest)
{
    return mremap(addr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dest) == dest;
}
