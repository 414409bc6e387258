/*
 * os.c - page mapping ("vmalloc" layer): reserves and releases address space
 * with mmap and munmap, including mappings aligned to a power of two larger
 * than a page, which the segment layer relies on to find a segment by masking.
 */
#include "os.h"

#include "annotate.h"

#include <errno.h>
#include <sys/mman.h>

void *os_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void os_unmap(void *addr, size_t size)
{
    if (addr)
        pa_mem_forget(addr, size);
    if (addr && munmap(addr, size) != 0)
        pa_log("munmap(%p, %zu) failed: errno %d", addr, size, errno);
}

/* Over-map by the alignment, then trim both ends: mmap alone gives only page
 * alignment, and the trimmed remainders go straight back to the OS. */
void *os_map_aligned(size_t size, size_t align)
{
    if (align <= PA_PAGE_SIZE)
        return os_map(size);
    if (size > SIZE_MAX - align)
        return NULL;
    char *raw = os_map(size + align);
    if (!raw)
        return NULL;
    uintptr_t start = align_down_ptr((uintptr_t)raw + align - 1, align);
    size_t head = start - (uintptr_t)raw;
    size_t tail = align - head;
    if (head)
        os_unmap(raw, head);
    if (tail)
        os_unmap((char *)start + size, tail);
    return (void *)start;
}

void os_decommit(void *addr, size_t size)
{
    if (size && madvise(addr, size, MADV_DONTNEED) != 0)
        pa_log("madvise(%p, %zu) failed", addr, size);
}
