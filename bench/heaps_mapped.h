/* SPDX-License-Identifier: MIT */
/*
 * heaps_mapped.h - the bytes the private heaps have mapped, read from
 * allocator_dump's summary line (the library has no call that returns
 * it), for the private-heap measurements (heapreset, heappolicy).
 */
#ifndef BENCH_HEAPS_MAPPED_H
#define BENCH_HEAPS_MAPPED_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pallocator.h>

static size_t heaps_mapped(void)
{
    char path[] = "/tmp/heapsmappedXXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    allocator_dump();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    static char text[1 << 16];
    ssize_t len = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    text[len > 0 ? len : 0] = '\0';
    /* "private heaps: H, C chunk(s), M bytes mapped, ...": the number
     * after the second comma, whether "chunk" has its plural or not. */
    const char *line = strstr(text, "private heaps:");
    const char *comma = line ? strchr(line, ',') : NULL;
    comma = comma ? strchr(comma + 1, ',') : NULL;
    size_t mapped = 0;
    if (comma)
        sscanf(comma + 1, " %zu bytes mapped", &mapped);
    return mapped;
}

#endif /* BENCH_HEAPS_MAPPED_H */
