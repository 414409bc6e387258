/* SPDX-License-Identifier: MIT */
/*
 * heapreset.c - what myheap_reset and myheap_destroy cost with many live
 * blocks: a private heap gets BLOCKS blocks, then is reset (or destroyed);
 * beside it, a plain mapping of the bytes the heap had mapped, every page
 * touched, is unmapped. Prints the median and the spread of ROUNDS rounds
 * in microseconds. Not part of make bench (a measurement, not a workload):
 *
 *   make bench/heapreset && bench/heapreset [blocks] [rounds]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <pallocator.h>

#include "heaps_mapped.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    printf("%-34s median %10.1f us  min %10.1f  max %10.1f  (%d rounds)\n", what, t[n / 2], t[0],
           t[n - 1], n);
}

static void fill(myheap_t *h, size_t blocks)
{
    for (size_t i = 0; i < blocks; i++) {
        char *p = myheap_alloc(h, 16 + (i & 31));
        if (!p) {
            perror("myheap_alloc");
            exit(1);
        }
        p[0] = (char)i;
    }
}

int main(int argc, char **argv)
{
    size_t blocks = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 7;
    if (rounds < 1 || rounds > 100)
        rounds = 7;
    double reset[100], destroy[100], unmap[100];
    size_t mapped = 0;
    for (int r = 0; r < rounds; r++) {
        myheap_t *h = myheap_create(NULL);
        fill(h, blocks);
        double t0 = now_us();
        myheap_reset(h);
        reset[r] = now_us() - t0;
        fill(h, blocks);
        mapped = heaps_mapped();
        t0 = now_us();
        myheap_destroy(h);
        destroy[r] = now_us() - t0;
        /* The same bytes as one plain mapping, every page touched. */
        char *m = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        for (size_t off = 0; off < mapped; off += 4096)
            m[off] = 1;
        t0 = now_us();
        munmap(m, mapped);
        unmap[r] = now_us() - t0;
    }
    printf("%zu live blocks of 16..47 bytes, %zu bytes mapped by the heap\n", blocks, mapped);
    report("myheap_reset", reset, rounds);
    report("myheap_destroy", destroy, rounds);
    report("munmap of the same bytes, touched", unmap, rounds);
    return 0;
}
