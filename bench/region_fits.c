/* SPDX-License-Identifier: MIT */
/*
 * region_fits.c - the three fits of a region (lib/region.c) side by side on
 * one seeded random workload: requests from 16 B to 64 KiB, each octave alike,
 * live requested bytes held at a target by freeing random blocks first.
 * Prints, per fit, the region's header and live map, the part of the area
 * ever handed out (up to its highest byte) over the target, and the cycles of
 * single allocations and frees (p50, p99.9, max). Not a test: timings are
 * the machine's. Build: make bench/region-fits; run: bench/region-fits
 * [--ops N] [--live BYTES] [--region BYTES] [--seed S]; a region too small
 * for the workload shows how many requests each fit failed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "os.h"
#include "region.h"

#if defined(__x86_64__) || defined(__i386__)
static inline uint64_t ticks(void)
{
    return __builtin_ia32_rdtsc();
}
#define TICK_UNIT "cycles"
#else
static inline uint64_t ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#define TICK_UNIT "ns"
#endif

static uint64_t rng(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* 0 when nothing was timed (a region too small to reach the target). */
static uint64_t pct(const uint64_t *v, size_t n, double p)
{
    return n ? v[(size_t)(p * (double)(n - 1))] : 0;
}

enum { SLOTS = 1 << 17 };

static void run(region_fit_t fit, const char *name, size_t ops, size_t live_target, uint64_t seed,
                size_t size)
{
    char *base = pa_os_map(size);
    region_t *r = base ? pa_region_init(base, size, fit, NULL) : NULL;
    void **slot = calloc(SLOTS, sizeof *slot);
    size_t *want = calloc(SLOTS, sizeof *want);
    uint64_t *ta = malloc(ops * sizeof *ta), *tf = malloc(ops * sizeof *tf);
    if (!r || !slot || !want || !ta || !tf) {
        fprintf(stderr, "region-fits: out of memory\n");
        exit(1);
    }
    size_t live = 0, na = 0, nf = 0, failed = 0, count = 0;
    uintptr_t high = 0, low = UINTPTR_MAX;
    size_t *used = malloc(SLOTS * sizeof *used); /* indexes of full slots */
    for (size_t op = 0; op < ops; op++) {
        size_t octave = (size_t)16 << (rng(&seed) % 12);
        size_t n = octave + rng(&seed) % octave;
        while (count && (live + n > live_target || count == SLOTS)) {
            size_t j = rng(&seed) % count, k = used[j];
            uint64_t t0 = ticks();
            pa_region_free(r, slot[k]);
            uint64_t t1 = ticks();
            if (nf < ops)
                tf[nf++] = t1 - t0;
            live -= want[k];
            slot[k] = NULL;
            used[j] = used[--count];
        }
        size_t k = 0;
        while (slot[k])
            k = rng(&seed) % SLOTS;
        uint64_t t0 = ticks();
        char *p = pa_region_alloc(r, n);
        uint64_t t1 = ticks();
        if (!p) {
            failed++;
            continue;
        }
        ta[na++] = t1 - t0;
        p[0] = 1; /* the workload touches what it gets */
        uintptr_t end = (uintptr_t)p + pa_region_usable(r, p);
        if (end > high)
            high = end;
        if ((uintptr_t)p < low)
            low = (uintptr_t)p - 16; /* the first block starts the area */
        slot[k] = p;
        want[k] = n;
        live += n;
        used[count++] = k;
    }
    qsort(ta, na, sizeof *ta, cmp_u64);
    qsort(tf, nf, sizeof *tf, cmp_u64);
    if (pa_region_verify(r)) {
        fprintf(stderr, "region-fits: %s: verify failed\n", name);
        exit(1);
    }
    printf("%-5s header+map %zu B, area used/live %.3f  alloc p50 %4llu p99.9 %6llu max %8llu  "
           "free p50 %4llu p99.9 %6llu max %8llu %s  (%zu failed)\n",
           name, (size_t)(low - (uintptr_t)base), (double)(high - low) / (double)live_target,
           (unsigned long long)pct(ta, na, 0.5), (unsigned long long)pct(ta, na, 0.999),
           (unsigned long long)pct(ta, na, 1.0), (unsigned long long)pct(tf, nf, 0.5),
           (unsigned long long)pct(tf, nf, 0.999), (unsigned long long)pct(tf, nf, 1.0), TICK_UNIT,
           failed);
    free(used);
    free(slot);
    free(want);
    free(ta);
    free(tf);
    pa_os_unmap(base, size);
}

int main(int argc, char **argv)
{
    size_t ops = 2000000, live = (size_t)32 << 20;
    size_t size = (size_t)1 << 30; /* touched only as far as the area used */
    uint64_t seed = 12345;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ops"))
            ops = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--live"))
            live = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--region"))
            size = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], NULL, 0);
    }
    printf("region fits: %zu requests of 16 B..64 KiB (octaves alike), %zu live bytes, "
           "%zu-byte region, seed %llu\n", ops, live, size, (unsigned long long)seed);
    run(REGION_FIT_GOOD, "good", ops, live, seed, size);
    run(REGION_FIT_BEST, "best", ops, live, seed, size);
    run(REGION_FIT_POW2, "pow2", ops, live, seed, size);
    return 0;
}
